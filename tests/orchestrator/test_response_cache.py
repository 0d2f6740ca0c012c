"""The response cache: its key, Redis, the engine's use of it, and end to end through the API with a worker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from marshmallow import ValidationError

from orchestrator.adapters.base import Prompt
from orchestrator.adapters.builtin import BuiltinAdapter
from orchestrator.config import Settings
from orchestrator.engine import analyse_part
from orchestrator.pipelines import load_pipelines
from orchestrator.response_cache import KEY_PREFIX, NoResponseCache, RedisResponseCache, cache_key
from orchestrator.store import RunStore
from orchestrator.wiring import build_response_cache
from tests.conftest import REDIS_DB
from tests.factories import WORKERS, analyze_body, claim_run, unique
from tests.fake_llm import FakeLLM
from tests.services import REDIS_HOST, REDIS_PORT, free_port
from tests.stack import Stack, running_stack

PIPELINES = load_pipelines()
PROMPT = Prompt(ref="summary@v1", system="Summarise.", user="Alice: hello")
INPUT: dict[str, Any] = {"language": "en", "segments": [{"id": "s1", "speaker": "Alice", "text": "hello"}]}


def key(**changes: Any) -> str:
    arguments: dict[str, Any] = {
        "pipeline": "analysis", "worker": "summary", "prompt": PROMPT, "model": "m", "run_input": INPUT,
    }  # fmt: skip
    return cache_key(**{**arguments, **changes})


def test_the_key_changes_with_everything_that_changes_the_answer_and_not_with_key_order() -> None:
    assert key() == key(run_input={"segments": INPUT["segments"], "language": "en"})
    different = [
        key(prompt=replace(PROMPT, ref="summary@v2")),
        key(prompt=replace(PROMPT, system="Summarise in French.")),
        key(model="other-model"),
        key(worker="argument"),
        key(pipeline="tutor"),
        key(run_input={**INPUT, "language": "fr"}),
        key(run_input={**INPUT, "segments": [{"id": "s1", "speaker": "Alice", "text": "hello "}]}),
    ]
    assert len({key(), *different}) == len(different) + 1


@pytest.fixture()
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    yield client
    client.close()


def test_an_answer_is_kept_for_its_ttl_and_read_back(redis_client: redis.Redis) -> None:
    cache = RedisResponseCache(redis_client, ttl_s=60)
    entry = key(model=unique("model"))
    assert cache.get(entry) is None
    cache.put(entry, {"summary": "Alice greets.", "key_points": ["Ünïcode kept"]})
    assert cache.get(entry) == {"summary": "Alice greets.", "key_points": ["Ünïcode kept"]}
    assert 0 < redis_client.ttl(entry) <= 60
    assert entry.startswith(KEY_PREFIX)


def test_an_unreachable_cache_is_a_miss_and_its_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    cache = RedisResponseCache(redis.Redis(port=free_port(), socket_connect_timeout=1), ttl_s=60)
    with caplog.at_level(logging.WARNING, logger="orchestrator.response_cache"):
        cache.put("k", {"a": 1})
        assert cache.get("k") is None
    assert [r.getMessage().split(" failed")[0] for r in caplog.records] == [
        "response cache write",
        "response cache read",
    ]


def test_a_repeated_call_is_answered_from_the_cache_and_recorded_as_cached(
    redis_client: redis.Redis, store: RunStore
) -> None:
    cache = RedisResponseCache(redis_client, ttl_s=60)
    model = unique("model")  # this test's own cache entries
    outputs = {}
    for run in range(2):
        claim = claim_run(store)
        assert claim.token is not None
        for worker in WORKERS:
            outcome = analyse_part(
                PIPELINES, worker, claim.run.id, claim.token,
                store=store, adapter=BuiltinAdapter(), model_name=model, attempt=1, cache=cache,
            )  # fmt: skip
            assert outcome.status == "ok"
            outputs.setdefault(worker, []).append(outcome.output)
        statuses = {call.worker: call.status for call in store.calls_for(claim.run.id)}
        assert statuses == dict.fromkeys(WORKERS, "ok" if run == 0 else "cached")
    assert all(first == second for first, second in outputs.values())
    cached = store.calls_for(claim.run.id)
    assert all(call.input_tokens is None and call.output_tokens is None and call.output for call in cached)


def test_a_cached_answer_that_no_longer_fits_the_schema_is_not_used(redis_client: redis.Redis, store: RunStore) -> None:
    cache = RedisResponseCache(redis_client, ttl_s=60)
    model = unique("model")
    claim = claim_run(store)
    assert claim.token is not None
    job = store.load_job(claim.run.id, "summary", claim.token)
    prompt = PIPELINES["analysis"].render_prompt("summary", "summary@v1", job.input)
    cache.put(cache_key(pipeline="analysis", worker="summary", prompt=prompt, model=model, run_input=job.input), {})
    outcome = analyse_part(
        PIPELINES, "summary", claim.run.id, claim.token,
        store=store, adapter=BuiltinAdapter(), model_name=model, attempt=1, cache=cache,
    )  # fmt: skip
    assert outcome.status == "ok" and outcome.output and outcome.output["summary"]
    assert [call.status for call in store.calls_for(claim.run.id)] == ["ok"]


def test_a_kafka_event_can_ask_for_fresh_answers_and_a_bad_value_is_refused() -> None:
    event = {"event_id": unique("evt"), **analyze_body(2)}
    assert PIPELINES.load_request(event, event=True).use_cache is True
    assert PIPELINES.load_request({**event, "cache": False}, event=True).use_cache is False
    with pytest.raises(ValidationError) as refused:
        PIPELINES.load_request({**event, "cache": "sometimes"}, event=True)
    assert "cache" in refused.value.messages


# --- end to end: the API, a worker with the cache on, the fake model -----------------------------


@pytest.fixture()
def cached_stack(settings: Settings, log_dir: Path, fake_llm: FakeLLM) -> Iterator[Stack]:
    with running_stack(replace(settings, response_cache_ttl=600), log_dir) as stack:
        yield stack


@pytest.fixture()
def cached_client(cached_stack: Stack) -> FlaskClient:
    return cached_stack.api_client()


def unseen_body() -> dict[str, Any]:
    """A request whose text no earlier test sent (the cache outlives a test)."""
    body = analyze_body(3)
    marker = unique("text")
    return {**body, "segments": [{**segment, "text": f"{segment['text']} {marker}"} for segment in body["segments"]]}


def analyse(client: FlaskClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.post("/orchestrator/analyze", json=body, headers=headers)
    assert response.status_code == 200, response.json
    answer: dict[str, Any] = response.json
    assert answer["status"] == "ok", answer
    return answer


def test_a_repeated_request_is_answered_from_the_cache_without_calling_the_model(
    cached_client: FlaskClient, cached_stack: Stack, fake_llm: FakeLLM
) -> None:
    body = unseen_body()
    first = analyse(cached_client, body)
    assert len(fake_llm.requests) == 4 and first["metadata"]["cached"] is False

    again = analyse(cached_client, {**body, "context_id": unique("ctx")})
    assert len(fake_llm.requests) == 4, "a cached repeat called the model"
    assert again["metadata"] == {**again["metadata"], "cached": True, "models_used": ["fake-model"]}
    assert again["run_id"] != first["run_id"]
    for field in ("summary", "arguments", "implications", "sentiment", "logic_bias"):
        assert again[field] == first[field]
    calls = cached_stack.store.calls_for(again["run_id"])
    assert sorted(call.status for call in calls) == ["cached"] * 4

    stats = cached_client.get("/orchestrator/stats").json["pipelines"]["analysis"]["workers"]
    assert all(stats[worker]["cache_hit_rate"] == 0.5 and stats[worker]["success_rate"] == 1.0 for worker in WORKERS)


def test_no_cache_asks_the_model_again_and_a_new_prompt_version_is_never_answered_from_the_old_one(
    cached_client: FlaskClient, fake_llm: FakeLLM
) -> None:
    body = unseen_body()
    analyse(cached_client, body)
    assert len(fake_llm.requests) == 4

    fresh = analyse(cached_client, {**body, "context_id": unique("ctx")}, **{"Cache-Control": "no-cache"})
    assert len(fake_llm.requests) == 8 and fresh["metadata"]["cached"] is False

    analyse(cached_client, {**body, "context_id": unique("ctx"), "cache": False})
    assert len(fake_llm.requests) == 12

    analyse(cached_client, {**body, "context_id": unique("ctx"), "prompt_ids": {"summary": "summary@v2"}})
    assert len(fake_llm.requests) == 13 and fake_llm.calls_for("summary") == 4


def test_the_cache_lives_in_its_own_redis_when_one_is_named_and_is_off_at_ttl_zero(settings: Settings) -> None:
    own = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=14)
    entry = key(model=unique("model"))
    cache = build_response_cache(
        replace(settings, response_cache_ttl=60, response_cache_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/14"), None
    )
    cache.put(entry, {"summary": "x", "key_points": []})
    assert own.exists(entry) and own.ttl(entry) > 0
    own.delete(entry)
    own.close()

    assert isinstance(build_response_cache(replace(settings, response_cache_ttl=0), None), NoResponseCache)
