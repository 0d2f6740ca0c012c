"""How a run becomes a Celery chord: one task per worker of its pipeline, then the aggregate.

Only task *names* are used here, so the core does not import the task
module. Every launch carries the run's claim token: a worker task whose
token is no longer the run's does nothing (see ``RunStore.load_job``), so a
launcher that lost its claim cannot analyse the run a second time. Task ids
derive from the run id, the attempt and the token.

Once a chord is handed to the broker, ``LaunchMarkers`` leaves a marker
beside it in the broker's Redis. It is the sweeper's evidence: a run still
pending without its marker lost its chord (Redis restarted without its data,
the launcher died halfway through publishing it, or it outlived
``CELERY_RESULT_EXPIRES``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import redis
from celery import Celery, chord
from celery.canvas import Signature
from celery.result import AsyncResult

from orchestrator.models import AnalysisRun
from orchestrator.pipeline import Pipeline
from orchestrator.tracing import continued_span

ANALYSE_PART_TASK = "orchestrator.analyse_part"
AGGREGATE_TASK = "orchestrator.aggregate"
CHORD_FAILED_TASK = "orchestrator.chord_failed"


class LaunchMarkers(Protocol):
    def mark(self, run_id: str, token: str) -> None: ...

    def present(self, run_id: str, token: str | None) -> bool: ...


class RedisLaunchMarkers:
    """Markers in the broker's Redis that live as long as chord results do."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def mark(self, run_id: str, token: str) -> None:
        self.client.set(_marker_key(run_id, token), b"1", ex=self.ttl_s)

    def present(self, run_id: str, token: str | None) -> bool:
        return token is not None and bool(self.client.exists(_marker_key(run_id, token)))


class InProcessLaunchMarkers:
    """Embedded mode: the chord runs in this process, it cannot be lost elsewhere."""

    def mark(self, run_id: str, token: str) -> None:
        pass

    def present(self, run_id: str, token: str | None) -> bool:
        return True


def _marker_key(run_id: str, token: str) -> str:
    return f"orchestrator:launch:{run_id}:{token}"


def chord_id(run_id: str, attempt: int, token: str) -> str:
    return f"{run_id}.{attempt}.{token[:8]}"


def build_chord(
    app: Celery,
    run_id: str,
    *,
    workers: Sequence[str],
    attempt: int,
    token: str,
    queue: str,
    traceparent: str | None = None,
) -> Signature:
    headers = {"traceparent": traceparent} if traceparent else {}
    options = {"queue": queue, "headers": headers}
    group_id = chord_id(run_id, attempt, token)
    header = [
        app.signature(ANALYSE_PART_TASK, args=(run_id, token, worker), task_id=f"{group_id}.{worker}", **options)
        for worker in workers
    ]
    body = app.signature(AGGREGATE_TASK, args=(run_id, attempt, token), task_id=group_id, **options)
    # Old-style errback: Celery enqueues it as a task of its own, called with
    # the failed callback's id and then these arguments.
    body.link_error(app.signature(CHORD_FAILED_TASK, args=(run_id, attempt, token), queue=queue))
    return chord(header, body)


class ChordLauncher:
    """Hands runs' chords to the broker (or runs them in-process when eager)."""

    def __init__(self, app: Celery, markers: LaunchMarkers, pipelines: Mapping[str, Pipeline]) -> None:
        self.app = app
        self.markers = markers
        self.pipelines = pipelines

    def launch(
        self,
        run_id: str,
        *,
        pipeline: str,
        attempt: int,
        token: str,
        queue: str,
        traceparent: str | None = None,
    ) -> AsyncResult:
        signature = build_chord(
            self.app,
            run_id,
            workers=self.pipelines[pipeline].worker_names,
            attempt=attempt,
            token=token,
            queue=queue,
            traceparent=traceparent,
        )
        # A relaunch by the sweeper has no span around it: its chord continues the run's stored trace.
        with continued_span("chord publish", traceparent, run_id=run_id, pipeline=pipeline, attempt=attempt):
            result: AsyncResult = signature.apply_async()
        # After the whole chord: a launcher that dies halfway through
        # publishing leaves no marker, and the sweeper relaunches the run.
        self.markers.mark(run_id, token)
        return result

    def launch_stored(self, run: AnalysisRun, token: str, queue: str) -> AsyncResult:
        """Launch the chord of a run already stored (a late launch or a relaunch) under ``token``."""
        return self.launch(
            run.id, pipeline=run.pipeline, attempt=run.attempt, token=token, queue=queue, traceparent=run.traceparent
        )
