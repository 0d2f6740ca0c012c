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
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
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

#: The fan-in and the error path outlast a brief database or broker outage.
RETRY_INFRASTRUCTURE: dict[str, Any] = {
    "autoretry_for": (OperationalError, KombuOperationalError, RedisConnectionError),
    "retry_backoff": True,
    "retry_backoff_max": 30,
    "max_retries": 8,
}

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

    @app.task(name=AGGREGATE_TASK, bind=True, shared=False, **RETRY_INFRASTRUCTURE)
    def aggregate(self: Task, results: list[JSON], run_id: str) -> JSON:
        run = aggregate_results(run_id, results, store=services_of(self.app).store)
        log.info("run %s event %s finished: %s %s", run.id, run.event_id, run.status, run.worker_statuses)
        _dead_letter_if_failed(self.app, run, "AllWorkersFailed", "all four workers failed")
        return bundle_response(run)

    @app.task(name=CHORD_FAILED_TASK, bind=True, shared=False, **RETRY_INFRASTRUCTURE)
    def chord_failed(self: Task, failed_task_id: str, run_id: str) -> None:
        """The chord failed as a whole (the aggregate failed, or a hard time limit)."""
        cause = self.app.AsyncResult(failed_task_id).result
        reason = f"chord failed: {cause!r}" if cause is not None else "chord failed"
        run = fail_run(run_id, reason, store=services_of(self.app).store)
        log.error("run %s event %s: %s -> %s", run.id, run.event_id, reason, run.status)
        _dead_letter_if_failed(self.app, run, "ChordFailed", reason)

    @app.task(
        name=DEAD_LETTER_TASK,
        bind=True,
        shared=False,
        autoretry_for=(DeadLetterError,),
        retry_backoff=True,
        retry_backoff_max=60,
        max_retries=None,  # never drop a dead letter: retry until Kafka is back
    )
    def dead_letter(self: Task, run_id: str, error_type: str, message: str) -> None:
        run = services_of(self.app).store.get_run(run_id)
        if run is None:
            raise LookupError(f"run {run_id} not found")
        reason = DeadLetterReason("processing", error_type, message, worker_errors=dict(run.errors or {}))
        dead_letter_publisher(self.app).publish(
            SourceMessage.from_json(run.origin or {}),
            reason,
            event_id=run.event_id,
            context_id=run.context_id,
            run_id=run.id,
        )
        log.warning("run %s event %s dead-lettered: %s", run.id, run.event_id, message)


def _dead_letter_if_failed(app: Celery, run: AnalysisRun, error_type: str, message: str) -> None:
    """A failed run of a Kafka event goes to the DLQ (by a task with its own retries)."""
    if run.status == "failed" and run.source == "kafka":
        queue = app.orchestrator_settings.celery_batch_queue
        app.send_task(DEAD_LETTER_TASK, args=(run.id, error_type, message), queue=queue)


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
