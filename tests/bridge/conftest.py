"""Kafka fixtures: one Tansu broker per session, fresh topics per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from orchestrator.config import Settings
from tests.kafka import Broker, create_topics, start_broker

#: Partitions of each test topic, as in production (``KAFKA_TOPIC_PARTITIONS``).
TEST_PARTITIONS = 3


@dataclass(frozen=True)
class KafkaTopics:
    """A test's own tasks and dead-letter topics."""

    tasks: str
    dlq: str


@pytest.fixture(scope="session")
def kafka_broker(log_dir: Path) -> Iterator[Broker]:
    try:
        broker = start_broker(log_dir)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture()
def kafka_topics(kafka_broker: Broker) -> KafkaTopics:
    """Two new, empty topics with ``TEST_PARTITIONS`` partitions each."""
    suffix = uuid.uuid4().hex[:12]
    topics = KafkaTopics(tasks=f"analysis.tasks.{suffix}", dlq=f"analysis.dlq.{suffix}")
    create_topics(kafka_broker.bootstrap, [topics.tasks, topics.dlq], partitions=TEST_PARTITIONS)
    return topics


@pytest.fixture()
def kafka_settings(settings: Settings, kafka_broker: Broker, kafka_topics: KafkaTopics) -> Settings:
    """The suite's settings pointed at the test broker and this test's topics."""
    return replace(
        settings,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        kafka_tasks_topic=kafka_topics.tasks,
        kafka_dlq_topic=kafka_topics.dlq,
        kafka_topic_partitions=TEST_PARTITIONS,
    )
