"""The one place that decides what a failure means.

Every caller that catches a broad exception (the bridge, the Celery tasks,
the API, the CLI) asks ``classify`` what to do with it:

- ``INFRASTRUCTURE``: our own database, Redis or Kafka failed. The input is
  fine: back off and try again (the bridge seeks back, a task retries, the
  API answers 503). A Redis failover (``READONLY``), a Redis that is loading
  or out of memory, a PostgreSQL shutting down or read-only: all of these.
- ``BUSY``: an ordinary race, such as another caller holding the event's
  claim. Try again shortly; not worth a traceback.
- ``BAD_INPUT``: the message or request is wrong. Never retried: a Kafka
  message is dead-lettered, an HTTP caller gets a 4xx.
- ``MODEL_TRANSIENT`` / ``MODEL_PERMANENT``: the model endpoint failed, worth
  another try (timeouts, 429, 5xx, malformed output) or not (other 4xx).
- ``BUG``: anything else. Logged with its traceback; the message is
  dead-lettered so one poisonous event never blocks its partition.
"""

from __future__ import annotations

import enum

import kafka.errors
import kombu.exceptions
import marshmallow
import redis.exceptions
import sqlalchemy.exc

from orchestrator.adapters.base import ModelError, ModelOutputError, TransientModelError


class Verdict(enum.Enum):
    INFRASTRUCTURE = "infrastructure"
    BUSY = "busy"
    BAD_INPUT = "bad_input"
    MODEL_TRANSIENT = "model_transient"
    MODEL_PERMANENT = "model_permanent"
    BUG = "bug"


class BadInput(ValueError):
    """Base of our own "this input cannot be processed" errors (never retried).

    ``field_errors``, when set, says which fields are wrong, as marshmallow would.
    """

    field_errors: dict[str, list[str]] | None = None


class TryLater(RuntimeError):
    """Base of our own "not now, but soon" conditions (a race, not a failure)."""


#: Redis error replies that mean "this server cannot serve writes right now"
#: (failover in progress, loading its data, out of memory, cannot persist).
#: kombu treats error replies as channel errors, not connection errors, so
#: without this a failover would look like a bad message.
_REDIS_UNAVAILABLE_REPLIES = (
    "READONLY",
    "LOADING",
    "OOM",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOREPLICAS",
    "MISCONF",
    "BUSY",
)

#: PostgreSQL SQLSTATEs (and classes) that mean the server, not the statement,
#: is the problem: connection exceptions (08), transaction rollbacks such as
#: deadlocks (40), insufficient resources (53), operator intervention such as
#: an administrator shutdown (57), a lock timeout, and a read-only transaction
#: (a standby, or a primary being demoted).
_PG_RETRYABLE_CLASSES = ("08", "40", "53", "57", "58")
_PG_RETRYABLE_CODES = ("25006", "55P03", "55006")

#: The same, as redis-py's exception classes (replies they have no class for
#: are recognised by their text in ``classify``).
REDIS_UNAVAILABLE_ERRORS: tuple[type[redis.exceptions.RedisError], ...] = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)

_INFRASTRUCTURE_TYPES: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    *REDIS_UNAVAILABLE_ERRORS,
    kombu.exceptions.OperationalError,
    ConnectionError,
    TimeoutError,
)


def classify(exc: BaseException) -> Verdict:
    """What ``exc`` means for the input that was being processed (see the module docstring).

    Wrapped exceptions are judged by their causes too: a library error caused
    by a lost connection is an infrastructure failure.
    """
    if isinstance(exc, TryLater):
        return Verdict.BUSY
    if isinstance(exc, BadInput | marshmallow.ValidationError):
        return Verdict.BAD_INPUT
    if isinstance(exc, TransientModelError | ModelOutputError):
        return Verdict.MODEL_TRANSIENT
    if isinstance(exc, ModelError):
        return Verdict.MODEL_PERMANENT
    if any(_is_infrastructure(e) for e in _causes(exc)):
        return Verdict.INFRASTRUCTURE
    return Verdict.BUG


def is_infrastructure(exc: BaseException) -> bool:
    return classify(exc) is Verdict.INFRASTRUCTURE


def _is_infrastructure(exc: BaseException) -> bool:
    if isinstance(exc, _INFRASTRUCTURE_TYPES):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        code = str(getattr(exc.orig, "pgcode", "") or "")
        return code.startswith(_PG_RETRYABLE_CLASSES) or code in _PG_RETRYABLE_CODES
    if isinstance(exc, redis.exceptions.ResponseError):
        return str(exc).lstrip().upper().startswith(_REDIS_UNAVAILABLE_REPLIES)
    if isinstance(exc, kafka.errors.KafkaError):
        # Retriable broker errors, timeouts and lost connections; not, say,
        # a message too large, which retrying cannot fix.
        return bool(exc.retriable) or isinstance(
            exc, kafka.errors.KafkaTimeoutError | kafka.errors.NoBrokersAvailable | kafka.errors.KafkaConnectionError
        )
    return False


def _causes(exc: BaseException, depth: int = 8) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, nearest first (cycles cut)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < depth and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def describe(exc: BaseException) -> str:
    """``Type: message``, storable in PostgreSQL text (no NUL) and JSON (no lone surrogate)."""
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "\\0")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
