"""What a dead letter holds, and how it is encoded so that it always fits in Kafka.

An event that cannot be analysed (undecodable, invalid, or failed in every
worker) goes to the DLQ topic with its original bytes, key and headers, the
reason, and where it came from, so that ``orchestrator dlq replay`` can send
it again unchanged. The format belongs to the core: the bridge dead-letters
bad messages with it, and the fan-in records the dead letters of failed runs
in the outbox (``store.finish_run``) with it.

Whatever the input holds (lone surrogates, megabytes of control characters
that JSON escaping multiplies, huge keys or headers), ``build_dead_letter``
returns a message under ``MAX_DEAD_LETTER_BYTES``: it measures the encoded
letter and replaces what does not fit by a fingerprint (size, sha256, head).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from orchestrator.domain import JSON

Stage = Literal["decode", "validation", "processing"]
#: How bytes are written in JSON: as text when they are clean UTF-8, else base64.
ByteEncoding = Literal["utf-8", "base64"]
Headers = tuple[tuple[str, bytes], ...]

#: How many times an event has been sent for analysis (1 = the original send).
REPLAY_ATTEMPT_HEADER = "x-replay-attempt"
#: Attempts are counted in a 32-bit column; a larger header value is garbage.
MAX_REPLAY_ATTEMPT = 1_000_000
#: Headers the DLQ adds to the original ones; replay removes them again.
DLQ_HEADER_PREFIX = "x-dlq-"
STAGE_HEADER = "x-dlq-stage"
ERROR_TYPE_HEADER = "x-dlq-error-type"

#: The largest dead letter (key + value + headers) we send. kafka-python's
#: producer refuses requests over 1 MiB (``max_request_size``), and brokers'
#: default ``message.max.bytes`` is about the same; this leaves room for the
#: record and batch framing.
MAX_DEAD_LETTER_BYTES = 900 * 1024
#: A larger payload is never copied, only fingerprinted (README: "over 600 KiB").
MAX_PAYLOAD_BYTES = 600 * 1024
#: Bytes of an oversized payload (or key) kept, as text, in its fingerprint.
FINGERPRINT_HEAD_BYTES = 1024
#: Bounds on the reason, so that it alone can never make a letter too large
#: (marshmallow reports one error per unknown field: a message with 100,000
#: of them would otherwise produce megabytes of field errors).
MAX_MESSAGE_CHARS = 8 * 1024
MAX_FIELD_ERRORS_CHARS = 64 * 1024
MAX_ID_CHARS = 1024


@dataclass(frozen=True)
class DeadLetterMessage:
    """A DLQ message as sent to Kafka."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        """Bytes of key, value and headers (what counts against Kafka's limits)."""
        headers = sum(len(name.encode("utf-8")) + len(data) for name, data in self.headers)
        return len(self.key or b"") + len(self.value) + headers


#: A str from hostile JSON may hold lone surrogates, which UTF-8 cannot encode.
_SURROGATE = re.compile("[\ud800-\udfff]")


class DeadLetterSink(Protocol):
    """Where dead letters go: the Kafka DLQ topic (``bridge.dlq.DeadLetterPublisher``)."""

    def publish(self, letters: Sequence[DeadLetterMessage]) -> None:
        """Send ``letters``; return only once every one was acknowledged, else raise."""


# --- bytes and text in JSON ------------------------------------------------------------------


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


def json_safe(value: Any) -> Any:
    """``value`` with every string made encodable (lone surrogates become U+FFFD),
    non-finite floats written as text and anything unusual as its ``str``.

    Field errors and ids come from hostile input; a dead letter must never
    fail to serialise because of them.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(json_safe(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return json_safe(str(value))


def as_text(value: object) -> str | None:
    """``value`` as text if it is text or bytes (decoded leniently), else None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def last_header(headers: Iterable[tuple[str, bytes | None]], name: str) -> bytes | None:
    """The value of the last header called ``name``, as Kafka clients usually read it."""
    found = None
    for key, data in headers:
        if key == name:
            found = data
    return found


def replay_attempt(headers: Iterable[tuple[str, bytes | None]]) -> int:
    """The ``x-replay-attempt`` of a message: 1 when absent, unreadable or out of range."""
    raw = last_header(headers, REPLAY_ATTEMPT_HEADER) or b"1"
    try:
        attempt = int(raw.decode("ascii").strip()) if len(raw) <= 10 else 1
    except (UnicodeDecodeError, ValueError):
        return 1
    return attempt if 1 <= attempt <= MAX_REPLAY_ATTEMPT else 1


# --- the consumed message --------------------------------------------------------------------


class ConsumerRecordLike(Protocol):
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
    def from_record(cls, record: ConsumerRecordLike) -> SourceMessage:
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
        """The reason as JSON, each part bounded in size and safe to encode."""
        field_errors = json_safe(self.field_errors)
        encoded = json.dumps(field_errors, ensure_ascii=False)
        if len(encoded) > MAX_FIELD_ERRORS_CHARS:
            field_errors = {"_truncated": encoded[:MAX_FIELD_ERRORS_CHARS] + "…"}
        return {
            "stage": self.stage,
            "error_type": _bounded(self.error_type, 200),
            "message": _bounded(self.message, MAX_MESSAGE_CHARS),
            "worker_errors": {_bounded(k, 200): _bounded(v, MAX_MESSAGE_CHARS) for k, v in self.worker_errors.items()},
            "field_errors": field_errors,
        }


def build_dead_letter(
    source: SourceMessage,
    reason: DeadLetterReason,
    *,
    event_id: str | None = None,
    context_id: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> DeadLetterMessage:
    """The DLQ message for ``source``, always under ``MAX_DEAD_LETTER_BYTES``.

    The key is the original key (so one context's letters share a partition),
    the value UTF-8 JSON with the original payload, the reason, the ids, the
    attempt and the source position; the headers are the original ones,
    unchanged, followed by ``x-dlq-stage`` and ``x-dlq-error-type``.

    A payload over ``MAX_PAYLOAD_BYTES`` is fingerprinted at once. If the
    letter would still be too large, first the payload, then the original headers,
    then the key are replaced by fingerprints (``*_truncated``, ``*_size``,
    ``*_sha256`` and the payload's or key's head), in that order.
    """
    dlq_headers = [
        (STAGE_HEADER, reason.stage.encode()),
        (ERROR_TYPE_HEADER, _bounded(reason.error_type, 200).encode()),
    ]
    too_large = source.value is not None and len(source.value) > MAX_PAYLOAD_BYTES
    body: JSON = {
        **(_fingerprint("payload", source.value) if too_large else _bytes_fields("payload", source.value)),
        "reason": reason.to_json(),
        "event_id": _bounded_id(event_id),
        "context_id": _bounded_id(context_id),
        "run_id": run_id,
        "attempt": replay_attempt(source.headers),
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            **_bytes_fields("key", source.key),
            "timestamp_ms": source.timestamp_ms,
        },
        "dead_lettered_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds"),
    }
    key, headers = source.key, list(source.headers)
    letter = _encode(key, body, headers + dlq_headers)
    if letter.size > MAX_DEAD_LETTER_BYTES:
        body.update(_fingerprint("payload", source.value))
        letter = _encode(key, body, headers + dlq_headers)
    if letter.size > MAX_DEAD_LETTER_BYTES:
        raw_headers = b"".join(name.encode("utf-8") + b"\x00" + data for name, data in source.headers)
        body["headers_truncated"] = True
        body["headers_count"] = len(source.headers)
        body["headers_size"] = len(raw_headers)
        body["headers_sha256"] = hashlib.sha256(raw_headers).hexdigest()
        headers = []
        letter = _encode(key, body, dlq_headers)
    if letter.size > MAX_DEAD_LETTER_BYTES:
        body["source"].update(_fingerprint("key", source.key))
        # The digest keeps letters of the same key on the same partition.
        key = hashlib.sha256(source.key or b"").hexdigest().encode("ascii")
        letter = _encode(key, body, dlq_headers)
    return letter


def _encode(key: bytes | None, body: JSON, headers: list[tuple[str, bytes]]) -> DeadLetterMessage:
    value = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return DeadLetterMessage(key=key, value=value, headers=headers)


def _bytes_fields(name: str, data: bytes | None) -> JSON:
    text, encoding = encode_bytes(data)
    return {name: text, f"{name}_encoding": encoding}


def _fingerprint(name: str, data: bytes | None) -> JSON:
    """What describes bytes too large to copy: ``null`` in their place, their size, digest and head."""
    data = data or b""
    return {
        name: None,
        f"{name}_encoding": None,
        f"{name}_truncated": True,
        f"{name}_size": len(data),
        f"{name}_sha256": hashlib.sha256(data).hexdigest(),
        f"{name}_head": data[:FINGERPRINT_HEAD_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
    }


def _bounded(text: str, limit: int) -> str:
    safe: str = json_safe(text)
    return safe if len(safe) <= limit else safe[:limit] + "…"


def _bounded_id(value: str | None) -> str | None:
    return None if value is None else _bounded(value, MAX_ID_CHARS)
