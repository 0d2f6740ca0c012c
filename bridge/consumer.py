"""The Kafka ingestion bridge: ``analysis.tasks`` → claim → Celery chord.

At-least-once: an offset is committed only after its message was handed off
(chord launched, duplicate recognised, or dead-lettered). A crash before the
commit means redelivery, which the event's claim in the database makes
harmless. Invalid messages go to the DLQ and are never retried; a failure of
our own infrastructure (database, Redis, Kafka) is retried by seeking back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from celery import Celery
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from marshmallow import ValidationError

from bridge.dlq import (
    DeadLetterError,
    DeadLetterPublisher,
    DeadLetterReason,
    SourceMessage,
    as_text,
    last_header,
    replay_attempt,
)
from orchestrator.config import Settings
from orchestrator.metrics import BRIDGE_EVENTS, BRIDGE_IN_FLIGHT, BRIDGE_PAUSED, BRIDGE_RETRIES
from orchestrator.runs import ClaimInProgress, UnknownContext, submit_analysis
from orchestrator.schemas import AnalysisTaskSchema, Limits
from orchestrator.store import RunStore
from orchestrator.tracing import valid_traceparent

log = logging.getLogger(__name__)

#: How long to back off after an infrastructure error before retrying.
RETRY_PAUSE_S = 2.0

#: Failures of our own services: the message is fine, try it again later.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    KafkaError,
    DeadLetterError,
    ConnectionError,
    TimeoutError,
    # Not a failure, but likewise "not handed off yet: try again shortly".
    ClaimInProgress,
)


class UndecodableMessage(ValueError):
    """The message value is not a JSON object."""


def decode_task(value: bytes | None) -> dict[str, Any]:
    """The message value as a JSON object; raises ``UndecodableMessage``."""
    if value is None:
        raise UndecodableMessage("message has no value")
    try:
        data = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UndecodableMessage(f"value is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise UndecodableMessage(f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UndecodableMessage(f"value is JSON {type(data).__name__}, not an object")
    return data


class Bridge:
    """Consumes analysis tasks and launches their chords, within a bound on runs in flight."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: RunStore,
        celery_app: Celery,
        dead_letters: DeadLetterPublisher,
    ) -> None:
        self.settings = settings
        self.store = store
        self.celery_app = celery_app
        self.dead_letters = dead_letters
        self.schema = AnalysisTaskSchema(limits=Limits.from_settings(settings))
        #: Runs this bridge launched that have not finished yet, with when.
        self.in_flight: dict[str, float] = {}
        #: A run pending longer than this no longer holds a slot: its chord
        #: would have been redelivered by now, so something else is wrong.
        self.in_flight_limit_s = 2.0 * settings.celery_visibility_timeout
        self.stopping = threading.Event()

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
                batch = consumer.poll(timeout_ms=200)
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
        when the in-flight bound is reached or our infrastructure fails. On
        shutdown the batch already fetched is still handed off.
        """
        done: dict[TopicPartition, int] = {}
        for partition, records in batch.items():
            for record in records:
                if len(self.in_flight) >= self.settings.bridge_max_in_flight:
                    consumer.seek(partition, record.offset)
                    break
                try:
                    self.handle(record)
                except INFRASTRUCTURE_ERRORS:
                    log.exception(
                        "bridge: cannot hand off %s[%d]@%d; retrying in %g s",
                        record.topic, record.partition, record.offset, RETRY_PAUSE_S,
                    )  # fmt: skip
                    BRIDGE_RETRIES.inc()
                    consumer.seek(partition, record.offset)
                    self.stopping.wait(RETRY_PAUSE_S)
                    break
                done[partition] = record.offset + 1
        return done

    def handle(self, record: Any) -> None:
        """Hand off one record: launch its run, recognise a duplicate, or dead-letter it.

        Raises only ``INFRASTRUCTURE_ERRORS`` (retry later). Any other error
        while handing off a valid event dead-letters it as ``processing``, so
        one poisonous message never blocks its partition.
        """
        source = SourceMessage.from_record(record)
        try:
            data = decode_task(record.value)
        except UndecodableMessage as exc:
            self.dead_letter(source, DeadLetterReason("decode", type(exc).__name__, str(exc)))
            return
        try:
            task = self.schema.load(data)
        except ValidationError as exc:
            reason = DeadLetterReason(
                "validation", "ValidationError", "invalid AnalysisTask", field_errors=exc.messages
            )
            self.dead_letter(source, reason, event_id=as_text(data.get("event_id")))
            return
        try:
            submission = submit_analysis(
                task,
                source="kafka",
                store=self.store,
                celery_app=self.celery_app,
                queue=self.settings.celery_batch_queue,
                traceparent=valid_traceparent(as_text(last_header(source.headers, "traceparent"))),
                origin=source.to_json(),
                attempt=replay_attempt(source.headers),
            )
        except UnknownContext as exc:
            reason = DeadLetterReason("validation", type(exc).__name__, str(exc), field_errors={"segments": [str(exc)]})
            self.dead_letter(source, reason, event_id=task.event_id, context_id=task.context_id)
            return
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            log.exception("bridge: event %s cannot be handed off", task.event_id)
            reason = DeadLetterReason("processing", type(exc).__name__, str(exc))
            self.dead_letter(source, reason, event_id=task.event_id, context_id=task.context_id)
            return
        BRIDGE_EVENTS.labels(outcome="launched" if submission.launched else "duplicate").inc()
        if submission.launched:
            self.in_flight[submission.run.id] = time.monotonic()
        else:
            log.info("event %s is a duplicate of run %s; skipped", task.event_id, submission.run.id)

    def dead_letter(self, source: SourceMessage, reason: DeadLetterReason, **ids: str | None) -> None:
        log.warning(
            "dead-lettering %s[%d]@%d (%s: %s)", source.topic, source.partition, source.offset, reason.stage,
            reason.message,
        )  # fmt: skip
        self.dead_letters.publish(source, reason, **ids)
        BRIDGE_EVENTS.labels(outcome=f"dead_letter_{reason.stage}").inc()

    def refresh_in_flight(self) -> None:
        """Forget runs that finished, or that have been pending implausibly long."""
        if not self.in_flight:
            return
        try:
            pending = self.store.pending_among(self.in_flight)
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("bridge: cannot check runs in flight (%s); retrying in %g s", exc, RETRY_PAUSE_S)
            self.stopping.wait(RETRY_PAUSE_S)
            return
        cutoff = time.monotonic() - self.in_flight_limit_s
        for run_id in [r for r in pending if self.in_flight[r] < cutoff]:
            log.error(
                "bridge: run %s pending for over %g s; no longer counted in flight", run_id, self.in_flight_limit_s
            )
            pending.discard(run_id)
        self.in_flight = {run_id: self.in_flight[run_id] for run_id in pending}
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
        except (CommitFailedError, KafkaError) as exc:
            # The group rebalanced: these messages will be redelivered and
            # recognised as duplicates by their claims.
            log.warning("bridge: commit failed (%s); messages will be redelivered", exc)


def build_bridge(settings: Settings) -> Bridge:
    """A bridge wired from the settings; creates the topics when missing."""
    from bridge.topics import ensure_topics
    from orchestrator.services import build_services
    from tasks.celery_app import create_celery

    created = ensure_topics(
        settings.kafka_bootstrap_servers,
        [settings.kafka_tasks_topic, settings.kafka_dlq_topic],
        settings.kafka_topic_partitions,
        settings.kafka_replication_factor,
    )
    if created:
        log.info("created topics %s", ", ".join(created))
    services = build_services(settings)
    return Bridge(
        settings,
        store=services.store,
        celery_app=create_celery(settings, services),
        dead_letters=DeadLetterPublisher(settings.kafka_bootstrap_servers, settings.kafka_dlq_topic),
    )
