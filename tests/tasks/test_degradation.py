"""The degradation chain: the model, its fallback model, the builtin analyser; walked down, never silently."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from orchestrator.config import Settings
from tests.conftest import MODEL_MAX_RETRIES
from tests.factories import analyze_body, unique
from tests.fake_llm import FakeLLM, Fault
from tests.stack import Stack, running_stack


def test_a_worker_whose_model_keeps_failing_is_answered_by_the_builtin_analyser_and_says_so(
    builtin_fallback: Stack, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_always("argument", Fault.status(500))

    bundle: dict[str, Any] = builtin_fallback.api_client().post("/orchestrator/analyze", json=analyze_body(3)).json

    assert bundle["status"] == "ok"
    assert bundle["worker_statuses"] == {
        "summary": "ok", "argument": "fallback", "implication_sentiment": "ok", "logic_bias": "ok",
    }  # fmt: skip
    assert bundle["arguments"] is not None and "claims" in bundle["arguments"]
    assert "level 1 (builtin)" in bundle["errors"]["argument"] and "500" in bundle["errors"]["argument"]
    assert set(bundle) >= {"summary", "logic_bias"} and list(bundle["errors"]) == ["argument"]
    assert bundle["metadata"]["models_used"] == ["builtin", "fake-model"]

    calls = builtin_fallback.calls_of(bundle["run_id"], "argument")
    assert [(c.level, c.status, c.attempt) for c in calls] == [
        *[(0, "error", attempt) for attempt in range(1, MODEL_MAX_RETRIES + 2)],
        (1, "ok", MODEL_MAX_RETRIES + 2),
    ]
    assert calls[-1].model == "builtin" and calls[-1].cost_usd == 0.0
    assert fake_llm.calls_for("argument") == MODEL_MAX_RETRIES + 1

    workers = builtin_fallback.api_client().get("/orchestrator/stats").json["pipelines"]["analysis"]["workers"]
    assert workers["argument"]["answered_by_level"] == {"1": 1} and workers["argument"]["fallback_rate"] == 1.0
    assert workers["summary"]["answered_by_level"] == {"0": 1} and workers["summary"]["fallback_rate"] == 0.0


def test_a_4xx_is_not_retried_before_the_next_level(builtin_fallback: Stack, fake_llm: FakeLLM) -> None:
    fake_llm.fail_always("summary", Fault.status(400))

    bundle = builtin_fallback.api_client().post("/orchestrator/analyze", json=analyze_body(3)).json

    assert bundle["status"] == "ok" and bundle["worker_statuses"]["summary"] == "fallback"
    calls = builtin_fallback.calls_of(bundle["run_id"], "summary")
    assert [(c.level, c.status) for c in calls] == [(0, "error"), (1, "ok")]
    assert fake_llm.calls_for("summary") == 1


@pytest.fixture()
def fallback_model(settings: Settings, log_dir: Path, fake_llm: FakeLLM) -> Iterator[tuple[Stack, FakeLLM]]:
    with FakeLLM() as second:
        chain = replace(
            settings,
            model_fallback_url=second.url,
            model_fallback_name="fallback-model",
            model_fallback_builtin=True,
        )
        with running_stack(chain, log_dir) as stack:
            yield stack, second


def test_the_fallback_model_answers_before_the_builtin_analyser(
    fallback_model: tuple[Stack, FakeLLM], fake_llm: FakeLLM
) -> None:
    stack, second = fallback_model
    fake_llm.fail_always("summary", Fault.status(503))

    bundle = stack.api_client().post("/orchestrator/analyze", json=analyze_body(3)).json

    assert bundle["status"] == "ok" and bundle["worker_statuses"]["summary"] == "fallback"
    assert "level 1 (fallback-model)" in bundle["errors"]["summary"]
    calls = stack.calls_of(bundle["run_id"], "summary")
    assert [c.level for c in calls] == [0] * (MODEL_MAX_RETRIES + 1) + [1]
    assert calls[-1].status == "ok"
    assert [r.body["model"] for r in second.requests] == ["fallback-model"]  # summary's call only


def test_when_every_level_fails_the_worker_is_an_error_and_no_level_is_asked_twice(
    fallback_model: tuple[Stack, FakeLLM], fake_llm: FakeLLM
) -> None:
    stack, second = fallback_model
    fake_llm.fail_always("logic_bias", Fault.status(401))
    second.fail_always("logic_bias", Fault.status(401))

    bundle = stack.api_client().post("/orchestrator/analyze", json=analyze_body(3)).json
    # The builtin analyser is the last level and does not fail.
    assert bundle["worker_statuses"]["logic_bias"] == "fallback"
    assert "level 2 (builtin)" in bundle["errors"]["logic_bias"]
    assert [c.level for c in stack.calls_of(bundle["run_id"], "logic_bias")] == [0, 1, 2]
    assert fake_llm.calls_for("logic_bias") == 1 and second.calls_for("logic_bias") == 1


def test_past_its_deadline_a_slow_model_gives_way_to_the_builtin_analyser(
    builtin_fallback: Stack, fake_llm: FakeLLM
) -> None:
    fake_llm.latency_s = 2.0
    api = builtin_fallback.api_client()
    # A first run loads the builtin analysers in the worker (tests do not warm them at start).
    api.post("/orchestrator/analyze", json={**analyze_body(3), "deadline_ms": 350})

    started = time.monotonic()
    bundle = api.post("/orchestrator/analyze", json={**analyze_body(3), "deadline_ms": 350}).json
    took = time.monotonic() - started

    assert bundle["status"] == "ok"
    assert set(bundle["worker_statuses"].values()) == {"fallback"}
    assert all("level 1 (builtin)" in error for error in bundle["errors"].values())
    assert took < fake_llm.latency_s, "the bundle waited for the slow model"
    for worker in ("summary", "argument"):
        calls = builtin_fallback.calls_of(bundle["run_id"], worker)
        assert calls[-1].model == "builtin" and calls[-1].status == "ok"
        assert all(call.status == "timeout" and call.latency_ms < 1000 for call in calls[:-1])
    print(f"deadline 350 ms, model 2 s: bundle in {took * 1000:.0f} ms")


def test_a_tutor_turn_without_a_deadline_gets_the_tutors_350_ms_when_the_builtin_level_is_in_the_chain(
    builtin_fallback: Stack, fake_llm: FakeLLM
) -> None:
    fake_llm.latency_s = 2.0
    api = builtin_fallback.api_client()
    turn = {"text": "I goes to school yesterday", "learner_profile": {"level": "A2"}}
    api.post("/api/v1/ai/analyze", json={**turn, "session_id": unique("s")})  # loads the builtin analysers

    started = time.monotonic()
    answer = api.post("/api/v1/ai/analyze", json={**turn, "session_id": unique("s")}).json
    took = time.monotonic() - started

    assert answer["status"] == "ok" and set(answer["worker_statuses"].values()) == {"fallback"}
    assert answer["analysis"]["grammar"]["corrected"] == "I went to school yesterday"
    assert took < fake_llm.latency_s, "the turn waited for the slow model"
    print(f"tutor default deadline 350 ms, model 2 s: turn in {took * 1000:.0f} ms")


def test_without_the_builtin_level_a_worker_past_its_deadline_times_out(client: FlaskClient, fake_llm: FakeLLM) -> None:
    fake_llm.latency_s = 2.0
    bundle = client.post("/orchestrator/analyze", json={**analyze_body(3), "deadline_ms": 300}).json
    assert bundle["status"] == "failed"
    assert set(bundle["worker_statuses"].values()) == {"timeout"}


@pytest.mark.parametrize("deadline", [0, -5, "soon", 3_600_001])
def test_a_bad_deadline_is_a_422(client: FlaskClient, deadline: Any) -> None:
    response = client.post("/orchestrator/analyze", json={**analyze_body(3), "deadline_ms": deadline})
    assert response.status_code == 422 and "deadline_ms" in response.json["fields"]
