"""What a model call costs, from the price table (``MODEL_PRICES``)."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.adapters.builtin import MODEL_NAME as BUILTIN_MODEL_NAME

#: US dollars per 1,000 input and output tokens, by model name.
Prices = Mapping[str, tuple[float, float]]


def call_cost(prices: Prices, model: str, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """The cost in US dollars: 0 for the builtin model, None when ``model`` has no price or tokens are unknown."""
    if model == BUILTIN_MODEL_NAME:
        return 0.0
    price = prices.get(model)
    if price is None or input_tokens is None or output_tokens is None:
        return None
    input_price, output_price = price
    return round((input_tokens * input_price + output_tokens * output_price) / 1000, 8)
