"""Persistence on the real PostgreSQL: claims and leases, finishing, the outbox, migrations."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, inspect, select

from orchestrator.dead_letters import DeadLetterMessage
from orchestrator.migrate import downgrade_database, upgrade_database
from orchestrator.models import AnalysisRun
from orchestrator.store import Claim, ModelCallRecord, RunOutcome, RunStore, StaleLaunch, create_db_engine
from tests.factories import LEASE, claim_run, expire_lease, finish_claimed, make_segments, unique
from tests.services import drop_database, recreate_database

TABLES = {"analysis_runs", "llm_calls", "contexts", "dead_letter_outbox", "alembic_version"}


def claim(store: RunStore, event_id: str) -> tuple[str, bool]:
    result = claim_run(store, event_id=event_id, source="kafka")
    return result.run.id, result.created


def finish(store: RunStore, claim: Claim, status: str = "failed", **extra: Any) -> AnalysisRun | None:
    return finish_claimed(store, claim, status, result={"summary": status}, **extra)


def test_of_two_aggregates_racing_on_a_stateless_run_exactly_one_stores_its_outcome(store: RunStore) -> None:
    claimed = claim_run(store)
    both_read = threading.Barrier(2)

    def conclude_after_the_other_read(run: AnalysisRun, connection: Any, status: str) -> RunOutcome:
        both_read.wait(timeout=10)  # both have read the run as pending before either stores
        return RunOutcome(status=status, result={"summary": status}, worker_statuses={}, errors={})

    def aggregate(status: str) -> AnalysisRun | None:
        return store.finish_run(
            claimed.run.id, attempt=claimed.run.attempt, token=claimed.token, needs_lock=lambda run: False,
            conclude=lambda run, connection: conclude_after_the_other_read(run, connection, status),
        )  # fmt: skip

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(aggregate, ["ok", "partial"]))

    (winner,) = [run for run in outcomes if run is not None]
    stored = store.get_run(claimed.run.id)
    assert stored is not None and stored.status == winner.status and stored.result == {"summary": winner.status}


def record(store: RunStore, run_id: str, status: str = "ok") -> None:
    store.record_call(
        ModelCallRecord(run_id=run_id, event_id="e", pipeline="analysis", worker="summary", prompt_ref="summary@v1",
                        model="m", attempt=1,
                        status=status, output={"summary": "s", "key_points": []} if status == "ok" else None)
    )  # fmt: skip


def test_ten_concurrent_claims_of_one_event_create_exactly_one_run(store: RunStore) -> None:
    event_id = unique("evt")
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: claim(store, event_id), range(10)))

    assert sum(created for _, created in results) == 1
    assert len({run_id for run_id, _ in results}) == 1


def test_a_claim_with_a_context_stores_its_input_for_later_requests_and_a_duplicate_changes_nothing(
    store: RunStore,
) -> None:
    context_id, event_id = unique("ctx"), unique("evt")

    def claim_with(event: str, segments: list[dict[str, Any]], language: str) -> Claim:
        return store.claim_run(
            event_id=event,
            context_id=context_id,
            source="api",
            request={"segments": segments, "language": language, "prompt_ids": {}},
            lease=LEASE,
            context={"segments": segments, "language": language},
        )

    first, later = make_segments(3), make_segments(2, seed=1)
    assert claim_with(event_id, first, "fr").created
    assert store.load_context(context_id) == {"segments": first, "language": "fr"}

    assert not claim_with(event_id, later, "de").created  # the same event again: its context is not stored
    assert store.load_context(context_id) == {"segments": first, "language": "fr"}

    assert claim_with(unique("evt"), later, "de").created  # a new event of the context: its input is the latest
    assert store.load_context(context_id) == {"segments": later, "language": "de"}


def test_a_failed_run_reopens_once_per_later_attempt_with_a_new_token(store: RunStore) -> None:
    first = claim_run(store)
    finish(store, first)

    assert store.reopen_failed_run(first.run.id, 1, None, LEASE) is None  # not a later attempt
    with ThreadPoolExecutor(5) as pool:
        tokens = list(pool.map(lambda _: store.reopen_failed_run(first.run.id, 2, {"offset": 7}, LEASE), range(5)))
    winners = [t for t in tokens if t is not None]
    assert len(winners) == 1 and winners[0] != first.token
    run = store.get_run(first.run.id)
    assert run is not None and run.status == "pending" and run.attempt == 2 and run.origin == {"offset": 7}
    assert store.reopen_failed_run(first.run.id, 3, None, LEASE) is None  # pending, not failed


def test_a_claim_is_taken_over_only_after_its_lease_expired_and_by_one_caller(store: RunStore) -> None:
    claimed = claim_run(store)
    run_id = claimed.run.id

    assert store.take_over_claim(run_id, LEASE) is None  # the lease is still valid
    expire_lease(store, run_id)
    with ThreadPoolExecutor(5) as pool:
        tokens = list(pool.map(lambda _: store.take_over_claim(run_id, LEASE), range(5)))
    winners = [t for t in tokens if t is not None]
    assert len(winners) == 1
    assert store.mark_launched(run_id, winners[0])
    expire_lease(store, run_id)
    assert store.take_over_claim(run_id, LEASE) is None  # launched: nothing to take over


def test_a_launcher_that_lost_its_claim_can_neither_renew_mark_nor_release_it(store: RunStore) -> None:
    claimed = claim_run(store)
    run_id, old = claimed.run.id, claimed.token
    assert old is not None and store.renew_lease(run_id, old, LEASE)
    expire_lease(store, run_id)
    new = store.take_over_claim(run_id, LEASE)
    assert new is not None

    assert not store.renew_lease(run_id, old, LEASE)
    assert not store.mark_launched(run_id, old)
    store.release_claim(run_id, old)
    run = store.get_run(run_id)
    assert run is not None and run.claim_token == new and run.launched_at is None  # untouched


def test_releasing_a_claim_deletes_a_fresh_run_but_never_model_call_history(store: RunStore) -> None:
    fresh = claim_run(store)
    assert fresh.token is not None
    store.release_claim(fresh.run.id, fresh.token)
    assert store.get_run(fresh.run.id) is None

    with_calls = claim_run(store)
    assert with_calls.token is not None
    record(store, with_calls.run.id)
    store.release_claim(with_calls.run.id, with_calls.token)
    run = store.get_run(with_calls.run.id)
    assert run is not None and len(store.calls_for(run.id)) == 1
    assert store.take_over_claim(run.id, LEASE) is not None  # released: its lease ended


def test_a_task_of_a_superseded_launch_is_stale_and_the_first_task_marks_the_run_launched(store: RunStore) -> None:
    claimed = claim_run(store)
    run_id, token = claimed.run.id, claimed.token
    assert token is not None
    with pytest.raises(StaleLaunch):
        store.load_job(run_id, "summary", "another-token")

    job = store.load_job(run_id, "summary", token)

    assert job.run_id == run_id and job.previous_output is None
    run = store.get_run(run_id)
    assert run is not None and run.launched_at is not None
    expire_lease(store, run_id)
    assert store.take_over_claim(run_id, LEASE) is None  # a task runs: no takeover any more


@pytest.mark.parametrize("locked", [True, False], ids=["locked", "stateless"])
def test_finishing_is_a_compare_and_set_on_attempt_token_and_pending(store: RunStore, locked: bool) -> None:
    claimed = claim_run(store)
    assert finish(store, claimed, "ok", locked=locked) is not None

    assert finish(store, claimed, "failed", locked=locked) is None  # a duplicate aggregate
    stale = replace(claimed, token="an-older-launch")
    assert finish(store, stale, "failed", locked=locked) is None
    run = store.get_run(claimed.run.id)
    assert run is not None and run.status == "ok" and run.result == {"summary": "ok"}


@pytest.mark.parametrize("locked", [True, False], ids=["locked", "stateless"])
def test_a_dead_letter_is_stored_with_the_failed_run_and_only_when_the_run_is_stored(
    store: RunStore, locked: bool
) -> None:
    claimed = claim_run(store, source="kafka")
    letter = DeadLetterMessage(key=b"k", value=b'{"reason": "x"}', headers=[("h", b"\x00\xff")])

    assert finish(store, claimed, dead_letter=lambda run: letter, locked=locked) is not None
    assert finish(store, claimed, dead_letter=lambda run: letter, locked=locked) is None  # no second letter

    waiting = [e for e in store.outbox_entries() if e.run_id == claimed.run.id]
    assert len(waiting) == 1
    sent: list[DeadLetterMessage] = []
    assert store.publish_outbox(sent.extend, limit=1000) >= 1
    assert letter in sent
    assert not [e for e in store.outbox_entries() if e.run_id == claimed.run.id]


def test_a_failed_publication_keeps_the_letters_and_counts_the_attempt(store: RunStore) -> None:
    claimed = claim_run(store, source="kafka")
    letter = DeadLetterMessage(key=None, value=b"{}", headers=[])
    finish(store, claimed, dead_letter=lambda run: letter)

    def kafka_down(letters: list[DeadLetterMessage]) -> None:
        raise TimeoutError("no broker")

    with pytest.raises(TimeoutError):
        store.publish_outbox(kafka_down)

    (entry,) = [e for e in store.outbox_entries() if e.run_id == claimed.run.id]
    assert entry.attempts == 1 and entry.last_error == "TimeoutError: no broker"
    store.publish_outbox(lambda letters: None, limit=1000)


@pytest.fixture()
def private_store() -> Iterator[RunStore]:
    """A database of this test's own: the suite's workers publish the shared outbox too."""
    name = f"orchestrator_outbox_{unique('o')[-6:]}"
    url = recreate_database(name)
    upgrade_database(url)
    store = RunStore(create_db_engine(url))
    yield store
    store.engine.dispose()
    drop_database(name)


def test_concurrent_publishers_never_send_the_same_letter_twice(private_store: RunStore) -> None:
    store = private_store
    for n in range(40):
        claimed = claim_run(store, source="kafka")
        finish(store, claimed, dead_letter=lambda run, n=n: DeadLetterMessage(None, str(n).encode(), []))
    sent: list[bytes] = []
    lock = threading.Lock()

    def slow_send(letters: list[DeadLetterMessage]) -> None:
        time.sleep(0.05)
        with lock:
            sent.extend(letter.value for letter in letters)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: store.publish_outbox(slow_send, limit=5), range(20)))

    assert sorted(sent, key=int) == [str(n).encode() for n in range(40)]


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


def test_a_url_naming_psycopg2_is_opened_with_psycopg_3_and_migrates(database_url: str) -> None:
    url = recreate_database(f"orchestrator_driver_{unique('d')[-6:]}").replace("+psycopg:", "+psycopg2:")
    try:
        upgrade_database(url)
        engine = create_db_engine(url)
        assert engine.dialect.driver == "psycopg"
        store = RunStore(engine)
        run_id, created = claim(store, unique("event"))
        assert created and store.get_run(run_id) is not None
        engine.dispose()
    finally:
        drop_database(url.rsplit("/", 1)[1])
    assert create_db_engine("sqlite:///:memory:").dialect.driver == "pysqlite"


def test_a_statement_a_connection_repeats_is_prepared_on_the_server_and_no_longer_planned(database_url: str) -> None:
    engine = create_db_engine(database_url)
    query = select(AnalysisRun.status).where(AnalysisRun.id == bindparam("run_id"))
    with engine.connect() as connection:
        prepared = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%analysis_runs%%'"
        assert connection.exec_driver_sql(prepared).scalar() == 0
        for attempt in range(6):
            connection.execute(query, {"run_id": f"no-such-run-{attempt}"}).all()
        assert connection.exec_driver_sql(prepared).scalar() == 1
    engine.dispose()


def test_the_second_task_of_a_launch_loads_its_job_without_marking_it_again(store: RunStore) -> None:
    claimed = claim_run(store)
    assert claimed.token is not None
    store.load_job(claimed.run.id, "summary", claimed.token)
    first = store.get_run(claimed.run.id)
    assert first is not None and first.launched_at is not None

    job = store.load_job(claimed.run.id, "sentiment", claimed.token)

    again = store.get_run(claimed.run.id)
    assert job.run_id == claimed.run.id and again is not None and again.launched_at == first.launched_at


def test_a_task_of_a_finished_run_is_stale_and_does_not_mark_it_launched(store: RunStore) -> None:
    claimed = claim_run(store)
    assert claimed.token is not None and finish(store, claimed) is not None

    with pytest.raises(StaleLaunch):
        store.load_job(claimed.run.id, "summary", claimed.token)

    run = store.get_run(claimed.run.id)
    assert run is not None and run.status == "failed" and run.launched_at is None


@pytest.mark.parametrize("count", [1, 3, 7])
def test_pending_among_names_the_unfinished_of_any_number_of_runs(store: RunStore, count: int) -> None:
    claims = [claim_run(store) for _ in range(count)]
    finish(store, claims[0], "ok")
    ids = [claimed.run.id for claimed in claims]

    assert store.pending_among([*ids, "no-such-run"]) == set(ids[1:])
    assert store.pending_among([]) == set()


def test_a_runs_call_summary_has_its_duration_and_each_call_in_one_query(store: RunStore) -> None:
    claimed = claim_run(store)
    assert store.run_call_summary(claimed.run.id) == (None, [])  # pending, no call yet
    for worker, status, cost in (("summary", "error", None), ("summary", "ok", 0.25), ("sentiment", "cached", 0.0)):
        store.record_call(
            ModelCallRecord(
                run_id=claimed.run.id, event_id=claimed.run.event_id, pipeline="analysis", worker=worker,
                prompt_ref="v1", model="m", attempt=1, status=status, cost_usd=cost,
            )
        )  # fmt: skip
    finished = finish(store, claimed, "ok")
    assert finished is not None

    duration_ms, calls = store.run_call_summary(claimed.run.id)

    assert duration_ms == pytest.approx(finished.duration_ms)
    assert sorted((call.status, call.cost_usd) for call in calls) == [("cached", 0.0), ("error", None), ("ok", 0.25)]
    assert store.run_call_summary("no-such-run") == (None, [])
