"""How a run becomes a Celery chord: four worker tasks, then the aggregate.

Only task *names* are used here, so the core does not import the task
module. Task ids derive from the run id: the aggregate's id is the run id,
and a chord relaunched for the same run reuses the same ids.
"""

from __future__ import annotations

from celery import Celery, chord
from celery.canvas import Signature
from celery.result import AsyncResult

from orchestrator.domain import WORKERS

AGGREGATE_TASK = "orchestrator.aggregate"
CHORD_FAILED_TASK = "orchestrator.chord_failed"


def worker_task_name(worker: str) -> str:
    return f"orchestrator.worker.{worker}"


def build_chord(app: Celery, run_id: str, *, queue: str, traceparent: str | None = None) -> Signature:
    headers = {"traceparent": traceparent} if traceparent else {}
    options = {"queue": queue, "headers": headers}
    header = [app.signature(worker_task_name(w), args=(run_id,), task_id=f"{run_id}:{w}", **options) for w in WORKERS]
    body = app.signature(AGGREGATE_TASK, args=(run_id,), task_id=run_id, **options)
    # Old-style errback: Celery enqueues it as a task of its own, called with
    # the failed callback's id, which is the run id.
    body.link_error(app.signature(CHORD_FAILED_TASK, queue=queue))
    return chord(header, body)


def launch_chord(app: Celery, run_id: str, *, queue: str, traceparent: str | None = None) -> AsyncResult:
    """Hand the run's chord to the broker (or run it in-process when eager)."""
    result: AsyncResult = build_chord(app, run_id, queue=queue, traceparent=traceparent).apply_async()
    return result
