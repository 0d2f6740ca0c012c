"""Side by side: a naive Celery chord (benchmarks/naive_chord.py) against this service, in one run.

Both sides use the same PostgreSQL database, Redis (db 12, queues of their own), Kafka-compatible broker
(Tansu), fake model (tests/fake_llm.py, latency 0) and worker settings: one `celery worker` process, threads
pool, the same concurrency, prefetch multiplier 1, late acknowledgement, --loglevel=INFO. The sides run one
after the other, never at once, each on processes of its own that are stopped before the other starts.

- Realtime: POSTs of a 40-segment body through HTTP, at concurrency 1 and 8, timed from the client (this
  process) until the answer is read. Naive: a ten-line Flask endpoint under gunicorn (gthread, 1 process,
  32 threads, access log: the service's `orchestrator serve` settings) that launches the chord and waits
  for it; the callback INSERTs the merged answers. Service: POST /orchestrator/analyze (validation, claim,
  stored run and model calls, response cache off); both wait for the chord through the Redis result backend.
- Kafka: a burst of 10-segment events produced at once, until each is stored; events/s is the burst size
  over the time from the first send to the last stored row. Naive: a kafka-python consumer loop that
  launches one chord per message. Service: `orchestrator bridge`. A few events warm each side up first.
- CPU per request or event of each process tree (worker, API, bridge/consumer), from /proc utime + stime
  (children included) before and after; for Redis and PostgreSQL (the whole servers, shared with anything
  else running) during the burst. Resident memory (VmRSS) of the worker when ready and after the burst.

    .venv/bin/python benchmarks/side_by_side.py [--requests 200] [--events 400] [--runs 1] [--py-spy DIR]

With --runs > 1, the figures are medians over the runs, and each run's service/naive ratio is printed too,
to show the noise. --py-spy DIR records each side's worker and its bridge/consumer (the service's
`orchestrator bridge`, the naive consumer loop) with py-spy during the burst: raw collapsed stacks in DIR,
one file per side and process, e.g. service-bridge-HHMMSS.txt (py-spy --gil at 200 Hz: a sample is 5 ms
of a thread holding the GIL). py-spy takes CPU and pauses the processes it samples, so the figures of that
run are not comparable with a run without it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import naive_chord  # noqa: E402
from harness import (  # also puts the repository on sys.path
    BROKER_URL,
    bench_database,
    cpu_seconds,
    percentile,
    postgres_server_pid,
    redis_server_pid,
    resident_bytes,
    service_settings,
    start_api,
    timed_posts,
)
from sqlalchemy import Engine, create_engine, select  # noqa: E402

from orchestrator.models import AnalysisRun  # noqa: E402
from tests.conftest import settings_env  # noqa: E402
from tests.factories import analyze_body, task_event  # noqa: E402
from tests.fake_llm import FakeLLM  # noqa: E402
from tests.kafka import create_topics, produce, start_broker  # noqa: E402
from tests.services import Process, free_port, service_env, start_celery_worker, wait_until  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parent
CONCURRENCY = (1, 8)
WARM_UP = 8

#: (key, label, unit) of each row of the table.
ROWS = [
    *[(f"c{c}_{q}", f"realtime latency {q}, concurrency {c}", "ms") for c in CONCURRENCY for q in ("p50", "p99")],
    *[(f"c{c}_rate", f"realtime throughput, concurrency {c}", "req/s") for c in CONCURRENCY],
    ("kafka_rate", "Kafka burst → stored", "events/s"),
    ("cpu_api", "CPU of the API per request", "ms"),
    ("cpu_worker_rt", "CPU of the worker per request", "ms"),
    ("cpu_worker", "CPU of the worker per Kafka event", "ms"),
    ("cpu_consumer", "CPU of the bridge/consumer per event", "ms"),
    ("cpu_redis", "CPU of Redis per event (whole server)", "ms"),
    ("cpu_postgres", "CPU of PostgreSQL per event (all backends)", "ms"),
    ("rss_ready", "worker resident memory when ready", "MiB"),
    ("rss_after", "worker resident memory after the burst", "MiB"),
]


@dataclass
class Context:
    """What both sides share."""

    args: argparse.Namespace
    database_url: str
    engine: Engine
    log_dir: Path
    bootstrap: str
    model_url: str
    redis_pid: int
    postgres_pid: int


@dataclass
class Side:
    """How to start one side's processes, and which of its events are stored: (finish time, status)."""

    name: str
    #: What this side's Kafka consumer process is called (in py-spy's file names).
    consumer: str
    topic: str
    start_worker: Callable[[str], Process]
    start_api: Callable[[str], tuple[Process, str]]
    start_consumer: Callable[[str], Process]
    stored: Callable[[list[str]], list[tuple[float, str]]]


def naive_side(ctx: Context, suffix: str) -> Side:
    topic = f"naive.tasks.{suffix}"
    env = service_env(
        PYTHONPATH=str(BENCHMARKS),
        NAIVE_BROKER_URL=BROKER_URL,
        NAIVE_DATABASE_URL=ctx.database_url,
        NAIVE_MODEL_URL=ctx.model_url,
        NAIVE_MODEL_NAME="fake-model",
        NAIVE_QUEUE=f"naive-{suffix}",
        NAIVE_KAFKA=ctx.bootstrap,
        NAIVE_TOPIC=topic,
        NAIVE_GROUP=f"naive-{suffix}",
    )

    def start_worker(name: str) -> Process:
        # The arguments of tests.services.start_celery_worker, with the naive app.
        args = [
            sys.executable, "-m", "celery", "-A", "naive_chord", "worker",
            "--loglevel=INFO", "-P", "threads", "-c", str(ctx.args.concurrency),
            "--without-gossip", "--without-mingle", "-n", f"{name}@%h",
        ]  # fmt: skip
        return Process(name, args, env, ctx.log_dir)

    def start_naive_api(name: str) -> tuple[Process, str]:
        port = free_port()
        args = [
            sys.executable, "-m", "gunicorn", "-k", "gthread", "--workers", "1", "--threads", "32",
            "--timeout", "150", "--access-logfile", "-", "--bind", f"127.0.0.1:{port}", "naive_chord:api",
        ]  # fmt: skip
        process = Process(name, args, env, ctx.log_dir)
        try:
            wait_until(lambda: _listening(port) or not process.alive(), 60, "the naive API")
            _check_alive(process)
        except BaseException:
            process.stop()
            raise
        return process, f"http://127.0.0.1:{port}/analyze"

    def start_consumer(name: str) -> Process:
        return Process(name, [sys.executable, str(BENCHMARKS / "naive_chord.py")], env, ctx.log_dir)

    def stored(ids: list[str]) -> list[tuple[float, str]]:
        query = select(naive_chord.results.c.stored_at).where(naive_chord.results.c.event_id.in_(ids))
        with ctx.engine.connect() as connection:
            return [(at.timestamp(), "ok") for (at,) in connection.execute(query)]

    return Side("naive", "consumer", topic, start_worker, start_naive_api, start_consumer, stored)


def service_side(ctx: Context) -> Side:
    settings = service_settings(ctx.database_url, ctx.model_url, ctx.bootstrap, log_level="INFO")
    env = service_env(**settings_env(settings))

    def start_service_api(name: str) -> tuple[Process, str]:
        process, url = start_api(env, ctx.log_dir, name)
        return process, f"{url}/orchestrator/analyze"

    def start_bridge(name: str) -> Process:
        return Process(name, [sys.executable, "-m", "orchestrator.cli", "bridge"], env, ctx.log_dir)

    def stored(ids: list[str]) -> list[tuple[float, str]]:
        query = select(AnalysisRun.finished_at, AnalysisRun.status).where(
            AnalysisRun.event_id.in_(ids), AnalysisRun.status != "pending"
        )
        with ctx.engine.connect() as connection:
            return [(at.timestamp(), status) for at, status in connection.execute(query) if at is not None]

    return Side(
        "service",
        "bridge",
        settings.kafka_tasks_topic,
        lambda name: start_celery_worker(env, ctx.log_dir, name, concurrency=ctx.args.concurrency),
        start_service_api,
        start_bridge,
        stored,
    )


def measure(side: Side, ctx: Context, tag: str) -> dict[str, float]:
    """Start the side's worker, API and consumer (logs named after ``tag``); measure realtime, then a Kafka
    burst; stop them all."""
    args, figures = ctx.args, {}
    processes: list[Process] = []
    try:
        worker = side.start_worker(f"{side.name}-worker-{tag}")
        processes.append(worker)
        wait_until(
            lambda: " ready." in worker.log_path.read_text(errors="replace") or not worker.alive(), 120, "worker"
        )
        _check_alive(worker)
        figures["rss_ready"] = resident_bytes(worker.popen.pid) / 2**20
        api, url = side.start_api(f"{side.name}-api-{tag}")
        processes.append(api)

        def body(_: int) -> dict[str, object]:
            return analyze_body(args.segments)

        timed_posts(url, body, 20, 4)  # warm-up: connections, caches
        before = {"api": cpu_seconds(api.popen.pid), "worker": cpu_seconds(worker.popen.pid)}
        for concurrency in CONCURRENCY:
            started = time.perf_counter()
            latencies = timed_posts(url, body, args.requests, concurrency)
            figures[f"c{concurrency}_rate"] = len(latencies) / (time.perf_counter() - started)
            figures[f"c{concurrency}_p50"] = statistics.median(latencies) * 1000
            figures[f"c{concurrency}_p99"] = percentile(latencies, 99) * 1000
        posted = args.requests * len(CONCURRENCY)
        figures["cpu_api"] = (cpu_seconds(api.popen.pid) - before["api"]) / posted * 1000
        figures["cpu_worker_rt"] = (cpu_seconds(worker.popen.pid) - before["worker"]) / posted * 1000

        create_topics(ctx.bootstrap, [side.topic])
        consumer = side.start_consumer(f"{side.name}-consumer-{tag}")
        processes.append(consumer)
        burst(side, ctx, WARM_UP)  # the consumer has joined its group and launched chords
        pids = {
            "worker": worker.popen.pid,
            "consumer": consumer.popen.pid,
            "redis": ctx.redis_pid,
            "postgres": ctx.postgres_pid,
        }
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        profiled = {"worker": worker.popen.pid, side.consumer: consumer.popen.pid} if args.py_spy else {}
        profilers = _start_py_spy(args.py_spy, side.name, profiled) if profiled else []
        try:
            wall = burst(side, ctx, args.events)
        finally:
            _stop_py_spy(profilers)
        for name, pid in pids.items():
            figures[f"cpu_{name}"] = (cpu_seconds(pid) - before[name]) / args.events * 1000
        figures["kafka_rate"] = args.events / wall
        figures["rss_after"] = resident_bytes(worker.popen.pid) / 2**20
        for process in processes:
            _check_alive(process)
    finally:
        for process in reversed(processes):
            process.stop()
    return figures


def burst(side: Side, ctx: Context, events: int) -> float:
    """Produce ``events`` events at once, wait until all are stored ok; seconds from first send to last stored."""
    batch = [task_event(ctx.args.event_segments) for _ in range(events)]
    ids = [str(event["event_id"]) for event in batch]
    started = time.time()
    produce(ctx.bootstrap, side.topic, [(str(e["context_id"]).encode(), json.dumps(e).encode(), []) for e in batch])
    wait_until(lambda: len(side.stored(ids)) == events, 600, f"{events} {side.name} events stored", interval=0.25)
    stored = side.stored(ids)
    statuses = {status for _, status in stored}
    if statuses != {"ok"}:
        raise RuntimeError(f"{side.name}: runs ended {sorted(statuses)}: a benchmark of failures measures nothing")
    return max(at for at, _ in stored) - started


def print_table(runs: list[dict[str, dict[str, float]]]) -> None:
    ratio_header = "".join(f"{f'run {index + 1}':>8}" for index in range(len(runs))) if len(runs) > 1 else ""
    print(f"{'':46}{'naive':>10}{'service':>10}{'service/naive':>15}{ratio_header}")
    for key, label, unit in ROWS:
        naive = statistics.median(run["naive"][key] for run in runs)
        service = statistics.median(run["service"][key] for run in runs)
        line = f"{label + ' (' + unit + ')':46}{naive:10.1f}{service:10.1f}{_ratio(service, naive):>15}"
        if len(runs) > 1:
            line += "".join(f"{_ratio(run['service'][key], run['naive'][key]):>8}" for run in runs)
        print(line)


def _ratio(service: float, naive: float) -> str:
    return f"{service / naive:.2f}" if naive else "-"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _check_alive(process: Process) -> None:
    if not process.alive():
        raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")


def _start_py_spy(directory: Path, side: str, pids: dict[str, int]) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """One ``py-spy record`` per process of ``pids`` (its name → its pid), each into
    ``DIR/{side}-{name}-HHMMSS.txt``; returns once they have attached."""
    binary = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if binary is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%H%M%S")
    profilers = []
    for name, pid in pids.items():
        output = directory / f"{side}-{name}-{stamp}.txt"
        command = [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--gil"]
        command += ["--output", str(output)]
        profilers.append((subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), output))
    time.sleep(1)  # py-spy attaches
    return profilers


def _stop_py_spy(profilers: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    """Stop each profiler (SIGINT: it writes its file) and say where its stacks are."""
    for profiler, _ in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler, output in profilers:
        profiler.wait(60)
        samples = sum(int(line.rpartition(" ")[2]) for line in output.open()) if output.exists() else 0
        print(f"py-spy: {output} ({samples} samples, exit {profiler.returncode})", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="realtime requests per concurrency level")
    parser.add_argument("--events", type=int, default=400, help="events of the Kafka burst")
    parser.add_argument("--runs", type=int, default=1, help="runs of both sides (medians and each run's ratios)")
    parser.add_argument("--concurrency", type=int, default=32, help="threads of each side's one worker process")
    parser.add_argument("--segments", type=int, default=40, help="segments per realtime request")
    parser.add_argument("--event-segments", type=int, default=10, help="segments per Kafka event")
    parser.add_argument(
        "--py-spy", type=Path, metavar="DIR", help="record each worker and bridge/consumer during the burst into DIR"
    )
    args = parser.parse_args()

    database_url = bench_database("orchestrator_side_by_side")
    engine = create_engine(database_url)
    naive_chord.results.create(engine, checkfirst=True)
    postgres_pid, redis_pid = postgres_server_pid(database_url), redis_server_pid(BROKER_URL)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-side-"))
    broker = start_broker(log_dir)
    runs: list[dict[str, dict[str, float]]] = []
    try:
        with FakeLLM(latency_s=0) as llm:
            ctx = Context(args, database_url, engine, log_dir, broker.bootstrap, llm.url, redis_pid, postgres_pid)
            for index in range(args.runs):
                suffix = uuid.uuid4().hex[:8]
                run = {}
                for side in (naive_side(ctx, suffix), service_side(ctx)):
                    started = time.monotonic()
                    run[side.name] = measure(side, ctx, f"run{index + 1}")
                    print(
                        f"run {index + 1}: {side.name} measured in {time.monotonic() - started:.0f} s", file=sys.stderr
                    )
                runs.append(run)
    finally:
        broker.stop()
        engine.dispose()
    medians = " (medians; each run's service/naive ratio on the right)" if args.runs > 1 else ""
    print(
        f"fake model latency 0; one worker process per side (threads, concurrency {args.concurrency}); "
        f"realtime: {args.requests} requests per concurrency, {args.segments} segments; "
        f"Kafka: burst of {args.events} events, {args.event_segments} segments; {args.runs} run(s){medians}"
    )
    print_table(runs)
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    main()
