"""The engine as plain functions: one worker's attempt and the fan-in, on SQLite with the builtin model, no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.adapters.base import ModelOutputError, ModelTimeout, TransientModelError
from orchestrator.adapters.builtin import BuiltinAdapter
from orchestrator.domain import JSON
from orchestrator.engine import WorkerOutcome, aggregate_results, analyse_part, bundle_response
from orchestrator.errors import describe
from orchestrator.migrate import upgrade_database
from orchestrator.pipeline import Pipeline, PromptTemplate, WorkerSpec
from orchestrator.pipelines import load_pipelines
from orchestrator.pipelines.analysis import PIPELINE as ANALYSIS
from orchestrator.schemas import OutputSchema, Text
from orchestrator.store import Claim, RunStore, create_db_engine
from tests.factories import WORKERS, claim_run

PIPELINES = load_pipelines()


@pytest.fixture()
def sqlite_store(tmp_path: Path) -> RunStore:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    upgrade_database(url)
    return RunStore(create_db_engine(url))


def run_workers(store: RunStore, claim: Claim, workers: tuple[str, ...] = WORKERS) -> list[JSON]:
    assert claim.token is not None
    return [
        analyse_part(
            PIPELINES,
            worker,
            claim.run.id,
            claim.token,
            store=store,
            adapter=BuiltinAdapter(),
            model_name="builtin",
            attempt=1,
        ).to_json()
        for worker in workers
    ]


def test_each_worker_analyses_its_part_and_the_fan_in_stores_an_ok_bundle(sqlite_store: RunStore) -> None:
    claim = claim_run(sqlite_store, segments=8)

    results = run_workers(sqlite_store, claim)
    run = aggregate_results(PIPELINES, claim.run.id, results, attempt=1, token=claim.token, store=sqlite_store)

    assert run is not None and run.status == "ok"
    bundle = bundle_response(run, ANALYSIS)
    assert set(bundle) == {
        "run_id", "event_id", "context_id", "status", "summary", "arguments", "implications", "sentiment",
        "logic_bias", "worker_statuses", "errors",
    }  # fmt: skip
    assert bundle["worker_statuses"] == {w: "ok" for w in WORKERS}
    assert [c.worker for c in sqlite_store.calls_for(run.id)] == list(WORKERS)
    assert {c.pipeline for c in sqlite_store.calls_for(run.id)} == {"analysis"}


def test_a_worker_run_again_reuses_its_stored_output_instead_of_analysing_again(sqlite_store: RunStore) -> None:
    claim = claim_run(sqlite_store)

    first = run_workers(sqlite_store, claim, ("summary",))
    again = run_workers(sqlite_store, claim, ("summary",))

    assert first == again
    assert len(sqlite_store.calls_for(claim.run.id)) == 1


def test_a_failed_required_worker_makes_the_run_partial_with_its_fields_null(sqlite_store: RunStore) -> None:
    claim = claim_run(sqlite_store)
    results = run_workers(sqlite_store, claim, ("summary", "argument", "logic_bias"))
    results.append(WorkerOutcome.failure("implication_sentiment", ModelTimeout("slow")).to_json())

    run = aggregate_results(PIPELINES, claim.run.id, results, attempt=1, token=claim.token, store=sqlite_store)

    assert run is not None and run.status == "partial"
    assert run.worker_statuses is not None and run.worker_statuses["implication_sentiment"] == "timeout"
    assert run.result is not None and run.result["implications"] is None and run.result["sentiment"] is None
    assert run.result["summary"] is not None


def test_a_duplicate_fan_in_changes_nothing(sqlite_store: RunStore) -> None:
    claim = claim_run(sqlite_store)
    results = run_workers(sqlite_store, claim)
    assert aggregate_results(PIPELINES, claim.run.id, results, attempt=1, token=claim.token, store=sqlite_store)

    failed = [WorkerOutcome.failure(w, TransientModelError("x")).to_json() for w in WORKERS]
    assert aggregate_results(PIPELINES, claim.run.id, failed, attempt=1, token=claim.token, store=sqlite_store) is None
    stored = sqlite_store.get_run(claim.run.id)
    assert stored is not None and stored.status == "ok"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["ok", "ok", "ok", "ok"], "ok"),
        (["ok", "error", "ok", "ok"], "partial"),
        (["timeout", "error", "ok", "error"], "partial"),
        (["error", "timeout", "error", "error"], "failed"),
    ],
)
def test_every_analysis_worker_is_required(statuses: list[str], expected: str) -> None:
    assert ANALYSIS.decide_status(dict(zip(WORKERS, statuses, strict=True))) == expected


class _Words(OutputSchema):
    words = Text(required=True)


def _toy(required: tuple[bool, bool]) -> Pipeline:
    workers = tuple(
        WorkerSpec(name, _Words(), (PromptTemplate(f"{name}@v1", "s", "i"),), lambda _: {"words": "w"}, required=r)
        for name, r in zip(("main", "extra"), required, strict=True)
    )
    return Pipeline(
        name="toy",
        workers=workers,
        request_schema=ANALYSIS.request_schema,
        render_input=str,
        merge=lambda outputs, _input, _state: {"main": outputs.get("main"), "extra": outputs.get("extra")},
    )


def test_an_optional_worker_may_fail_without_making_the_run_partial() -> None:
    toy = _toy((True, False))

    assert toy.decide_status({"main": "ok", "extra": "error"}) == "ok"
    assert toy.decide_status({"main": "error", "extra": "ok"}) == "failed"


def test_a_pipeline_needs_at_least_one_required_worker() -> None:
    with pytest.raises(ValueError, match="required"):
        _toy((False, False))


def test_the_merge_of_a_pending_run_has_every_field_null() -> None:
    assert ANALYSIS.empty_result() == dict.fromkeys(["summary", "arguments", "implications", "sentiment", "logic_bias"])


def test_a_timeout_is_reported_as_timeout_and_other_errors_as_error() -> None:
    assert WorkerOutcome.failure("summary", ModelTimeout("slow")).status == "timeout"
    assert WorkerOutcome.failure("summary", TransientModelError("503")).status == "error"


def test_error_descriptions_name_the_type_and_can_be_stored() -> None:
    assert describe(ValueError("bad\x00body")) == "ValueError: bad\\0body"
    assert describe(ValueError("lone \ud800")) == "ValueError: lone \\ud800"


def test_model_output_missing_a_field_is_an_output_error_and_extra_keys_are_dropped() -> None:
    summary = ANALYSIS.worker("summary")
    with pytest.raises(ModelOutputError, match="key_points"):
        summary.validate({"summary": "s"})
    assert summary.validate({"summary": "s", "key_points": ["k"], "note": "x"}) == {"summary": "s", "key_points": ["k"]}
