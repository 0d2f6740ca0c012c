"""The dead-letter queue: what a dead letter holds, and the producer that sends it.

An event that cannot be analysed (undecodable, invalid, or failed in every
worker) goes to the DLQ topic with its original bytes, key and headers, the
reason, and where it came from, so that ``orchestrator dlq replay`` can send
it again unchanged (see ``bridge.redrive``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from orchestrator.domain import JSON
from orchestrator.metrics import DEAD_LETTER_PUBLISH_FAILURES

log = logging.getLogger(__name__)

Stage = Literal["decode", "validation", "processing"]
#: How bytes are written in JSON: as text when they are clean UTF-8, else base64.
ByteEncoding = Literal["utf-8", "base64"]
Headers = tuple[tuple[str, bytes], ...]
#: A DLQ message as sent: ``(key, value, headers)``.
DeadLetterMessage = tuple[bytes | None, bytes, list[tuple[str, bytes]]]

#: How many times an event has been sent for analysis (1 = the original send).
REPLAY_ATTEMPT_HEADER = "x-replay-attempt"
#: Larger payloads are not copied into the dead letter (base64 and JSON
#: escaping could push it past Kafka's default 1 MiB message limit).
MAX_PAYLOAD_BYTES = 600 * 1024

#: Headers the DLQ adds to the original ones; replay removes them again.
DLQ_HEADER_PREFIX = "x-dlq-"
STAGE_HEADER = "x-dlq-stage"
ERROR_TYPE_HEADER = "x-dlq-error-type"


# --- bytes in JSON ---------------------------------------------------------------------------


def encode_bytes(data: bytes | None) -> tuple[str | None, ByteEncoding | None]:
    """``data`` as JSON-safe text and the encoding used (``(None, None)`` for None).

    UTF-8 text stays readable; anything else, and text containing NUL (which
    PostgreSQL JSONB cannot store), is base64.
    """
    if data is None:
        return None, None
    if b"\x00" not in data:
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), "base64"


def decode_bytes(text: str | None, encoding: str | None) -> bytes | None:
    """The inverse of ``encode_bytes``; raises ``ValueError`` on an unknown encoding or bad base64."""
    if text is None:
        return None
    if encoding == "utf-8":
        return text.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"invalid base64 payload: {exc}") from exc
    raise ValueError(f"unknown byte encoding {encoding!r}")


# --- the consumed message --------------------------------------------------------------------


class _ConsumerRecordLike(Protocol):
    """The fields of kafka-python's ``ConsumerRecord`` that a dead letter needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None
    timestamp: int | None


@dataclass(frozen=True)
class SourceMessage:
    """A message as consumed from the tasks topic, kept byte for byte."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int | None = None

    def to_json(self) -> JSON:
        """A JSON-safe form (for the database) that ``from_json`` turns back into an equal message."""
        key, key_encoding = encode_bytes(self.key)
        value, value_encoding = encode_bytes(self.value)
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": key,
            "key_encoding": key_encoding,
            "value": value,
            "value_encoding": value_encoding,
            "headers": [[name, *encode_bytes(data)] for name, data in self.headers],
            "timestamp_ms": self.timestamp_ms,
        }

    @classmethod
    def from_json(cls, data: JSON) -> SourceMessage:
        """Rebuild a message from ``to_json`` output; raises ``KeyError``/``ValueError`` on other input."""
        headers = tuple((name, decode_bytes(text, encoding) or b"") for name, text, encoding in data["headers"])
        return cls(
            topic=data["topic"],
            partition=int(data["partition"]),
            offset=int(data["offset"]),
            key=decode_bytes(data["key"], data["key_encoding"]),
            value=decode_bytes(data["value"], data["value_encoding"]),
            headers=headers,
            timestamp_ms=data.get("timestamp_ms"),
        )

    @classmethod
    def from_record(cls, record: _ConsumerRecordLike) -> SourceMessage:
        """From a kafka-python ``ConsumerRecord`` (a null header value becomes ``b""``)."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=tuple((name, data or b"") for name, data in record.headers or ()),
            timestamp_ms=record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None,
        )


# --- the dead letter -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterReason:
    """Why an event is dead-lettered.

    ``worker_errors`` (stage ``processing``) maps each failed worker to its
    error; ``field_errors`` (stage ``validation``) holds marshmallow's messages.
    """

    stage: Stage
    error_type: str
    message: str
    worker_errors: dict[str, str] = field(default_factory=dict)
    field_errors: Any = None

    def to_json(self) -> JSON:
        return {
            "stage": self.stage,
            "error_type": self.error_type,
            "message": self.message,
            "worker_errors": dict(self.worker_errors),
            "field_errors": self.field_errors,
        }


def last_header(headers: Iterable[tuple[str, bytes | None]], name: str) -> bytes | None:
    """The value of the last header called ``name``, as Kafka clients usually read it."""
    found = None
    for key, data in headers:
        if key == name:
            found = data
    return found


def as_text(value: object) -> str | None:
    """``value`` as text if it is text or bytes (decoded leniently), else None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def replay_attempt(headers: Iterable[tuple[str, bytes | None]]) -> int:
    """The ``x-replay-attempt`` of a message: 1 when absent, unreadable or below 1."""
    try:
        attempt = int((last_header(headers, REPLAY_ATTEMPT_HEADER) or b"1").decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return 1
    return attempt if attempt >= 1 else 1


def build_dead_letter(
    source: SourceMessage,
    reason: DeadLetterReason,
    *,
    event_id: str | None = None,
    context_id: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> DeadLetterMessage:
    """The ``(key, value, headers)`` of the DLQ message for ``source``.

    The key is the original key (so one context's letters share a partition),
    the value UTF-8 JSON with the original payload, the reason, the ids, the
    attempt and the source position; the headers are the original ones,
    unchanged, followed by ``x-dlq-stage`` and ``x-dlq-error-type``.
    """
    key, key_encoding = encode_bytes(source.key)
    body = {
        **_payload_fields(source.value),
        "reason": reason.to_json(),
        "event_id": event_id,
        "context_id": context_id,
        "run_id": run_id,
        "attempt": replay_attempt(source.headers),
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "key": key,
            "key_encoding": key_encoding,
            "timestamp_ms": source.timestamp_ms,
        },
        "dead_lettered_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds"),
    }
    # default=str: field_errors come from marshmallow and may hold odd values;
    # a dead letter must never fail to serialise.
    value = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    headers = [*source.headers, (STAGE_HEADER, reason.stage.encode()), (ERROR_TYPE_HEADER, reason.error_type.encode())]
    return source.key, value, headers


def _payload_fields(value: bytes | None) -> JSON:
    """The original payload, or, if it could not fit in a Kafka message, its fingerprint.

    A dead letter must always be publishable: one too large for the broker
    would be retried forever and block its partition.
    """
    if value is not None and len(value) > MAX_PAYLOAD_BYTES:
        return {
            "payload": None,
            "payload_encoding": None,
            "payload_truncated": True,
            "payload_size": len(value),
            "payload_sha256": hashlib.sha256(value).hexdigest(),
            "payload_head": value[:1024].decode("utf-8", errors="replace"),
        }
    payload, payload_encoding = encode_bytes(value)
    return {"payload": payload, "payload_encoding": payload_encoding}


# --- publishing ------------------------------------------------------------------------------


class DeadLetterError(RuntimeError):
    """A dead letter could not be published, even after retrying until the deadline."""


class DeadLetterPublisher:
    """Publishes dead letters to ``topic`` and waits for the broker's acknowledgement.

    Thread-safe. The producer is created on first use and again in a forked
    child (a ``KafkaProducer`` does not survive ``fork()``). Delivery is at
    least once: a letter given up on at the deadline may still arrive later,
    and the caller's retry then duplicates it.
    """

    #: Seconds between attempts: doubling from the first to the last value.
    BACKOFF_INITIAL_S = 0.2
    BACKOFF_MAX_S = 5.0
    #: Milliseconds the producer waits for one produce request; also the
    #: longest wait for an acknowledgement before an attempt counts as failed.
    REQUEST_TIMEOUT_MS = 10_000

    def __init__(self, bootstrap_servers: str, topic: str, *, deadline_s: float = 30.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.deadline_s = deadline_s
        #: Failed publish attempts (each retry counts) over this publisher's life.
        self.failures = 0
        self._producer: KafkaProducer | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def publish(
        self,
        source: SourceMessage,
        reason: DeadLetterReason,
        *,
        event_id: str | None = None,
        context_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Send the dead letter of ``source`` and block until the broker acknowledged it.

        Kafka errors and timeouts are logged, counted and retried with backoff
        for up to ``deadline_s`` seconds; then ``DeadLetterError`` is raised.
        """
        letter = build_dead_letter(source, reason, event_id=event_id, context_id=context_id, run_id=run_id)
        deadline = time.monotonic() + self.deadline_s
        backoff = self.BACKOFF_INITIAL_S
        pending: _Pending | None = None
        attempt = 0
        while True:
            attempt += 1
            wait_s = min(max(deadline - time.monotonic(), 0.001), self.REQUEST_TIMEOUT_MS / 1000)
            try:
                # A send that merely timed out is still being retried inside
                # the producer: wait for it again rather than send a second
                # copy. Only a send that failed outright is sent anew.
                if pending is None or pending.future.failed():
                    pending = self._send(letter, wait_s)
                self._wait(pending, wait_s)
                return
            except KafkaError as exc:
                last_error: KafkaError = exc
                self._count_failure(attempt, source, event_id, exc)
            if time.monotonic() + backoff >= deadline:
                break
            time.sleep(backoff)
            backoff = min(backoff * 2, self.BACKOFF_MAX_S)
        raise DeadLetterError(
            f"could not publish the dead letter of {source.topic}/{source.partition}@{source.offset} "
            f"(event {event_id}) to {self.topic} after {attempt} attempts in {self.deadline_s:g} s: {last_error!r}"
        ) from last_error

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush and close this process's producer (the publisher can still be used afterwards)."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None and self._pid == os.getpid():
            producer.close(timeout=timeout_s)

    def _send(self, letter: DeadLetterMessage, bootstrap_timeout_s: float) -> _Pending:
        producer = self._producer_for_this_process(bootstrap_timeout_s)
        key, value, headers = letter
        return _Pending(producer, producer.send(self.topic, key=key, value=value, headers=headers))

    def _wait(self, pending: _Pending, timeout_s: float) -> None:
        """Block until ``pending`` is acknowledged; raise its error or ``KafkaTimeoutError``."""
        try:
            pending.future.get(timeout=timeout_s)
        except KafkaError:
            if pending.future.failed():
                # Failed outright (not just slow): the next send starts from a
                # fresh producer in case this one is in a bad state.
                self._discard(pending.producer)
            raise

    def _producer_for_this_process(self, bootstrap_timeout_s: float) -> KafkaProducer:
        if self._pid != os.getpid():
            # Forked: the inherited producer has no sender thread here, and the
            # inherited lock may be held by a thread that was not copied.
            # Abandon both; the parent still owns the producer's sockets.
            self._lock = threading.Lock()
            self._producer = None
            self._pid = os.getpid()
        with self._lock:
            if self._producer is None:
                self._producer = self._new_producer(bootstrap_timeout_s)
            return self._producer

    def _new_producer(self, bootstrap_timeout_s: float) -> KafkaProducer:
        """A producer whose constructor (which connects eagerly) gives up after ``bootstrap_timeout_s``."""
        return KafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            linger_ms=5,
            request_timeout_ms=self.REQUEST_TIMEOUT_MS,
            # Defaults are 30 s (bootstrap) and 60 s (send() blocking on
            # metadata): keep both near the deadline.
            bootstrap_timeout_ms=max(int(bootstrap_timeout_s * 1000), 1),
            max_block_ms=max(int(min(self.deadline_s * 1000, self.REQUEST_TIMEOUT_MS)), 1),
            client_id="orchestrator-dlq",
        )

    def _discard(self, producer: KafkaProducer) -> None:
        with self._lock:
            if self._producer is producer:
                self._producer = None
        try:
            producer.close(timeout=1)
        except KafkaError as exc:  # close() flushes first and raises if other sends are stuck
            log.debug("closing a failed dead-letter producer: %r", exc)

    def _count_failure(self, attempt: int, source: SourceMessage, event_id: str | None, exc: KafkaError) -> None:
        with self._lock:
            self.failures += 1
        DEAD_LETTER_PUBLISH_FAILURES.inc()
        log.warning(
            "dead letter publish attempt %d failed for %s/%d@%d (event %s) to %s: %r",
            attempt,
            source.topic,
            source.partition,
            source.offset,
            event_id,
            self.topic,
            exc,
        )


@dataclass
class _Pending:
    """A send in progress, and the producer it went through."""

    producer: KafkaProducer
    future: Any  # kafka-python's FutureRecordMetadata
