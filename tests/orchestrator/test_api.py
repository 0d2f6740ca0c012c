"""The realtime API against the real worker, PostgreSQL, Redis and a fake LLM."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from celery.result import AsyncResult
from flask.testing import FlaskClient
from sqlalchemy import func, select

from orchestrator.api import create_app
from orchestrator.chord import ChordLauncher
from orchestrator.config import Settings
from orchestrator.models import AnalysisRun
from orchestrator.services import Services
from orchestrator.store import RunStore
from orchestrator.wiring import build_celery
from tests.conftest import MODEL_MAX_RETRIES
from tests.factories import WORKERS, analyze_body, make_segments, unique
from tests.fake_llm import FakeLLM, Fault
from tests.services import Process


def count_runs(store: RunStore, **where: str) -> int:
    with store.session() as session:
        query = select(func.count()).select_from(AnalysisRun).filter_by(**where)
        return session.execute(query).scalar_one()


def test_forty_segments_give_an_ok_bundle_one_run_and_four_model_calls(
    client: FlaskClient, store: RunStore, fake_llm: FakeLLM
) -> None:
    body = analyze_body(40)
    response = client.post("/orchestrator/analyze", json=body)

    assert response.status_code == 200, response.json
    bundle = response.json
    assert bundle["status"] == "ok"
    assert bundle["context_id"] == body["context_id"]
    assert bundle["worker_statuses"] == {w: "ok" for w in WORKERS}
    assert bundle["errors"] == {}
    assert bundle["summary"]["summary"]
    assert isinstance(bundle["arguments"]["claims"], list)
    assert isinstance(bundle["implications"], list)
    assert bundle["sentiment"]["overall"]["label"] in {"positive", "negative", "neutral"}
    assert set(bundle["logic_bias"]) == {"fallacies", "biases"}
    assert count_runs(store, context_id=body["context_id"]) == 1
    calls = store.calls_for(bundle["run_id"])
    assert sorted(c.worker for c in calls) == sorted(WORKERS)
    assert all(c.status == "ok" and c.model == "fake-model" and c.attempt == 1 for c in calls)
    assert all(c.input_tokens and c.output_tokens and c.latency_ms > 0 for c in calls)
    assert {c.prompt_ref for c in calls} == {f"{w}@v1" for w in WORKERS}
    assert fake_llm.calls_for("summary") == 1


def test_same_idempotency_key_returns_the_stored_run_without_calling_the_model(
    client: FlaskClient, store: RunStore, fake_llm: FakeLLM
) -> None:
    key = unique("key")
    first = client.post("/orchestrator/analyze", json=analyze_body(40), headers={"Idempotency-Key": key})
    second = client.post("/orchestrator/analyze", json=analyze_body(40), headers={"Idempotency-Key": key})

    assert first.status_code == second.status_code == 200
    assert second.json["run_id"] == first.json["run_id"]
    assert second.json["event_id"] == key
    assert second.json == first.json
    assert len(store.calls_for(first.json["run_id"])) == 4
    assert len(fake_llm.requests) == 4
    assert count_runs(store, event_id=key) == 1


def test_prompt_ids_choose_the_prompt_version_recorded_per_call(client: FlaskClient, store: RunStore) -> None:
    body = analyze_body(5, prompt_ids={"summary": "summary@v2"})
    response = client.post("/orchestrator/analyze", json=body)

    refs = {c.worker: c.prompt_ref for c in store.calls_for(response.json["run_id"])}
    assert refs["summary"] == "summary@v2"
    assert refs["argument"] == "argument@v1"


def test_a_worker_whose_calls_always_fail_gives_partial_with_every_attempt_recorded(
    client: FlaskClient, store: RunStore, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_always("argument", Fault.status(500))
    response = client.post("/orchestrator/analyze", json=analyze_body(10))

    bundle = response.json
    assert response.status_code == 200
    assert bundle["status"] == "partial"
    assert bundle["worker_statuses"] == {
        "summary": "ok",
        "argument": "error",
        "implication_sentiment": "ok",
        "logic_bias": "ok",
    }
    assert bundle["arguments"] is None
    assert "500" in bundle["errors"]["argument"]
    assert bundle["summary"] is not None
    calls = store.calls_for(bundle["run_id"])
    failed = [c for c in calls if c.worker == "argument"]
    assert [c.attempt for c in failed] == list(range(1, MODEL_MAX_RETRIES + 2))
    assert all(c.status == "error" and "500" in (c.error or "") for c in failed)
    assert fake_llm.calls_for("argument") == MODEL_MAX_RETRIES + 1


def test_a_transient_error_is_retried_and_the_run_still_ends_ok(
    client: FlaskClient, store: RunStore, fake_llm: FakeLLM
) -> None:
    fake_llm.script("summary", Fault.status(503, retry_after=0), Fault.malformed())
    response = client.post("/orchestrator/analyze", json=analyze_body(10))

    assert response.json["status"] == "ok"
    attempts = [(c.attempt, c.status) for c in store.calls_for(response.json["run_id"]) if c.worker == "summary"]
    assert attempts == [(1, "error"), (2, "error"), (3, "ok")]


def test_a_model_that_never_answers_in_time_marks_the_worker_timeout(
    client: FlaskClient, store: RunStore, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_always("logic_bias", Fault.hang(3))
    response = client.post("/orchestrator/analyze", json=analyze_body(5))

    assert response.json["status"] == "partial"
    assert response.json["worker_statuses"]["logic_bias"] == "timeout"
    statuses = {c.status for c in store.calls_for(response.json["run_id"]) if c.worker == "logic_bias"}
    assert statuses == {"timeout"}


def test_all_workers_failing_gives_failed_with_null_fields(client: FlaskClient, fake_llm: FakeLLM) -> None:
    fake_llm.fail_always(None, Fault.status(400, body='{"error": "bad model"}'))
    response = client.post("/orchestrator/analyze", json=analyze_body(5))

    bundle = response.json
    assert bundle["status"] == "failed"
    assert set(bundle["worker_statuses"].values()) == {"error"}
    assert all(bundle[field] is None for field in ("summary", "arguments", "implications", "sentiment", "logic_bias"))
    # A 400 is permanent: one attempt per worker, no retries.
    assert len(fake_llm.requests) == 4


def test_omitted_segments_reuse_the_context_stored_by_an_earlier_request(
    client: FlaskClient, fake_llm: FakeLLM
) -> None:
    body = analyze_body(6)
    client.post("/orchestrator/analyze", json=body)
    fake_llm.reset()

    again = client.post("/orchestrator/analyze", json={"context_id": body["context_id"]})

    assert again.status_code == 200
    assert again.json["status"] == "ok"
    user_message = fake_llm.requests[0].body["messages"][1]["content"]
    assert body["segments"][0]["text"] in user_message


def test_omitting_segments_of_an_unknown_context_is_a_422(client: FlaskClient, store: RunStore) -> None:
    context_id = unique("never-seen")
    response = client.post("/orchestrator/analyze", json={"context_id": context_id})

    assert response.status_code == 422
    assert "segments" in response.json["fields"]
    assert count_runs(store, context_id=context_id) == 0


def test_a_run_slower_than_the_timeout_gets_504_with_its_run_id_and_is_stored_later(
    settings: Settings, services: object, celery_app: object, store: RunStore, fake_llm: FakeLLM
) -> None:
    fake_llm.latency_s = 0.8
    impatient = create_app(
        replace(settings, analyze_timeout=0.2),
        services=services,  # type: ignore[arg-type]
        launcher=celery_app.launcher,  # type: ignore[attr-defined]
    )
    response = impatient.test_client().post("/orchestrator/analyze", json=analyze_body(3))

    assert response.status_code == 504
    run_id = response.json["run_id"]
    assert response.json["status_url"] == f"/orchestrator/runs/{run_id}"
    deadline = time.monotonic() + 15
    while (run := store.get_run(run_id)) is not None and run.status == "pending" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run is not None and run.status == "ok"


def test_a_run_whose_result_the_result_backend_lost_is_answered_from_the_database(
    settings: Settings, services: Services, celery_worker: Process, fake_llm: FakeLLM
) -> None:
    class ResultLosingLauncher(ChordLauncher):
        """Launches the chord, then awaits a result that never comes (as if Redis had lost it)."""

        def launch(self, run_id: str, **kwargs: Any) -> AsyncResult:
            super().launch(run_id, **kwargs)
            return self.app.AsyncResult(f"lost-{run_id}")

    app = build_celery(settings, services)
    forgetful = create_app(
        settings, services=services, launcher=ResultLosingLauncher(app, services.markers, services.pipelines)
    )

    started = time.monotonic()
    response = forgetful.test_client().post("/orchestrator/analyze", json=analyze_body(3))

    assert response.status_code == 200, response.json
    assert response.json["status"] == "ok" and response.json["worker_statuses"] == {w: "ok" for w in WORKERS}
    assert time.monotonic() - started < settings.analyze_timeout / 2


def test_get_run_finds_a_run_by_run_id_and_by_event_id(client: FlaskClient) -> None:
    key = unique("key")
    posted = client.post("/orchestrator/analyze", json=analyze_body(3), headers={"Idempotency-Key": key}).json

    by_run = client.get(f"/orchestrator/runs/{posted['run_id']}")
    by_event = client.get(f"/orchestrator/runs/{key}")

    assert by_run.status_code == by_event.status_code == 200
    assert by_run.json == by_event.json
    assert by_run.json["source"] == "api"
    assert by_run.json["status"] == posted["status"]
    assert by_run.json["duration_ms"] > 0


def test_get_unknown_run_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/orchestrator/runs/nope")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_healthz_checks_database_and_broker(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_healthz_is_503_when_the_broker_is_down(settings: Settings) -> None:
    down = replace(settings, celery_broker_url="redis://127.0.0.1:1/0")
    response = create_app(down).test_client().get("/healthz")

    assert response.status_code == 503
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["broker"].startswith("error")


def test_healthz_is_503_when_the_database_is_down(settings: Settings) -> None:
    down = replace(settings, database_url="postgresql+psycopg2://postgres@127.0.0.1:1/nothing")
    response = create_app(down).test_client().get("/healthz")

    assert response.status_code == 503
    assert response.json["checks"]["database"].startswith("error")


def test_metrics_are_grouped_by_url_rule_and_count_run_outcomes(client: FlaskClient) -> None:
    client.post("/orchestrator/analyze", json=analyze_body(3))
    client.get("/orchestrator/runs/a-first-id")
    client.get("/orchestrator/runs/a-second-id")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'url_rule="/orchestrator/runs/<run_key>"' in text
    assert "a-first-id" not in text
    assert 'orchestrator_api_runs_total{status="ok"}' in text
    assert 'orchestrator_api_worker_outcomes_total{status="ok",worker="summary"}' in text


def test_traceparent_is_forwarded_to_the_model_endpoint(client: FlaskClient, fake_llm: FakeLLM) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client.post("/orchestrator/analyze", json=analyze_body(3), headers={"traceparent": traceparent})

    assert {r.headers.get("traceparent") for r in fake_llm.requests} == {traceparent}


def test_segments_factory_is_realistic() -> None:
    assert len({s["speaker"] for s in make_segments(6)}) == 3
