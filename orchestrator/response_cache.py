"""The response cache: a worker's validated answer, kept in Redis and reused for the same call.

Exact match only. The key is a hash of everything that can change the
answer: the pipeline, the worker, the prompt's reference *and* its rendered
text (so a new prompt version, or an edited template, can never be answered
from an older entry), the model, and the run's input as canonical JSON (key
order does not matter; nothing else is normalised, because answers such as
the tutor's error spans point into the exact text).

The cache saves model calls; it is never needed for correctness. A Redis
error is logged and counted, and the call goes to the model as if nothing
was cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Protocol

import redis

from orchestrator.adapters.base import Prompt
from orchestrator.domain import JSON
from orchestrator.metrics import RESPONSE_CACHE_ERRORS

log = logging.getLogger(__name__)

KEY_PREFIX = "orchestrator:response:"
#: Part of every key: bump it when the way answers are stored changes.
KEY_FORMAT = 1


def cache_key(*, pipeline: str, worker: str, prompt: Prompt, model: str, run_input: JSON) -> str:
    """The key of one worker call's answer."""
    identity = {
        "format": KEY_FORMAT,
        "pipeline": pipeline,
        "worker": worker,
        "prompt_ref": prompt.ref,
        "prompt": [prompt.system, prompt.user],
        "model": model,
        "input": run_input,
    }
    canonical = json.dumps(identity, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"{KEY_PREFIX}{pipeline}:{worker}:{hashlib.sha256(canonical.encode()).hexdigest()}"


class ResponseCache(Protocol):
    def get(self, key: str) -> JSON | None: ...

    def put(self, key: str, output: JSON) -> None: ...


class RedisResponseCache:
    """Answers in Redis, each living ``ttl_s`` seconds from when it was stored."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def get(self, key: str) -> JSON | None:
        try:
            raw = self.client.get(key)
        except redis.RedisError as exc:
            self._failed("read", exc)
            return None
        if raw is None:
            return None
        try:
            answer: JSON = json.loads(raw)
        except ValueError:
            log.warning("response cache: entry %s is not JSON; ignoring it", key)
            return None
        return answer

    def put(self, key: str, output: JSON) -> None:
        try:
            self.client.set(key, json.dumps(output, ensure_ascii=False), ex=self.ttl_s)
        except redis.RedisError as exc:
            self._failed("write", exc)

    def _failed(self, operation: str, exc: redis.RedisError) -> None:
        RESPONSE_CACHE_ERRORS.labels(operation=operation).inc()
        log.warning("response cache %s failed (%s); going on without the cache", operation, exc)


class NoResponseCache:
    """The cache switched off (``RESPONSE_CACHE_TTL=0``, or the embedded mode: no Redis)."""

    def get(self, key: str) -> JSON | None:
        return None

    def put(self, key: str, output: JSON) -> None:
        pass
