"""A worker with the builtin analysers: warmed when it starts, reporting its memory, answering the tutor offline."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import Settings
from orchestrator.pipelines import Pipelines
from orchestrator.wiring import build_celery, build_services
from tests import toy_pipeline
from tests.factories import unique
from tests.services import wait_until
from tests.stack import running_stack


def test_a_worker_warms_its_analysers_reports_its_memory_and_tutors_offline(
    kafka_settings: Settings, log_dir: Path
) -> None:
    settings = replace(kafka_settings, model_adapter_url=None, warm_analysers=True)
    with running_stack(settings, log_dir) as stack:
        client = stack.api_client()

        # Other workers of the suite share this Redis: find this stack's own by its pid.
        name = f"{socket.gethostname()}:{stack.worker.popen.pid}"

        def reported() -> dict[str, Any]:
            processes = client.get("/orchestrator/stats").json["processes"]
            return next((process for process in processes if process["process"] == name), {"loaded": []})

        wait_until(lambda: "tutor.spacy_errant" in reported()["loaded"], 60, "the worker to report its warm analysers")
        answer = client.post(
            "/api/v1/ai/analyze",
            json={"text": "I goes to school yesterday", "session_id": unique("s"), "learner_profile": {"level": "A2"}},
        ).json

        assert answer["status"] == "ok", answer
        assert answer["analysis"]["grammar"]["corrected"] == "I went to school yesterday"
        assert {e["source"] for e in answer["analysis"]["grammar"]["errors"]} == {"builtin"}
        assert answer["metadata"]["models_used"] == ["builtin"]
        process = reported()
        assert process["resident_memory_mb"] > 100 and process["budget_mb"] is None


@pytest.mark.parametrize(
    "model_url,builtin_fallback,warmed",
    [(None, False, True), ("http://127.0.0.1:9/v1", True, True), ("http://127.0.0.1:9/v1", False, False)],
)
def test_a_worker_loads_the_analysers_only_when_its_chain_has_the_builtin_level(
    settings: Settings, model_url: str | None, builtin_fallback: bool, warmed: bool
) -> None:
    calls: list[str] = []
    chain = replace(settings, model_adapter_url=model_url, model_fallback_builtin=builtin_fallback)
    services = build_services(chain)
    services.pipelines = Pipelines([replace(toy_pipeline.PIPELINE, warm=lambda: calls.append("warm"))])

    build_celery(chain, services).warm_analysers()

    assert calls == (["warm"] if warmed else [])


@pytest.mark.parametrize(
    "model_url,builtin_fallback,default_deadlines",
    [(None, False, False), ("http://127.0.0.1:9/v1", True, True), ("http://127.0.0.1:9/v1", False, False)],
)
def test_pipelines_default_deadlines_apply_only_where_the_builtin_level_ends_a_chain_of_models(
    settings: Settings, model_url: str | None, builtin_fallback: bool, default_deadlines: bool
) -> None:
    chain = replace(settings, model_adapter_url=model_url, model_fallback_builtin=builtin_fallback)
    assert build_services(chain).pipelines.default_deadlines is default_deadlines
