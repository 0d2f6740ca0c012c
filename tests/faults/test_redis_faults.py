"""Redis faults: a restart that loses everything while dead letters wait for Kafka, and a failover's READONLY."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from bridge.redrive import read_dead_letters
from orchestrator.config import Settings
from orchestrator.dead_letters import SourceMessage
from orchestrator.runs import submit_analysis
from orchestrator.wiring import build_celery
from tests.factories import run_request, task_event, unique
from tests.fake_llm import FakeLLM, Fault
from tests.faults.conftest import report
from tests.kafka import create_topics, start_broker
from tests.services import PrivateRedis, wait_until
from tests.stack import as_message, finished, ok_calls_per_worker, running_stack, runs_for

FAILS = "MODEL-FAILS-IN-THE-REDIS-RESTART-TEST"


def test_dead_letters_waiting_for_kafka_survive_a_redis_restart_and_arrive_once(
    settings: Settings, log_dir: Path, fake_llm: FakeLLM, private_redis: PrivateRedis
) -> None:
    broker = start_broker(log_dir, "tansu-outage")
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    topics = [f"analysis.tasks.{uuid.uuid4().hex[:8]}", f"analysis.dlq.{uuid.uuid4().hex[:8]}"]
    stack_settings = replace(
        settings,
        celery_broker_url=private_redis.url,
        celery_result_backend=private_redis.url,
        kafka_bootstrap_servers=broker.bootstrap,
        kafka_tasks_topic=topics[0],
        kafka_dlq_topic=topics[1],
    )
    fake_llm.fail_matching(FAILS, Fault.status(500))
    restarted = []
    try:
        with running_stack(stack_settings, log_dir) as stack:
            store = stack.store
            broker.kill()  # Kafka is down from here on
            launcher = build_celery(stack.settings).launcher
            event_ids = [unique("evt-dead") for _ in range(5)]
            for offset, event_id in enumerate(event_ids):
                request = run_request(event_id=event_id, segments=[{"id": "s1", "text": f"{FAILS} {event_id}"}])
                origin = SourceMessage(topics[0], 0, offset, b"k", f'{{"event_id": "{event_id}"}}'.encode())
                submit_analysis(
                    request, source="kafka", store=store, launcher=launcher, queue=stack.settings.celery_batch_queue,
                    lease=timedelta(seconds=15), origin=origin.to_json(),
                )  # fmt: skip
            wait_until(lambda: finished(store, set(event_ids)), 60, "the runs to fail")
            run_ids = {r.id for r in runs_for(store, set(event_ids))}
            assert {r.status for r in runs_for(store, set(event_ids))} == {"failed"}
            assert sum(e.run_id in run_ids for e in store.outbox_entries()) == 5  # decided, not yet sent

            private_redis.restart()  # Redis forgets everything
            time.sleep(3)
            assert sum(e.run_id in run_ids for e in store.outbox_entries()) == 5

            restarted.append(start_broker(log_dir, "tansu-outage", port=port))  # Kafka is back, empty
            create_topics(broker.bootstrap, topics)
            back_at = time.monotonic()
            wait_until(
                lambda: len(read_dead_letters(broker.bootstrap, topics[1], timeout_s=2)) >= 5, 90, "the dead letters"
            )
            delivered = time.monotonic() - back_at
            time.sleep(3)  # nothing more may arrive

            letters = read_dead_letters(broker.bootstrap, topics[1], timeout_s=3)
            assert sorted(letter.event_id or "" for letter in letters) == sorted(event_ids)  # each once
            assert {letter.stage for letter in letters} == {"processing"}
            assert not any(e.run_id in run_ids for e in store.outbox_entries())
            report(
                "Redis restarted while dead letters waited for Kafka",
                letters=5,
                lost=5 - len({letter.event_id for letter in letters}),
                duplicated=len(letters) - len({letter.event_id for letter in letters}),
                all_delivered_after_kafka_returned=f"{delivered:.1f} s",
            )
    finally:
        broker.kill()
        for again in restarted:
            again.kill()


def test_a_redis_failover_read_only_phase_dead_letters_nothing_and_analyses_each_event_once(
    kafka_settings: Settings, log_dir: Path, fake_llm: FakeLLM, private_redis: PrivateRedis
) -> None:
    events = [task_event(2) for _ in range(20)]
    ids = {str(e["event_id"]) for e in events}
    stack_settings = replace(
        kafka_settings, celery_broker_url=private_redis.url, celery_result_backend=private_redis.url
    )
    with running_stack(stack_settings, log_dir) as stack:
        store = stack.store
        private_redis.demote()  # every write now answers READONLY
        stack.produce([as_message(e) for e in events])
        bridge = stack.start_bridge()
        wait_until(lambda: "read only replica" in bridge.log_tail(200), 60, "the bridge to meet READONLY")
        time.sleep(5)
        assert read_dead_letters(*stack.dlq, timeout_s=2) == []
        assert not any(r.status != "pending" for r in runs_for(store, ids))

        private_redis.promote()
        promoted_at = time.monotonic()
        wait_until(lambda: finished(store, ids), 120, "every event after the failover")
        recovery = time.monotonic() - promoted_at

        runs = runs_for(store, ids)
        assert len(runs) == 20 and {r.status for r in runs} == {"ok"}
        assert set(ok_calls_per_worker(store, [r.id for r in runs]).values()) == {1}
        assert read_dead_letters(*stack.dlq, timeout_s=2) == []
        assert bridge.alive()
        report(
            "Redis READONLY (failover) while events arrive",
            events=20,
            dead_lettered=0,
            duplicated=0,
            all_stored_after_redis_accepted_writes=f"{recovery:.1f} s",
        )
