"""Session fixtures: real PostgreSQL, Redis, a Celery worker and a fake LLM.

Each service starts once per session. Tests isolate themselves by unique
event and context ids rather than by emptying tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.api import create_app
from orchestrator.config import Settings
from orchestrator.migrate import upgrade_database
from orchestrator.services import Services
from orchestrator.store import RunStore, create_db_engine
from orchestrator.wiring import build_celery, build_services
from tasks.celery_app import OrchestratorCelery
from tests.fake_llm import FakeLLM
from tests.kafka import Broker, create_topics, start_broker
from tests.services import (
    REDIS_HOST,
    REDIS_PORT,
    Process,
    ServiceUnavailable,
    drop_database,
    ensure_postgres,
    ensure_redis,
    recreate_database,
    service_env,
    start_celery_worker,
    wait_until,
)

#: Redis database used by the suite; sessions use queues of their own in it.
REDIS_DB = 13
#: Worker-side model settings: few, quick retries and a short read timeout.
MODEL_MAX_RETRIES = 2


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this session (per process, so parallel runs don't clash)."""
    try:
        ensure_postgres()
    except ServiceUnavailable as exc:
        pytest.exit(str(exc), returncode=3)
    name = f"orchestrator_test_{os.getpid()}"
    url = recreate_database(name)
    upgrade_database(url)
    yield url
    drop_database(name)


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        ensure_redis()
    except ServiceUnavailable as exc:
        pytest.exit(str(exc), returncode=3)
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB).ping()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


@pytest.fixture(scope="session")
def store(database_url: str) -> RunStore:
    return RunStore(create_db_engine(database_url))


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


@pytest.fixture(autouse=True)
def _reset_fake_llm(request: pytest.FixtureRequest) -> None:
    if "fake_llm" in request.fixturenames:
        request.getfixturevalue("fake_llm").reset()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, fake_llm: FakeLLM) -> Settings:
    """Settings shared by the test process and the Celery worker it starts."""
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        database_url=database_url,
        celery_broker_url=redis_url,
        celery_realtime_queue=f"realtime-{suffix}",
        celery_batch_queue=f"analysis-{suffix}",
        model_adapter_url=fake_llm.url,
        model_name="fake-model",
        model_read_timeout=1.0,
        model_max_retries=MODEL_MAX_RETRIES,
        model_retry_backoff_max=0.05,
        analyze_timeout=20,
        # The sweeper would launch the stuck runs that some tests leave on
        # purpose; the tests of the sweeper turn it on in their own workers.
        sweep_interval=0,
        # The model is the fake one: workers need not load the builtin analysers
        # at start (tests of the builtin analysers' workers turn it back on).
        warm_analysers=False,
        # Tests count model calls: repeated inputs must reach the model. The
        # tests of the response cache turn it on in their own workers.
        response_cache_ttl=0,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``Settings.from_env()`` equal ``settings``."""
    env = {}
    for name, value in vars(settings).items():
        if value is not None:
            env[name.upper()] = str(value)
    return env


@pytest.fixture(scope="session")
def celery_worker(settings: Settings, log_dir: Path) -> Iterator[Process]:
    """A real ``celery -A tasks worker`` (threads pool) on the suite's queues."""
    worker = start_celery_worker(service_env(**settings_env(settings)), log_dir, "worker-main")
    app = build_celery(settings)
    try:
        wait_until(lambda: bool(app.control.ping(timeout=0.5)) or not worker.alive(), 60, "the Celery worker")
        if not worker.alive():
            pytest.fail(f"the Celery worker exited:\n{worker.log_tail()}")
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def services(settings: Settings) -> Services:
    return build_services(settings)


@pytest.fixture(scope="session")
def celery_app(settings: Settings, services: Services) -> OrchestratorCelery:
    return build_celery(settings, services)


@pytest.fixture(scope="session")
def api(settings: Settings, services: Services, celery_app: OrchestratorCelery, celery_worker: Process) -> Flask:
    """The Flask app wired to the real worker through Redis."""
    return create_app(settings, services=services, launcher=celery_app.launcher)


@pytest.fixture()
def client(api: Flask) -> FlaskClient:
    return api.test_client()


@pytest.fixture()
def embedded_settings(tmp_path: Path) -> Settings:
    """The embedded default: no broker, SQLite in a temp dir, builtin model."""
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade_database(url)
    return replace(Settings(), database_url=url)


# --- Kafka: one Tansu broker per session, fresh topics per test ----------------------------

#: Partitions of each test topic, as in production (``KAFKA_TOPIC_PARTITIONS``).
TEST_PARTITIONS = 3


@dataclass(frozen=True)
class KafkaTopics:
    """A test's own tasks and dead-letter topics."""

    tasks: str
    dlq: str


@pytest.fixture(scope="session")
def kafka_broker(log_dir: Path) -> Iterator[Broker]:
    try:
        broker = start_broker(log_dir)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture()
def kafka_topics(kafka_broker: Broker) -> KafkaTopics:
    """Two new, empty topics with ``TEST_PARTITIONS`` partitions each."""
    suffix = uuid.uuid4().hex[:12]
    topics = KafkaTopics(tasks=f"analysis.tasks.{suffix}", dlq=f"analysis.dlq.{suffix}")
    create_topics(kafka_broker.bootstrap, [topics.tasks, topics.dlq], partitions=TEST_PARTITIONS)
    return topics


@pytest.fixture()
def kafka_settings(settings: Settings, kafka_broker: Broker, kafka_topics: KafkaTopics) -> Settings:
    """The suite's settings pointed at the test broker and this test's topics."""
    return replace(
        settings,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        kafka_tasks_topic=kafka_topics.tasks,
        kafka_dlq_topic=kafka_topics.dlq,
        kafka_topic_partitions=TEST_PARTITIONS,
    )
