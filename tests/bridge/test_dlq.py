"""The dead-letter format and the DLQ producer, against the real Tansu broker."""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bridge.dlq import (
    MAX_PAYLOAD_BYTES,
    DeadLetterError,
    DeadLetterPublisher,
    DeadLetterReason,
    SourceMessage,
    build_dead_letter,
    replay_attempt,
)
from bridge.redrive import read_dead_letters
from tests.bridge.conftest import KafkaTopics
from tests.kafka import Broker, create_topics, start_broker
from tests.services import free_port

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


def failures_total() -> float:
    return REGISTRY.get_sample_value("orchestrator_dead_letter_publish_failures_total") or 0.0


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
    _, value, _ = build_dead_letter(message, reason, event_id="evt-1")
    body: dict[str, object] = json.loads(value)
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

    key, value, headers = build_dead_letter(
        message, reason, event_id="evt-9", context_id="debate-42", run_id="r-1", now=now
    )
    body = json.loads(value)

    assert key == b"debate-42"
    assert headers == [
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


# --- DeadLetterPublisher ---------------------------------------------------------------------


def test_published_letter_reads_back_from_the_broker(kafka_broker: Broker, kafka_topics: KafkaTopics) -> None:
    publisher = DeadLetterPublisher(kafka_broker.bootstrap, kafka_topics.dlq)
    message = source(b"\xffbinary payload")
    try:
        publisher.publish(message, REASON, event_id="evt-1", context_id="debate-42", run_id="run-1")
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
    assert publisher.failures == 0


def test_publisher_gives_up_at_the_deadline_and_counts_failures() -> None:
    closed_port = free_port()  # nothing listens there
    publisher = DeadLetterPublisher(f"127.0.0.1:{closed_port}", "analysis.dlq", deadline_s=2)
    counted_before = failures_total()

    started = time.monotonic()
    with pytest.raises(DeadLetterError, match="could not publish"):
        publisher.publish(source(b"{}"), REASON, event_id="evt-lost")
    elapsed = time.monotonic() - started

    assert publisher.failures >= 1
    assert failures_total() - counted_before == publisher.failures
    assert 1.5 < elapsed < 6


def _publish_in_child(publisher: DeadLetterPublisher) -> None:
    # Runs in a forked child: the inherited producer is unusable there.
    publisher.publish(source(b"from the child"), REASON, event_id="evt-child")
    publisher.close()


def test_publisher_works_in_a_forked_child(kafka_broker: Broker, kafka_topics: KafkaTopics) -> None:
    publisher = DeadLetterPublisher(kafka_broker.bootstrap, kafka_topics.dlq, deadline_s=10)
    publisher.publish(source(b"before the fork"), REASON, event_id="evt-parent-1")  # the parent now has a producer

    child = multiprocessing.get_context("fork").Process(target=_publish_in_child, args=(publisher,))
    child.start()
    child.join(30)
    publisher.publish(source(b"after the fork"), REASON, event_id="evt-parent-2")  # the parent's is still fine
    publisher.close()

    assert child.exitcode == 0
    letters = read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq)
    assert sorted(letter.event_id or "" for letter in letters) == ["evt-child", "evt-parent-1", "evt-parent-2"]
    assert publisher.failures == 0


def test_publisher_rides_out_a_broker_restart(log_dir: Path) -> None:
    broker = start_broker(log_dir, "tansu-restart")
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    create_topics(broker.bootstrap, ["analysis.dlq"])
    publisher = DeadLetterPublisher(broker.bootstrap, "analysis.dlq", deadline_s=20)
    restarted: list[Broker] = []

    def restart_after(delay_s: float) -> None:
        time.sleep(delay_s)
        restarted.append(start_broker(log_dir, "tansu-restart", port=port))  # empty: memory storage
        create_topics(broker.bootstrap, ["analysis.dlq"])

    try:
        publisher.publish(source(b"first"), REASON, event_id="evt-first")
        broker.kill()
        thread = threading.Thread(target=restart_after, args=(1.5,))
        thread.start()
        publisher.publish(source(b"second"), REASON, event_id="evt-second")
        thread.join()
        publisher.close()

        letters = read_dead_letters(broker.bootstrap, "analysis.dlq")
        # The restarted broker is empty; the retry went through a new producer
        # (Tansu forgets producer ids, which breaks the idempotent one) and sent once.
        assert [letter.event_id for letter in letters] == ["evt-second"]
    finally:
        broker.kill()
        for again in restarted:
            again.kill()


def test_a_payload_too_large_for_kafka_is_replaced_by_its_fingerprint_and_still_publishes(
    kafka_broker: Broker, kafka_topics: KafkaTopics
) -> None:
    huge = b"\xfe" * (MAX_PAYLOAD_BYTES + 1)  # binary: base64 would make it 4/3 larger still
    publisher = DeadLetterPublisher(kafka_broker.bootstrap, kafka_topics.dlq, deadline_s=10)
    try:
        publisher.publish(source(huge), REASON, event_id="evt-huge")
    finally:
        publisher.close()

    [letter] = read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq)
    assert letter.body["payload"] is None and letter.body["payload_truncated"] is True
    assert letter.body["payload_size"] == len(huge)
    assert letter.body["payload_sha256"] == hashlib.sha256(huge).hexdigest()
    assert letter.original_payload() is None
