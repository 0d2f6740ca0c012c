"""Persistence on the real PostgreSQL: claims, re-opening, migrations."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from sqlalchemy import inspect

from orchestrator.migrate import downgrade_database, upgrade_database
from orchestrator.store import RunStore, create_db_engine
from tests.factories import make_segments, unique
from tests.services import drop_database, recreate_database

TABLES = {"analysis_runs", "llm_calls", "contexts", "alembic_version"}


def claim(store: RunStore, event_id: str, **extra: object) -> tuple[str, bool]:
    result = store.claim_run(
        event_id=event_id,
        context_id="ctx",
        source="kafka",
        request={"segments": make_segments(2), "language": "en", "prompt_ids": {}},
        **extra,  # type: ignore[arg-type]
    )
    return result.run.id, result.created


def test_ten_concurrent_claims_of_one_event_create_exactly_one_run(store: RunStore) -> None:
    event_id = unique("evt")
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: claim(store, event_id), range(10)))

    assert sum(created for _, created in results) == 1
    assert len({run_id for run_id, _ in results}) == 1


def test_a_claim_with_save_context_stores_the_segments_for_later_requests(store: RunStore) -> None:
    context_id = unique("ctx")
    segments = make_segments(3)
    store.claim_run(
        event_id=unique("evt"),
        context_id=context_id,
        source="api",
        request={"segments": segments, "language": "fr", "prompt_ids": {}},
        save_context=True,
    )

    context = store.load_context(context_id)
    assert context is not None
    assert context.segments == segments and context.language == "fr"


def test_a_failed_run_reopens_once_per_later_attempt(store: RunStore) -> None:
    run_id, _ = claim(store, unique("evt"))
    store.finish_run(run_id, status="failed", result={}, worker_statuses={}, errors={})

    assert store.reopen_failed_run(run_id, 1, None) is False  # not a later attempt
    with ThreadPoolExecutor(5) as pool:
        reopened = list(pool.map(lambda _: store.reopen_failed_run(run_id, 2, {"offset": 7}), range(5)))
    assert reopened.count(True) == 1
    run = store.get_run(run_id)
    assert run is not None and run.status == "pending" and run.attempt == 2 and run.origin == {"offset": 7}
    assert store.reopen_failed_run(run_id, 3, None) is False  # pending, not failed


def test_only_an_old_unlaunched_claim_can_be_taken_over(store: RunStore) -> None:
    run_id, _ = claim(store, unique("evt"))

    assert store.take_over_stale_claim(run_id, timedelta(minutes=5)) is False
    assert store.take_over_stale_claim(run_id, timedelta(0)) is True
    store.mark_launched(run_id)
    assert store.take_over_stale_claim(run_id, timedelta(0)) is False


def test_migrations_upgrade_and_downgrade_on_postgresql() -> None:
    url = recreate_database(f"orchestrator_migrations_{unique('m')[-6:]}")
    try:
        upgrade_database(url)
        engine = create_db_engine(url)
        assert TABLES <= set(inspect(engine).get_table_names())
        columns = {c["name"]: c for c in inspect(engine).get_columns("analysis_runs")}
        assert str(columns["result"]["type"]) == "JSONB"
        downgrade_database(url, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade_database(url)
        assert TABLES <= set(inspect(engine).get_table_names())
        engine.dispose()
    finally:
        drop_database(url.rsplit("/", 1)[1])


def test_migrations_create_the_same_tables_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_database(url)
    upgrade_database(url)  # a second upgrade is a no-op

    with sqlite3.connect(tmp_path / "m.db") as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert TABLES <= names


def test_the_migrations_build_exactly_the_tables_the_models_declare(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from orchestrator.models import Base

    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []
