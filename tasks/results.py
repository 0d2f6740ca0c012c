"""The Redis result backend, subscribing to a result only when someone waits.

Celery's Redis backend subscribes to the result channel of every task it
sends (5 per chord) and unsubscribes when the result object is collected:
ten Redis round trips per run that nobody needs. The bridge never waits, and
the API waits only for the aggregate; ``AsyncResult.get`` subscribes by
itself before reading the stored result, so nothing is missed.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend


class RedisResultBackend(RedisBackend):  # type: ignore[misc]
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe at send time (see the module docstring)."""


def result_backend_url(url: str) -> str:
    """Route redis:// and rediss:// result URLs to ``RedisResultBackend``."""
    if url.startswith(("redis://", "rediss://")):
        return f"tasks.results:RedisResultBackend+{url}"
    return url
