"""Creating the Kafka topics the service uses (tasks and dead letters)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError, for_code

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap_servers: str, topics: Sequence[str], partitions: int, replication_factor: int = 1
) -> list[str]:
    """Create those of ``topics`` that do not exist yet; return the names created.

    Existing topics are left as they are (their partition count is not
    checked or changed). Safe to call from several processes at once: a topic
    created by another one in the meantime counts as existing. Raises the
    ``kafka.errors.KafkaError`` of any other failure.
    """
    # Fail within 10 s when Kafka is unreachable (the default waits 30 s).
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, bootstrap_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in dict.fromkeys(topics) if topic not in existing]
        if not missing:
            return []
        settings = {"num_partitions": partitions, "replication_factor": replication_factor}
        # raise_errors=False: the response has one error code per topic, and an
        # "already exists" for one topic must not hide the others' outcome.
        response = admin.create_topics({topic: dict(settings) for topic in missing}, raise_errors=False)
    finally:
        admin.close()
    return _created_topics(response)


def _created_topics(response: dict[str, list[dict[str, object]]]) -> list[str]:
    """The names a CreateTopics response reports as created; raise on real errors."""
    created: list[str] = []
    for result in response["topics"]:
        name, code = str(result["name"]), result["error_code"]
        if code == 0:
            log.info("created Kafka topic %s", name)
            created.append(name)
        elif code == TopicAlreadyExistsError.errno:
            log.debug("Kafka topic %s was created concurrently", name)
        else:
            error = for_code(code)
            raise error(f"could not create Kafka topic {name}: {result.get('error_message') or error.message}")
    return created
