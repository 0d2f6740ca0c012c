"""Factories for request bodies and events."""

from __future__ import annotations

import uuid
from typing import Any

SPEAKERS = ("Alice", "Bob", "Chen")
SENTENCES = (
    "I think we should fund the new library because reading scores rose 12 percent where one opened.",
    "I disagree, the budget is already stretched and we must not raise taxes again.",
    "If we cut the bus routes then people in the suburbs will lose access, which means more cars.",
    "Everyone knows that libraries are empty these days; people like you never go there anyway.",
    "Studies show that early reading predicts later earnings, so this is an investment.",
    "I heard about a case last week where a branch closed and crime went up.",
    "That is a fair point, and I am happy to look at the data together.",
    "Either we fund it now or the whole city falls behind for a generation.",
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_segments(count: int = 40, *, seed: int = 0) -> list[dict[str, Any]]:
    segments = []
    for index in range(count):
        text = SENTENCES[(index + seed) % len(SENTENCES)]
        segments.append(
            {
                "id": f"s{index + 1}",
                "speaker": SPEAKERS[index % len(SPEAKERS)],
                "text": f"{text} (turn {index + 1})",
                "start_ms": index * 5000,
                "end_ms": index * 5000 + 4000,
            }
        )
    return segments


def analyze_body(count: int = 40, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"context_id": unique("ctx"), "language": "en", "segments": make_segments(count)}
    body.update(overrides)
    return body


def task_event(count: int = 5, **overrides: Any) -> dict[str, Any]:
    """An AnalysisTask as it travels on Kafka."""
    event = {"event_id": unique("evt"), **analyze_body(count)}
    event.update(overrides)
    return event
