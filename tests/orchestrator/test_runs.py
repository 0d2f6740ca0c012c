"""Claiming and launching runs: what happens when launching fails or races, and sweeping stuck runs."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest

from orchestrator.chord import ChordLauncher, InProcessLaunchMarkers
from orchestrator.config import Settings
from orchestrator.errors import is_infrastructure
from orchestrator.pipelines.analysis import PIPELINE as ANALYSIS
from orchestrator.runs import (
    ClaimInProgress,
    relaunch_stuck_runs,
    submit_analysis,
    submit_analysis_waiting,
    wait_for_bundle,
)
from orchestrator.store import RunStore
from orchestrator.sweeper import sweep_stuck_runs
from orchestrator.wiring import build_celery
from tasks.celery_app import OrchestratorCelery
from tests.factories import LEASE, backdate_launch, claim_run, expire_lease, finish_claimed, run_request, unique
from tests.services import Process, wait_until


def unreachable_broker(settings: Settings) -> ChordLauncher:
    """A launcher whose broker is down (its result backend is fine)."""
    app = build_celery(
        replace(settings, celery_broker_url="redis://127.0.0.1:1/0", celery_result_backend=settings.result_backend)
    )
    app.conf.broker_connection_max_retries = 1
    app.conf.task_publish_retry = False
    return app.launcher


class ForgottenMarkers(InProcessLaunchMarkers):
    """Markers lost as if Redis had restarted without its data."""

    def present(self, run_id: str, token: str | None) -> bool:
        return False


def submit(store: RunStore, launcher: ChordLauncher, event_id: str, **options: object) -> object:
    return submit_analysis(
        run_request(event_id=event_id), source="kafka", store=store, launcher=launcher, queue=options.pop("queue", "q"),
        lease=LEASE, **options,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_launch_that_fails_releases_the_claim_so_a_retry_analyses_the_event(
    settings: Settings, store: RunStore, celery_app: OrchestratorCelery, celery_worker: Process
) -> None:
    event_id = unique("evt")

    with pytest.raises(Exception) as failure:
        submit(store, unreachable_broker(settings), event_id)
    assert is_infrastructure(failure.value)
    assert store.get_run(event_id) is None

    submission = submit(store, celery_app.launcher, event_id, queue=settings.celery_batch_queue)
    assert submission.launched  # type: ignore[attr-defined]
    assert wait_for_bundle(submission, pipeline=ANALYSIS, store=store, timeout=20)["status"] == "ok"  # type: ignore[arg-type]


def test_a_claim_within_its_lease_is_in_progress_not_a_duplicate(
    store: RunStore, celery_app: OrchestratorCelery
) -> None:
    event_id = unique("evt")
    claim_run(store, event_id=event_id, source="kafka")

    with pytest.raises(ClaimInProgress):
        submit(store, celery_app.launcher, event_id)
    with pytest.raises(ClaimInProgress):
        submit_analysis_waiting(
            run_request(event_id=event_id), timeout=0.2, source="api", store=store, launcher=celery_app.launcher,
            queue="q", lease=LEASE,
        )  # fmt: skip


def test_a_claim_whose_lease_expired_is_taken_over_and_launched(
    settings: Settings, store: RunStore, celery_app: OrchestratorCelery, celery_worker: Process
) -> None:
    event_id = unique("evt")
    orphan = claim_run(store, event_id=event_id, source="kafka")
    expire_lease(store, orphan.run.id)

    submission = submit(store, celery_app.launcher, event_id, queue=settings.celery_batch_queue)

    assert submission.launched  # type: ignore[attr-defined]
    assert wait_for_bundle(submission, pipeline=ANALYSIS, store=store, timeout=20)["status"] == "ok"  # type: ignore[arg-type]
    run = store.get_run(event_id)
    assert run is not None and run.claim_token != orphan.token


def test_a_launcher_paused_past_its_lease_does_not_launch(store: RunStore, celery_app: OrchestratorCelery) -> None:
    event_id = unique("evt")
    launches: list[str] = []

    class PausingStore(RunStore):
        def claim_run(self, **kwargs: object):  # type: ignore[no-untyped-def]
            claim = super().claim_run(**kwargs)  # type: ignore[arg-type]
            time.sleep(0.3)  # "paused" past half the lease: the launcher checks its lease
            expire_lease(store, claim.run.id)
            assert store.take_over_claim(claim.run.id, LEASE) is not None  # someone else took it over
            return claim

    class RecordingLauncher(ChordLauncher):
        def launch(self, run_id: str, **kwargs: object):  # type: ignore[no-untyped-def]
            launches.append(run_id)

    launcher = RecordingLauncher(celery_app, InProcessLaunchMarkers(), celery_app.launcher.pipelines)
    submission = submit_analysis(
        run_request(event_id=event_id), source="kafka", store=PausingStore(store.engine), launcher=launcher, queue="q",
        lease=timedelta(seconds=0.4),
    )  # fmt: skip

    assert not submission.launched and launches == []


def test_a_failed_replay_launch_puts_the_run_back_to_failed_at_its_old_attempt(
    settings: Settings, store: RunStore
) -> None:
    event_id = unique("evt")
    claimed = claim_run(store, event_id=event_id, source="kafka")
    finish_claimed(store, claimed, "failed")

    with pytest.raises(Exception) as failure:
        submit(store, unreachable_broker(settings), event_id, attempt=2)

    assert is_infrastructure(failure.value)
    run = store.get_run(event_id)
    assert run is not None and run.status == "failed" and run.attempt == 1


def test_a_run_whose_chord_was_lost_is_relaunched_once_and_completes(
    settings: Settings, store: RunStore, celery_app: OrchestratorCelery, celery_worker: Process
) -> None:
    claimed = claim_run(store, source="kafka", segments=2)
    assert claimed.token is not None
    store.mark_launched(claimed.run.id, claimed.token)  # "launched", but no chord ever reached the broker
    backdate_launch(store, claimed.run.id)
    queues = {"kafka": settings.celery_batch_queue}
    options = {"store": store, "launcher": celery_app.launcher, "older_than": timedelta(minutes=10), "queues": queues}

    assert claimed.run.id in [r.id for r in relaunch_stuck_runs(**options, dry_run=True)]  # type: ignore[arg-type]
    assert claimed.run.id in [r.id for r in relaunch_stuck_runs(**options)]  # type: ignore[arg-type]
    assert claimed.run.id not in [r.id for r in relaunch_stuck_runs(**options)]  # type: ignore[arg-type]

    wait_until(lambda: (run := store.get_run(claimed.run.id)) is not None and run.status == "ok", 20, "the run")
    assert len(store.calls_for(claimed.run.id)) == 4


def test_the_sweeper_launches_orphaned_claims_relaunches_lost_chords_and_fails_runs_lost_too_often(
    settings: Settings, store: RunStore, celery_app: OrchestratorCelery, celery_worker: Process
) -> None:
    lease = timedelta(seconds=1)
    orphan = claim_run(store, source="api", lease=lease)  # its launcher died before launching
    lost = claim_run(store, source="kafka", lease=lease)  # launched, then Redis lost the chord
    assert lost.token is not None
    store.mark_launched(lost.run.id, lost.token)
    backdate_launch(store, lost.run.id, timedelta(minutes=1))
    expire_lease(store, orphan.run.id)
    queues = celery_app.queues_by_source
    sweep = {"store": store, "launcher": celery_app.launcher, "queues": queues, "lease": lease}

    report = sweep_stuck_runs(**sweep, markers=ForgottenMarkers(), max_relaunches=1)  # type: ignore[arg-type]
    assert orphan.run.id in report.launched and lost.run.id in report.relaunched
    for run_id in (orphan.run.id, lost.run.id):
        wait_until(lambda run_id=run_id: store.get_run(run_id).status == "ok", 20, "the swept run")  # type: ignore[union-attr]

    gone = claim_run(store, source="kafka", lease=lease)
    assert gone.token is not None
    store.mark_launched(gone.run.id, gone.token)
    backdate_launch(store, gone.run.id, timedelta(minutes=1))
    report = sweep_stuck_runs(**sweep, markers=ForgottenMarkers(), max_relaunches=0)  # type: ignore[arg-type]
    assert gone.run.id in report.failed
    run = store.get_run(gone.run.id)
    assert run is not None and run.status == "failed" and "chord lost" in (run.errors or {})["summary"]
    assert [e.run_id for e in store.outbox_entries()].count(gone.run.id) == 1  # dead-lettered, durably


def test_a_run_whose_marker_is_present_is_left_alone_however_old(
    store: RunStore, celery_app: OrchestratorCelery
) -> None:
    waiting = claim_run(store, source="kafka")
    assert waiting.token is not None
    store.mark_launched(waiting.run.id, waiting.token)
    backdate_launch(store, waiting.run.id, timedelta(days=1))

    report = sweep_stuck_runs(
        store=store, launcher=celery_app.launcher, markers=InProcessLaunchMarkers(), queues=celery_app.queues_by_source,
        lease=LEASE, max_relaunches=2,
    )  # fmt: skip

    assert waiting.run.id not in report.relaunched + report.failed
