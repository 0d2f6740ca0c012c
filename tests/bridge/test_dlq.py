"""The dead-letter format (it always fits) and the DLQ producer, against the real Tansu broker."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka.errors import KafkaError

from bridge.dlq import DeadLetterPublisher
from bridge.redrive import read_dead_letters
from orchestrator.dead_letters import (
    MAX_DEAD_LETTER_BYTES,
    MAX_PAYLOAD_BYTES,
    DeadLetterMessage,
    DeadLetterReason,
    SourceMessage,
    build_dead_letter,
    replay_attempt,
)
from orchestrator.errors import is_infrastructure
from tests.conftest import KafkaTopics
from tests.kafka import Broker, create_topics, start_broker
from tests.services import free_port, wait_until

HEADERS = (("trace-id", b"abc-123"), ("blob", b"\x00\xff\x10"), ("trace-id", b"second"))
REASON = DeadLetterReason(
    stage="processing",
    error_type="AllWorkersFailed",
    message="every worker failed",
    worker_errors={"summary": "timeout", "argument": "HTTP 500"},
)


def source(
    value: bytes | None, key: bytes | None = b"debate-42", headers: tuple[tuple[str, bytes], ...] = HEADERS
) -> SourceMessage:
    return SourceMessage(
        topic="analysis.tasks",
        partition=2,
        offset=41,
        key=key,
        value=value,
        headers=headers,
        timestamp_ms=1_700_000_000_000,
    )


# --- SourceMessage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        source(b'{"event_id": "evt-1", "context_id": "debate-42"}'),
        source(b"\xff\xfe not utf-8 \x80", key=b"\xc3\x28"),
        source(None, key=None, headers=()),
        source("héllo wörld ✓".encode(), headers=(("empty", b""),)),
        source(b"text with a NUL \x00 inside"),
    ],
    ids=["json", "binary", "null", "unicode", "nul"],
)
def test_source_message_survives_a_json_round_trip(message: SourceMessage) -> None:
    stored = json.loads(json.dumps(message.to_json()))

    assert SourceMessage.from_json(stored) == message


def test_source_message_keeps_text_readable_and_binary_as_base64() -> None:
    data = source(b"\xff\x00", key=b"debate-42").to_json()

    assert (data["key"], data["key_encoding"]) == ("debate-42", "utf-8")
    assert (data["value"], data["value_encoding"]) == (base64.b64encode(b"\xff\x00").decode(), "base64")
    # NUL is valid UTF-8 but PostgreSQL JSONB cannot store it: base64 too.
    assert source(b"a\x00b").to_json()["value_encoding"] == "base64"


# --- build_dead_letter -----------------------------------------------------------------------


def letter_body(message: SourceMessage, reason: DeadLetterReason = REASON) -> dict[str, object]:
    body: dict[str, object] = json.loads(build_dead_letter(message, reason, event_id="evt-1").value)
    return body


@pytest.mark.parametrize(
    ("value", "payload", "encoding"),
    [
        (b'{"event_id": "evt-1"}', '{"event_id": "evt-1"}', "utf-8"),
        (b"{not json", "{not json", "utf-8"),
        (b"\x89PNG\x00\xff", base64.b64encode(b"\x89PNG\x00\xff").decode(), "base64"),
        (None, None, None),
    ],
    ids=["json", "not-json", "binary", "null"],
)
def test_dead_letter_carries_the_original_payload(
    value: bytes | None, payload: str | None, encoding: str | None
) -> None:
    body = letter_body(source(value))

    assert (body["payload"], body["payload_encoding"]) == (payload, encoding)


def test_dead_letter_keeps_key_headers_reason_and_source() -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    message = source(b"{}", headers=(*HEADERS, ("x-replay-attempt", b"3")))
    field_errors = {"segments": {"0": {"text": ["Missing data for required field."]}}}
    reason = DeadLetterReason(
        stage="validation", error_type="ValidationError", message="bad", field_errors=field_errors
    )

    letter = build_dead_letter(message, reason, event_id="evt-9", context_id="debate-42", run_id="r-1", now=now)
    body = json.loads(letter.value)

    assert letter.key == b"debate-42"
    assert letter.headers == [
        *message.headers,
        ("x-dlq-stage", b"validation"),
        ("x-dlq-error-type", b"ValidationError"),
    ]
    assert body["reason"] == {
        "stage": "validation",
        "error_type": "ValidationError",
        "message": "bad",
        "worker_errors": {},
        "field_errors": field_errors,
    }
    assert (body["event_id"], body["context_id"], body["run_id"], body["attempt"]) == ("evt-9", "debate-42", "r-1", 3)
    assert body["source"] == {
        "topic": "analysis.tasks",
        "partition": 2,
        "offset": 41,
        "key": "debate-42",
        "key_encoding": "utf-8",
        "timestamp_ms": 1_700_000_000_000,
    }
    assert body["dead_lettered_at"] == "2030-01-02T03:04:05.000000+00:00"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], 1),
        ([("x-replay-attempt", b"4")], 4),
        ([("x-replay-attempt", b"2"), ("x-replay-attempt", b"5")], 5),
        ([("x-replay-attempt", b"junk")], 1),
        ([("x-replay-attempt", b"\xff")], 1),
        ([("x-replay-attempt", b"0")], 1),
        ([("x-replay-attempt", b"-3")], 1),
        ([("x-replay-attempt", None)], 1),
    ],
)
def test_replay_attempt_is_read_tolerantly(headers: list[tuple[str, bytes | None]], expected: int) -> None:
    assert replay_attempt(headers) == expected


# --- a dead letter always fits --------------------------------------------------------------


HOSTILE_SOURCES = {
    "control characters": source(bytes(range(1, 32)) * 7000),  # 217 KB, ~6x longer once JSON-escaped
    "quotes": source(b'"' * 600_000),  # just under the copy limit, 2x once escaped
    "binary near the limit": source(b"\xfe" * 590_000),  # base64 makes it 4/3 larger
    "huge headers": source(b"{}", headers=tuple((f"h{i}", b"\x01" * 20_000) for i in range(60))),
    "huge key": source(b"{}", key=b"k" * 1_000_000),
    "everything huge": source(b"\x01" * 1_000_000, key=b"\x02" * 600_000, headers=(("h", b"v" * 800_000),)),
}


@pytest.mark.parametrize("message", HOSTILE_SOURCES.values(), ids=HOSTILE_SOURCES.keys())
def test_a_dead_letter_always_fits_in_a_kafka_message(message: SourceMessage) -> None:
    letter = build_dead_letter(message, REASON, event_id="e" * 100_000)

    assert letter.size <= MAX_DEAD_LETTER_BYTES
    body = json.loads(letter.value)
    assert body["reason"]["stage"] == "processing" and len(body["event_id"]) < 2000
    if body["payload"] is None and message.value is not None:
        assert body["payload_size"] == len(message.value)
        assert body["payload_sha256"] == hashlib.sha256(message.value).hexdigest()


def test_a_letter_that_fits_keeps_the_payload_even_when_escaping_makes_it_larger() -> None:
    control = bytes(range(1, 32)) * 3000  # 93 KB, about 560 KB once escaped

    body = json.loads(build_dead_letter(source(control), REASON).value)

    assert body["payload"].encode() == control


def test_lone_surrogates_and_huge_field_errors_never_break_a_dead_letter() -> None:
    field_errors = {"\ud800": ["Unknown field."], **{f"f{i}": ["Unknown field."] for i in range(100_000)}}
    reason = DeadLetterReason("validation", "ValidationError", "bad \udcff", field_errors=field_errors)

    letter = build_dead_letter(source(b'{"\\ud800": 1}'), reason, event_id="evt-\ud800")

    assert letter.size <= MAX_DEAD_LETTER_BYTES
    body = json.loads(letter.value.decode("utf-8"))  # strict UTF-8: no surrogate got through
    assert body["event_id"] == "evt-\ufffd"
    assert "_truncated" in body["reason"]["field_errors"]


# --- DeadLetterPublisher ---------------------------------------------------------------------


def test_published_letter_reads_back_from_the_broker(kafka_broker: Broker, kafka_topics: KafkaTopics) -> None:
    publisher = DeadLetterPublisher(kafka_broker.bootstrap, kafka_topics.dlq)
    message = source(b"\xffbinary payload")
    try:
        publisher.publish(
            [build_dead_letter(message, REASON, event_id="evt-1", context_id="debate-42", run_id="run-1")]
        )
    finally:
        publisher.close()

    [letter] = read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq)

    assert letter.key == b"debate-42"
    assert letter.headers == (*HEADERS, ("x-dlq-stage", b"processing"), ("x-dlq-error-type", b"AllWorkersFailed"))
    assert letter.original_payload() == b"\xffbinary payload"
    assert letter.body["reason"]["worker_errors"] == {"summary": "timeout", "argument": "HTTP 500"}
    assert (letter.event_id, letter.stage, letter.error_type, letter.attempt) == (
        "evt-1",
        "processing",
        "AllWorkersFailed",
        1,
    )
    assert letter.body["source"]["offset"] == 41


def test_hostile_letters_are_accepted_by_the_broker(kafka_broker: Broker, kafka_topics: KafkaTopics) -> None:
    publisher = DeadLetterPublisher(kafka_broker.bootstrap, kafka_topics.dlq)
    try:
        for message in HOSTILE_SOURCES.values():
            publisher.publish([build_dead_letter(message, REASON)])
    finally:
        publisher.close()

    assert len(read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq)) == len(HOSTILE_SOURCES)


def test_publisher_raises_within_its_timeout_when_kafka_is_unreachable() -> None:
    closed_port = free_port()  # nothing listens there
    publisher = DeadLetterPublisher(f"127.0.0.1:{closed_port}", "analysis.dlq", timeout_s=2)

    started = time.monotonic()
    with pytest.raises(KafkaError) as failure:
        publisher.publish([build_dead_letter(source(b"{}"), REASON, event_id="evt-lost")])
    elapsed = time.monotonic() - started

    assert is_infrastructure(failure.value)  # so its callers keep the letter and retry
    assert elapsed < 6


def test_publisher_delivers_again_after_a_broker_restart(log_dir: Path) -> None:
    broker = start_broker(log_dir, "tansu-restart")
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    create_topics(broker.bootstrap, ["analysis.dlq"])
    publisher = DeadLetterPublisher(broker.bootstrap, "analysis.dlq", timeout_s=3)
    restarted: list[Broker] = []
    try:
        publisher.publish([build_dead_letter(source(b"first"), REASON, event_id="evt-first")])
        broker.kill()
        with pytest.raises(KafkaError):
            publisher.publish([build_dead_letter(source(b"second"), REASON, event_id="evt-second")])
        restarted.append(start_broker(log_dir, "tansu-restart", port=port))  # empty: memory storage
        create_topics(broker.bootstrap, ["analysis.dlq"])

        # As the outbox does: try again until Kafka acknowledges.
        wait_until(
            lambda: _published(publisher, build_dead_letter(source(b"second"), REASON, event_id="evt-second")),
            30,
            "the letter to be published after the restart",
        )
        publisher.close()

        letters = read_dead_letters(broker.bootstrap, "analysis.dlq")
        assert "evt-second" in [letter.event_id for letter in letters]
    finally:
        broker.kill()
        for again in restarted:
            again.kill()


def _published(publisher: DeadLetterPublisher, letter: DeadLetterMessage) -> bool:
    try:
        publisher.publish([letter])
    except KafkaError:
        return False
    return True


def test_a_payload_too_large_for_kafka_is_replaced_by_its_fingerprint_and_still_publishes(
    kafka_broker: Broker, kafka_topics: KafkaTopics
) -> None:
    huge = b"\xfe" * (MAX_PAYLOAD_BYTES + 1)  # binary: base64 would make it 4/3 larger still
    publisher = DeadLetterPublisher(kafka_broker.bootstrap, kafka_topics.dlq)
    try:
        publisher.publish([build_dead_letter(source(huge), REASON, event_id="evt-huge")])
    finally:
        publisher.close()

    [letter] = read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq)
    assert letter.body["payload"] is None and letter.body["payload_truncated"] is True
    assert letter.body["payload_size"] == len(huge)
    assert letter.body["payload_sha256"] == hashlib.sha256(huge).hexdigest()
    assert letter.original_payload() is None
