"""What the benchmark scripts share: the repository on sys.path, percentiles, a fresh database, the API
under gunicorn, and timed POSTs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from orchestrator.migrate import upgrade_database  # noqa: E402
from tests.services import Process, ensure_postgres, ensure_redis, free_port, recreate_database, wait_until  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bench_database(name: str) -> str:
    """A fresh, migrated PostgreSQL database ``name`` (PostgreSQL and Redis started if needed); its URL."""
    ensure_postgres()
    ensure_redis()
    url = recreate_database(name)
    upgrade_database(url)
    return url


def start_api(env: Mapping[str, str], log_dir: Path, name: str) -> tuple[Process, str]:
    """``orchestrator serve`` (gunicorn) on a free port, once it answers /healthz; the process and its URL."""
    port = free_port()
    serve = [sys.executable, "-m", "orchestrator.cli", "--log-level", "WARNING", "serve", "--port", str(port)]
    process = Process(name, serve, env, log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url), 120, "the API")
    except BaseException:
        process.stop()
        raise
    return process, url


def timed_posts(
    url: str, body: Callable[[int], dict[str, Any]], total: int, concurrency: int, timeout: float = 60
) -> list[float]:
    """POST ``body(i)`` to ``url`` for i in range(total), ``concurrency`` at a time; each one's seconds.

    Raises if an answer is not a 200 with status ``ok``: a benchmark of failures measures nothing.
    """
    sessions = [requests.Session() for _ in range(concurrency)]

    def one(index: int) -> float:
        started = time.perf_counter()
        response = sessions[index % concurrency].post(url, json=body(index), timeout=timeout)
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or response.json()["status"] != "ok":
            raise RuntimeError(f"unexpected answer {response.status_code}: {response.text[:300]}")
        return elapsed

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(total)))


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
