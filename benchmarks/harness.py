"""What the benchmark scripts share: the repository on sys.path, percentiles, a fresh database, the API
under gunicorn, timed POSTs, and a process tree's CPU time and resident memory (from /proc)."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from orchestrator.config import Settings  # noqa: E402
from orchestrator.migrate import upgrade_database  # noqa: E402
from tests.services import Process, ensure_postgres, ensure_redis, free_port, recreate_database, wait_until  # noqa: E402

#: The benchmarks' broker and result backend (the tests use database 13).
BROKER_URL = "redis://127.0.0.1:6379/12"


def service_settings(database_url: str, model_url: str, bootstrap: str, **overrides: Any) -> Settings:
    """The service's settings for a benchmark run: its own queues, topics and consumer group, the fake
    model, and no response cache (repeated requests would be answered from it: measure the work itself)."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        database_url=database_url,
        celery_broker_url=BROKER_URL,
        response_cache_ttl=0,
        celery_realtime_queue=f"rt-{suffix}",
        celery_batch_queue=f"batch-{suffix}",
        model_adapter_url=model_url,
        model_name="fake-model",
        kafka_bootstrap_servers=bootstrap,
        kafka_tasks_topic=f"analysis.tasks.{suffix}",
        kafka_dlq_topic=f"analysis.dlq.{suffix}",
        kafka_group_id=f"bench-{suffix}",
        log_level="WARNING",
    )
    return replace(settings, **overrides)


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


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(_stat_fields(stat.read_text())[1])
        except (OSError, IndexError, ValueError):  # exited meanwhile
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, stack = [], [pid]
    while stack:
        tree.append(stack.pop())
        stack += children.get(tree[-1], [])
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid``'s process tree, reaped children included."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = _stat_fields(Path(f"/proc/{member}/stat").read_text())
        except OSError:
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def resident_bytes(pid: int) -> int:
    """Resident memory (VmRSS) of ``pid``'s process tree."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    return total


def postgres_server_pid(database_url: str) -> int:
    """The PostgreSQL server (postmaster) behind ``database_url``: its process tree holds every backend."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            backend = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
            # (Read while the backend lives: it exits with its connection.)
            return int(_stat_fields(Path(f"/proc/{backend}/stat").read_text())[1])
    finally:
        engine.dispose()


def redis_server_pid(url: str) -> int:
    return int(redis.Redis.from_url(url).info("server")["process_id"])


def _stat_fields(stat: str) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, ppid, ... (field 3 onwards)."""
    return stat[stat.rindex(")") + 2 :].split()


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
