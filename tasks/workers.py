"""Thin Celery tasks over ``orchestrator.pipeline``.

Retry policy lives in ``ModelWorkerTask``: retryable model errors (and a
database that is briefly unreachable) are retried with backoff; after the
last retry, or on any other error, the task *returns* a failure outcome so
the chord's callback always runs and decides the status. A dead worker's
tasks are redelivered (acks_late); should the chord fail nonetheless (the
aggregate itself failing, a hard time limit under prefork), ``chord_failed``
records the run and dead-letters it if it came from Kafka.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry
from sqlalchemy.exc import OperationalError

from bridge.dlq import DeadLetterError, DeadLetterReason, SourceMessage
from orchestrator.adapters.base import RETRYABLE_ERRORS, TransientModelError
from orchestrator.chord import AGGREGATE_TASK, CHORD_FAILED_TASK, worker_task_name
from orchestrator.config import Settings
from orchestrator.domain import JSON, WORKERS
from orchestrator.models import AnalysisRun
from orchestrator.pipeline import WorkerOutcome, aggregate_results, analyse_part, bundle_response, fail_run
from orchestrator.retry import retry_delay
from tasks.celery_app import dead_letter_publisher, services_of

DEAD_LETTER_TASK = "orchestrator.dead_letter"

#: Model errors worth another try, and a database that is briefly unreachable.
RETRIED_BY_WORKER_TASKS: tuple[type[Exception], ...] = (*RETRYABLE_ERRORS, OperationalError)

log = logging.getLogger(__name__)


class ModelWorkerTask(Task):  # type: ignore[misc]
    #: Which of the four workers this task runs; set at registration.
    worker: str = ""
    retry_backoff_max: float = 20.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except RETRIED_BY_WORKER_TASKS as exc:
            if self.request.retries < self.max_retries:
                retry_after = exc.retry_after if isinstance(exc, TransientModelError) else None
                countdown = retry_delay(self.request.retries, retry_after, self.retry_backoff_max)
                raise self.retry(exc=exc, countdown=countdown) from exc
            return WorkerOutcome.failure(self.worker, exc).to_json()
        except Exception as exc:
            log.exception("%s task for run %s failed", self.worker, args[0] if args else "?")
            return WorkerOutcome.failure(self.worker, exc).to_json()


def register_tasks(app: Celery, settings: Settings) -> None:
    for worker in WORKERS:
        _register_worker_task(app, settings, worker)

    # A briefly unreachable database must not lose the fan-in: retry it.
    @app.task(
        name=AGGREGATE_TASK,
        bind=True,
        shared=False,
        autoretry_for=(OperationalError,),
        retry_backoff=True,
        retry_backoff_max=30,
        max_retries=8,
    )
    def aggregate(self: Task, results: list[JSON], run_id: str) -> JSON:
        run = aggregate_results(run_id, results, store=services_of(self.app).store)
        log.info("run %s event %s finished: %s %s", run.id, run.event_id, run.status, run.worker_statuses)
        _dead_letter_if_failed(self.app, run)
        return bundle_response(run)

    @app.task(
        name=CHORD_FAILED_TASK,
        bind=True,
        shared=False,
        autoretry_for=(OperationalError,),
        retry_backoff=True,
        retry_backoff_max=30,
        max_retries=8,
    )
    def chord_failed(self: Task, failed_task_id: str, run_id: str) -> None:
        """The chord failed as a whole (e.g. a worker process died mid-task)."""
        cause = self.app.AsyncResult(failed_task_id).result
        reason = f"chord failed: {cause!r}" if cause is not None else "chord failed"
        run = fail_run(run_id, reason, store=services_of(self.app).store)
        log.error("run %s event %s: %s -> %s", run.id, run.event_id, reason, run.status)
        _dead_letter_if_failed(self.app, run)

    @app.task(
        name=DEAD_LETTER_TASK,
        bind=True,
        shared=False,
        autoretry_for=(DeadLetterError,),
        retry_backoff=True,
        retry_backoff_max=60,
        max_retries=None,  # never drop a dead letter: retry until Kafka is back
    )
    def dead_letter(self: Task, run_id: str) -> None:
        run = services_of(self.app).store.get_run(run_id)
        if run is None:
            raise LookupError(f"run {run_id} not found")
        dead_letter_publisher(self.app).publish(
            SourceMessage.from_json(run.origin or {}),
            processing_failure(run),
            event_id=run.event_id,
            context_id=run.context_id,
            run_id=run.id,
        )
        log.warning("run %s event %s dead-lettered: all workers failed", run.id, run.event_id)


def _dead_letter_if_failed(app: Celery, run: AnalysisRun) -> None:
    """Events from Kafka whose four workers all failed go to the DLQ."""
    if run.status == "failed" and run.source == "kafka":
        app.send_task(DEAD_LETTER_TASK, args=(run.id,), queue=app.orchestrator_settings.celery_batch_queue)


def processing_failure(run: AnalysisRun) -> DeadLetterReason:
    return DeadLetterReason(
        stage="processing",
        error_type="AllWorkersFailed",
        message="all four workers failed",
        worker_errors=dict(run.errors or {}),
    )


def _register_worker_task(app: Celery, settings: Settings, worker: str) -> None:
    @app.task(
        name=worker_task_name(worker),
        shared=False,
        base=ModelWorkerTask,
        bind=True,
        worker=worker,
        max_retries=settings.model_max_retries,
        retry_backoff_max=settings.model_retry_backoff_max,
    )
    def analyse(self: ModelWorkerTask, run_id: str) -> JSON:
        services = services_of(self.app)
        outcome = analyse_part(
            worker,
            run_id,
            store=services.store,
            adapter=services.adapter,
            model_name=services.model_name,
            attempt=self.request.retries + 1,
        )
        return outcome.to_json()
