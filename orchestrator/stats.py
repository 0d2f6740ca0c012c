"""Statistics of the service over a time window, computed from the database.

Every API process sees the whole cluster's runs and model calls, not its own
counters. Percentiles are computed by PostgreSQL (``percentile_cont``); on the
embedded SQLite, in Python.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from orchestrator.domain import JSON
from orchestrator.models import ANSWERED_CALL_STATUSES, AnalysisRun, LlmCall, utcnow
from orchestrator.store import RunStore

#: Default and largest window, in seconds.
DEFAULT_WINDOW_S = 3600.0
MAX_WINDOW_S = 30 * 24 * 3600.0
FINISHED = ("ok", "partial", "failed")


def compute_stats(store: RunStore, *, window_s: float, processes: Sequence[JSON] = ()) -> JSON:
    """Runs and model calls created in the last ``window_s`` seconds, per pipeline and worker.

    Per pipeline: runs by status, success rate (``ok`` among finished runs)
    and p50/p95 duration of finished runs. Per worker: calls by status,
    success rate (answered, from the model or the response cache, among all
    attempts), cache hit rate (answered from the cache among answered),
    answers per level of the degradation chain and the fallback rate (answered
    below the first level among answered), p50/p95
    latency of the model's answers, tokens and cost (null when no call had a known cost).
    Per prompt version: the schema-failure rate of first answers and how often
    the repair fixed them. ``processes``
    (resident memory and loaded analysers of the worker processes) is
    reported as given.
    """
    since = utcnow() - timedelta(seconds=window_s)
    with store.engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        runs = _runs(connection, since)
        run_latency = _percentiles(
            connection, postgres, AnalysisRun.duration_ms, (AnalysisRun.pipeline,),
            AnalysisRun.created_at >= since, AnalysisRun.status.in_(FINISHED),
        )  # fmt: skip
        calls = _calls(connection, since)
        prompts = _prompts(connection, since)
        call_latency = _percentiles(
            connection, postgres, LlmCall.latency_ms, (LlmCall.pipeline, LlmCall.worker),
            LlmCall.created_at >= since, LlmCall.status == "ok",
        )  # fmt: skip
    pipelines: dict[str, JSON] = {}
    for pipeline, by_status in runs.items():
        finished = sum(by_status.get(status, 0) for status in FINISHED)
        pipelines[pipeline] = {
            "runs": sum(by_status.values()),
            "by_status": by_status,
            "success_rate": _rate(by_status.get("ok", 0), finished),
            "latency_ms": run_latency.get((pipeline,), _NO_PERCENTILES),
            "workers": {},
        }
    for (pipeline, worker), summary in calls.items():
        entry = pipelines.setdefault(
            pipeline, {"runs": 0, "by_status": {}, "success_rate": None, "latency_ms": _NO_PERCENTILES, "workers": {}}
        )
        entry["workers"][worker] = {**summary, "latency_ms": call_latency.get((pipeline, worker), _NO_PERCENTILES)}
    for entry in pipelines.values():
        costs = [worker["cost_usd"] for worker in entry["workers"].values() if worker["cost_usd"] is not None]
        entry["cost_usd"] = round(sum(costs), 8) if costs else None
        entry["prompts"] = {}
    for (pipeline, prompt_ref), summary in prompts.items():
        if pipeline in pipelines:
            pipelines[pipeline]["prompts"][prompt_ref] = summary
    return {"window_s": window_s, "since": since.isoformat(), "pipelines": pipelines, "processes": list(processes)}


_NO_PERCENTILES: JSON = {"p50": None, "p95": None}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _runs(connection: Connection, since: Any) -> dict[str, dict[str, int]]:
    rows = connection.execute(
        select(AnalysisRun.pipeline, AnalysisRun.status, func.count())
        .where(AnalysisRun.created_at >= since)
        .group_by(AnalysisRun.pipeline, AnalysisRun.status)
    ).all()
    runs: dict[str, dict[str, int]] = defaultdict(dict)
    for pipeline, status, count in rows:
        runs[pipeline][status] = count
    return runs


def _calls(connection: Connection, since: Any) -> dict[tuple[str, str], JSON]:
    rows = connection.execute(
        select(
            LlmCall.pipeline,
            LlmCall.worker,
            LlmCall.status,
            LlmCall.level,
            func.count(),
            func.coalesce(func.sum(LlmCall.input_tokens), 0),
            func.coalesce(func.sum(LlmCall.output_tokens), 0),
            func.sum(LlmCall.cost_usd),
        )
        .where(LlmCall.created_at >= since)
        .group_by(LlmCall.pipeline, LlmCall.worker, LlmCall.status, LlmCall.level)
    ).all()
    calls: dict[tuple[str, str], JSON] = {}
    for pipeline, worker, status, level, count, input_tokens, output_tokens, cost in rows:
        summary = calls.setdefault(
            (pipeline, worker),
            {
                "calls": 0,
                "by_status": {},
                "answered_by_level": {},
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": None,
            },
        )
        summary["calls"] += count
        summary["by_status"][status] = summary["by_status"].get(status, 0) + count
        if status in ANSWERED_CALL_STATUSES:
            answered_by_level = summary["answered_by_level"]
            answered_by_level[str(level)] = answered_by_level.get(str(level), 0) + count
        summary["input_tokens"] += int(input_tokens or 0)
        summary["output_tokens"] += int(output_tokens or 0)
        if cost is not None:
            summary["cost_usd"] = round((summary["cost_usd"] or 0.0) + float(cost), 8)
    for summary in calls.values():
        by_status = summary["by_status"]
        answered = sum(by_status.get(status, 0) for status in ANSWERED_CALL_STATUSES)
        summary["success_rate"] = _rate(answered, summary["calls"])
        summary["cache_hit_rate"] = _rate(by_status.get("cached", 0), answered)
        below_first = sum(count for level, count in summary["answered_by_level"].items() if level != "0")
        summary["fallback_rate"] = _rate(below_first, answered)
    return calls


def _prompts(connection: Connection, since: Any) -> dict[tuple[str, str], JSON]:
    """Per prompt version: how often the model's first answer was not the worker's JSON, and how often
    the repair fixed it (answers from the cache are not attempts)."""
    invalid = func.coalesce(LlmCall.error.like("ModelOutputError%"), False)
    rows = connection.execute(
        select(LlmCall.pipeline, LlmCall.prompt_ref, LlmCall.repair, LlmCall.status, invalid, func.count())
        .where(LlmCall.created_at >= since, LlmCall.status != "cached")
        .group_by(LlmCall.pipeline, LlmCall.prompt_ref, LlmCall.repair, LlmCall.status, invalid)
    ).all()
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for pipeline, prompt_ref, repair, status, was_invalid, count in rows:
        tally = counts[(pipeline, prompt_ref)]
        if repair:
            tally["repairs"] += count
            tally["repaired"] += count if status == "ok" else 0
        else:
            tally["attempts"] += count
            tally["schema_failures"] += count if was_invalid else 0
    return {
        key: {
            "attempts": tally["attempts"],
            "schema_failures": tally["schema_failures"],
            "schema_failure_rate": _rate(tally["schema_failures"], tally["attempts"]),
            "repairs": tally["repairs"],
            "repair_success_rate": _rate(tally["repaired"], tally["repairs"]),
        }
        for key, tally in counts.items()
    }


def _percentiles(
    connection: Connection, postgres: bool, column: Any, keys: Sequence[Any], *conditions: Any
) -> dict[tuple[str, ...], JSON]:
    """p50 and p95 of ``column`` per ``keys`` among the rows matching ``conditions``."""
    if postgres:
        rows = connection.execute(
            select(
                *keys,
                func.percentile_cont(0.5).within_group(column),
                func.percentile_cont(0.95).within_group(column),
            )
            .where(*conditions)
            .group_by(*keys)
        ).all()
        return {tuple(row[: len(keys)]): {"p50": _ms(row[-2]), "p95": _ms(row[-1])} for row in rows}
    values: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for row in connection.execute(select(*keys, column).where(*conditions)):
        if row[-1] is not None:
            values[tuple(row[: len(keys)])].append(float(row[-1]))
    return {key: {"p50": _ms(_quantile(v, 0.5)), "p95": _ms(_quantile(v, 0.95))} for key, v in values.items()}


def _quantile(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    return float(statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1])


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)
