"""The Celery tasks on the real worker: redelivery, retry policy, the chord's error path."""

from __future__ import annotations

import pytest
from celery import Celery
from flask.testing import FlaskClient

from orchestrator.chord import CHORD_FAILED_TASK, build_chord, worker_task_name
from orchestrator.domain import WORKERS
from orchestrator.retry import retry_delay
from orchestrator.store import RunStore
from tests.factories import analyze_body, make_segments, unique
from tests.fake_llm import FakeLLM
from tests.services import Process, make_statements_fail


def claimed_run(store: RunStore, source: str = "api") -> str:
    claim = store.claim_run(
        event_id=unique("evt"),
        context_id=unique("ctx"),
        source=source,
        request={"segments": make_segments(3), "language": "en", "prompt_ids": {}},
    )
    return claim.run.id


def test_a_worker_task_run_twice_calls_the_model_once(
    celery_app: Celery, celery_worker: Process, store: RunStore, fake_llm: FakeLLM, settings: object
) -> None:
    run_id = claimed_run(store)
    task = worker_task_name("summary")
    queue = celery_app.conf.task_default_queue

    first = celery_app.send_task(task, args=(run_id,), queue=queue).get(timeout=20)
    second = celery_app.send_task(task, args=(run_id,), queue=queue).get(timeout=20)

    assert first == second
    assert first["status"] == "ok"
    assert fake_llm.calls_for("summary") == 1
    assert [c.status for c in store.calls_for(run_id)] == ["ok"]


def test_the_chord_error_path_keeps_what_succeeded_and_fails_the_rest(
    celery_app: Celery, celery_worker: Process, store: RunStore, fake_llm: FakeLLM
) -> None:
    run_id = claimed_run(store)
    queue = celery_app.conf.task_default_queue
    celery_app.send_task(worker_task_name("summary"), args=(run_id,), queue=queue).get(timeout=20)

    celery_app.send_task(CHORD_FAILED_TASK, args=(f"{run_id}.1", run_id), queue=queue).get(timeout=20)

    run = store.get_run(run_id)
    assert run is not None
    assert run.status == "partial"
    assert run.worker_statuses == {w: ("ok" if w == "summary" else "error") for w in WORKERS}
    assert all("chord failed" in (run.errors or {})[w] for w in WORKERS if w != "summary")


def test_the_chord_body_carries_the_error_callback_with_the_run_id(celery_app: Celery) -> None:
    signature = build_chord(celery_app, "run-1", attempt=2, queue="q")

    assert [t.id for t in signature.tasks] == [f"run-1.2.{w}" for w in WORKERS]
    body = signature.body
    assert body.id == "run-1.2"
    (errback,) = body.options["link_error"]
    assert errback["task"] == CHORD_FAILED_TASK and list(errback["args"]) == ["run-1"]


@pytest.mark.parametrize("retries", [0, 1, 2, 5, 10])
def test_retry_delay_is_capped_and_jittered(retries: int) -> None:
    delays = [retry_delay(retries, None, cap=20) for _ in range(200)]
    assert all(0 <= d <= min(20, 2**retries) for d in delays)
    assert len(set(delays)) > 1


def test_retry_delay_honours_retry_after_up_to_the_cap() -> None:
    assert retry_delay(0, 7, cap=20) == 7
    assert retry_delay(0, 300, cap=20) == 20


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
    assert celery_app.AsyncResult(f"{run_id}.1").state == "FAILURE"  # the aggregate really failed
    run = store.get_run(run_id)
    assert run is not None and run.status == "ok"  # completed by chord_failed from the stored outputs
    assert run.worker_statuses == {w: "ok" for w in WORKERS}
    assert len(store.calls_for(run_id)) == 4  # nothing was analysed twice
