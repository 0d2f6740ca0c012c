"""A run's progress, live: each worker's outcome as it finishes, then the bundle.

Workers publish through Redis (one pipelined round trip per event): the
event is appended to the run's list, which a client that connects late reads
first, and published on the run's channel for the clients already
following. A follower subscribes before it reads the list, so nothing falls
between the two; events it has seen in the list are not repeated. The list
lives as long as chord results do (``CELERY_RESULT_EXPIRES``). Events belong
to one launch of the run (its claim token): a run relaunched or re-opened by
a replay starts a list of its own. Nothing polls the database.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Protocol

import redis

from orchestrator.domain import JSON

log = logging.getLogger(__name__)

#: The two kinds of event: one per worker, then the run's bundle (the last).
WORKER_EVENT, BUNDLE_EVENT = "worker", "bundle"


class RunEvents(Protocol):
    def publish(self, run_id: str, token: str, kind: str, data: JSON) -> None: ...

    def follow(self, run_id: str, token: str, timeout_s: float) -> Iterator[tuple[str, JSON] | None]: ...


class RedisRunEvents:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def publish(self, run_id: str, token: str, kind: str, data: JSON) -> None:
        """Record and announce an event of the launch ``token``.

        A failure is logged, never raised: the run goes on without it."""
        message = json.dumps({"event": kind, "data": data}, ensure_ascii=False)
        try:
            pipeline = self.client.pipeline(transaction=False)
            key = _list_key(run_id, token)
            pipeline.rpush(key, message)
            pipeline.expire(key, self.ttl_s)
            pipeline.publish(_channel(run_id, token), message)
            pipeline.execute()
        except redis.RedisError as exc:
            log.warning("run %s: its %s event was not published: %s", run_id, kind, exc)

    def follow(self, run_id: str, token: str, timeout_s: float) -> Iterator[tuple[str, JSON] | None]:
        """The launch's events so far, then each new one, until the bundle or ``timeout_s``.

        Yields None about every 10 s without an event (for a keep-alive).
        """
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(_channel(run_id, token))
        try:
            seen: set[str] = set()
            recorded: list[bytes] = self.client.lrange(_list_key(run_id, token), 0, -1)  # type: ignore[assignment]
            for raw in recorded:
                seen.add(raw.decode())
                kind, data = _decode(raw)
                yield kind, data
                if kind == BUNDLE_EVENT:
                    return
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                message = pubsub.get_message(timeout=min(left, 10.0))
                if message is None:
                    yield None
                    continue
                raw = message["data"]
                if raw.decode() in seen:  # published between the subscription and the read of the list
                    continue
                kind, data = _decode(raw)
                yield kind, data
                if kind == BUNDLE_EVENT:
                    return
        finally:
            pubsub.close()


class NoRunEvents:
    """The embedded mode: runs finish in the caller's process; there is nothing to follow."""

    def publish(self, run_id: str, token: str, kind: str, data: JSON) -> None:
        pass

    def follow(self, run_id: str, token: str, timeout_s: float) -> Iterator[tuple[str, JSON] | None]:
        return iter(())


def _decode(raw: bytes) -> tuple[str, JSON]:
    event = json.loads(raw)
    return str(event["event"]), dict(event["data"])


def _list_key(run_id: str, token: str) -> str:
    return f"orchestrator:run-events:{run_id}:{token}"


def _channel(run_id: str, token: str) -> str:
    return f"{_list_key(run_id, token)}:live"
