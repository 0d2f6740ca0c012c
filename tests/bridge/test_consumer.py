"""The bridge's decoding and its bookkeeping of runs in flight (real database, no broker needed)."""

from __future__ import annotations

import pytest

from bridge.consumer import Bridge, UndecodableMessage, dead_letter_reason, decode_task
from bridge.dlq import DeadLetterPublisher
from orchestrator.config import Settings
from orchestrator.pipelines import load_pipelines
from orchestrator.runs import UnknownContext
from orchestrator.store import RunStore, create_db_engine
from tasks.celery_app import OrchestratorCelery
from tests.factories import claim_run, finish_claimed


def bridge_on(store: RunStore, settings: Settings, celery_app: OrchestratorCelery) -> Bridge:
    publisher = DeadLetterPublisher("127.0.0.1:1", "unused")  # created lazily: never connects here
    return Bridge(
        settings, pipelines=load_pipelines(), store=store, launcher=celery_app.launcher, dead_letters=publisher
    )


HOSTILE_VALUES = {
    "deep nesting": b"[" * 5000,
    "deep object nesting": b'{"a":' * 5000,
    "huge integer": b'{"n": ' + b"9" * 5000 + b"}",
    "NaN": b'{"event_id": NaN}',
    "Infinity": b'{"n": -Infinity}',
    "float overflow": b'{"n": 1e999}',
    "not UTF-8": b'{"event_id": "\xff\xfe"}',
    "UTF-8 BOM": b'\xef\xbb\xbf{"event_id": "e"}',
    "empty": b"",
    "null": b"null",
    "array": b"[1, 2]",
    "string": b'"a string"',
    "no value": None,
}


@pytest.mark.parametrize("value", HOSTILE_VALUES.values(), ids=HOSTILE_VALUES.keys())
def test_undecodable_values_are_refused_as_bad_input_never_a_crash(value: bytes | None) -> None:
    with pytest.raises(UndecodableMessage) as refused:
        decode_task(value)

    assert dead_letter_reason(refused.value).stage == "decode"


def test_a_lone_surrogate_escape_decodes_and_is_then_refused_by_validation() -> None:
    data = decode_task(b'{"\\ud800": 1, "event_id": "e", "context_id": "c"}')

    assert "\ud800" in data


def test_each_failure_gets_the_dead_letter_stage_of_its_kind() -> None:
    assert dead_letter_reason(UnknownContext("c")).stage == "validation"
    assert dead_letter_reason(UnknownContext("c")).field_errors == {"segments": [str(UnknownContext("c"))]}
    assert dead_letter_reason(KeyError("a bug")).stage == "processing"


def test_finished_runs_leave_the_in_flight_set_and_pending_ones_stay_however_old(
    store: RunStore, settings: Settings, celery_app: OrchestratorCelery
) -> None:
    bridge = bridge_on(store, settings, celery_app)
    done, waiting = claim_run(store, source="kafka"), claim_run(store, source="kafka")
    finish_claimed(store, done, "ok")
    bridge.in_flight = {done.run.id, waiting.run.id}

    bridge.refresh_in_flight()

    assert bridge.in_flight == {waiting.run.id}


def test_an_unreachable_database_keeps_the_in_flight_set_instead_of_crashing(
    settings: Settings, celery_app: OrchestratorCelery
) -> None:
    down = RunStore(create_db_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nothing"))
    bridge = bridge_on(down, settings, celery_app)
    bridge.stopping.set()  # skip the back-off pause
    bridge.in_flight = {"run-a"}

    bridge.refresh_in_flight()

    assert bridge.in_flight == {"run-a"}
