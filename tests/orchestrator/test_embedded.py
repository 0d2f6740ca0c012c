"""The embedded default: no broker, SQLite, builtin model, the same chord in-process."""

from __future__ import annotations

from orchestrator.api import create_app
from orchestrator.config import Settings
from orchestrator.wiring import build_services
from tests.factories import WORKERS, analyze_body


def test_the_embedded_api_runs_the_chord_in_process_with_the_builtin_model(embedded_settings: Settings) -> None:
    assert embedded_settings.embedded
    services = build_services(embedded_settings)
    client = create_app(embedded_settings, services=services).test_client()

    response = client.post("/orchestrator/analyze", json=analyze_body(12), headers={"Idempotency-Key": "e-1"})
    again = client.post("/orchestrator/analyze", json=analyze_body(12), headers={"Idempotency-Key": "e-1"})

    assert response.status_code == 200
    bundle = response.json
    assert bundle["status"] == "ok"
    assert bundle["worker_statuses"] == {w: "ok" for w in WORKERS}
    assert bundle["sentiment"]["by_speaker"].keys() == {"Alice", "Bob", "Chen"}
    calls = services.store.calls_for(bundle["run_id"])
    assert sorted(c.worker for c in calls) == sorted(WORKERS)
    assert {c.model for c in calls} == {"builtin"}
    assert again.json["run_id"] == bundle["run_id"]
    assert len(services.store.calls_for(bundle["run_id"])) == 4


def test_embedded_health_needs_no_broker(embedded_settings: Settings) -> None:
    response = create_app(embedded_settings).test_client().get("/healthz")

    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "broker": "ok"}


def test_the_builtin_output_changes_with_the_input(embedded_settings: Settings) -> None:
    client = create_app(embedded_settings).test_client()
    first = client.post("/orchestrator/analyze", json=analyze_body(8)).json
    other = analyze_body(8)
    for segment in other["segments"]:
        segment["text"] = "What a wonderful, happy and excellent plan; I love it and I agree completely."
    second = client.post("/orchestrator/analyze", json=other).json

    assert first["summary"] != second["summary"]
    assert second["sentiment"]["overall"]["label"] == "positive"
    assert first["sentiment"] != second["sentiment"]
