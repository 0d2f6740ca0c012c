"""Cost per model call from the price table, summed per run and in the stats."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from orchestrator.config import ConfigError, Settings, parse_prices
from orchestrator.costs import call_cost
from tests.factories import WORKERS, analyze_body
from tests.fake_llm import FakeLLM
from tests.stack import Stack, running_stack

#: Dollars per 1,000 input and output tokens of the fake model.
PRICE = (0.5, 2.0)


def test_prices_are_read_per_model_name_and_a_name_keeps_its_colons() -> None:
    assert parse_prices("gpt-4o-mini=0.00015:0.0006, llama3:8b=0:0") == {
        "gpt-4o-mini": (0.00015, 0.0006),
        "llama3:8b": (0.0, 0.0),
    }
    assert parse_prices("") == {}


@pytest.mark.parametrize("raw", ["gpt-4o", "gpt-4o=1", "gpt-4o=a:b", "=1:2", "gpt-4o=-1:2"])
def test_a_malformed_price_is_refused_at_start(raw: str) -> None:
    with pytest.raises(ConfigError, match="MODEL_PRICES"):
        Settings.from_env({"MODEL_PRICES": raw})


def test_a_call_costs_its_tokens_at_its_models_price_the_builtin_nothing_an_unpriced_model_unknown() -> None:
    prices = {"m": PRICE}
    assert call_cost(prices, "m", 1000, 500) == 1.5
    assert call_cost(prices, "builtin", 1000, 500) == 0.0
    assert call_cost(prices, "other", 1000, 500) is None
    assert call_cost(prices, "m", None, None) is None


@pytest.fixture()
def priced_stack(settings: Settings, log_dir: Path, fake_llm: FakeLLM) -> Iterator[Stack]:
    with running_stack(replace(settings, model_prices=f"fake-model={PRICE[0]}:{PRICE[1]}"), log_dir) as stack:
        yield stack


@pytest.fixture()
def priced_client(priced_stack: Stack) -> FlaskClient:
    return priced_stack.api_client()


def test_each_call_records_its_cost_and_the_run_and_the_stats_sum_them(
    priced_client: FlaskClient, priced_stack: Stack
) -> None:
    bundle = priced_client.post("/orchestrator/analyze", json=analyze_body(3)).json
    assert bundle["status"] == "ok", bundle

    calls = priced_stack.store.calls_for(bundle["run_id"])
    assert len(calls) == len(WORKERS)
    for call in calls:
        assert call.input_tokens and call.output_tokens
        expected = (call.input_tokens * PRICE[0] + call.output_tokens * PRICE[1]) / 1000
        assert call.cost_usd == pytest.approx(expected)
    total = sum(call.cost_usd or 0.0 for call in calls)
    assert bundle["metadata"]["cost_usd"] == pytest.approx(total)

    stats = priced_client.get("/orchestrator/stats").json["pipelines"]["analysis"]
    assert stats["cost_usd"] == pytest.approx(total)
    assert sum(worker["cost_usd"] for worker in stats["workers"].values()) == pytest.approx(total)
