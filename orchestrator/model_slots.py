"""A cap on the model calls in flight to one endpoint, across every worker process (``MODEL_MAX_CONCURRENCY``).

A small local server answers one request at a time and a rate-limited API
refuses bursts; without a cap, every thread of every worker would send its
call at once and wait in the server's queue until its read timeout. The slots
live in Redis, as a sorted set of holders scored by when their lease ends, so
a process killed while holding a slot frees it when the lease ends.

redis-py's ``Lock`` is a mutex (one holder); a counting semaphore with
leases is one short Lua script, run atomically by Redis on its own clock.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from orchestrator.adapters.base import ModelAdapter, ModelCall, TransientModelError
from orchestrator.domain import ModelReply

log = logging.getLogger(__name__)

KEY_PREFIX = "orchestrator:model-slots:"

# KEYS[1] the slots; ARGV: limit, lease in ms, holder. Returns 1 if the slot was taken.
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""


class EndpointBusy(TransientModelError):
    """Every slot of the model endpoint stayed taken for as long as a call may wait."""


class ModelSlots:
    """At most ``limit`` holders at a time for ``endpoint``; each holds for at most ``lease_s``."""

    def __init__(self, client: redis.Redis, endpoint: str, *, limit: int, lease_s: float, wait_s: float) -> None:
        self.client = client
        self.endpoint = endpoint
        self.key = KEY_PREFIX + hashlib.sha256(endpoint.encode()).hexdigest()[:16]
        self.limit = limit
        self.lease_ms = max(1, int(lease_s * 1000))
        self.wait_s = wait_s
        self._acquire = client.register_script(_ACQUIRE)

    def try_acquire(self, holder: str) -> bool:
        return bool(self._acquire(keys=[self.key], args=[self.limit, self.lease_ms, holder]))

    def release(self, holder: str) -> None:
        try:
            self.client.zrem(self.key, holder)
        except redis.RedisError as exc:  # the lease frees it anyway
            log.warning("model slot of %s not released (%s); its lease will free it", self.endpoint, exc)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold a slot for the duration of the block; raises ``EndpointBusy`` after ``wait_s`` without one."""
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_s
        while not self.try_acquire(holder):
            if time.monotonic() >= deadline:
                raise EndpointBusy(
                    f"all {self.limit} slots of {self.endpoint} stayed busy for {self.wait_s:g} s "
                    "(MODEL_MAX_CONCURRENCY)"
                )
            time.sleep(random.uniform(0.01, 0.05))  # noqa: S311 - jitter, not cryptography
        try:
            yield
        finally:
            self.release(holder)


class CappedAdapter:
    """A model adapter whose calls each hold one of the endpoint's slots."""

    def __init__(self, adapter: ModelAdapter, slots: ModelSlots) -> None:
        self.adapter = adapter
        self.slots = slots

    def complete(self, call: ModelCall) -> ModelReply:
        with self.slots.held():
            return self.adapter.complete(call)
