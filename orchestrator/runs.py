"""Starting a run and waiting for it: shared by the API, the CLI and the bridge.

``submit_analysis`` claims the event, then launches the chord only if this
caller created the claim, so an event is analysed once however many times it
arrives. ``wait_for_bundle`` waits for the run's outcome.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult

from orchestrator.chord import launch_chord
from orchestrator.domain import JSON, AnalysisRequest, Segment
from orchestrator.models import AnalysisRun
from orchestrator.pipeline import bundle_response
from orchestrator.store import RunStore

log = logging.getLogger(__name__)

#: A claim not launched within this long is taken to be orphaned (its launcher
#: died between claiming and handing the chord to the broker). Launching
#: takes milliseconds; this leaves room for a slow broker, and bounds how
#: long a crashed bridge delays the events it had claimed.
STALE_CLAIM = timedelta(seconds=15)


class UnknownContext(LookupError):
    """Segments were omitted but none are stored for the context."""

    def __init__(self, context_id: str) -> None:
        super().__init__(f"No segments are stored for context {context_id!r}; send its segments at least once.")
        self.context_id = context_id


class ClaimInProgress(RuntimeError):
    """Another caller claimed the event moments ago and has not launched it yet.

    Not a duplicate to skip: that caller may still fail and release the
    claim. Try again shortly (the bridge does not commit the offset).
    """

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id} is being launched by another caller")
        self.event_id = event_id


class RunTimeout(TimeoutError):
    """The run did not finish in time; it goes on and will be stored."""

    def __init__(self, run_id: str, timeout: float) -> None:
        super().__init__(f"run {run_id} did not finish within {timeout:g} s; it is still running")
        self.run_id = run_id


@dataclass(frozen=True)
class Submission:
    run: AnalysisRun
    #: True when this call launched the chord; False for a duplicate event.
    launched: bool
    result: AsyncResult | None = None


def submit_analysis(
    request: AnalysisRequest,
    *,
    source: str,
    store: RunStore,
    celery_app: Celery,
    queue: str,
    traceparent: str | None = None,
    origin: JSON | None = None,
    attempt: int = 1,
) -> Submission:
    """Claim the event and launch its chord, unless the event is known already.

    A known event is launched again only in two cases: its run failed and
    this is a later ``attempt`` (a replayed dead letter), or its claim was
    orphaned before launch. If launching fails, the claim is released and
    the error raised, so a retry starts afresh. Raises ``UnknownContext``
    when segments are omitted and none are stored, ``ClaimInProgress`` when
    another caller has claimed the event and not launched it yet.
    """
    segments, language = _resolve_segments(request, store)
    claim = store.claim_run(
        event_id=request.event_id or str(uuid.uuid4()),
        context_id=request.context_id,
        source=source,
        request={
            "language": language,
            "prompt_ids": request.prompt_ids,
            "segments": [s.to_json() for s in segments],
        },
        traceparent=traceparent,
        origin=origin,
        attempt=attempt,
        save_context=request.segments is not None,
    )
    run = claim.run
    launch_attempt = run.attempt
    reopened_from: int | None = None
    if not claim.created:
        if (
            run.status == "failed"
            and attempt > run.attempt
            and store.reopen_failed_run(run.id, attempt, origin, traceparent)
        ):
            log.info("run %s event %s: replay attempt %d re-opens the failed run", run.id, run.event_id, attempt)
            reopened_from, launch_attempt = run.attempt, attempt
        elif run.launched_at is None and run.status == "pending":
            if not store.take_over_stale_claim(run.id, STALE_CLAIM):
                raise ClaimInProgress(run.event_id)
            log.warning("run %s event %s: relaunching an orphaned claim", run.id, run.event_id)
        else:
            return Submission(run=run, launched=False)
    try:
        result = launch_chord(celery_app, run.id, attempt=launch_attempt, queue=queue, traceparent=traceparent)
    except Exception:
        store.release_claim(run.id, reopened_from)
        raise
    store.mark_launched(run.id)
    return Submission(run=run, launched=True, result=result)


def submit_analysis_waiting(request: AnalysisRequest, *, timeout: float, **kwargs: Any) -> Submission:
    """``submit_analysis`` for callers that wait (API, CLI): a claim in
    progress elsewhere is waited for (up to ``timeout``) instead of raised,
    until it is launched (a duplicate) or released (ours to launch).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return submit_analysis(request, **kwargs)
        except ClaimInProgress:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def relaunch_stuck_runs(
    *, store: RunStore, celery_app: Celery, older_than: timedelta, queues: dict[str, str], dry_run: bool = False
) -> list[AnalysisRun]:
    """Launch again the chords of runs pending for longer than ``older_than``.

    For runs whose chord was lost (say, Redis lost its data). Workers that
    had already succeeded reuse their stored output, so only what is missing
    is analysed. ``queues`` maps a run's source to its Celery queue. Returns
    the runs relaunched (with ``dry_run``, those that would be).
    """
    relaunched = []
    for run in store.stuck_runs(older_than):
        if dry_run:
            relaunched.append(run)
        elif store.take_over_stuck_run(run.id, older_than):
            queue = queues[run.source]
            launch_chord(celery_app, run.id, attempt=run.attempt, queue=queue, traceparent=run.traceparent)
            log.warning("run %s event %s: relaunched after %s pending", run.id, run.event_id, older_than)
            relaunched.append(run)
    return relaunched


def _resolve_segments(request: AnalysisRequest, store: RunStore) -> tuple[tuple[Segment, ...], str | None]:
    if request.segments is not None:
        return request.segments, request.language
    context = store.load_context(request.context_id)
    if context is None:
        raise UnknownContext(request.context_id)
    segments = tuple(Segment.from_json(s) for s in context.segments)
    return segments, request.language or context.language


def wait_for_bundle(submission: Submission, *, store: RunStore, timeout: float) -> JSON:
    """The run's bundle once it has finished; raises ``RunTimeout`` if it has not.

    A launched run is awaited through its chord result; a duplicate event's
    run (launched by someone else) is awaited by watching the database.
    """
    run_id = submission.run.id
    deadline = time.monotonic() + timeout
    if submission.result is not None:
        try:
            # follow_parents=False: a failed header must not raise here; the
            # chord's error path stores the run and the poll below finds it.
            bundle: Any = submission.result.get(timeout=timeout, follow_parents=False, propagate=False)
        except CeleryTimeoutError:
            raise RunTimeout(run_id, timeout) from None
        if isinstance(bundle, dict):
            return bundle
    return bundle_response(_poll_until_finished(run_id, store, deadline, timeout))


def _poll_until_finished(run_id: str, store: RunStore, deadline: float, timeout: float) -> AnalysisRun:
    delay = 0.02
    while True:
        run = store.get_run(run_id)
        if run is not None and run.status != "pending":
            return run
        if time.monotonic() >= deadline:
            raise RunTimeout(run_id, timeout)
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.5)
