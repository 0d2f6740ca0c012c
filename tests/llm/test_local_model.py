"""The orchestrator against a real, weak local model (SmolLM2-135M; see conftest.py).

The model often answers with valid JSON of the wrong shape, with prose, or with
JSON that never ends (cut where the context is full). These tests do not ask
for good answers: they check that every such failure is classified, recorded
and survived, through the adapter alone and through the API, a Celery worker
and PostgreSQL, within bounded time.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from orchestrator.adapters.base import ModelCall, ModelOutputError, ModelTimeout, PermanentModelError, Prompt
from orchestrator.adapters.openai import OpenAIChatAdapter
from orchestrator.api import create_app
from orchestrator.models import LlmCall
from orchestrator.pipeline import Pipeline
from orchestrator.pipelines import load_pipelines
from orchestrator.wiring import build_services
from tests.factories import make_segments, unique
from tests.llm.conftest import (
    MAX_RETRIES,
    MAX_TOKENS,
    MODEL_NAME,
    N_CTX,
    READ_TIMEOUT,
    RESPONSE_FORMAT,
    CallFigure,
    Figures,
    LocalModel,
)
from tests.stack import Stack

pytestmark = pytest.mark.llm

PIPELINES = load_pipelines()
#: Error types a failed attempt may be recorded with (``describe``: "Type: message").
MODEL_ERRORS = ("ModelOutputError", "ModelTimeout", "TransientModelError", "PermanentModelError")
#: ... and a failed worker's error in the bundle (its last attempt's).
WORKER_ERRORS = (*MODEL_ERRORS, "RepairFailed", "DeadlinePassed")
#: Words of a ModelOutputError that say what was wrong with the answer.
OUTPUT_PROBLEMS = ("does not match its schema", "is not JSON", "not an object", "no choices[0].message.content")
#: An analysis request and a tutoring turn, short (2-3 segments) to keep the model's work small.
ANALYSIS_INPUT: dict[str, Any] = {"language": "en", "segments": make_segments(3)}
TUTOR_TEXT = "I goes to school yesterday"
#: Seconds the tutor request waits for its bundle (ANALYZE_TIMEOUT of its client).
TUTOR_TIMEOUT = 120


def error_type(error: str | None) -> str:
    return (error or "").split(":", 1)[0]


def json_of(response: TestResponse) -> dict[str, Any]:
    answer = response.json
    assert isinstance(answer, dict), response.data[:500]
    return answer


def figure_of(call: LlmCall) -> CallFigure:
    status = call.status
    if status == "error" and error_type(call.error) == "ModelOutputError":
        status = "schema"
    return CallFigure("worker", call.worker, status, call.latency_ms, call.output_tokens)


@pytest.fixture(scope="module")
def client(llm_stack: Stack) -> FlaskClient:
    return llm_stack.api_client()


@pytest.fixture(scope="module")
def tutor_client(llm_stack: Stack) -> FlaskClient:
    """Waits less: a tutor turn takes ~1 min here; a longer wait only delays the report of a stuck run."""
    settings = replace(llm_stack.settings, analyze_timeout=TUTOR_TIMEOUT)
    return create_app(settings, services=build_services(settings)).test_client()


# --- the server itself -------------------------------------------------------------------------


def test_the_server_lists_its_model(local_model: LocalModel) -> None:
    models = requests.get(f"{local_model.base_url}/models", timeout=5).json()
    assert [model["id"] for model in models["data"]] == [MODEL_NAME]
    assert local_model.ready_s < 60


# --- end to end: the API, a Celery worker, PostgreSQL, the real model ---------------------------


def check_run(stack: Stack, pipeline: Pipeline, answer: dict[str, Any]) -> None:
    """Every worker has a status; every attempt is in llm_calls, answered ones with tokens, failed ones with why."""
    workers = set(pipeline.worker_names)
    assert answer["status"] in ("ok", "partial", "failed"), answer
    statuses = answer["worker_statuses"]
    assert set(statuses) == workers and set(statuses.values()) <= {"ok", "error", "timeout"}, statuses
    assert set(answer["errors"]) == {w for w, s in statuses.items() if s != "ok"}, answer["errors"]

    calls = stack.store.calls_for(answer["run_id"])
    for worker in workers:
        attempts = [call for call in calls if call.worker == worker]
        # Attempts 1 and 2 at most (MODEL_MAX_RETRIES=1), each one call plus one repair of an invalid answer.
        numbers = [c.attempt for c in attempts]
        assert numbers and numbers == sorted(numbers) and set(numbers) <= set(range(1, 2 + MAX_RETRIES)), numbers
        assert len(attempts) <= 2 * (1 + MAX_RETRIES), [(c.attempt, c.status, c.error) for c in attempts]
        assert all(c.status != "ok" for c in attempts[:-1]), "a call after a valid answer"
        last = attempts[-1]
        assert (last.status == "ok") == (statuses[worker] == "ok"), (worker, statuses[worker], last.status)
        if statuses[worker] != "ok":
            assert answer["errors"][worker].startswith(WORKER_ERRORS), answer["errors"][worker]
    for call in calls:
        assert call.pipeline == pipeline.name and call.prompt_ref and call.model, call
        assert call.latency_ms is not None and call.latency_ms >= 0
        if call.status == "ok":
            # An answered call: its tokens (from the server's usage) and its validated output.
            assert call.input_tokens and call.input_tokens > 0 and call.output_tokens and call.output_tokens > 0
            assert isinstance(call.output, dict) and call.error is None
            continue
        assert call.status in ("error", "timeout") and call.output is None, call
        assert error_type(call.error) in MODEL_ERRORS, call.error
        if error_type(call.error) == "ModelOutputError":
            # An invalid answer: the error says what is wrong with it (schema or JSON) and for which worker.
            assert call.error and any(problem in call.error for problem in OUTPUT_PROBLEMS), call.error
            assert call.worker in call.error
        assert call.model == MODEL_NAME  # attempts without an answer record the configured model


def test_an_analysis_request_comes_back_with_a_bundle_and_every_attempt_recorded(
    client: FlaskClient, llm_stack: Stack, figures: Figures
) -> None:
    started = time.monotonic()
    response = client.post("/orchestrator/analyze", json={"context_id": unique("ctx"), **ANALYSIS_INPUT})
    answer = json_of(response)
    figures.runs.append(("analysis", answer.get("status", "?"), time.monotonic() - started))

    assert response.status_code == 200, answer
    figures.calls.extend(map(figure_of, llm_stack.store.calls_for(answer["run_id"])))
    check_run(llm_stack, PIPELINES["analysis"], answer)
    for worker, field in (("summary", "summary"), ("argument", "arguments"), ("logic_bias", "logic_bias")):
        # A failed worker's field is null; a successful one's holds its validated output.
        assert (answer[field] is None) == (answer["worker_statuses"][worker] != "ok"), (worker, answer[field])


def test_a_tutor_turn_comes_back_with_a_reply_and_every_attempt_recorded(
    tutor_client: FlaskClient, llm_stack: Stack, figures: Figures
) -> None:
    body = {
        "text": TUTOR_TEXT,
        "session_id": unique("session"),
        "input_type": "text",
        "learner_profile": {"level": "A2"},
    }
    started = time.monotonic()
    response = tutor_client.post("/api/v1/ai/analyze", json=body)
    answer = json_of(response)
    figures.runs.append(("tutor", answer.get("status", str(response.status_code)), time.monotonic() - started))

    if "run_id" in answer:
        figures.calls.extend(map(figure_of, llm_stack.store.calls_for(answer["run_id"])))
    assert response.status_code == 200, answer
    check_run(llm_stack, PIPELINES["tutor"], answer)
    # Whatever the model did, the learner gets a reply and the session counts the turn.
    assert isinstance(answer["text"], str) and answer["text"], answer
    assert answer["session"]["turn"] == 1


def test_with_the_builtin_analyser_last_in_the_chain_every_worker_answers_and_says_by_which_level(
    client: FlaskClient, llm_stack: Stack, figures: Figures
) -> None:
    llm_stack.worker.stop()
    llm_stack.env["MODEL_FALLBACK_BUILTIN"] = "true"
    llm_stack.restart_worker()
    try:
        started = time.monotonic()
        answer = json_of(client.post("/orchestrator/analyze", json={"context_id": unique("ctx"), **ANALYSIS_INPUT}))
        figures.runs.append(("analysis, builtin last", answer.get("status", "?"), time.monotonic() - started))
    finally:
        llm_stack.worker.stop()
        del llm_stack.env["MODEL_FALLBACK_BUILTIN"]
        llm_stack.restart_worker()

    assert answer["status"] == "ok", answer
    calls = llm_stack.store.calls_for(answer["run_id"])
    figures.calls.extend(figure_of(call) for call in calls if call.level == 0)
    for worker, status in answer["worker_statuses"].items():
        attempts = [call for call in calls if call.worker == worker]
        assert attempts[-1].status == "ok", attempts
        if status == "fallback":
            # The model failed (every attempt recorded at level 0); the builtin analyser answered, once.
            assert "level 1 (builtin)" in answer["errors"][worker]
            assert [c.level for c in attempts] == [0] * (len(attempts) - 1) + [1] and attempts[-1].model == "builtin"
        else:
            assert status == "ok" and attempts[-1].level == 0 and attempts[-1].model == MODEL_NAME


# --- the adapter alone, against the real server ---------------------------------------------------


def model_call(pipeline: str, worker: str) -> ModelCall:
    """The call the engine would make for ``worker`` on the tests' input."""
    spec = PIPELINES[pipeline].worker(worker)
    if pipeline == "analysis":
        run_input = ANALYSIS_INPUT
    else:
        run_input = PIPELINES.load_request(
            {"pipeline": "tutor", "text": TUTOR_TEXT, "session_id": "s", "input_type": "text"}
        ).input
    prompt = PIPELINES[pipeline].render_prompt(worker, spec.default_prompt, run_input)
    return ModelCall(pipeline=pipeline, worker=spec, prompt=prompt, input=run_input)


@pytest.fixture()
def adapter(local_model: LocalModel) -> OpenAIChatAdapter:
    return OpenAIChatAdapter(
        local_model.base_url,
        MODEL_NAME,
        read_timeout=READ_TIMEOUT,
        max_tokens=MAX_TOKENS,
        response_format=RESPONSE_FORMAT,
    )


@pytest.mark.parametrize(
    ("pipeline", "worker"),
    [("analysis", "summary"), ("tutor", "grammar")],
)
def test_a_call_returns_validated_output_or_raises_model_output_error(
    adapter: OpenAIChatAdapter, figures: Figures, pipeline: str, worker: str
) -> None:
    call = model_call(pipeline, worker)
    started = time.monotonic()
    try:
        reply = adapter.complete(call)
        output = call.worker.validate(reply.output)
    except ModelOutputError as exc:
        figures.calls.append(CallFigure("adapter", worker, "schema", (time.monotonic() - started) * 1000))
        assert worker in str(exc) and any(problem in str(exc) for problem in OUTPUT_PROBLEMS), exc
    else:
        figures.calls.append(CallFigure("adapter", worker, "ok", reply.usage.latency_ms, reply.usage.output_tokens))
        assert isinstance(output, dict)
        assert reply.usage.input_tokens and reply.usage.output_tokens and reply.usage.model
    # Never hangs: even an answer that never stops is cut where the context is full.
    assert time.monotonic() - started < READ_TIMEOUT


def test_a_prompt_longer_than_the_context_is_a_permanent_error(adapter: OpenAIChatAdapter) -> None:
    call = model_call("analysis", "summary")
    long_text = " ".join(["The committee discussed the library budget again."] * (N_CTX // 4))
    call = ModelCall(
        pipeline=call.pipeline,
        worker=call.worker,
        prompt=Prompt(ref=call.prompt.ref, system=call.prompt.system, user=long_text),
        input=call.input,
    )
    started = time.monotonic()
    with pytest.raises(PermanentModelError, match="HTTP 400") as refused:
        adapter.complete(call)
    assert "context" in str(refused.value).lower()  # the server says why: the context window
    assert time.monotonic() - started < 10  # refused before any generation


def test_a_read_timeout_shorter_than_the_answer_is_a_model_timeout(local_model: LocalModel) -> None:
    """Last on purpose: the server goes on generating the abandoned answer (a few seconds)."""
    impatient = OpenAIChatAdapter(local_model.base_url, MODEL_NAME, read_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ModelTimeout, match="timed out"):
        impatient.complete(model_call("analysis", "logic_bias"))
    assert time.monotonic() - started < 5
