"""Listing and replaying the DLQ, and creating topics, against the real Tansu broker."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from bridge.dlq import DeadLetterPublisher
from bridge.redrive import DeadLetter, format_summary, read_dead_letters, replay, select_for_replay, summarise
from bridge.topics import ensure_topics
from orchestrator.config import Settings
from orchestrator.dead_letters import DeadLetterReason, SourceMessage, Stage, build_dead_letter
from orchestrator.store import RunStore
from tests.conftest import KafkaTopics, settings_env
from tests.factories import claim_run, finish_claimed
from tests.kafka import Broker, partition_count, produce, read_topic, topic_size
from tests.services import service_env


def make_letter(
    offset: int, stage: Stage, error_type: str, event_id: str | None, *, timestamp_ms: int | None = None
) -> DeadLetter:
    """A letter as ``read_dead_letters`` would return it; time grows with ``offset``."""
    reason = DeadLetterReason(stage=stage, error_type=error_type, message=f"failed at {offset}")
    message = SourceMessage("analysis.tasks", 0, offset, b"ctx", f'{{"n": {offset}}}'.encode())
    letter = build_dead_letter(message, reason, event_id=event_id)
    return DeadLetter(
        partition=offset % 3,
        offset=offset,
        timestamp_ms=1_000 + offset if timestamp_ms is None else timestamp_ms,
        key=letter.key,
        headers=tuple(letter.headers),
        body=json.loads(letter.value),
    )


LETTERS = [
    make_letter(0, "decode", "JSONDecodeError", None),
    make_letter(1, "validation", "ValidationError", "evt-a"),
    make_letter(2, "processing", "AllWorkersFailed", "evt-b"),
    make_letter(3, "processing", "AllWorkersFailed", "evt-a"),
    make_letter(4, "processing", "ChordError", "evt-c"),
    make_letter(5, "decode", "UnicodeDecodeError", None),
]

LETTER_VALUES = [
    build_dead_letter(
        SourceMessage("t", 0, n, None, b"{}"), DeadLetterReason("decode", "E", "m"), event_id=f"evt-{n}"
    ).value
    for n in range(5)
]


def test_summary_counts_by_stage_and_error_type_newest_first() -> None:
    summary = summarise(LETTERS)

    assert summary["total"] == 6
    assert summary["by_stage"] == {"processing": 3, "decode": 2, "validation": 1}
    assert summary["by_error_type"] == {
        "AllWorkersFailed": 2,
        "JSONDecodeError": 1,
        "ValidationError": 1,
        "ChordError": 1,
        "UnicodeDecodeError": 1,
    }
    assert [row["offset"] for row in summary["newest"]] == [5, 4, 3, 2, 1, 0]
    assert summary["newest"][1] == {
        "partition": 1,
        "offset": 4,
        "event_id": "evt-c",
        "stage": "processing",
        "error_type": "ChordError",
        "message": "failed at 4",
        "attempt": 1,
        "dead_lettered_at": LETTERS[4].dead_lettered_at,
    }
    assert [row["offset"] for row in summarise(LETTERS, newest=2)["newest"]] == [5, 4]


def test_format_summary_prints_totals_and_the_newest_rows() -> None:
    text = format_summary(summarise(LETTERS), limit=2)

    assert text.splitlines()[0] == "6 dead letters"
    assert "by stage: processing 3, decode 2, validation 1" in text
    rows = text.split("newest 2:\n")[1].splitlines()
    assert rows[0].split() == [
        "dead_lettered_at",
        "partition",
        "offset",
        "event_id",
        "stage",
        "error_type",
        "attempt",
        "message",
    ]
    assert "UnicodeDecodeError" in rows[1] and "evt-c" in rows[2] and len(rows) == 3


def test_select_for_replay_filters_by_stage_keeps_one_per_event_and_limits() -> None:
    def offsets(letters: list[DeadLetter]) -> list[int]:
        return [letter.offset for letter in letters]

    # evt-a was dead-lettered twice (offsets 1 and 3): only the newest is replayed.
    assert offsets(select_for_replay(reversed(LETTERS))) == [0, 2, 3, 4, 5]
    assert offsets(select_for_replay(LETTERS, stage="processing")) == [2, 3, 4]
    assert offsets(select_for_replay(LETTERS, stage="validation")) == [1]
    assert offsets(select_for_replay(LETTERS, stage="decode")) == [0, 5]
    assert offsets(select_for_replay(LETTERS, limit=2)) == [0, 2]
    assert select_for_replay(LETTERS, stage="nope") == []


def test_reading_an_empty_or_missing_dlq_gives_nothing(kafka_broker: Broker, kafka_topics: KafkaTopics) -> None:
    assert read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq, timeout_s=5) == []
    assert read_dead_letters(kafka_broker.bootstrap, f"missing.{uuid.uuid4().hex}", timeout_s=5) == []


def test_reading_gets_every_letter_of_multi_record_batches(kafka_broker: Broker, kafka_topics: KafkaTopics) -> None:
    # Tansu's end_offsets stops at the last batch's first record; all five must still come back.
    produce(kafka_broker.bootstrap, kafka_topics.dlq, [(b"one-key", value, []) for value in LETTER_VALUES])

    letters = read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq)

    assert [letter.offset for letter in letters] == [0, 1, 2, 3, 4]
    assert [letter.event_id for letter in letters] == [f"evt-{n}" for n in range(5)]


def test_unreadable_letters_are_listed_and_skipped_by_replay(kafka_broker: Broker, kafka_topics: KafkaTopics) -> None:
    produce(kafka_broker.bootstrap, kafka_topics.dlq, [(b"k", b"\xffnot json", []), (b"k", b"[1, 2]", [])])

    letters = read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq)

    assert [letter.body for letter in letters] == [{"unreadable": "\ufffdnot json"}, {"unreadable": "[1, 2]"}]
    assert summarise(letters)["by_stage"] == {"unknown": 2}
    sent = replay(letters, bootstrap_servers=kafka_broker.bootstrap, tasks_topic=kafka_topics.tasks, progress=False)
    assert sent == 0
    assert topic_size(kafka_broker.bootstrap, kafka_topics.tasks) == 0


def publish_two_letters(broker: Broker, topics: KafkaTopics) -> None:
    """A first-time event with a binary payload, and one already replayed once."""
    publisher = DeadLetterPublisher(broker.bootstrap, topics.dlq)
    reason = DeadLetterReason(stage="processing", error_type="AllWorkersFailed", message="all four failed")
    first = SourceMessage(topics.tasks, 0, 7, b"ctx-1", b"\x00\xffraw", headers=(("trace", b"t-1"),))
    second = SourceMessage(
        topics.tasks, 1, 9, b"ctx-2", b'{"event_id": "evt-2"}', headers=(("x-replay-attempt", b"2"), ("trace", b"t-2"))
    )
    try:
        publisher.publish([build_dead_letter(first, reason, event_id="evt-1")])
        publisher.publish([build_dead_letter(second, reason, event_id="evt-2")])
    finally:
        publisher.close()


def test_replay_sends_the_original_message_with_the_next_attempt(
    kafka_broker: Broker, kafka_topics: KafkaTopics
) -> None:
    publish_two_letters(kafka_broker, kafka_topics)
    letters = select_for_replay(read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq))

    sent = replay(letters, bootstrap_servers=kafka_broker.bootstrap, tasks_topic=kafka_topics.tasks, progress=False)

    assert sent == 2
    records = {r.key: r for r in read_topic(kafka_broker.bootstrap, kafka_topics.tasks, count=2)}
    assert records[b"ctx-1"].value == b"\x00\xffraw"
    assert records[b"ctx-1"].headers == [("trace", b"t-1"), ("x-replay-attempt", b"2")]
    assert records[b"ctx-2"].value == b'{"event_id": "evt-2"}'
    assert records[b"ctx-2"].headers == [("trace", b"t-2"), ("x-replay-attempt", b"3")]


def test_dry_run_replays_nothing(kafka_broker: Broker, kafka_topics: KafkaTopics) -> None:
    publish_two_letters(kafka_broker, kafka_topics)
    letters = read_dead_letters(kafka_broker.bootstrap, kafka_topics.dlq)

    would_send = replay(
        letters, bootstrap_servers=kafka_broker.bootstrap, tasks_topic=kafka_topics.tasks, dry_run=True, progress=False
    )

    assert would_send == 2
    assert topic_size(kafka_broker.bootstrap, kafka_topics.tasks) == 0


def test_ensure_topics_creates_what_is_missing_once(kafka_broker: Broker, kafka_topics: KafkaTopics) -> None:
    new = [f"analysis.new.{uuid.uuid4().hex}", f"analysis.new.{uuid.uuid4().hex}"]

    created = ensure_topics(kafka_broker.bootstrap, [kafka_topics.tasks, *new], partitions=3)
    again = ensure_topics(kafka_broker.bootstrap, [kafka_topics.tasks, *new], partitions=3)

    assert sorted(created) == sorted(new)
    assert again == []
    for topic in new:
        assert partition_count(kafka_broker.bootstrap, topic) == 3
        produce(kafka_broker.bootstrap, topic, [(b"k", b"v", [])])  # usable at once
        assert topic_size(kafka_broker.bootstrap, topic) == 1


def test_the_same_undecodable_payload_dead_lettered_twice_is_replayed_once() -> None:
    reason = DeadLetterReason(stage="decode", error_type="UndecodableMessage", message="not JSON")
    letters = []
    for offset, attempt in ((10, b"1"), (11, b"2")):  # the original and its failed replay
        message = SourceMessage("analysis.tasks", 0, offset, None, b"not json", (("x-replay-attempt", attempt),))
        letter = build_dead_letter(message, reason)
        letters.append(
            DeadLetter(0, offset, 1_000 + offset, letter.key, tuple(letter.headers), json.loads(letter.value))
        )

    (selected,) = select_for_replay(letters)

    assert selected.offset == 11 and selected.attempt == 2


def test_dlq_list_shows_the_letters_still_waiting_in_the_outbox(
    settings: Settings, store: RunStore, kafka_broker: Broker, kafka_topics: KafkaTopics
) -> None:
    claimed = claim_run(store, source="kafka")
    reason = DeadLetterReason("processing", "AllWorkersFailed", "all four workers failed")
    letter = build_dead_letter(SourceMessage(kafka_topics.tasks, 0, 3, b"k", b"{}"), reason)
    finish_claimed(store, claimed, "failed", dead_letter=lambda run: letter)
    env = service_env(
        **{
            **settings_env(settings),
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
            "KAFKA_DLQ_TOPIC": kafka_topics.dlq,
        }
    )

    listed = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "dlq", "list"], env=env, capture_output=True, text=True, timeout=60
    )

    assert listed.returncode == 0, listed.stderr
    assert "not yet published" in listed.stdout and claimed.run.event_id in listed.stdout
    assert "0 dead letters" in listed.stdout  # none has reached the topic
