"""The bridge's bookkeeping of runs in flight, on the real database (no broker needed)."""

from __future__ import annotations

import time
from dataclasses import replace

from celery import Celery

from bridge.consumer import Bridge
from bridge.dlq import DeadLetterPublisher
from orchestrator.config import Settings
from orchestrator.store import RunStore, create_db_engine
from tests.factories import make_segments, unique


def bridge_on(store: RunStore, settings: Settings, celery_app: Celery) -> Bridge:
    publisher = DeadLetterPublisher("127.0.0.1:1", "unused")  # created lazily: never connects here
    return Bridge(settings, store=store, celery_app=celery_app, dead_letters=publisher)


def pending_run(store: RunStore) -> str:
    claim = store.claim_run(
        event_id=unique("evt"), context_id="c", source="kafka", request={"segments": make_segments(1)}
    )
    return claim.run.id


def test_finished_runs_leave_the_in_flight_set_and_pending_ones_stay(
    store: RunStore, settings: Settings, celery_app: Celery
) -> None:
    bridge = bridge_on(store, settings, celery_app)
    done, waiting = pending_run(store), pending_run(store)
    store.finish_run(done, status="ok", result={}, worker_statuses={}, errors={})
    bridge.in_flight = {done: time.monotonic(), waiting: time.monotonic()}

    bridge.refresh_in_flight()

    assert set(bridge.in_flight) == {waiting}


def test_a_run_pending_implausibly_long_stops_holding_a_slot(
    store: RunStore, settings: Settings, celery_app: Celery
) -> None:
    bridge = bridge_on(store, replace(settings, celery_visibility_timeout=10), celery_app)
    stuck, recent = pending_run(store), pending_run(store)
    bridge.in_flight = {stuck: time.monotonic() - 21, recent: time.monotonic()}

    bridge.refresh_in_flight()

    assert set(bridge.in_flight) == {recent}


def test_an_unreachable_database_keeps_the_in_flight_set_instead_of_crashing(
    settings: Settings, celery_app: Celery
) -> None:
    down = RunStore(create_db_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nothing"))
    bridge = bridge_on(down, settings, celery_app)
    bridge.stopping.set()  # skip the back-off pause
    bridge.in_flight = {"run-a": time.monotonic()}

    bridge.refresh_in_flight()

    assert set(bridge.in_flight) == {"run-a"}
