"""A running stack for end-to-end tests: Celery worker and bridge processes on a test's own queues and topics.

Also the queries those tests assert with (runs of a set of events, model
calls per worker) and producing events to Kafka.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import func, select

from orchestrator.api import create_app
from orchestrator.config import Settings
from orchestrator.migrate import upgrade_database
from orchestrator.models import AnalysisRun, LlmCall
from orchestrator.store import RunStore, create_db_engine
from orchestrator.wiring import build_services
from tests.conftest import settings_env
from tests.kafka import produce
from tests.services import Process, drop_database, recreate_database, service_env, start_celery_worker

Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


@dataclass
class Stack:
    """Bridges and a worker on a test's own topics and queues."""

    settings: Settings
    env: dict[str, str]
    log_dir: Path
    worker: Process
    bridges: list[Process]
    #: The stack's own database (so its sweeper sees only this test's runs).
    store: RunStore

    def start_bridge(self, *extra: str, **env: str) -> Process:
        args = [sys.executable, "-m", "orchestrator.cli", "bridge", *extra]
        bridge = Process(f"bridge-{uuid.uuid4().hex[:6]}", args, {**self.env, **env}, self.log_dir)
        self.bridges.append(bridge)
        return bridge

    def restart_worker(self) -> None:
        self.worker = start_celery_worker(self.env, self.log_dir, f"worker-{uuid.uuid4().hex[:6]}")

    def produce(self, messages: list[Message]) -> list[tuple[int, int]]:
        """Send messages to the tasks topic; where each was stored, ``(partition, offset)``."""
        return produce(self.settings.kafka_bootstrap_servers, self.settings.kafka_tasks_topic, messages)

    def cli(self, *args: str) -> str:
        """``orchestrator ARGS`` with this stack's environment; its stdout (it must exit 0)."""
        result = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def api_client(self) -> FlaskClient:
        """A Flask test client of the API wired to this stack (its database, queues and worker)."""
        return create_app(self.settings, services=build_services(self.settings)).test_client()

    def calls_of(self, run_id: str, worker: str) -> list[LlmCall]:
        """The ``llm_calls`` rows of one worker of a run, oldest first."""
        return worker_calls(self.store, run_id, worker)

    @property
    def dlq(self) -> tuple[str, str]:
        """``(bootstrap servers, DLQ topic)``, as ``read_dead_letters`` takes them."""
        return self.settings.kafka_bootstrap_servers, self.settings.kafka_dlq_topic


@contextmanager
def running_stack(settings: Settings, log_dir: Path, *, fresh_database: bool = True) -> Iterator[Stack]:
    """A worker on fresh queues, consumer group and database (bridges are started by the test).

    The worker sweeps for stuck runs every 2 s, with a 5 s claim lease
    unless ``settings`` asks for a shorter one. Everything is stopped (and
    the database dropped) afterwards.
    """
    suffix = uuid.uuid4().hex[:8]
    database = f"orchestrator_stack_{suffix}"
    if fresh_database:
        settings = replace(settings, database_url=recreate_database(database))
        upgrade_database(settings.database_url)
    settings = replace(
        settings,
        celery_realtime_queue=f"rt-{suffix}",
        celery_batch_queue=f"batch-{suffix}",
        kafka_group_id=f"group-{suffix}",
        celery_visibility_timeout=10,
        claim_lease=min(settings.claim_lease, 5.0),
        sweep_interval=2.0,
    )
    env = service_env(**settings_env(settings))
    worker = start_celery_worker(env, log_dir, f"worker-{suffix}")
    store = RunStore(create_db_engine(settings.database_url))
    stack = Stack(settings=settings, env=env, log_dir=log_dir, worker=worker, bridges=[], store=store)
    try:
        yield stack
    finally:
        for bridge in stack.bridges:
            bridge.stop()
        stack.worker.stop()
        store.engine.dispose()
        if fresh_database:
            drop_database(database)


def as_message(event: dict[str, object], headers: list[tuple[str, bytes]] | None = None) -> Message:
    return str(event["context_id"]).encode(), json.dumps(event).encode(), headers or []


def runs_for(store: RunStore, event_ids: set[str]) -> list[AnalysisRun]:
    with store.session() as session:
        return list(session.execute(select(AnalysisRun).where(AnalysisRun.event_id.in_(event_ids))).scalars())


def finished(store: RunStore, event_ids: set[str]) -> bool:
    runs = runs_for(store, event_ids)
    return len(runs) == len(event_ids) and all(r.status != "pending" for r in runs)


def worker_calls(store: RunStore, run_id: str, worker: str) -> list[LlmCall]:
    """The ``llm_calls`` rows of one worker of a run, oldest first."""
    return [call for call in store.calls_for(run_id) if call.worker == worker]


def ok_calls_per_worker(store: RunStore, run_ids: list[str]) -> Counter[tuple[str, str]]:
    with store.session() as session:
        rows = session.execute(
            select(LlmCall.run_id, LlmCall.worker).where(LlmCall.run_id.in_(run_ids), LlmCall.status == "ok")
        ).all()
    return Counter((r.run_id, r.worker) for r in rows)


def model_calls(store: RunStore, run_ids: list[str]) -> int:
    with store.session() as session:
        query = select(func.count()).select_from(LlmCall).where(LlmCall.run_id.in_(run_ids))
        return int(session.execute(query).scalar_one())
