"""Fault tests: real services of the test's own (PostgreSQL, Redis, Kafka) that it stops, restarts or demotes.

Each test prints one ``FAULT`` line with what it measured (lost, duplicated
and stuck counts, and the recovery time); ``pytest -s tests/faults`` shows them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.migrate import upgrade_database
from tests.services import PrivatePostgres, PrivateRedis, ServiceUnavailable


@pytest.fixture()
def private_redis(log_dir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(log_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under pytest's temporary directory: the postgres user cannot enter it.
    try:
        server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="orchestrator-postgres-")))
    except ServiceUnavailable as exc:
        pytest.fail(f"cannot start a PostgreSQL server for the test: {exc}")
    try:
        upgrade_database(server.url)
        yield server
    finally:
        server.destroy()


def report(fault: str, **figures: object) -> None:
    """Print what a fault test measured, on one line that is easy to find."""
    print(f"\nFAULT {fault}: " + ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in figures.items()))
