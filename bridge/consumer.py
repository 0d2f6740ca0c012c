"""The Kafka ingestion bridge: ``analysis.tasks`` → claim → Celery chord.

At-least-once: an offset is committed only after its message was handed off
(chord launched, duplicate recognised, or dead-lettered). A crash before the
commit means redelivery, which the event's claim in the database makes
harmless.

Whatever a message holds, it is handed off or dead-lettered and its offset
moves on: what it means to fail is decided by ``orchestrator.errors``. Bad
input is dead-lettered (``decode``, ``validation``); a bug while handing off
a valid event is logged with its traceback and dead-lettered
(``processing``); only a failure of our own infrastructure (database, Redis,
Kafka) or a claim held by another caller is retried, by seeking back.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from datetime import timedelta
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError
from marshmallow import ValidationError

from bridge import records
from orchestrator.chord import ChordLauncher
from orchestrator.config import Settings
from orchestrator.dead_letters import (
    DeadLetterReason,
    DeadLetterSink,
    SourceMessage,
    as_text,
    build_dead_letter,
    last_header,
    replay_attempt,
)
from orchestrator.errors import BadInput, Verdict, classify
from orchestrator.metrics import BRIDGE_EVENTS, BRIDGE_IN_FLIGHT, BRIDGE_PAUSED, BRIDGE_RETRIES
from orchestrator.pipelines import Pipelines
from orchestrator.runs import submit_analysis
from orchestrator.store import RunStore
from orchestrator.tracing import consume_span, valid_traceparent

log = logging.getLogger(__name__)

#: Pause before retrying a message whose claim another caller holds.
BUSY_PAUSE_S = 0.2
#: Backoff after an infrastructure failure: doubling from the first to the last.
RETRY_PAUSE_MIN_S = 1.0
RETRY_PAUSE_MAX_S = 10.0


class UndecodableMessage(BadInput):
    """The message value is not a JSON object."""


def decode_task(value: bytes | None) -> dict[str, Any]:
    """The message value as a JSON object (strict JSON: no NaN or Infinity); raises ``UndecodableMessage``."""
    if value is None:
        raise UndecodableMessage("message has no value")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UndecodableMessage(f"value is not UTF-8: {exc}") from exc
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise UndecodableMessage("value is not JSON we can read: nested too deeply") from None
    except ValueError as exc:  # also integers over Python's digit limit
        raise UndecodableMessage(f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UndecodableMessage(f"value is JSON {type(data).__name__}, not an object")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:40]} is out of range")
    return number


class Bridge:
    """Consumes analysis tasks and launches their chords, within a bound on runs in flight."""

    def __init__(
        self,
        settings: Settings,
        *,
        pipelines: Pipelines,
        store: RunStore,
        launcher: ChordLauncher,
        dead_letters: DeadLetterSink,
    ) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.store = store
        self.launcher = launcher
        self.dead_letters = dead_letters
        self.lease = timedelta(seconds=settings.claim_lease)
        #: Runs this bridge launched that have not finished yet. Each holds a
        #: slot however long it waits: the sweeper in the workers ends every
        #: run whose chord was lost, so a slot is never held forever.
        self.in_flight: set[str] = set()
        self.stopping = threading.Event()
        self._retry_pause = RETRY_PAUSE_MIN_S
        records.install()

    def create_consumer(self) -> KafkaConsumer:
        return KafkaConsumer(
            self.settings.kafka_tasks_topic,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.settings.kafka_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max(1, min(100, self.settings.bridge_max_in_flight)),
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )

    def run(self) -> None:
        """Consume until ``stopping`` is set; then commit what was handed off and return."""
        consumer = self.create_consumer()
        log.info(
            "bridge consuming %s as group %s (max %d runs in flight)",
            self.settings.kafka_tasks_topic,
            self.settings.kafka_group_id,
            self.settings.bridge_max_in_flight,
        )
        try:
            while not self.stopping.is_set():
                self.refresh_in_flight()
                self.apply_backpressure(consumer)
                # No more records than there are free slots: records handed back by a seek are fetched,
                # decoded and CRC-checked again, which cost the bridge more than the events themselves.
                free = max(1, self.settings.bridge_max_in_flight - len(self.in_flight))
                try:
                    batch = consumer.poll(timeout_ms=200, max_records=free)
                except Exception as exc:  # the broker, not a message: keep the bridge up
                    self._back_off(f"poll failed: {exc!r}")
                    continue
                done = self.handle_batch(consumer, batch)
                self.commit(consumer, done)
        finally:
            consumer.close(autocommit=False)
            log.info("bridge stopped")

    def handle_batch(
        self, consumer: KafkaConsumer, batch: dict[TopicPartition, list[Any]]
    ) -> dict[TopicPartition, int]:
        """Hand off each record in order; return the next offset to commit per partition.

        A partition stops early (and seeks back, so the rest is fetched again)
        when the in-flight bound is reached, our infrastructure fails, or
        another caller holds a claim. On shutdown the batch already fetched
        is still handed off.
        """
        done: dict[TopicPartition, int] = {}
        for partition, partition_records in batch.items():
            for record in partition_records:
                if len(self.in_flight) >= self.settings.bridge_max_in_flight:
                    consumer.seek(partition, record.offset)
                    break
                try:
                    self.handle(record)
                except Exception as exc:
                    BRIDGE_RETRIES.inc()
                    consumer.seek(partition, record.offset)
                    where = f"{record.topic}[{record.partition}]@{record.offset}"
                    if classify(exc) is Verdict.BUSY:
                        log.info("bridge: %s: %s; retrying shortly", where, exc)
                        self.stopping.wait(BUSY_PAUSE_S)
                    else:
                        self._back_off(f"cannot hand off {where}: {exc!r}")
                    break
                self._retry_pause = RETRY_PAUSE_MIN_S
                done[partition] = record.offset + 1
        return done

    def handle(self, record: Any) -> None:
        """Hand off one record: launch its run, recognise a duplicate, or dead-letter it.

        Raises only what must be retried later: an infrastructure failure, a
        claim held by another caller, or a dead letter that could not be
        published.
        """
        source = SourceMessage.from_record(record)
        traceparent = valid_traceparent(as_text(last_header(source.headers, "traceparent")))
        with consume_span(source.topic, source.partition, source.offset, traceparent):
            self._hand_off(record, source, traceparent)

    def _hand_off(self, record: Any, source: SourceMessage, traceparent: str | None) -> None:
        event_id = context_id = None
        try:
            data = decode_task(record.value)
            event_id = as_text(data.get("event_id"))
            task = self.pipelines.load_request(data, event=True)
            context_id = task.context_id
            submission = submit_analysis(
                task,
                source="kafka",
                store=self.store,
                launcher=self.launcher,
                queue=self.settings.celery_batch_queue,
                lease=self.lease,
                traceparent=traceparent,
                origin=source.to_json(),
                attempt=replay_attempt(source.headers),
            )
        except Exception as exc:
            verdict = classify(exc)
            if verdict in (Verdict.INFRASTRUCTURE, Verdict.BUSY):
                raise
            if verdict is not Verdict.BAD_INPUT:
                log.exception("bridge: event %s cannot be handed off; dead-lettering it", event_id)
            self.dead_letter(source, dead_letter_reason(exc), event_id=event_id, context_id=context_id)
            return
        BRIDGE_EVENTS.labels(outcome="launched" if submission.launched else "duplicate").inc()
        if submission.launched:
            self.in_flight.add(submission.run.id)
        else:
            log.info("event %s is a duplicate of run %s; skipped", event_id, submission.run.id)

    def dead_letter(
        self, source: SourceMessage, reason: DeadLetterReason, *, event_id: str | None, context_id: str | None
    ) -> None:
        log.warning(
            "dead-lettering %s[%d]@%d (%s: %s)", source.topic, source.partition, source.offset, reason.stage,
            reason.message[:500],
        )  # fmt: skip
        self.dead_letters.publish([build_dead_letter(source, reason, event_id=event_id, context_id=context_id)])
        BRIDGE_EVENTS.labels(outcome=f"dead_letter_{reason.stage}").inc()

    def refresh_in_flight(self) -> None:
        """Forget the runs that finished."""
        if not self.in_flight:
            return
        try:
            self.in_flight = self.store.pending_among(self.in_flight)
        except Exception as exc:
            if classify(exc) is not Verdict.INFRASTRUCTURE:
                raise
            self._back_off(f"cannot check the runs in flight: {exc!r}")
        BRIDGE_IN_FLIGHT.set(len(self.in_flight))

    def apply_backpressure(self, consumer: KafkaConsumer) -> None:
        """Pause every partition while too many runs are in flight; resume below the bound.

        A paused consumer keeps polling, so it stays in its group.
        """
        full = len(self.in_flight) >= self.settings.bridge_max_in_flight
        paused = consumer.paused()
        if full and not paused and consumer.assignment():
            log.info("bridge: %d runs in flight; pausing", len(self.in_flight))
            consumer.pause(*consumer.assignment())
            BRIDGE_PAUSED.set(1)
        elif not full and paused:
            log.info("bridge: %d runs in flight; resuming", len(self.in_flight))
            consumer.resume(*paused)
            BRIDGE_PAUSED.set(0)

    def commit(self, consumer: KafkaConsumer, done: dict[TopicPartition, int]) -> None:
        if not done:
            return
        try:
            consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in done.items()})
        except KafkaError as exc:
            # The group rebalanced: these messages will be redelivered and
            # recognised as duplicates by their claims.
            log.warning("bridge: commit failed (%s); messages will be redelivered", exc)

    def _back_off(self, what: str) -> None:
        log.warning("bridge: %s; retrying in %g s", what, self._retry_pause)
        self.stopping.wait(self._retry_pause)
        self._retry_pause = min(self._retry_pause * 2, RETRY_PAUSE_MAX_S)


def dead_letter_reason(exc: BaseException) -> DeadLetterReason:
    """Why a message that could not be handed off is dead-lettered, by what went wrong."""
    if isinstance(exc, UndecodableMessage):
        return DeadLetterReason("decode", type(exc).__name__, str(exc))
    if isinstance(exc, ValidationError):
        return DeadLetterReason("validation", "ValidationError", "invalid AnalysisTask", field_errors=exc.messages)
    if isinstance(exc, BadInput):
        return DeadLetterReason("validation", type(exc).__name__, str(exc), field_errors=exc.field_errors)
    return DeadLetterReason("processing", type(exc).__name__, str(exc))
