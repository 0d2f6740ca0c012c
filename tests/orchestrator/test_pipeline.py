"""The plain functions behind the tasks: status decision, merging, output validation."""

from __future__ import annotations

import pytest

from orchestrator.adapters.base import ModelOutputError, ModelTimeout, TransientModelError
from orchestrator.pipeline import WorkerOutcome, decide_run_status, describe_error, merge_outputs, validate_output


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["ok", "ok", "ok", "ok"], "ok"),
        (["ok", "error", "ok", "ok"], "partial"),
        (["timeout", "error", "ok", "error"], "partial"),
        (["error", "timeout", "error", "error"], "failed"),
    ],
)
def test_run_status_counts_the_workers_that_succeeded(statuses: list[str], expected: str) -> None:
    assert decide_run_status(statuses) == expected


def test_a_failed_workers_fields_are_null_in_the_merge() -> None:
    outcomes = {
        "summary": WorkerOutcome("summary", "ok", {"summary": "s", "key_points": []}),
        "implication_sentiment": WorkerOutcome.failure("implication_sentiment", ModelTimeout("slow")),
    }

    merged = merge_outputs(outcomes)

    assert merged["summary"] == {"summary": "s", "key_points": []}
    assert merged["implications"] is None and merged["sentiment"] is None
    assert merged["arguments"] is None and merged["logic_bias"] is None


def test_a_timeout_is_reported_as_timeout_and_other_errors_as_error() -> None:
    assert WorkerOutcome.failure("summary", ModelTimeout("slow")).status == "timeout"
    assert WorkerOutcome.failure("summary", TransientModelError("503")).status == "error"


def test_error_descriptions_name_the_type_and_can_be_stored() -> None:
    assert describe_error(ValueError("bad\x00body")) == "ValueError: bad\\0body"


def test_model_output_missing_a_field_is_an_output_error_and_extra_keys_are_dropped() -> None:
    with pytest.raises(ModelOutputError, match="key_points"):
        validate_output("summary", {"summary": "s"})
    assert validate_output("summary", {"summary": "s", "key_points": ["k"], "note": "x"}) == {
        "summary": "s",
        "key_points": ["k"],
    }
