"""An answer that is not the worker's JSON gets one repair: the model sees its answer and what is wrong."""

from __future__ import annotations

from flask.testing import FlaskClient

from orchestrator.store import RunStore
from tests.factories import analyze_body
from tests.fake_llm import FakeLLM, Fault
from tests.stack import Stack, worker_calls


def test_an_answer_with_the_wrong_keys_is_repaired_by_showing_the_model_its_mistake(
    client: FlaskClient, store: RunStore, fake_llm: FakeLLM
) -> None:
    fake_llm.script("summary", Fault.reply('{"title": "A debate", "people": ["Alice"]}'))

    bundle = client.post("/orchestrator/analyze", json=analyze_body(3)).json

    assert bundle["status"] == "ok" and bundle["worker_statuses"]["summary"] == "ok"
    calls = worker_calls(store, bundle["run_id"], "summary")
    assert [(c.attempt, c.repair, c.status) for c in calls] == [(1, False, "error"), (1, True, "ok")]
    assert calls[0].error is not None and calls[0].error.startswith("ModelOutputError") and "summary" in calls[0].error
    first, repair = [r.body["messages"] for r in fake_llm.requests if r.worker == "summary"]
    assert repair[:2] == first
    assert repair[2] == {"role": "assistant", "content": '{"title": "A debate", "people": ["Alice"]}'}
    assert repair[3]["role"] == "user" and "not valid" in repair[3]["content"] and "key_points" in repair[3]["content"]


def test_prose_twice_is_a_failed_repair_and_the_next_attempt_starts_afresh(
    client: FlaskClient, store: RunStore, fake_llm: FakeLLM
) -> None:
    fake_llm.script("argument", Fault.bad_content(), Fault.bad_content())

    bundle = client.post("/orchestrator/analyze", json=analyze_body(3)).json

    assert bundle["worker_statuses"]["argument"] == "ok"
    calls = worker_calls(store, bundle["run_id"], "argument")
    assert [(c.attempt, c.repair, c.status) for c in calls] == [
        (1, False, "error"),
        (1, True, "error"),
        (2, False, "ok"),
    ]


def test_a_broken_http_answer_has_nothing_to_repair(client: FlaskClient, store: RunStore, fake_llm: FakeLLM) -> None:
    fake_llm.script("implication_sentiment", Fault.malformed())

    bundle = client.post("/orchestrator/analyze", json=analyze_body(3)).json

    calls = worker_calls(store, bundle["run_id"], "implication_sentiment")
    assert [(c.attempt, c.repair) for c in calls] == [(1, False), (2, False)]


def test_an_answer_still_invalid_after_its_repair_goes_down_the_chain_and_the_stats_count_it(
    builtin_fallback: Stack, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_always("logic_bias", Fault.bad_content())
    api = builtin_fallback.api_client()

    bundle = api.post("/orchestrator/analyze", json=analyze_body(3)).json

    assert bundle["status"] == "ok" and bundle["worker_statuses"]["logic_bias"] == "fallback"
    assert "RepairFailed" in bundle["errors"]["logic_bias"]
    calls = builtin_fallback.calls_of(bundle["run_id"], "logic_bias")
    assert [(c.level, c.repair, c.status) for c in calls] == [(0, False, "error"), (0, True, "error"), (1, False, "ok")]
    assert fake_llm.calls_for("logic_bias") == 2

    prompts = api.get("/orchestrator/stats").json["pipelines"]["analysis"]["prompts"]
    assert prompts["logic_bias@v1"] == {
        "attempts": 2, "schema_failures": 1, "schema_failure_rate": 0.5, "repairs": 1, "repair_success_rate": 0.0,
    }  # fmt: skip
    assert prompts["summary@v1"]["schema_failure_rate"] == 0.0
