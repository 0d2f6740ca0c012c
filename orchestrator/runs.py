"""Starting a run and waiting for it: shared by the API, the CLI and the bridge.

``submit_analysis`` claims the event, then launches the chord only if this
caller holds the claim, so an event is analysed once however many times it
arrives. ``wait_for_bundle`` waits for the run's outcome.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult

from orchestrator.chord import ChordLauncher
from orchestrator.domain import JSON, RunRequest, stored_request
from orchestrator.engine import bundle_response
from orchestrator.errors import BadInput, TryLater, is_infrastructure
from orchestrator.live import BUNDLE_EVENT, WORKER_EVENT, RunEvents
from orchestrator.models import ANSWERED_CALL_STATUSES, AnalysisRun, utcnow
from orchestrator.pipeline import Pipeline
from orchestrator.store import RunStore
from orchestrator.tracing import continued_span

log = logging.getLogger(__name__)

#: While waiting for a chord's result, the run is also looked up in the
#: database at most this often: if the result backend lost the result, the
#: stored run is the answer.
DATABASE_CHECK_MAX_S = 2.0


class UnknownContext(BadInput, LookupError):
    """Segments were omitted but none are stored for the context."""

    def __init__(self, context_id: str) -> None:
        super().__init__(f"No segments are stored for context {context_id!r}; send its segments at least once.")
        self.context_id = context_id
        self.field_errors = {"segments": [str(self)]}


class ClaimInProgress(TryLater):
    """Another caller claimed the event moments ago and has not launched it yet.

    Not a duplicate to skip: that caller may still fail and release the
    claim. Try again shortly (the bridge does not commit the offset).
    """

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id} is being launched by another caller")
        self.event_id = event_id


class RunTimeout(Exception):
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
    request: RunRequest,
    *,
    source: str,
    store: RunStore,
    launcher: ChordLauncher,
    queue: str,
    lease: timedelta,
    traceparent: str | None = None,
    origin: JSON | None = None,
    attempt: int = 1,
) -> Submission:
    """Claim the event and launch its chord, unless the event is known already.

    A known event is launched again only in two cases: its run failed and
    this is a later ``attempt`` (a replayed dead letter), or its claim's
    lease expired before anyone launched it (the launcher died). If launching
    fails, the claim is released and the error raised, so a retry starts
    afresh. Raises ``UnknownContext`` when segments are omitted and none are
    stored, ``ClaimInProgress`` when another caller holds an unexpired claim
    on the event and has not launched it yet.
    """
    run_input = _complete_input(request, store)
    stores_context = launcher.pipelines[request.pipeline].stores_context and request.input_complete
    # Taken before the claim, so that the lease (which starts inside it) is
    # never thought to last longer than it does.
    claimed_at = time.monotonic()
    event_id = request.event_id or str(uuid.uuid4())
    with continued_span("claim", traceparent, event_id=event_id, pipeline=request.pipeline) as span:
        claim = store.claim_run(
            event_id=event_id,
            context_id=request.context_id,
            pipeline=request.pipeline,
            source=source,
            request=stored_request(request, run_input, now=time.time()),
            lease=lease,
            traceparent=traceparent,
            origin=origin,
            attempt=attempt,
            context=run_input if stores_context else None,
        )
        span.set_attributes({"orchestrator.run_id": claim.run.id, "orchestrator.claimed": claim.created})
    run, token = claim.run, claim.token
    launch_attempt, reopened_from = run.attempt, None
    if token is None:
        claimed_at = time.monotonic()
        if run.status == "failed" and attempt > run.attempt:
            token = store.reopen_failed_run(run.id, attempt, origin, lease, traceparent)
            if token is not None:
                log.info("run %s event %s: replay attempt %d re-opens the failed run", run.id, run.event_id, attempt)
                reopened_from, launch_attempt = run.attempt, attempt
        elif run.status == "pending" and run.launched_at is None:
            token = store.take_over_claim(run.id, lease)
            if token is None:
                raise ClaimInProgress(run.event_id)
            log.warning("run %s event %s: taking over a claim whose lease expired", run.id, run.event_id)
        if token is None:
            return Submission(run=run, launched=False)
    if time.monotonic() - claimed_at > lease.total_seconds() / 2 and not store.renew_lease(run.id, token, lease):
        # Paused past our lease (a long GC, SIGSTOP, a slow broker): whoever
        # took the claim over launches it, not us.
        log.warning("run %s event %s: lost the claim before launching; not launching", run.id, run.event_id)
        return Submission(run=run, launched=False)
    return _launch(
        run, token, launch_attempt, store=store, launcher=launcher, queue=queue, traceparent=traceparent,
        reopened_from=reopened_from,
    )  # fmt: skip


def _launch(
    run: AnalysisRun,
    token: str,
    attempt: int,
    *,
    store: RunStore,
    launcher: ChordLauncher,
    queue: str,
    traceparent: str | None,
    reopened_from: int | None = None,
) -> Submission:
    """Launch the chord of the claim ``token`` and record it; release the claim if the launch fails."""
    try:
        result = launcher.launch(
            run.id, pipeline=run.pipeline, attempt=attempt, token=token, queue=queue, traceparent=traceparent
        )
    except Exception:
        try:
            store.release_claim(run.id, token, reopened_from)
        except Exception as exc:  # the lease expires by itself; the launch error is what matters
            log.warning("run %s: could not release the claim after a failed launch: %s", run.id, exc)
        raise
    try:
        store.mark_launched(run.id, token)
    except Exception as exc:
        # The chord is on its way and its first task marks the run launched:
        # failing here would make a retry launch the run a second time.
        message = "run %s event %s: launched, but not recorded as launched yet (%s)"
        if is_infrastructure(exc):
            log.warning(message, run.id, run.event_id, exc)
        else:
            log.exception(message, run.id, run.event_id, exc)
    return Submission(run=run, launched=True, result=result)


def submit_analysis_waiting(request: RunRequest, *, timeout: float, **kwargs: Any) -> Submission:
    """``submit_analysis`` for callers that wait (API, CLI): a claim in
    progress elsewhere is waited for (up to ``timeout``) instead of raised,
    until it is launched (a duplicate) or its lease expires (ours to take over).
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
    *,
    store: RunStore,
    launcher: ChordLauncher,
    older_than: timedelta,
    queues: dict[str, str],
    dry_run: bool = False,
) -> list[AnalysisRun]:
    """Launch again the chords of runs pending for longer than ``older_than`` after launch.

    For an operator who knows the chords were lost (say, Redis lost its
    data); the sweeper in the workers finds such runs by itself. Workers
    that had already succeeded reuse their stored output, so only what is
    missing is analysed; the old launch's tasks, should any still exist, do
    nothing. ``queues`` maps a run's source to its Celery queue. Returns the
    runs relaunched (with ``dry_run``, those that would be).
    """
    relaunched = []
    for run in store.launched_pending_runs(launched_before=utcnow() - older_than):
        if dry_run:
            relaunched.append(run)
            continue
        token = store.take_over_launch(run.id, run.claim_token)
        if token is not None:
            launcher.launch_stored(run, token, queues[run.source])
            log.warning("run %s event %s: relaunched after %s pending", run.id, run.event_id, older_than)
            relaunched.append(run)
    return relaunched


def _complete_input(request: RunRequest, store: RunStore) -> JSON:
    """The request's input, completed from its context's stored input when the request left parts out."""
    if request.input_complete:
        return request.input
    stored = store.load_context(request.context_id)
    if stored is None:
        raise UnknownContext(request.context_id)
    return {**stored, **{key: value for key, value in request.input.items() if value is not None}}


def wait_for_bundle(submission: Submission, *, pipeline: Pipeline, store: RunStore, timeout: float) -> JSON:
    """The run's bundle once it has finished; raises ``RunTimeout`` if it has not.

    A launched run is awaited through its chord result, and now and then in
    the database too: if the result backend lost the aggregate's result (a
    Redis restart), the stored run is still found. A duplicate event's run
    (launched by someone else) is awaited in the database only.
    """
    run_id = submission.run.id
    deadline = time.monotonic() + timeout
    result = submission.result
    pause = 0.02 if result is None else 0.25
    while True:
        wait = max(min(pause, deadline - time.monotonic()), 0.001)
        pause = min(pause * 2, DATABASE_CHECK_MAX_S)
        if result is not None:
            try:
                # follow_parents=False: a failed header must not raise here;
                # the chord's error path stores the run, and the database has it.
                bundle: Any = result.get(timeout=wait, follow_parents=False, propagate=False)
            except CeleryTimeoutError:
                pass
            else:
                if isinstance(bundle, dict):
                    return bundle
                result = None  # the aggregate failed: its error path stores the run
        else:
            time.sleep(wait)
        run = store.get_run(run_id)
        if run is not None and run.status != "pending":
            return bundle_response(run, pipeline)
        if time.monotonic() >= deadline:
            raise RunTimeout(run_id, timeout)


#: The event that ends a stream whose run did not finish in time.
TIMEOUT_EVENT = "timeout"


def follow_run(
    run: AnalysisRun, *, pipeline: Pipeline, store: RunStore, run_events: RunEvents, timeout: float
) -> Iterator[tuple[str, JSON] | None]:
    """A launch's progress: each worker's outcome as it finishes, then the bundle (with its metadata).

    A client that follows late first gets what already finished. When the live
    events are gone (expired, or the embedded mode), what the database holds
    is given once: the workers not given yet, then the bundle; or, if the run
    is still pending after ``timeout``, a ``timeout`` event. A run that had
    finished when asked has its events read, not waited for. None: nothing
    happened for a while (for a keep-alive).
    """
    given: set[str] = set()
    wait_s = timeout if run.status == "pending" else 0.0
    for event in run_events.follow(run.id, run.claim_token or "", timeout_s=wait_s):
        if event is None:
            yield None
            continue
        kind, data = event
        if kind == BUNDLE_EVENT:
            yield kind, {**data, "metadata": run_metadata(store, run.id)}
            return
        given.add(str(data.get("worker")))
        yield kind, data
    stored = store.get_run(run.id)
    if stored is None or stored.status == "pending":
        yield TIMEOUT_EVENT, {"run_id": run.id, "status_url": f"/orchestrator/runs/{run.id}"}
        return
    for worker, status in (stored.worker_statuses or {}).items():
        if worker not in given:
            yield WORKER_EVENT, {"worker": worker, "status": status, "error": (stored.errors or {}).get(worker)}
    yield BUNDLE_EVENT, {**bundle_response(stored, pipeline), "metadata": run_metadata(store, run.id)}


def run_metadata(store: RunStore, run_id: str) -> JSON:
    """How the run was answered: time taken, the models that answered, whether every answer came from the
    cache, and the cost of its model calls (null when no call had a known cost)."""
    duration_ms, calls = store.run_call_summary(run_id)
    answered = [call for call in calls if call.status in ANSWERED_CALL_STATUSES]
    costs = [call.cost_usd for call in calls if call.cost_usd is not None]
    return {
        "processing_time_ms": round(duration_ms) if duration_ms is not None else None,
        "models_used": sorted({call.model for call in answered}),
        "cached": bool(answered) and all(call.status == "cached" for call in answered),
        "cost_usd": round(sum(costs), 8) if costs else None,
    }
