"""The analysis itself, as plain functions the Celery tasks call.

``analyse_part`` is one worker's attempt: it calls the model through the
adapter, validates the answer and records the attempt in ``llm_calls``; it
raises ``ModelError`` on failure and leaves the retry decision to the caller.
``aggregate_results`` is the fan-in: it decides ok / partial / failed in one
place and stores the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from orchestrator.adapters.base import ModelAdapter, ModelCall, ModelError, ModelOutputError, ModelTimeout
from orchestrator.domain import JSON, WORKERS, RunStatus, WorkerStatus
from orchestrator.metrics import MODEL_CALLS, RUNS_FINISHED
from orchestrator.models import AnalysisRun
from orchestrator.prompts import prompt_ref_for, render_prompt
from orchestrator.schemas import OUTPUT_SCHEMAS
from orchestrator.store import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOutcome:
    """What a worker task returns to the chord: output, or why there is none.

    Travels through Celery's result backend as JSON (``to_json``).
    """

    worker: str
    status: WorkerStatus
    output: JSON | None = None
    error: str | None = None

    def to_json(self) -> JSON:
        return {"worker": self.worker, "status": self.status, "output": self.output, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerOutcome:
        return cls(worker=data["worker"], status=data["status"], output=data.get("output"), error=data.get("error"))

    @classmethod
    def failure(cls, worker: str, exc: BaseException) -> WorkerOutcome:
        return cls(worker=worker, status=failure_status(exc), error=describe_error(exc))


def failure_status(exc: BaseException) -> WorkerStatus:
    return "timeout" if isinstance(exc, ModelTimeout) else "error"


def describe_error(exc: BaseException) -> str:
    # A NUL (say, echoed from a server's error body) cannot be stored in PostgreSQL text.
    return f"{type(exc).__name__}: {exc}".replace("\x00", "\\0")


def analyse_part(
    worker: str,
    run_id: str,
    *,
    store: RunStore,
    adapter: ModelAdapter,
    model_name: str,
    attempt: int,
) -> WorkerOutcome:
    """Run one attempt of ``worker`` for the run; raises ``ModelError`` on failure.

    If an earlier attempt of this worker in this run already succeeded (a
    redelivered task), its stored output is returned and the model is not
    called again. Every real attempt is recorded in ``llm_calls``.
    """
    job = store.load_job(run_id, worker)
    if job.previous_output is not None:
        return WorkerOutcome(worker=worker, status="ok", output=job.previous_output)
    prompt_ref = prompt_ref_for(worker, job.prompt_ids)
    call = ModelCall(
        worker=worker,
        prompt=render_prompt(prompt_ref, job.segments, job.language),
        segments=job.segments,
        language=job.language,
        traceparent=job.traceparent,
    )
    started = time.perf_counter()
    try:
        reply = adapter.complete(call)
        output = validate_output(worker, reply.output)
    except ModelError as exc:
        store.record_call(
            job=job,
            worker=worker,
            prompt_ref=prompt_ref,
            model=model_name,
            attempt=attempt,
            status=failure_status(exc),
            latency_ms=(time.perf_counter() - started) * 1000,
            error=describe_error(exc),
        )
        MODEL_CALLS.labels(worker=worker, status=failure_status(exc)).inc()
        log.warning("run %s event %s: %s attempt %d failed: %s", run_id, job.event_id, worker, attempt, exc)
        raise
    store.record_call(
        job=job,
        worker=worker,
        prompt_ref=prompt_ref,
        # Some servers answer with a long model path; the column holds 128.
        model=reply.usage.model[:128],
        attempt=attempt,
        status="ok",
        latency_ms=reply.usage.latency_ms,
        input_tokens=reply.usage.input_tokens,
        output_tokens=reply.usage.output_tokens,
        output=output,
    )
    MODEL_CALLS.labels(worker=worker, status="ok").inc()
    return WorkerOutcome(worker=worker, status="ok", output=output)


def validate_output(worker: str, output: JSON) -> JSON:
    """The model's JSON, checked against the worker's schema (extra keys dropped)."""
    try:
        loaded: JSON = OUTPUT_SCHEMAS[worker].load(output)
    except ValidationError as exc:
        raise ModelOutputError(f"{worker} output does not match its schema: {exc.messages}") from exc
    return loaded


def decide_run_status(statuses: Iterable[str]) -> RunStatus:
    """ok when every worker succeeded, failed when none did, partial otherwise."""
    values = list(statuses)
    succeeded = sum(1 for s in values if s == "ok")
    if succeeded == len(values):
        return "ok"
    return "failed" if succeeded == 0 else "partial"


def merge_outputs(outcomes: Mapping[str, WorkerOutcome]) -> JSON:
    """The bundle's analysis fields; a failed worker's fields are None."""

    def output(worker: str) -> JSON | None:
        outcome = outcomes.get(worker)
        return outcome.output if outcome is not None and outcome.status == "ok" else None

    implication_sentiment = output("implication_sentiment")
    return {
        "summary": output("summary"),
        "arguments": output("argument"),
        "implications": implication_sentiment["implications"] if implication_sentiment else None,
        "sentiment": implication_sentiment["sentiment"] if implication_sentiment else None,
        "logic_bias": output("logic_bias"),
    }


def aggregate_results(run_id: str, results: Iterable[Mapping[str, Any]], *, store: RunStore) -> AnalysisRun:
    """Fan-in: merge the workers' outcomes, decide the status, store the run."""
    outcomes = {o.worker: o for o in map(WorkerOutcome.from_json, results)}
    missing = [w for w in WORKERS if w not in outcomes]
    for worker in missing:  # cannot happen with a well-formed chord; never hide it
        outcomes[worker] = WorkerOutcome(worker=worker, status="error", error="no result from worker")
    statuses = {w: outcomes[w].status for w in WORKERS}
    run = store.finish_run(
        run_id,
        status=decide_run_status(statuses.values()),
        result=merge_outputs(outcomes),
        worker_statuses=statuses,
        errors={w: o.error for w, o in outcomes.items() if o.error},
    )
    RUNS_FINISHED.labels(source=run.source, status=run.status).inc()
    return run


def fail_run(run_id: str, reason: str, *, store: RunStore) -> AnalysisRun:
    """Record a run whose chord failed as a whole (e.g. a worker process died).

    Workers that did succeed before the failure keep their stored output, so
    the run may still end ``partial``.
    """
    results = []
    for worker in WORKERS:
        output = store.successful_output(run_id, worker)
        outcome = (
            WorkerOutcome(worker=worker, status="ok", output=output)
            if output is not None
            else WorkerOutcome(worker=worker, status="error", error=reason)
        )
        results.append(outcome.to_json())
    return aggregate_results(run_id, results, store=store)


def bundle_response(run: AnalysisRun) -> JSON:
    """The AnalysisBundleResponse of a run (pending runs have null fields)."""
    result = run.result or merge_outputs({})
    return {
        "run_id": run.id,
        "event_id": run.event_id,
        "context_id": run.context_id,
        "status": run.status,
        **result,
        "worker_statuses": run.worker_statuses or {},
        "errors": run.errors or {},
    }
