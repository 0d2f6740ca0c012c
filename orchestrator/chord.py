"""How a run becomes a Celery chord: four worker tasks, then the aggregate.

Only task *names* are used here, so the core does not import the task
module. Task ids derive from the run id and attempt, so a chord relaunched
for the same attempt reuses its ids, and a replayed run gets fresh ones.
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


def build_chord(app: Celery, run_id: str, *, attempt: int = 1, queue: str, traceparent: str | None = None) -> Signature:
    headers = {"traceparent": traceparent} if traceparent else {}
    options = {"queue": queue, "headers": headers}
    chord_id = f"{run_id}.{attempt}"
    header = [app.signature(worker_task_name(w), args=(run_id,), task_id=f"{chord_id}.{w}", **options) for w in WORKERS]
    body = app.signature(AGGREGATE_TASK, args=(run_id,), task_id=chord_id, **options)
    # Old-style errback: Celery enqueues it as a task of its own, called with
    # the failed callback's id and then these arguments.
    body.link_error(app.signature(CHORD_FAILED_TASK, args=(run_id,), queue=queue))
    return chord(header, body)


def launch_chord(
    app: Celery, run_id: str, *, attempt: int = 1, queue: str, traceparent: str | None = None
) -> AsyncResult:
    """Hand the run's chord to the broker (or run it in-process when eager)."""
    signature = build_chord(app, run_id, attempt=attempt, queue=queue, traceparent=traceparent)
    result: AsyncResult = signature.apply_async()
    return result
