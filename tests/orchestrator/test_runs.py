"""Claiming and launching runs: what happens when launching fails or races."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from kombu.exceptions import OperationalError
from sqlalchemy import create_engine, update

from orchestrator.config import Settings
from orchestrator.domain import AnalysisRequest, Segment
from orchestrator.models import AnalysisRun
from orchestrator.runs import (
    ClaimInProgress,
    relaunch_stuck_runs,
    submit_analysis,
    submit_analysis_waiting,
    wait_for_bundle,
)
from orchestrator.store import RunStore
from tasks.celery_app import create_celery
from tests.factories import make_segments, unique
from tests.services import Process, wait_until


def request(event_id: str) -> AnalysisRequest:
    segments = tuple(Segment(**s) for s in make_segments(3))
    return AnalysisRequest(context_id=unique("ctx"), segments=segments, event_id=event_id)


def unreachable_broker(settings: Settings) -> Celery:
    """A Celery app whose broker is down (its result backend is fine)."""
    app = create_celery(
        replace(settings, celery_broker_url="redis://127.0.0.1:1/0", celery_result_backend=settings.result_backend)
    )
    app.conf.broker_connection_max_retries = 1
    app.conf.task_publish_retry = False
    return app


def test_a_launch_that_fails_releases_the_claim_so_a_retry_analyses_the_event(
    settings: Settings, store: RunStore, celery_app: Celery, celery_worker: Process
) -> None:
    event_id = unique("evt")
    broken = unreachable_broker(settings)

    with pytest.raises(OperationalError):
        submit_analysis(request(event_id), source="kafka", store=store, celery_app=broken, queue="q")
    assert store.get_run(event_id) is None

    queue = settings.celery_batch_queue
    submission = submit_analysis(request(event_id), source="kafka", store=store, celery_app=celery_app, queue=queue)
    assert submission.launched
    assert wait_for_bundle(submission, store=store, timeout=20)["status"] == "ok"


def test_a_young_unlaunched_claim_is_in_progress_not_a_duplicate(store: RunStore, celery_app: Celery) -> None:
    event_id = unique("evt")
    store.claim_run(event_id=event_id, context_id="c", source="kafka", request={"segments": make_segments(1)})

    with pytest.raises(ClaimInProgress):
        submit_analysis(request(event_id), source="kafka", store=store, celery_app=celery_app, queue="q")
    with pytest.raises(ClaimInProgress):
        submit_analysis_waiting(
            request(event_id), timeout=0.2, source="api", store=store, celery_app=celery_app, queue="q"
        )


def test_a_failed_replay_launch_puts_the_run_back_to_failed_at_its_old_attempt(
    settings: Settings, store: RunStore
) -> None:
    event_id = unique("evt")
    claim = store.claim_run(event_id=event_id, context_id="c", source="kafka", request={"segments": make_segments(1)})
    store.mark_launched(claim.run.id)
    store.finish_run(claim.run.id, status="failed", result={}, worker_statuses={}, errors={})
    broken = unreachable_broker(settings)

    with pytest.raises(OperationalError):
        submit_analysis(request(event_id), source="kafka", store=store, celery_app=broken, queue="q", attempt=2)

    run = store.get_run(event_id)
    assert run is not None and run.status == "failed" and run.attempt == 1


def test_a_run_whose_chord_was_lost_is_relaunched_once_and_completes(
    settings: Settings, store: RunStore, celery_app: Celery, celery_worker: Process, database_url: str
) -> None:
    event_id = unique("evt-lost")
    claim = store.claim_run(
        event_id=event_id, context_id="c", source="kafka", request={"segments": make_segments(2), "prompt_ids": {}}
    )
    store.mark_launched(claim.run.id)  # "launched", but no chord ever reached the broker
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            update(AnalysisRun)
            .where(AnalysisRun.id == claim.run.id)
            .values(launched_at=datetime.now(UTC) - timedelta(hours=1))
        )
    engine.dispose()
    queues = {"kafka": settings.celery_batch_queue}
    options = {"store": store, "celery_app": celery_app, "older_than": timedelta(minutes=10), "queues": queues}

    assert [r.id for r in relaunch_stuck_runs(**options, dry_run=True)] == [claim.run.id]
    assert [r.id for r in relaunch_stuck_runs(**options)] == [claim.run.id]
    assert relaunch_stuck_runs(**options) == []  # relaunched once, not again

    wait_until(lambda: (run := store.get_run(event_id)) is not None and run.status == "ok", 20, "the run")
    assert len(store.calls_for(claim.run.id)) == 4
