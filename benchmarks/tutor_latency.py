"""Tutoring latency through the API with the builtin analysers, warm: p50/p95 at concurrency 1 and 8.

Starts for real: a Celery worker (threads pool; the builtin analysers, warmed
when it starts), the API under gunicorn (`orchestrator serve`), PostgreSQL
and Redis. Sends learner sentences from benchmarks/data/learner_sentences.jsonl
to POST /api/v1/ai/analyze and prints the latency percentiles, then the
worker's resident memory with every analyser loaded.

    .venv/bin/python benchmarks/tutor_latency.py [--requests 200] [--concurrency 1 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from harness import percentile  # also puts the repository on sys.path

from orchestrator.config import Settings  # noqa: E402
from orchestrator.migrate import upgrade_database  # noqa: E402
from tests.conftest import settings_env  # noqa: E402
from tests.services import (  # noqa: E402
    Process,
    ensure_postgres,
    ensure_redis,
    free_port,
    recreate_database,
    service_env,
    start_celery_worker,
    wait_until,
)

SENTENCES = [
    json.loads(line)["text"]
    for line in (Path(__file__).parent / "data" / "learner_sentences.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]


def run_load(url: str, total: int, concurrency: int) -> list[float]:
    sessions = [requests.Session() for _ in range(concurrency)]

    def one(index: int) -> float:
        body = {
            "text": SENTENCES[index % len(SENTENCES)],
            "session_id": f"bench-{uuid.uuid4().hex[:10]}",
            "input_type": "text",
            "learner_profile": {"level": "A2"},
        }
        started = time.perf_counter()
        response = sessions[index % concurrency].post(f"{url}/api/v1/ai/analyze", json=body, timeout=60)
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or response.json()["status"] != "ok":
            raise RuntimeError(f"unexpected answer {response.status_code}: {response.text[:300]}")
        return elapsed

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(total)))


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()

    ensure_postgres()
    ensure_redis()
    database_url = recreate_database("orchestrator_bench_tutor")
    upgrade_database(database_url)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-tutor-"))
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        database_url=database_url,
        celery_broker_url="redis://127.0.0.1:6379/12",
        celery_realtime_queue=f"realtime-{suffix}",
        celery_batch_queue=f"analysis-{suffix}",
    )
    env = service_env(**settings_env(settings))
    processes: list[Process] = []
    try:
        worker = start_celery_worker(env, log_dir, "bench-tutor-worker", concurrency=16)
        processes.append(worker)
        port = free_port()
        serve = [sys.executable, "-m", "orchestrator.cli", "--log-level", "WARNING", "serve", "--port", str(port)]
        processes.append(Process("bench-tutor-api", serve, env, log_dir))
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), 120, "the API")
        run_load(url, 30, 4)  # warm-up: connections, a second harper linter for concurrent checks
        print(f"builtin analysers, {args.requests} learner sentences per level, POST /api/v1/ai/analyze")
        for concurrency in args.concurrency:
            started = time.perf_counter()
            latencies = [t * 1000 for t in run_load(url, args.requests, concurrency)]
            wall = time.perf_counter() - started
            print(
                f"concurrency {concurrency:>2}: p50 {statistics.median(latencies):6.1f} ms, "
                f"p95 {percentile(latencies, 95):6.1f} ms, p99 {percentile(latencies, 99):6.1f} ms; "
                f"{len(latencies) / wall:5.1f} requests/s"
            )
        print(f"worker resident memory, every analyser loaded: {resident_mb(worker.popen.pid):.0f} MB")
    finally:
        for process in processes:
            process.stop()
    print(f"logs: {log_dir}")


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    main()
