"""The Celery tasks on the real worker: redelivery, retry policy, the chord's error path."""

from __future__ import annotations

import pytest
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from flask.testing import FlaskClient

from orchestrator.chord import AGGREGATE_TASK, ANALYSE_PART_TASK, CHORD_FAILED_TASK, build_chord
from orchestrator.store import RunStore
from tasks.base import backoff
from tests.factories import WORKERS, analyze_body, claim_run, unique
from tests.fake_llm import FakeLLM
from tests.services import Process, make_statements_fail


def test_a_worker_task_run_twice_calls_the_model_once(
    celery_app: Celery, celery_worker: Process, store: RunStore, fake_llm: FakeLLM
) -> None:
    claimed = claim_run(store)
    queue = celery_app.conf.task_default_queue
    args = (claimed.run.id, claimed.token, "summary")

    first = celery_app.send_task(ANALYSE_PART_TASK, args=args, queue=queue).get(timeout=20)
    second = celery_app.send_task(ANALYSE_PART_TASK, args=args, queue=queue).get(timeout=20)

    assert first == second
    assert first["status"] == "ok"
    assert fake_llm.calls_for("summary") == 1
    assert [c.status for c in store.calls_for(claimed.run.id)] == ["ok"]


def test_a_model_answer_whose_audit_row_cannot_be_written_yet_is_kept_and_the_model_not_called_again(
    celery_app: Celery, celery_worker: Process, store: RunStore, fake_llm: FakeLLM, database_url: str
) -> None:
    claimed = claim_run(store)
    make_statements_fail(
        database_url,
        "BEFORE INSERT",
        table="llm_calls",
        condition=f"NEW.run_id = '{claimed.run.id}'",
        times=3,
        sqlstate="57P01",  # "terminating connection due to administrator command"
    )
    args = (claimed.run.id, claimed.token, "summary")

    outcome = celery_app.send_task(ANALYSE_PART_TASK, args=args, queue=celery_app.conf.task_default_queue).get(60)

    assert outcome["status"] == "ok"
    assert fake_llm.calls_for("summary") == 1
    assert [(c.status, c.attempt) for c in store.calls_for(claimed.run.id)] == [("ok", 1)]


def test_a_worker_task_of_a_superseded_launch_does_nothing(
    celery_app: Celery, celery_worker: Process, store: RunStore, fake_llm: FakeLLM
) -> None:
    claimed = claim_run(store)
    queue = celery_app.conf.task_default_queue

    stale = celery_app.send_task(ANALYSE_PART_TASK, args=(claimed.run.id, "old-token", "summary"), queue=queue)

    with pytest.raises(CeleryTimeoutError):  # ignored: no result is ever stored
        stale.get(timeout=3)
    assert fake_llm.calls_for("summary") == 0 and store.calls_for(claimed.run.id) == []


def test_the_chord_error_path_keeps_what_succeeded_and_fails_the_rest(
    celery_app: Celery, celery_worker: Process, store: RunStore, fake_llm: FakeLLM
) -> None:
    claimed = claim_run(store)
    run_id = claimed.run.id
    queue = celery_app.conf.task_default_queue
    celery_app.send_task(ANALYSE_PART_TASK, args=(run_id, claimed.token, "summary"), queue=queue).get(timeout=20)

    celery_app.send_task(CHORD_FAILED_TASK, args=(f"{run_id}.1", run_id, 1, claimed.token), queue=queue).get(timeout=20)

    run = store.get_run(run_id)
    assert run is not None
    assert run.status == "partial"
    assert run.worker_statuses == {w: ("ok" if w == "summary" else "error") for w in WORKERS}
    assert all("chord failed" in (run.errors or {})[w] for w in WORKERS if w != "summary")


def test_a_duplicate_aggregate_changes_nothing_and_sends_no_dead_letter(
    celery_app: Celery, celery_worker: Process, store: RunStore
) -> None:
    claimed = claim_run(store, source="kafka")
    run_id, queue = claimed.run.id, celery_app.conf.task_default_queue
    outputs = {
        "summary": {"summary": "s", "key_points": []},
        "argument": {"claims": []},
        "implication_sentiment": {"implications": [], "sentiment": {"overall": {"label": "neutral", "score": 0}}},
        "logic_bias": {"fallacies": [], "biases": []},
    }
    ok = [{"worker": w, "status": "ok", "output": outputs[w], "error": None} for w in WORKERS]
    failed = [{"worker": w, "status": "error", "output": None, "error": "boom"} for w in WORKERS]

    first = celery_app.send_task(AGGREGATE_TASK, args=(ok, run_id, 1, claimed.token), queue=queue).get(timeout=20)
    again = celery_app.send_task(AGGREGATE_TASK, args=(failed, run_id, 1, claimed.token), queue=queue).get(timeout=20)

    assert first["status"] == again["status"] == "ok"
    run = store.get_run(run_id)
    assert run is not None and run.status == "ok" and run.worker_statuses == {w: "ok" for w in WORKERS}
    assert run_id not in [e.run_id for e in store.outbox_entries()]


def test_the_chord_carries_the_run_attempt_and_token_to_every_task_and_the_error_path(celery_app: Celery) -> None:
    signature = build_chord(celery_app, "run-1", workers=WORKERS, attempt=2, token="abcdef123456", queue="q")

    assert [t.id for t in signature.tasks] == [f"run-1.2.abcdef12.{w}" for w in WORKERS]
    assert [list(t.args) for t in signature.tasks] == [["run-1", "abcdef123456", w] for w in WORKERS]
    body = signature.body
    assert body.id == "run-1.2.abcdef12"
    (errback,) = body.options["link_error"]
    assert errback["task"] == CHORD_FAILED_TASK and list(errback["args"]) == ["run-1", 2, "abcdef123456"]


@pytest.mark.parametrize("retries", [1, 2, 5, 10])
def test_backoff_is_capped_and_jittered(retries: int) -> None:
    delays = [backoff(retries, cap=20) for _ in range(200)]
    assert all(0 <= d <= min(20, 2**retries) for d in delays)
    assert len(set(delays)) > 1


def test_backoff_honours_retry_after_up_to_the_cap_and_a_cap_below_one_second() -> None:
    assert backoff(0, cap=20, retry_after=7) == 7
    assert backoff(0, cap=20, retry_after=300) == 20
    assert all(0 <= backoff(3, cap=0.05) <= 0.05 for _ in range(50))


def test_when_the_aggregate_fails_celery_fires_the_error_path_which_stores_the_run(
    client: FlaskClient, store: RunStore, celery_app: Celery, database_url: str
) -> None:
    context_id = unique("ctx-aggregate-fails-once")
    make_statements_fail(
        database_url,
        "BEFORE UPDATE",
        condition=f"NEW.context_id = '{context_id}' AND NEW.status <> 'pending'",
        times=1,
    )

    response = client.post("/orchestrator/analyze", json=analyze_body(3, context_id=context_id))

    assert response.status_code == 200, response.json
    run_id = response.json["run_id"]
    chord_id = f"{run_id}.1.{run.claim_token[:8]}" if (run := store.get_run(run_id)) and run.claim_token else ""
    assert celery_app.AsyncResult(chord_id).state == "FAILURE"  # the aggregate really failed
    run = store.get_run(run_id)
    assert run is not None and run.status == "ok"  # completed by chord_failed from the stored outputs
    assert run.worker_statuses == {w: "ok" for w in WORKERS}
    assert len(store.calls_for(run_id)) == 4  # nothing was analysed twice
