"""PostgreSQL stopped for a minute in the middle of a burst: the outage is waited out, not turned into failures."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from bridge.redrive import read_dead_letters
from orchestrator.config import Settings
from orchestrator.store import RunStore, create_db_engine
from tests.factories import WORKERS, task_event
from tests.fake_llm import FakeLLM
from tests.faults.conftest import report
from tests.services import PrivatePostgres, wait_until
from tests.stack import as_message, finished, ok_calls_per_worker, running_stack, runs_for

EVENTS = 60
OUTAGE_S = 60.0


def test_postgresql_stopped_for_a_minute_mid_burst_fails_no_run_and_repeats_no_model_call(
    kafka_settings: Settings, log_dir: Path, fake_llm: FakeLLM, private_postgres: PrivatePostgres
) -> None:
    store = RunStore(create_db_engine(private_postgres.url))
    fake_llm.latency_s = 0.6  # so that model calls are in flight when the database stops
    events = [task_event(2) for _ in range(EVENTS)]
    ids = {str(e["event_id"]) for e in events}
    settings = replace(kafka_settings, database_url=private_postgres.url)
    with running_stack(settings, log_dir, fresh_database=False) as stack:
        stack.produce([as_message(e) for e in events])
        stack.start_bridge("--max-in-flight", "16")
        wait_until(lambda: sum(r.status == "ok" for r in runs_for(store, ids)) >= 10, 60, "the first runs")

        private_postgres.stop()
        time.sleep(OUTAGE_S)
        private_postgres.start()
        restarted_at = time.monotonic()
        wait_until(lambda: finished(store, ids), 180, "every run after the database came back")
        recovery = time.monotonic() - restarted_at

        runs = runs_for(store, ids)
        assert len(runs) == EVENTS and {r.status for r in runs} == {"ok"}  # none failed because of the outage
        assert set(ok_calls_per_worker(store, [r.id for r in runs]).values()) == {1}
        assert all(fake_llm.calls_for(worker) == EVENTS for worker in WORKERS)  # no model call repeated
        assert read_dead_letters(*stack.dlq, timeout_s=2) == []
        kept = stack.worker.log_tail(100_000).count("model answer kept until its llm_calls row can be written")
        report(
            "PostgreSQL stopped for 60 s mid-burst",
            runs=EVENTS,
            failed=0,
            lost=EVENTS - len(runs),
            model_calls_repeated=sum(fake_llm.calls_for(w) for w in WORKERS) - 4 * EVENTS,
            model_answers_kept_while_the_database_was_down=kept,
            all_stored_after_restart=f"{recovery:.1f} s",
        )
