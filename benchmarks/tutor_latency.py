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
import tempfile
import time
import uuid
from pathlib import Path

from harness import bench_database, percentile, start_api, timed_posts  # also puts the repository on sys.path

from orchestrator.config import Settings  # noqa: E402
from tests.conftest import settings_env  # noqa: E402
from tests.services import Process, service_env, start_celery_worker  # noqa: E402

SENTENCES = [
    json.loads(line)["text"]
    for line in (Path(__file__).parent / "data" / "learner_sentences.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]


def run_load(url: str, total: int, concurrency: int) -> list[float]:
    def learner_turn(index: int) -> dict[str, object]:
        return {
            "text": SENTENCES[index % len(SENTENCES)],
            "session_id": f"bench-{uuid.uuid4().hex[:10]}",
            "input_type": "text",
            "learner_profile": {"level": "A2"},
        }

    return timed_posts(f"{url}/api/v1/ai/analyze", learner_turn, total, concurrency)


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

    database_url = bench_database("orchestrator_bench_tutor")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-tutor-"))
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        database_url=database_url,
        celery_broker_url="redis://127.0.0.1:6379/12",
        # Repeated requests would be answered from the response cache: measure the work itself.
        response_cache_ttl=0,
        celery_realtime_queue=f"realtime-{suffix}",
        celery_batch_queue=f"analysis-{suffix}",
    )
    env = service_env(**settings_env(settings))
    processes: list[Process] = []
    try:
        worker = start_celery_worker(env, log_dir, "bench-tutor-worker", concurrency=16)
        processes.append(worker)
        api, url = start_api(env, log_dir, "bench-tutor-api")
        processes.append(api)
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


if __name__ == "__main__":
    main()
