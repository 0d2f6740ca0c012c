"""Live results: Server-Sent Events per worker, then the bundle; a late client first gets what finished."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from flask.testing import FlaskClient

from orchestrator.api import create_app
from orchestrator.config import Settings
from orchestrator.live import RedisRunEvents
from orchestrator.services import Services
from tasks.celery_app import OrchestratorCelery
from tests.factories import analyze_body, unique
from tests.fake_llm import FakeLLM, Fault
from tests.services import Process

WORKERS = {"summary", "argument", "implication_sentiment", "logic_bias"}
TUTOR_WORKERS = {"grammar", "fluency", "vocabulary", "feedback"}


def read_events(client: FlaskClient, url: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event of the stream at ``url``, in order, until the server ends it."""
    response = client.get(url, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = []
    for chunk in response.response:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        if text.startswith(":"):
            continue
        kind, data = text.strip().split("\n", 1)
        events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def start(client: FlaskClient) -> dict[str, Any]:
    response = client.post("/orchestrator/analyze", json=analyze_body(3), headers={"Prefer": "respond-async"})
    assert response.status_code == 202 and response.headers["Preference-Applied"] == "respond-async"
    accepted: dict[str, Any] = response.json
    assert (
        accepted["status"] == "pending" and accepted["events_url"] == f"/orchestrator/runs/{accepted['run_id']}/events"
    )
    return accepted


def test_each_worker_is_streamed_as_it_finishes_then_the_bundle(client: FlaskClient, fake_llm: FakeLLM) -> None:
    fake_llm.script("logic_bias", Fault.hang(0.6))
    accepted = start(client)

    events = read_events(client, accepted["events_url"])

    kinds = [kind for kind, _ in events]
    assert kinds == ["worker"] * 4 + ["bundle"], kinds
    workers = [data for kind, data in events if kind == "worker"]
    assert {w["worker"] for w in workers} == WORKERS and workers[-1]["worker"] == "logic_bias"  # the slow one last
    assert all(w["status"] == "ok" and w["level"] == 0 and w["output"] for w in workers)
    bundle = events[-1][1]
    assert bundle["run_id"] == accepted["run_id"] and bundle["status"] == "ok"
    assert bundle["metadata"]["models_used"] == ["fake-model"]


def test_a_client_that_connects_late_first_gets_what_already_finished(client: FlaskClient) -> None:
    accepted = start(client)
    first = read_events(client, accepted["events_url"])  # to the end: the run is finished

    again = read_events(client, accepted["events_url"])
    by_event_id = read_events(client, f"/orchestrator/runs/{accepted['event_id']}/events")

    assert [kind for kind, _ in again] == ["worker"] * 4 + ["bundle"]
    assert again == first and by_event_id == first


def test_a_synchronous_request_still_answers_with_the_bundle(client: FlaskClient) -> None:
    response = client.post("/orchestrator/analyze", json=analyze_body(3))
    assert response.status_code == 200 and response.json["status"] == "ok"


def test_events_of_an_unknown_run_are_a_404(client: FlaskClient) -> None:
    response = client.get("/orchestrator/runs/no-such-run/events")
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_after_the_live_events_expired_the_stream_gives_the_stored_outcome(
    client: FlaskClient, services: Services
) -> None:
    accepted = start(client)
    live = read_events(client, accepted["events_url"])
    assert isinstance(services.run_events, RedisRunEvents)
    run = services.store.get_run(accepted["run_id"])
    assert run is not None and run.claim_token
    deleted = services.run_events.client.delete(f"orchestrator:run-events:{run.id}:{run.claim_token}")
    assert deleted == 1

    stored = read_events(client, accepted["events_url"])

    assert [kind for kind, _ in stored] == ["worker"] * 4 + ["bundle"]
    assert {data["worker"]: data["status"] for kind, data in stored if kind == "worker"} == dict.fromkeys(WORKERS, "ok")
    assert stored[-1][1]["summary"] == live[-1][1]["summary"]


def test_a_runs_model_calls_are_listed_in_order_without_their_outputs(client: FlaskClient) -> None:
    bundle = client.post("/orchestrator/analyze", json=analyze_body(3)).json

    by_run = client.get(f"/orchestrator/runs/{bundle['run_id']}/calls").json
    by_event = client.get(f"/orchestrator/runs/{bundle['event_id']}/calls").json

    assert by_run == by_event and {call["worker"] for call in by_run} == WORKERS
    assert all(call["status"] == "ok" and call["level"] == 0 and call["model"] == "fake-model" for call in by_run)
    assert all("output" not in call and call["input_tokens"] > 0 for call in by_run)
    assert client.get("/orchestrator/runs/no-such-run/calls").status_code == 404


def test_a_tutor_turn_can_be_followed_live_too(client: FlaskClient) -> None:
    body = {"text": "I goes to school yesterday", "session_id": unique("session"), "learner_profile": {"level": "A2"}}
    response = client.post("/api/v1/ai/analyze", json=body, headers={"Prefer": "respond-async"})
    assert response.status_code == 202 and response.headers["Preference-Applied"] == "respond-async"

    events = read_events(client, response.json["events_url"])

    assert [kind for kind, _ in events] == ["worker"] * 4 + ["bundle"]
    assert {data["worker"] for kind, data in events if kind == "worker"} == TUTOR_WORKERS
    turn = events[-1][1]
    assert turn["run_id"] == response.json["run_id"] and turn["status"] == "ok"
    assert turn["text"] == "You can say: I went to school yesterday"


def test_a_stream_that_outlasts_the_analyze_timeout_ends_with_a_timeout_event(
    settings: Settings, services: Services, celery_app: OrchestratorCelery, celery_worker: Process, fake_llm: FakeLLM
) -> None:
    impatient = create_app(replace(settings, analyze_timeout=1.0), services=services, launcher=celery_app.launcher)
    client = impatient.test_client()
    fake_llm.script("logic_bias", Fault.hang(3))
    accepted = start(client)

    events = read_events(client, accepted["events_url"])

    kinds = [kind for kind, _ in events]
    assert kinds == ["worker"] * 3 + ["timeout"], kinds  # the three that finished, then where to look later
    assert "logic_bias" not in {data["worker"] for kind, data in events if kind == "worker"}
    assert events[-1][1] == {"run_id": accepted["run_id"], "status_url": f"/orchestrator/runs/{accepted['run_id']}"}
