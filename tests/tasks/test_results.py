"""The result backend: a process that never waits for results keeps nothing of the chords it launches."""

from __future__ import annotations

import gc
import uuid
from dataclasses import replace

import pytest
import redis

from orchestrator.config import Settings
from orchestrator.wiring import build_bridge, build_celery, celery_from_env
from tasks.results import AWAITS_RESULTS
from tests.conftest import settings_env


def subscribed_channels(client: redis.Redis, prefix: str) -> int:
    return sum(1 for channel in client.pubsub_channels() if channel.decode().startswith(prefix))


@pytest.mark.parametrize("awaits_results,kept_per_launch", [(False, 0), (True, 4)])
def test_launched_chords_keep_subscriptions_only_in_a_process_that_waits_for_results(
    settings: Settings, awaits_results: bool, kept_per_launch: int
) -> None:
    # Queues nobody consumes: the chords stay unanswered, as in a bridge under load.
    suffix = uuid.uuid4().hex[:8]
    app = build_celery(
        replace(settings, celery_realtime_queue=f"idle-rt-{suffix}", celery_batch_queue=f"idle-{suffix}")
    )
    app.conf[AWAITS_RESULTS] = awaits_results
    client = redis.Redis.from_url(str(settings.celery_broker_url))
    run_ids = [f"subscriptions-{suffix}-{index}" for index in range(5)]

    for run_id in run_ids:
        app.launcher.launch(run_id, pipeline="analysis", attempt=1, token=uuid.uuid4().hex, queue=f"idle-{suffix}")
    gc.collect()

    assert subscribed_channels(client, f"celery-task-meta-subscriptions-{suffix}") == kept_per_launch * len(run_ids)
    assert len(app.backend._pending_results[0]) == kept_per_launch * len(run_ids)


def test_the_worker_and_the_bridge_never_wait_for_results_and_the_api_does(
    settings: Settings, kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    assert celery_from_env().conf[AWAITS_RESULTS] is False
    assert build_bridge(kafka_settings).launcher.app.conf[AWAITS_RESULTS] is False
    assert build_celery(settings).conf.get(AWAITS_RESULTS, True) is True
