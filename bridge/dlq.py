"""The dead-letter producer: sends dead letters (built by ``orchestrator.dead_letters``) to Kafka.

kafka-python's producer does the retrying itself (``retries`` is unbounded
within ``delivery_timeout_ms``, idempotently); this class only waits for the
acknowledgements and reports failure by raising, so that its callers keep
the letters (the outbox keeps its rows, the bridge does not commit).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from kafka import KafkaProducer
from opentelemetry.trace import SpanKind

from orchestrator.dead_letters import DeadLetterMessage
from orchestrator.tracing import tracer

log = logging.getLogger(__name__)


class DeadLetterPublisher:
    """Publishes dead letters to ``topic``, waiting for every acknowledgement (``acks=all``).

    Thread-safe. The producer connects on first use, so a publisher that is
    never used never touches Kafka (and one created before a fork is only
    used after it). A failed publication replaces the producer. Delivery is
    at least once: letters given up on at the timeout may still arrive, and
    the caller's retry then duplicates them.
    """

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout_s: float = 10.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def publish(self, letters: Sequence[DeadLetterMessage]) -> None:
        """Send ``letters`` and block until Kafka acknowledged all of them.

        Raises the producer's ``KafkaError`` (``KafkaTimeoutError`` after
        ``timeout_s``) if any was not acknowledged.
        """
        if not letters:
            return
        producer = self._producer_once()
        with tracer.start_as_current_span(
            f"send {self.topic}", kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.batch.message_count": len(letters)},
        ):  # fmt: skip
            self._send(producer, letters)

    def _send(self, producer: KafkaProducer, letters: Sequence[DeadLetterMessage]) -> None:
        try:
            futures = [
                producer.send(self.topic, key=letter.key, value=letter.value, headers=letter.headers)
                for letter in letters
            ]
            deadline = time.monotonic() + self.timeout_s
            for future in futures:
                future.get(timeout=max(deadline - time.monotonic(), 0.001))
        except Exception:
            # The next call starts from a fresh producer: this one may be
            # stuck on a broker that lost its idempotent-producer state.
            self._discard(producer)
            raise

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush and close the producer (the publisher can still be used afterwards)."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=timeout_s)

    def _discard(self, producer: KafkaProducer) -> None:
        with self._lock:
            if self._producer is producer:
                self._producer = None
        try:
            producer.close(timeout=0)
        except Exception as exc:  # closing flushes first, and may fail for the same reason
            log.debug("closing a failed dead-letter producer: %r", exc)

    def _producer_once(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    acks="all",
                    linger_ms=5,
                    # Give up within our timeout rather than kafka-python's
                    # defaults (30 s to bootstrap, 60 s blocked in send(),
                    # 120 s to deliver): the caller keeps the letter and retries.
                    bootstrap_timeout_ms=int(self.timeout_s * 1000),
                    max_block_ms=int(self.timeout_s * 1000),
                    request_timeout_ms=int(self.timeout_s * 1000) // 2,
                    delivery_timeout_ms=int(self.timeout_s * 1000),
                    client_id="orchestrator-dlq",
                )
            return self._producer
