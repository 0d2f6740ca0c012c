"""The Celery tasks: thin wrappers over ``orchestrator.pipeline``.

``analyse_part`` runs one worker of a run (the chord's header has one per
worker); ``aggregate`` is the chord's callback (the fan-in); ``chord_failed``
is its error path, for when the chord fails as a whole (the aggregate itself
failing, a task that never returned). The retry policies live in
``tasks.base``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from orchestrator.chord import AGGREGATE_TASK, ANALYSE_PART_TASK, CHORD_FAILED_TASK
from orchestrator.domain import JSON
from orchestrator.engine import aggregate_results, analyse_part, bundle_response, fail_run
from orchestrator.live import BUNDLE_EVENT
from orchestrator.models import AnalysisRun
from tasks.base import ModelWorkerTask, OrchestratorTask

log = logging.getLogger(__name__)


@shared_task(bind=True, base=ModelWorkerTask, name=ANALYSE_PART_TASK)
def analyse_part_task(
    self: ModelWorkerTask,
    run_id: str,
    token: str,
    worker: str,
    attempt: int = 1,
    level: int = 0,
    fallback_reason: str | None = None,
) -> JSON:
    services = self.services
    model = services.models[level]
    outcome = analyse_part(
        services.pipelines,
        worker,
        run_id,
        token,
        store=services.store,
        adapter=model.adapter,
        model_name=model.name,
        attempt=attempt,
        cache=services.response_cache,
        prices=services.prices,
        level=level,
        fallback_reason=fallback_reason,
    )
    return outcome.to_json()


@shared_task(bind=True, base=OrchestratorTask, name=AGGREGATE_TASK)
def aggregate(self: OrchestratorTask, results: list[JSON], run_id: str, attempt: int, token: str) -> JSON | None:
    services = self.services
    run = aggregate_results(services.pipelines, run_id, results, attempt=attempt, token=token, store=services.store)
    _finished(self, run)
    if run is None:  # a duplicate: answer with what is stored
        run = services.store.get_run(run_id)
        if run is None or run.status == "pending":
            return None
        return bundle_response(run, services.pipelines[run.pipeline])
    bundle = bundle_response(run, services.pipelines[run.pipeline])
    services.run_events.publish(run_id, token, BUNDLE_EVENT, bundle)
    return bundle


@shared_task(bind=True, base=OrchestratorTask, name=CHORD_FAILED_TASK)
def chord_failed(self: OrchestratorTask, failed_task_id: str, run_id: str, attempt: int, token: str) -> None:
    """The chord failed as a whole (the aggregate failed, or a task never returned)."""
    cause: Any = self.app.AsyncResult(failed_task_id).result
    reason = f"chord failed: {cause!r}" if cause is not None else "chord failed"
    services = self.services
    run = fail_run(services.pipelines, run_id, reason, attempt=attempt, token=token, store=services.store)
    _finished(self, run, reason)
    if run is not None:
        services.run_events.publish(run_id, token, BUNDLE_EVENT, bundle_response(run, services.pipelines[run.pipeline]))


def _finished(task: OrchestratorTask, run: AnalysisRun | None, reason: str = "") -> None:
    if run is None:
        return
    log.info("run %s event %s finished: %s %s %s", run.id, run.event_id, run.status, run.worker_statuses, reason)
    if run.status == "failed" and run.source == "kafka" and task.app.maintenance is not None:
        task.app.maintenance.wake()  # its dead letter is in the outbox: publish it now
