"""Session fixtures: real PostgreSQL, Redis, a Celery worker and a fake LLM.

Each service starts once per session. Tests isolate themselves by unique
event and context ids rather than by emptying tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.api import create_app
from orchestrator.config import Settings
from orchestrator.migrate import upgrade_database
from orchestrator.services import Services, build_services
from orchestrator.store import RunStore, create_db_engine
from tasks.celery_app import create_celery
from tests.fake_llm import FakeLLM
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
    app = create_celery(settings)
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
def celery_app(settings: Settings, services: Services) -> Celery:
    return create_celery(settings, services)


@pytest.fixture(scope="session")
def api(settings: Settings, services: Services, celery_app: Celery, celery_worker: Process) -> Flask:
    """The Flask app wired to the real worker through Redis."""
    return create_app(settings, services=services, celery_app=celery_app)


@pytest.fixture()
def client(api: Flask) -> FlaskClient:
    return api.test_client()


@pytest.fixture()
def embedded_settings(tmp_path: Path) -> Settings:
    """The embedded default: no broker, SQLite in a temp dir, builtin model."""
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade_database(url)
    return replace(Settings(), database_url=url)
