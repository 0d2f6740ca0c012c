"""W3C trace context: the one header carried from requests and messages to model calls."""

from __future__ import annotations

import re

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def valid_traceparent(value: str | None) -> str | None:
    """``value`` if it is a well-formed ``traceparent``, else None (W3C: ignore bad ones)."""
    if value is None:
        return None
    value = value.strip().lower()
    return value if _TRACEPARENT.fullmatch(value) else None
