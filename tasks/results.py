"""The Redis result backend, subscribing to a result only when someone waits.

Celery's Redis backend subscribes to the result channel of every task it
sends (5 per chord) and unsubscribes when the result object is collected:
ten Redis round trips per run that nobody needs. The API waits only for the
aggregate; ``AsyncResult.get`` subscribes by itself before reading the
stored result, so nothing is missed.

A chord's header group also keeps its parts as pending results, subscribed,
until their results are drained, which only a waiting caller does. In a
process that never waits (the bridge, ``AWAITS_RESULTS`` false in its app's
configuration) they would pile up: four subscriptions and four result
objects per event, for as long as the process runs.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend

#: The Celery configuration key saying whether this process ever waits for a result.
AWAITS_RESULTS = "orchestrator_awaits_results"


class RedisResultBackend(RedisBackend):  # type: ignore[misc]
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe at send time (see the module docstring)."""

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        """Keep and subscribe to ``result`` only in a process that waits for results."""
        if not self.app.conf.get(AWAITS_RESULTS, True):
            return result
        return super().add_pending_result(result, weak=weak, start_drainer=start_drainer)


def result_backend_url(url: str) -> str:
    """Route redis:// and rediss:// result URLs to ``RedisResultBackend``."""
    if url.startswith(("redis://", "rediss://")):
        return f"tasks.results:RedisResultBackend+{url}"
    return url
