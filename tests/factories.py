"""Factories for request bodies, events and claimed runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from orchestrator.dead_letters import DeadLetterMessage
from orchestrator.domain import RunRequest
from orchestrator.models import AnalysisRun
from orchestrator.pipelines.analysis import PIPELINE as ANALYSIS
from orchestrator.store import Claim, RunOutcome, RunStore

SPEAKERS = ("Alice", "Bob", "Chen")
SENTENCES = (
    "I think we should fund the new library because reading scores rose 12 percent where one opened.",
    "I disagree, the budget is already stretched and we must not raise taxes again.",
    "If we cut the bus routes then people in the suburbs will lose access, which means more cars.",
    "Everyone knows that libraries are empty these days; people like you never go there anyway.",
    "Studies show that early reading predicts later earnings, so this is an investment.",
    "I heard about a case last week where a branch closed and crime went up.",
    "That is a fair point, and I am happy to look at the data together.",
    "Either we fund it now or the whole city falls behind for a generation.",
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_segments(count: int = 40, *, seed: int = 0) -> list[dict[str, Any]]:
    segments = []
    for index in range(count):
        text = SENTENCES[(index + seed) % len(SENTENCES)]
        segments.append(
            {
                "id": f"s{index + 1}",
                "speaker": SPEAKERS[index % len(SPEAKERS)],
                "text": f"{text} (turn {index + 1})",
                "start_ms": index * 5000,
                "end_ms": index * 5000 + 4000,
            }
        )
    return segments


def analyze_body(count: int = 40, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"context_id": unique("ctx"), "language": "en", "segments": make_segments(count)}
    body.update(overrides)
    return body


def task_event(count: int = 5, **overrides: Any) -> dict[str, Any]:
    """An AnalysisTask as it travels on Kafka."""
    event = {"event_id": unique("evt"), **analyze_body(count)}
    event.update(overrides)
    return event


#: A lease long enough that no test's claim expires by itself.
LEASE = timedelta(minutes=5)


def claim_run(
    store: RunStore,
    *,
    event_id: str | None = None,
    source: str = "api",
    segments: int = 3,
    lease: timedelta = LEASE,
    **extra: Any,
) -> Claim:
    """Claim a new run (or the existing run of ``event_id``) as a launcher would, without launching it."""
    return store.claim_run(
        event_id=event_id or unique("evt"),
        context_id=unique("ctx"),
        source=source,
        request={"segments": make_segments(segments), "language": "en", "prompt_ids": {}},
        lease=lease,
        **extra,
    )


def expire_lease(store: RunStore, run_id: str) -> None:
    """Make the run's lease expire, as if its launcher had been gone a while."""
    past = datetime.now(UTC) - timedelta(hours=1)
    with store.engine.begin() as connection:
        connection.execute(update(AnalysisRun).where(AnalysisRun.id == run_id).values(lease_expires_at=past))


def backdate_launch(store: RunStore, run_id: str, by: timedelta = timedelta(hours=1)) -> None:
    """Move the run's launch time into the past."""
    with store.engine.begin() as connection:
        connection.execute(
            update(AnalysisRun).where(AnalysisRun.id == run_id).values(launched_at=datetime.now(UTC) - by)
        )


#: The analysis pipeline's workers, in order.
WORKERS = ANALYSIS.worker_names


def run_request(
    *, event_id: str | None = None, segments: int | list[dict[str, Any]] = 3, context_id: str | None = None
) -> RunRequest:
    """A validated analysis request, as the API or the bridge would hand it on."""
    segment_list = make_segments(segments) if isinstance(segments, int) else segments
    return RunRequest(
        pipeline="analysis",
        context_id=context_id or unique("ctx"),
        input={"language": "en", "segments": segment_list},
        event_id=event_id,
    )


def finish_claimed(
    store: RunStore,
    claim: Claim,
    status: str = "failed",
    result: dict[str, Any] | None = None,
    dead_letter: Callable[[AnalysisRun], DeadLetterMessage | None] | None = None,
    locked: bool = True,
) -> AnalysisRun | None:
    """Store an outcome for a claimed run, as its aggregate would (a compare-and-set: None if it did not count).

    ``locked``: as a pipeline with state does (the run locked in a transaction), else as a stateless one.
    """
    outcome = RunOutcome(status=status, result=result or {}, worker_statuses={}, errors={})
    return store.finish_run(
        claim.run.id,
        attempt=claim.run.attempt,
        token=claim.token,
        conclude=lambda run, connection: outcome,
        dead_letter=dead_letter,
        needs_lock=lambda run: locked,
    )
