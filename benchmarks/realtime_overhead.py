"""Realtime overhead: POST /orchestrator/analyze latency minus the model's latency.

Starts everything for real on this machine: a fake OpenAI-compatible model
with a fixed latency, a Celery worker (threads pool), the API under
gunicorn (`orchestrator serve`), PostgreSQL and Redis. Then it sends
requests at concurrency 1 and 8 and prints p50/p99 of the overhead: what the
service adds on top of the four parallel model calls.

    .venv/bin/python benchmarks/realtime_overhead.py [--requests 200] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from harness import bench_database, percentile, start_api, timed_posts  # also puts the repository on sys.path

from orchestrator.config import Settings  # noqa: E402
from tests.conftest import settings_env  # noqa: E402
from tests.factories import analyze_body  # noqa: E402
from tests.fake_llm import FakeLLM  # noqa: E402
from tests.services import Process, service_env, start_celery_worker  # noqa: E402


def run_load(url: str, total: int, concurrency: int, segments: int) -> list[float]:
    return timed_posts(f"{url}/orchestrator/analyze", lambda _: analyze_body(segments), total, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--latency", type=float, default=0.1, help="fake model latency in seconds")
    parser.add_argument("--segments", type=int, default=40, help="segments per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()

    database_url = bench_database("orchestrator_bench")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    suffix = uuid.uuid4().hex[:8]
    processes: list[Process] = []
    with FakeLLM(latency_s=args.latency) as llm:
        settings = Settings(
            database_url=database_url,
            celery_broker_url="redis://127.0.0.1:6379/12",
            # Repeated requests would be answered from the response cache: measure the work itself.
            response_cache_ttl=0,
            celery_realtime_queue=f"realtime-{suffix}",
            celery_batch_queue=f"analysis-{suffix}",
            model_adapter_url=llm.url,
            model_name="fake-model",
        )
        env = service_env(**settings_env(settings))
        try:
            processes.append(start_celery_worker(env, log_dir, "bench-worker", concurrency=32))
            api, url = start_api(env, log_dir, "bench-api")
            processes.append(api)
            run_load(url, 20, 4, args.segments)  # warm-up: connections, caches
            print(f"fake model latency {args.latency * 1000:.0f} ms, {args.segments} segments, "
                  f"{args.requests} requests per level; overhead = POST latency - model latency")  # fmt: skip
            for concurrency in args.concurrency:
                started = time.perf_counter()
                latencies = run_load(url, args.requests, concurrency, args.segments)
                wall = time.perf_counter() - started
                overhead = [(t - args.latency) * 1000 for t in latencies]
                print(
                    f"concurrency {concurrency:>2}: overhead p50 {statistics.median(overhead):6.1f} ms, "
                    f"p99 {percentile(overhead, 99):6.1f} ms; {len(latencies) / wall:6.1f} requests/s"
                )
        finally:
            for process in processes:
                process.stop()
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    main()
