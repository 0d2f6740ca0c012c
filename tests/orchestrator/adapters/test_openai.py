"""OpenAIChatAdapter against a real FakeLLM over HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from orchestrator.adapters.base import (
    ModelCall,
    ModelOutputError,
    ModelTimeout,
    PermanentModelError,
    Prompt,
    Repair,
    TransientModelError,
)
from orchestrator.adapters.openai import (
    REPAIR_INSTRUCTION,
    OpenAIChatAdapter,
    parse_retry_after,
    strip_fence,
)
from orchestrator.domain import Segment
from orchestrator.errors import Verdict, classify
from orchestrator.pipelines.analysis import PIPELINE as ANALYSIS
from tests.fake_llm import FAKE_MODEL, FakeLLM, Fault

#: The summary worker's output schema as JSON Schema (``MODEL_RESPONSE_FORMAT`` json_schema).
SUMMARY_SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "key_points": {"type": "array", "items": {"type": "string"}}},
    "required": ["key_points", "summary"],
}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset(llm: FakeLLM) -> None:
    llm.reset()


def make_call(worker: str = "summary", traceparent: str | None = None) -> ModelCall:
    segments = (
        Segment("s1", "The plan is good and will improve things.", "Alice"),
        Segment("s2", "I disagree, the risk is too high.", "Bob"),
    )
    lines = "\n".join(f"[{s.id}] {s.speaker}: {s.text}" for s in segments)
    return ModelCall(
        pipeline="analysis",
        worker=ANALYSIS.worker(worker),
        prompt=Prompt(
            ref=f"{worker}@v1",
            system="Answer with JSON only.",
            user=f"Segments:\n{lines}",
        ),
        input={"segments": [s.to_json() for s in segments]},
        traceparent=traceparent,
    )


def make_adapter(llm: FakeLLM, **kwargs: object) -> OpenAIChatAdapter:
    return OpenAIChatAdapter(llm.url, "test-model", **kwargs)  # type: ignore[arg-type]


# -- success -------------------------------------------------------------------


def test_success_parses_output_and_usage(llm: FakeLLM) -> None:
    llm.latency_s = 0.05
    reply = make_adapter(llm).complete(make_call("argument"))

    claim = reply.output["claims"][0]
    assert claim["segment_id"] == "s1" and claim["speaker"] == "Alice"
    assert reply.usage.model == FAKE_MODEL
    assert reply.usage.input_tokens is not None and reply.usage.input_tokens > 0
    assert reply.usage.output_tokens is not None and reply.usage.output_tokens > 0
    assert reply.usage.latency_ms >= 50


@pytest.mark.parametrize("worker", ["summary", "argument", "implication_sentiment", "logic_bias"])
def test_every_worker_gets_a_json_object(llm: FakeLLM, worker: str) -> None:
    reply = make_adapter(llm).complete(make_call(worker))
    assert isinstance(reply.output, dict) and reply.output


def test_request_carries_model_messages_format_and_headers(llm: FakeLLM) -> None:
    call = make_call("logic_bias", traceparent=TRACEPARENT)
    make_adapter(llm, api_key="sk-secret").complete(call)

    (request,) = llm.requests
    assert request.worker == "logic_bias"
    assert request.body["model"] == "test-model"
    assert request.body["messages"] == [
        {"role": "system", "content": call.prompt.system},
        {"role": "user", "content": call.prompt.user},
    ]
    assert request.body["response_format"] == {"type": "json_object"}
    assert request.body["temperature"] == 0
    assert request.headers["authorization"] == "Bearer sk-secret"
    assert request.headers["x-orchestrator-pipeline"] == "analysis"
    assert request.headers["x-orchestrator-worker"] == "logic_bias"
    assert request.headers["x-prompt-ref"] == "logic_bias@v1"
    assert request.headers["traceparent"] == TRACEPARENT
    assert request.path == "/v1/chat/completions"
    assert "max_tokens" not in request.body  # left to the server unless MODEL_MAX_TOKENS is set


def test_max_tokens_is_sent_when_configured(llm: FakeLLM) -> None:
    make_adapter(llm, max_tokens=256).complete(make_call("summary"))
    (request,) = llm.requests
    assert request.body["max_tokens"] == 256


@pytest.mark.parametrize(
    "response_format,expected",
    [
        ("json_object", {"type": "json_object"}),
        ("json_schema", {"type": "json_schema", "json_schema": {"name": "summary", "schema": SUMMARY_SCHEMA}}),
        ("json_object_schema", {"type": "json_object", "schema": SUMMARY_SCHEMA}),
        ("none", None),
    ],
)
def test_the_response_format_asks_for_json_or_for_the_workers_schema(
    llm: FakeLLM, response_format: str, expected: dict[str, object] | None
) -> None:
    make_adapter(llm, response_format=response_format).complete(make_call("summary"))
    (request,) = llm.requests
    assert request.body.get("response_format") == expected


def test_an_unknown_response_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json_schema"):
        OpenAIChatAdapter("http://127.0.0.1:9/v1", "m", response_format="xml")


def test_a_repair_shows_the_model_its_answer_and_the_problems(llm: FakeLLM) -> None:
    call = replace(make_call("summary"), repair=Repair(answer='{"x": 1}', problems="summary is missing"))
    make_adapter(llm).complete(call)
    (request,) = llm.requests
    assert request.body["messages"][2:] == [
        {"role": "assistant", "content": '{"x": 1}'},
        {"role": "user", "content": REPAIR_INSTRUCTION.format(problems="summary is missing")},
    ]


def test_no_call_waits_past_the_time_left_before_the_deadline(llm: FakeLLM) -> None:
    llm.latency_s = 2.0
    call = replace(make_call("summary"), time_left_s=0.2)
    started = time.monotonic()
    with pytest.raises(ModelTimeout):
        make_adapter(llm, read_timeout=30).complete(call)
    assert time.monotonic() - started < 1.5


def test_no_key_and_no_traceparent_means_no_such_headers(llm: FakeLLM) -> None:
    make_adapter(llm).complete(make_call())

    (request,) = llm.requests
    assert "authorization" not in request.headers
    assert "traceparent" not in request.headers


def test_fenced_json_content_is_parsed(llm: FakeLLM) -> None:
    llm.script("summary", Fault.reply('```json\n{"summary": "x", "key_points": []}\n```'))
    reply = make_adapter(llm).complete(make_call())
    assert reply.output == {"summary": "x", "key_points": []}


# -- transient errors ----------------------------------------------------------


def test_500_is_transient(llm: FakeLLM) -> None:
    llm.script("summary", Fault.status(500))
    with pytest.raises(TransientModelError) as info:
        make_adapter(llm).complete(make_call())
    assert info.value.retry_after is None
    assert "'summary'" in str(info.value) and llm.url in str(info.value)
    assert "500" in str(info.value)


def test_503_with_retry_after_seconds(llm: FakeLLM) -> None:
    llm.script("summary", Fault.status(503, retry_after=7))
    with pytest.raises(TransientModelError) as info:
        make_adapter(llm).complete(make_call())
    assert info.value.retry_after == 7


def test_429_with_http_date_retry_after(llm: FakeLLM) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    llm.script("summary", Fault.status(429, retry_after=when))
    with pytest.raises(TransientModelError) as info:
        make_adapter(llm).complete(make_call())
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 31


def test_hang_beyond_read_timeout_is_model_timeout(llm: FakeLLM) -> None:
    llm.script("summary", Fault.hang(1.0))
    with pytest.raises(ModelTimeout) as info:
        make_adapter(llm, read_timeout=0.2).complete(make_call())
    assert "'summary'" in str(info.value)


def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    adapter = OpenAIChatAdapter(f"http://127.0.0.1:{port}/v1", "m", connect_timeout=0.5)
    with pytest.raises(TransientModelError) as info:
        adapter.complete(make_call())
    assert not isinstance(info.value, ModelTimeout)
    assert f"127.0.0.1:{port}/v1/chat/completions" in str(info.value)


def test_disconnect_is_transient(llm: FakeLLM) -> None:
    llm.script("summary", Fault.disconnect())
    with pytest.raises(TransientModelError):
        make_adapter(llm).complete(make_call())


def test_adapter_recovers_after_faults_on_the_same_session(llm: FakeLLM) -> None:
    llm.script("summary", Fault.disconnect(), Fault.status(502))
    adapter = make_adapter(llm)
    for _ in range(2):
        with pytest.raises(TransientModelError):
            adapter.complete(make_call())
    assert adapter.complete(make_call()).output["summary"]
    assert llm.calls_for("summary") == 3


# -- output errors -------------------------------------------------------------


def test_malformed_body_is_output_error(llm: FakeLLM) -> None:
    llm.script("summary", Fault.malformed())
    with pytest.raises(ModelOutputError, match="not JSON"):
        make_adapter(llm).complete(make_call())


def test_content_not_a_json_object_is_output_error(llm: FakeLLM) -> None:
    llm.script("summary", Fault.bad_content())
    with pytest.raises(ModelOutputError, match="content is not JSON"):
        make_adapter(llm).complete(make_call())


def test_content_json_array_is_output_error(llm: FakeLLM) -> None:
    llm.script("summary", Fault.reply("[1, 2]"))
    with pytest.raises(ModelOutputError, match="not an object"):
        make_adapter(llm).complete(make_call())


def test_envelope_without_choices_is_output_error(llm: FakeLLM) -> None:
    llm.script("summary", Fault.status(200, body=json.dumps({"id": "x", "choices": []})))
    with pytest.raises(ModelOutputError, match=r"choices\[0\]"):
        make_adapter(llm).complete(make_call())


# -- permanent errors ----------------------------------------------------------


def test_400_is_permanent_and_not_retryable(llm: FakeLLM) -> None:
    llm.script("summary", Fault.status(400, body="x" * 2000))
    with pytest.raises(PermanentModelError) as info:
        make_adapter(llm, api_key="sk-secret").complete(make_call())
    assert classify(info.value) is Verdict.MODEL_PERMANENT
    message = str(info.value)
    assert "400" in message and "'summary'" in message and llm.url in message
    assert "sk-secret" not in message
    assert len(message) < 700


# -- concurrency ---------------------------------------------------------------


def test_30_concurrent_calls_all_succeed(llm: FakeLLM) -> None:
    llm.latency_s = 0.05
    adapter = make_adapter(llm)
    workers = ["summary", "argument", "implication_sentiment", "logic_bias"]
    calls = [make_call(workers[i % 4]) for i in range(30)]
    with ThreadPoolExecutor(max_workers=30) as pool:
        replies = list(pool.map(adapter.complete, calls))
    assert len(replies) == 30 and all(r.output for r in replies)
    assert len(llm.requests) == 30


# -- helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_past_date_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_strip_fence() -> None:
    assert strip_fence('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_fence('```\n{"a": 1}```') == '{"a": 1}'
    assert strip_fence(' {"a": 1} ') == '{"a": 1}'


def test_missing_response_model_falls_back_to_configured(llm: FakeLLM) -> None:
    envelope = {"choices": [{"message": {"content": "{}"}}]}
    llm.script("summary", Fault.status(200, body=json.dumps(envelope)))
    reply = make_adapter(llm).complete(make_call())
    assert reply.usage.model == "test-model"
    assert reply.usage.input_tokens is None and reply.usage.output_tokens is None


def test_unknown_worker_gets_400_from_fake(llm: FakeLLM) -> None:
    answer = requests.post(
        llm.url + "/chat/completions",
        json={"messages": []},
        headers={"X-Orchestrator-Worker": "nope"},
        timeout=2,
    )
    assert answer.status_code == 400
    assert requests.get(llm.url + "/models", timeout=2).json()["data"][0]["id"] == FAKE_MODEL


def test_a_worker_with_its_own_timeout_waits_that_long_instead_of_the_default(llm: FakeLLM) -> None:
    llm.script("summary", Fault.hang(0.6))
    patient = replace(make_call("summary"), worker=replace(ANALYSIS.worker("summary"), timeout_s=2.0))

    assert make_adapter(llm, read_timeout=0.3).complete(patient).output["summary"]
    llm.script("summary", Fault.hang(0.6))
    with pytest.raises(ModelTimeout):
        make_adapter(llm, read_timeout=0.3).complete(make_call("summary"))
