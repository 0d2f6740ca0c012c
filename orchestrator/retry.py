"""How long to wait before retrying a model call."""

from __future__ import annotations

import random


def retry_delay(retries_so_far: int, retry_after: float | None, cap: float) -> float:
    """Exponential backoff with full jitter, at least the server's Retry-After.

    Capped at ``cap`` so a task never outlives the broker's visibility timeout.
    """
    backoff = random.uniform(0, min(cap, 2.0**retries_so_far))
    if retry_after is not None:
        backoff = max(backoff, retry_after)
    return min(backoff, cap)
