"""The engine: one worker's attempt and the fan-in, for any pipeline, as plain functions.

``analyse_part`` is one worker's attempt: it calls the model through the
adapter, validates the answer against the worker's schema and records the
attempt in ``llm_calls``; it raises ``ModelError`` on failure and leaves the
retry decision to its caller (``tasks.base``). ``aggregate_results`` is the
fan-in: it decides ok / partial / failed in one place (by the pipeline's
required workers), merges the outputs as the pipeline says, and stores the
run. The Celery tasks are thin wrappers over these.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from orchestrator.adapters.base import (
    DeadlinePassed,
    ModelAdapter,
    ModelCall,
    ModelError,
    ModelOutputError,
    ModelTimeout,
    Repair,
    RepairFailed,
)
from orchestrator.adapters.builtin import MODEL_NAME as BUILTIN_MODEL_NAME
from orchestrator.costs import Prices, call_cost
from orchestrator.dead_letters import DeadLetterMessage, DeadLetterReason, SourceMessage, build_dead_letter
from orchestrator.domain import ANSWERED_WORKER_STATUSES, JSON, ModelReply, WorkerStatus, split_stored_request
from orchestrator.errors import describe, is_infrastructure
from orchestrator.metrics import MODEL_CALLS, RUNS_FINISHED
from orchestrator.models import AnalysisRun
from orchestrator.pipeline import Pipeline, WorkerSpec
from orchestrator.response_cache import NoResponseCache, ResponseCache, cache_key
from orchestrator.store import ModelCallRecord, RunOutcome, RunStore
from orchestrator.tracing import tracer

log = logging.getLogger(__name__)

#: Of a run's deadline, the part kept for the builtin analyser to answer when the models could not.
DEADLINE_RESERVE_S = 0.1


@dataclass(frozen=True)
class WorkerOutcome:
    """What a worker task returns to the chord: output, or why there is none.

    Travels through Celery's result backend as JSON (``to_json``).
    """

    worker: str
    status: WorkerStatus
    output: JSON | None = None
    error: str | None = None
    #: The level of the degradation chain that answered (None: none did).
    level: int | None = None

    def to_json(self) -> JSON:
        return {
            "worker": self.worker,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "level": self.level,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerOutcome:
        return cls(
            worker=data["worker"],
            status=data["status"],
            output=data.get("output"),
            error=data.get("error"),
            level=data.get("level"),
        )

    @classmethod
    def failure(cls, worker: str, exc: BaseException) -> WorkerOutcome:
        return cls(worker=worker, status=failure_status(exc), error=describe(exc))


def failure_status(exc: BaseException) -> WorkerStatus:
    return "timeout" if isinstance(exc, ModelTimeout) else "error"


class CallNotRecorded(Exception):
    """A model call was made but its ``llm_calls`` row could not be written.

    Carries the row, so the caller can keep it and write it later instead of
    calling the model again. Its cause is the database error.
    """

    def __init__(self, record: ModelCallRecord) -> None:
        super().__init__(f"{record.worker} call of run {record.run_id} not recorded")
        self.record = record


def analyse_part(
    pipelines: Mapping[str, Pipeline],
    worker: str,
    run_id: str,
    token: str,
    *,
    store: RunStore,
    adapter: ModelAdapter,
    model_name: str,
    attempt: int,
    cache: ResponseCache | None = None,
    prices: Prices | None = None,
    level: int = 0,
    fallback_reason: str | None = None,
) -> WorkerOutcome:
    """Run one attempt of ``worker`` for the run launched with ``token``.

    If an earlier attempt of this worker in this run already succeeded (a
    redelivered task), its stored output is returned and the model is not
    called again. Otherwise an answer to the same call in ``cache`` is used
    (unless the caller asked for fresh answers), recorded as ``cached``; a
    model's valid answer is stored there. Every attempt is recorded in
    ``llm_calls``, with its cost from ``prices`` (a cached answer costs 0)
    and its ``level`` in the degradation chain. An answer from a level below
    the first is a ``fallback`` (never cached), whose error says why: its
    ``fallback_reason``. An answer that is not the worker's JSON is repaired
    once (the model is shown it and what is wrong). No call waits past the
    run's deadline. Raises ``StaleLaunch`` if the launch no longer counts,
    the ``ModelError`` of a failed attempt (after recording it; with the
    run's deadline on it), ``RepairFailed`` when the repair did not help,
    ``DeadlinePassed`` when no time was left to ask, and ``CallNotRecorded``
    if the model was called but the record could not be written.
    """
    job = store.load_job(run_id, worker, token)
    if job.previous_output is not None:
        return WorkerOutcome(worker=worker, status="ok", output=job.previous_output, level=level)
    pipeline = pipelines[job.pipeline]
    spec = pipeline.worker(worker)
    prompt_ref = job.prompt_ids.get(worker, spec.default_prompt)
    call = ModelCall(
        pipeline=pipeline.name,
        worker=spec,
        prompt=pipeline.render_prompt(worker, prompt_ref, job.input),
        input=job.input,
        traceparent=job.traceparent,
    )
    record = ModelCallRecord(
        run_id=run_id,
        event_id=job.event_id,
        pipeline=pipeline.name,
        worker=worker,
        prompt_ref=prompt_ref,
        model=model_name,
        attempt=attempt,
        level=level,
    )
    started = time.perf_counter()
    cache = cache or NoResponseCache()
    # The key hashes the whole input: computed only when there is a cache to ask or fill.
    caching = not isinstance(cache, NoResponseCache)
    key = (
        cache_key(pipeline=pipeline.name, worker=worker, prompt=call.prompt, model=model_name, run_input=job.input)
        if caching
        else ""
    )
    cached = _cached_answer(cache, key, spec) if caching and job.use_cache and level == 0 else None
    if cached is not None:
        latency_ms = (time.perf_counter() - started) * 1000
        with model_call_span(record, cache_hit=True):
            _record(store, replace(record, status="cached", latency_ms=latency_ms, output=cached, cost_usd=0.0))
        MODEL_CALLS.labels(worker=worker, status="cached").inc()
        return WorkerOutcome(worker=worker, status="ok", output=cached, level=level)

    def failed(exc: ModelError, started: float) -> None:
        """Record a failed attempt."""
        failure = replace(
            record,
            status=failure_status(exc),
            latency_ms=(time.perf_counter() - started) * 1000,
            error=describe(exc),
        )
        _record(store, failure)
        MODEL_CALLS.labels(worker=worker, status=failure.status).inc()
        log.warning("run %s event %s: %s attempt %d failed: %s", run_id, job.event_id, worker, attempt, exc)

    def ask(call: ModelCall) -> tuple[ModelReply, JSON]:
        started = time.perf_counter()
        try:
            with model_call_span(record, cache_hit=False, repair=call.repair is not None):
                return _ask(adapter, replace(call, time_left_s=_time_left(job.deadline_at, model_name)), spec)
        except ModelError as exc:
            if not isinstance(exc, DeadlinePassed):  # (then nothing was asked)
                failed(exc, started)
            exc.deadline_at = job.deadline_at  # the retry policy never waits past it
            raise

    try:
        reply, output = ask(call)
    except ModelOutputError as exc:
        if exc.answer is None:
            raise
        # One repair: the model sees its answer and what is wrong with it.
        record = replace(record, repair=True)
        try:
            reply, output = ask(replace(call, repair=Repair(exc.answer, str(exc))))
        except ModelOutputError as repair_exc:
            still = RepairFailed(f"still invalid after a repair: {repair_exc}", answer=repair_exc.answer)
            still.deadline_at = job.deadline_at
            raise still from exc
    answered = replace(
        record,
        # Some servers answer with a long model path; the column holds 128.
        model=reply.usage.model[:128],
        status="ok",
        latency_ms=reply.usage.latency_ms,
        input_tokens=reply.usage.input_tokens,
        output_tokens=reply.usage.output_tokens,
        output=output,
        cost_usd=call_cost(prices or {}, model_name, reply.usage.input_tokens, reply.usage.output_tokens),
    )
    _record(store, answered)
    MODEL_CALLS.labels(worker=worker, status="ok").inc()
    if level > 0:
        reason = f"answered by level {level} ({model_name}) after: {fallback_reason or 'the levels above failed'}"
        return WorkerOutcome(worker=worker, status="fallback", output=output, error=reason, level=level)
    if caching:
        cache.put(key, output)
    return WorkerOutcome(worker=worker, status="ok", output=output, level=level)


def model_call_span(record: ModelCallRecord, *, cache_hit: bool, repair: bool = False) -> AbstractContextManager[Any]:
    """The span of one model call (the model's HTTP request, when there is one, is its child)."""
    return tracer.start_as_current_span(
        "model call",
        attributes={
            "orchestrator.run_id": record.run_id,
            "orchestrator.pipeline": record.pipeline,
            "orchestrator.worker": record.worker,
            "orchestrator.model": record.model,
            "orchestrator.attempt": record.attempt,
            "orchestrator.level": record.level,
            "orchestrator.cache_hit": cache_hit,
            "orchestrator.repair": repair,
        },
    )


def _time_left(deadline_at: float | None, model_name: str) -> float | None:
    """Seconds a model call may take before the run's deadline, keeping ``DEADLINE_RESERVE_S`` for the
    builtin analyser (which has no timeout); None without a deadline. Raises ``DeadlinePassed``."""
    if deadline_at is None or model_name == BUILTIN_MODEL_NAME:
        return None
    left = deadline_at - time.time() - DEADLINE_RESERVE_S
    if left <= 0:
        raise DeadlinePassed("no time left before the run's deadline for a model call")
    return left


def _ask(adapter: ModelAdapter, call: ModelCall, spec: WorkerSpec) -> tuple[ModelReply, JSON]:
    """The model's reply and its output checked against the worker's schema; raises ``ModelError``."""
    reply = adapter.complete(call)
    try:
        return reply, spec.validate(reply.output)
    except ModelOutputError as exc:
        raise ModelOutputError(str(exc), answer=json.dumps(reply.output, ensure_ascii=False)) from exc


def _cached_answer(cache: ResponseCache, key: str, spec: WorkerSpec) -> JSON | None:
    """The cached answer, if there is one that still passes the worker's schema."""
    answer = cache.get(key)
    if answer is None:
        return None
    try:
        return spec.validate(answer)
    except ModelOutputError as exc:
        log.warning(
            "response cache: entry %s no longer matches the %s schema (%s); asking the model", key, spec.name, exc
        )
        return None


def _record(store: RunStore, record: ModelCallRecord) -> None:
    try:
        store.record_call(record)
    except Exception as exc:
        if is_infrastructure(exc):
            raise CallNotRecorded(record) from exc
        raise


def aggregate_results(
    pipelines: Mapping[str, Pipeline],
    run_id: str,
    results: Iterable[Mapping[str, Any]],
    *,
    attempt: int,
    token: str | None,
    store: RunStore,
    failure: tuple[str, str] = ("AllWorkersFailed", "every required worker failed"),
) -> AnalysisRun | None:
    """Fan-in: merge the workers' outcomes, decide the status, store the run.

    Returns the stored run, or None when this launch's outcome was already
    stored or no longer counts (a duplicate or late aggregate: nothing
    changes, nothing is dead-lettered). A failed Kafka run is dead-lettered
    in the same transaction (``failure`` is its error type and message).
    """
    outcomes = {o.worker: o for o in map(WorkerOutcome.from_json, results)}

    def conclude(run: AnalysisRun, connection: Connection) -> RunOutcome:
        pipeline = pipelines[run.pipeline]
        for worker in pipeline.worker_names:  # a worker missing from a chord's results: never hide it
            outcomes.setdefault(worker, WorkerOutcome(worker=worker, status="error", error="no result from worker"))
        statuses = {w: outcomes[w].status for w in pipeline.worker_names}
        outputs = {
            w: o.output for w, o in outcomes.items() if o.status in ANSWERED_WORKER_STATUSES and o.output is not None
        }
        state = pipeline.state.load(connection, run) if pipeline.state is not None else None
        outcome = RunOutcome(
            status=pipeline.decide_status(statuses),
            result=pipeline.merge(outputs, run_input(run), state),
            worker_statuses=statuses,
            errors={w: str(outcomes[w].error) for w in pipeline.worker_names if outcomes[w].error},
        )
        if pipeline.state is not None:
            pipeline.state.save(connection, run, outcome.status, outcome.result)
        return outcome

    with tracer.start_as_current_span("aggregate", attributes={"orchestrator.run_id": run_id}) as span:
        stored = store.finish_run(
            run_id,
            attempt=attempt,
            token=token,
            conclude=conclude,
            dead_letter=lambda finished: dead_letter_for_run(finished, *failure),
            # A pipeline's state (a tutoring session) is read and written with the run, under its lock.
            needs_lock=lambda run: pipelines[run.pipeline].state is not None,
        )
        span.set_attribute("orchestrator.status", stored.status if stored is not None else "superseded")
    if stored is None:
        log.info("run %s attempt %d: launch %s already finished or superseded; nothing stored", run_id, attempt, token)
        return None
    RUNS_FINISHED.labels(source=stored.source, status=stored.status).inc()
    return stored


def run_input(run: AnalysisRun) -> JSON:
    """The pipeline's input stored with the run (its request without the prompt choices)."""
    run_input, _ = split_stored_request(run.request)
    return run_input


def dead_letter_for_run(run: AnalysisRun, error_type: str, message: str) -> DeadLetterMessage | None:
    """The dead letter of a run that failed, if it came from Kafka (others have a caller to tell)."""
    if run.status != "failed" or run.source != "kafka":
        return None
    reason = DeadLetterReason("processing", error_type, message, worker_errors=dict(run.errors or {}))
    try:
        source = SourceMessage.from_json(run.origin or {})
    except (KeyError, ValueError, TypeError):  # never lose the letter over an unreadable origin
        source = SourceMessage(topic="", partition=-1, offset=-1, key=None, value=None)
    return build_dead_letter(source, reason, event_id=run.event_id, context_id=run.context_id, run_id=run.id)


def fail_run(
    pipelines: Mapping[str, Pipeline], run_id: str, reason: str, *, attempt: int, token: str | None, store: RunStore
) -> AnalysisRun | None:
    """Record a run whose chord failed as a whole (a worker process died, the chord was lost).

    Workers that did succeed before the failure keep their stored output, so
    the run may still end ``partial`` (or even ``ok``).
    """
    run = store.get_run(run_id)
    if run is None:
        return None
    results = []
    for worker in pipelines[run.pipeline].worker_names:
        output = store.successful_output(run_id, worker)
        outcome = (
            WorkerOutcome(worker=worker, status="ok", output=output)
            if output is not None
            else WorkerOutcome(worker=worker, status="error", error=reason)
        )
        results.append(outcome.to_json())
    return aggregate_results(
        pipelines, run_id, results, attempt=attempt, token=token, store=store, failure=("ChordFailed", reason)
    )


def bundle_response(run: AnalysisRun, pipeline: Pipeline) -> JSON:
    """The response of a run: its ids and status, the pipeline's analysis fields
    (null while pending), and how each worker fared."""
    return {
        "run_id": run.id,
        "event_id": run.event_id,
        "context_id": run.context_id,
        "status": run.status,
        **(run.result or pipeline.empty_result()),
        "worker_statuses": run.worker_statuses or {},
        "errors": run.errors or {},
    }
