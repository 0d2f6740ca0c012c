"""Reading the dead-letter queue back, summarising it, and replaying letters.

The logic behind ``orchestrator dlq list`` and ``orchestrator dlq replay``.
Reading never joins a consumer group, so listing the DLQ moves no committed
offset; a replay sends each original payload, key and headers back to the
tasks topic with ``x-replay-attempt`` raised by one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from tqdm import tqdm

from orchestrator.dead_letters import (
    DLQ_HEADER_PREFIX,
    ERROR_TYPE_HEADER,
    REPLAY_ATTEMPT_HEADER,
    STAGE_HEADER,
    Headers,
    as_text,
    decode_bytes,
    last_header,
    replay_attempt,
)
from orchestrator.domain import JSON

log = logging.getLogger(__name__)

#: Seconds to wait for the broker to acknowledge one replayed message.
REPLAY_ACK_TIMEOUT_S = 60.0


class ReplayError(RuntimeError):
    """Replay stopped because a message was not acknowledged; ``sent`` were acked before it."""

    def __init__(self, message: str, sent: int) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True)
class DeadLetter:
    """One message read back from the DLQ.

    ``body`` is the parsed JSON value; a value that is not a JSON object
    becomes ``{"unreadable": <text>}`` so that one bad letter never stops a listing.
    """

    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    headers: Headers
    body: JSON

    @property
    def reason(self) -> JSON:
        reason = self.body.get("reason")
        return reason if isinstance(reason, dict) else {}

    @property
    def stage(self) -> str | None:
        return as_text(self.reason.get("stage")) or as_text(last_header(self.headers, STAGE_HEADER))

    @property
    def error_type(self) -> str | None:
        return as_text(self.reason.get("error_type")) or as_text(last_header(self.headers, ERROR_TYPE_HEADER))

    @property
    def message(self) -> str | None:
        return as_text(self.reason.get("message"))

    @property
    def event_id(self) -> str | None:
        return as_text(self.body.get("event_id"))

    @property
    def attempt(self) -> int:
        """How many times the event had been sent for analysis when it was dead-lettered."""
        attempt = self.body.get("attempt")
        if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1:
            return attempt
        return replay_attempt(self.headers)

    @property
    def dead_lettered_at(self) -> str | None:
        return as_text(self.body.get("dead_lettered_at"))

    def original_payload(self) -> bytes | None:
        """The original message value, or None when it was null or cannot be recovered."""
        try:
            return decode_bytes(self.body.get("payload"), self.body.get("payload_encoding"))
        except (ValueError, TypeError, AttributeError):
            return None

    @classmethod
    def from_record(cls, record: Any) -> DeadLetter:
        """From a kafka-python ``ConsumerRecord`` of the DLQ topic."""
        timestamp = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None
        return cls(
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=timestamp,
            key=record.key,
            headers=tuple((name, data or b"") for name, data in record.headers or ()),
            body=parse_body(record.value),
        )


def parse_body(value: bytes | None) -> JSON:
    """A DLQ value as a JSON object; anything else is wrapped as ``{"unreadable": ...}``."""
    text = (value or b"").decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        return {"unreadable": text}
    return body if isinstance(body, dict) else {"unreadable": text}


def _age(letter: DeadLetter) -> tuple[int, float, int, int]:
    """Sort key, oldest first: broker timestamp (ms), then the finer ``dead_lettered_at``, then position."""
    timestamp_ms = letter.timestamp_ms if letter.timestamp_ms is not None else -1
    return (timestamp_ms, _seconds(letter.dead_lettered_at), letter.partition, letter.offset)


def _seconds(iso_time: str | None) -> float:
    try:
        return datetime.fromisoformat(iso_time).timestamp() if iso_time else 0.0
    except ValueError:
        return 0.0


# --- reading ---------------------------------------------------------------------------------


def read_dead_letters(bootstrap_servers: str, topic: str, *, timeout_s: float = 10.0) -> list[DeadLetter]:
    """Every message of ``topic``, oldest first, read without a consumer group.

    Reads each partition from its beginning up to the end offset it had when
    the call started. A missing topic gives ``[]``; if the end is not reached
    within ``timeout_s`` seconds, what was read is returned and a warning logged.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,  # no group: nothing is committed, nobody's offsets move
        enable_auto_commit=False,
        request_timeout_ms=max(int(timeout_s * 1000), 1000) + 1000,
        bootstrap_timeout_ms=max(int(timeout_s * 1000), 1000),
    )
    try:
        return _read_all(consumer, topic, timeout_s)
    finally:
        consumer.close()


def _read_all(consumer: KafkaConsumer, topic: str, timeout_s: float) -> list[DeadLetter]:
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not partitions:
        log.warning("topic %s does not exist or has no partitions", topic)
        return []
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = _PartitionEnds(consumer.end_offsets(partitions))
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + timeout_s
    while unfinished := ends.unfinished(consumer):
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            log.warning(
                "stopped reading %s after %g s with %d partitions unfinished", topic, timeout_s, len(unfinished)
            )
            break
        batches = consumer.poll(timeout_ms=min(remaining_ms, 500))
        if batches:  # still making progress: a long topic is read to its end
            deadline = time.monotonic() + timeout_s
        ends.confirm(consumer)
        for tp, records in batches.items():
            letters += [DeadLetter.from_record(r) for r in records if r.offset < ends.offsets[tp]]
    return sorted(letters, key=_age)


class _PartitionEnds:
    """Where reading each partition stops.

    ``end_offsets`` (ListOffsets) should give it, but Tansu 0.6 answers with
    the base offset of the last record batch + 1, short of the real end when
    that batch holds several records. So a partition's end is only trusted
    once a fetch response has also reported its high watermark; an end
    offset of 0 still means empty.
    """

    def __init__(self, end_offsets: dict[TopicPartition, int]) -> None:
        self.offsets = dict(end_offsets)
        self._confirmed = {tp for tp, end in end_offsets.items() if end == 0}

    def confirm(self, consumer: KafkaConsumer) -> None:
        """Raise each unconfirmed end to the first high watermark a fetch reported."""
        for tp in self.offsets.keys() - self._confirmed:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self.offsets[tp] = max(self.offsets[tp], highwater)
                self._confirmed.add(tp)

    def unfinished(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        """Partitions still to read; the others are paused so nothing more is fetched for them."""
        unfinished = [
            tp for tp, end in self.offsets.items() if tp not in self._confirmed or consumer.position(tp) < end
        ]
        consumer.pause(*[tp for tp in self.offsets if tp not in unfinished])
        return unfinished


# --- summarising -----------------------------------------------------------------------------


def summarise(dead_letters: Iterable[DeadLetter], *, newest: int | None = None) -> JSON:
    """Counts by stage and by error type, and the ``newest`` letters (all by default), newest first."""
    letters = sorted(dead_letters, key=_age, reverse=True)
    return {
        "total": len(letters),
        "by_stage": dict(Counter(letter.stage or "unknown" for letter in letters).most_common()),
        "by_error_type": dict(Counter(letter.error_type or "unknown" for letter in letters).most_common()),
        "newest": [_row(letter) for letter in letters[:newest]],
    }


def _row(letter: DeadLetter) -> JSON:
    return {
        "partition": letter.partition,
        "offset": letter.offset,
        "event_id": letter.event_id,
        "stage": letter.stage,
        "error_type": letter.error_type,
        "message": letter.message,
        "attempt": letter.attempt,
        "dead_lettered_at": letter.dead_lettered_at,
    }


def format_summary(summary: JSON, limit: int) -> str:
    """``summarise`` output as text for a terminal: totals, then up to ``limit`` newest letters."""
    lines = [f"{summary['total']} dead letters"]
    for title, counts in (("by stage", summary["by_stage"]), ("by error type", summary["by_error_type"])):
        if counts:
            lines.append(f"{title}: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    rows = summary["newest"][:limit]
    if rows:
        lines += ["", f"newest {len(rows)}:", *_table(rows)]
    return "\n".join(lines)


_COLUMNS = ("dead_lettered_at", "partition", "offset", "event_id", "stage", "error_type", "attempt", "message")
#: Longest cell printed; messages can be whole tracebacks.
_MAX_CELL = 60


def _table(rows: Sequence[JSON]) -> list[str]:
    cells = [[_cell(row.get(column)) for column in _COLUMNS] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(_COLUMNS)]
    header = "  ".join(column.ljust(width) for column, width in zip(_COLUMNS, widths, strict=True))
    body = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    return [header.rstrip(), *body]


def _cell(value: object) -> str:
    text = "-" if value is None else " ".join(str(value).split())
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


# --- replaying -------------------------------------------------------------------------------


def select_for_replay(
    dead_letters: Iterable[DeadLetter], *, stage: str | None = None, limit: int | None = None
) -> list[DeadLetter]:
    """The letters to replay, oldest first.

    Keeps those of ``stage`` (all when None), then only the newest letter of
    each event, then the first ``limit`` of them. Letters without an event id
    count as one event per distinct payload: a replayed undecodable message
    that is dead-lettered again is not sent twice by the next replay.
    """
    newest: dict[str, DeadLetter] = {}
    for letter in sorted(dead_letters, key=_age):
        if stage is not None and letter.stage != stage:
            continue
        newest[_identity(letter)] = letter  # later (newer) letters overwrite
    selected = sorted(newest.values(), key=_age)
    return selected if limit is None else selected[:limit]


def _identity(letter: DeadLetter) -> str:
    if letter.event_id is not None:
        return f"event:{letter.event_id}"
    payload = letter.original_payload()
    if payload is None:  # nothing to replay or compare: keep it on its own
        return f"letter:{letter.partition}:{letter.offset}"
    return f"payload:{hashlib.sha256(payload).hexdigest()}"


def replay_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers without the DLQ's and the old attempt, plus the next attempt number."""
    kept = [
        (name, data)
        for name, data in letter.headers
        if not name.startswith(DLQ_HEADER_PREFIX) and name != REPLAY_ATTEMPT_HEADER
    ]
    return [*kept, (REPLAY_ATTEMPT_HEADER, str(letter.attempt + 1).encode("ascii"))]


def replay(
    dead_letters: Sequence[DeadLetter],
    *,
    bootstrap_servers: str,
    tasks_topic: str,
    dry_run: bool = False,
    progress: bool = True,
) -> int:
    """Send each letter's original payload back to ``tasks_topic``; return how many were acknowledged.

    Key and headers are the original ones (see ``replay_headers``). Letters
    whose payload cannot be recovered (null or unreadable) are skipped with a
    warning. ``dry_run`` sends nothing and returns how many would be sent.
    Raises ``ReplayError`` if a message is not acknowledged.
    """
    replayable = [letter for letter in dead_letters if _replayable(letter)]
    if dry_run or not replayable:
        return len(replayable)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5, client_id="orchestrator-dlq-replay"
    )
    try:
        return _send_all(producer, replayable, tasks_topic, progress)
    finally:
        producer.close(timeout=10)


def _replayable(letter: DeadLetter) -> bool:
    if letter.original_payload() is None:
        log.warning(
            "skipping dead letter %d@%d (event %s): no payload to replay",
            letter.partition,
            letter.offset,
            letter.event_id,
        )
        return False
    return True


def _send_all(producer: KafkaProducer, letters: Sequence[DeadLetter], topic: str, progress: bool) -> int:
    # Send everything first (the producer batches), then wait for the acks in order.
    futures = [
        producer.send(topic, key=letter.key, value=letter.original_payload(), headers=replay_headers(letter))
        for letter in letters
    ]
    sent = 0
    with tqdm(total=len(futures), desc="replaying", unit="msg", disable=not progress) as bar:
        for letter, future in zip(letters, futures, strict=True):
            try:
                future.get(timeout=REPLAY_ACK_TIMEOUT_S)
            except KafkaError as exc:  # the broker's error, or KafkaTimeoutError
                raise ReplayError(
                    f"replaying dead letter {letter.partition}@{letter.offset} (event {letter.event_id}) failed "
                    f"after {sent} acknowledged: {exc!r}",
                    sent,
                ) from exc
            sent += 1
            bar.update(1)
    return sent
