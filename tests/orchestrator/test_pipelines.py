"""The registry of pipelines: builtin ones, extra modules, and requests naming a pipeline."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from orchestrator.config import Settings
from orchestrator.pipeline import pipelines_by_name
from orchestrator.pipelines import DEFAULT_PIPELINE, UnknownPipeline, load_pipelines
from orchestrator.pipelines.analysis import PIPELINE as ANALYSIS


def test_the_builtin_pipelines_are_always_there_and_extra_modules_add_theirs() -> None:
    assert DEFAULT_PIPELINE == "analysis" and "analysis" in load_pipelines()
    assert set(load_pipelines(["tests.toy_pipeline"])) >= {"analysis", "wordcount"}


def test_pipeline_modules_come_from_a_comma_separated_setting() -> None:
    settings = Settings.from_env({"PIPELINE_MODULES": " tests.toy_pipeline , other.module,"})

    assert settings.extra_pipeline_modules == ("tests.toy_pipeline", "other.module")


def test_two_pipelines_cannot_share_a_name() -> None:
    with pytest.raises(ValueError, match="analysis"):
        pipelines_by_name([ANALYSIS, ANALYSIS])


def test_an_unknown_pipeline_is_bad_input_with_a_field_error() -> None:
    with pytest.raises(UnknownPipeline) as raised:
        load_pipelines().named("astrology")

    assert raised.value.field_errors == {"pipeline": [str(raised.value)]}
    with pytest.raises(ValidationError):
        load_pipelines().load_request({"pipeline": 7, "context_id": "c"})


def test_a_request_for_one_pipeline_cannot_be_loaded_by_another_schema() -> None:
    toy = load_pipelines(["tests.toy_pipeline"])["wordcount"]
    schema = toy.request_schema(pipeline=toy)

    with pytest.raises(ValidationError) as raised:
        schema.load({"pipeline": "analysis", "context_id": "c", "text": "x"})

    assert list(raised.value.messages) == ["pipeline"]


def test_a_tutor_request_without_a_deadline_gets_its_pipelines_default_only_where_defaults_apply() -> None:
    turn = {"pipeline": "tutor", "session_id": "s1", "text": "I goes to school"}
    with_defaults = load_pipelines(default_deadlines=True)

    assert with_defaults.load_request(turn).deadline_ms == 350
    assert with_defaults.load_request({**turn, "deadline_ms": 2000}).deadline_ms == 2000
    assert with_defaults.load_request({"context_id": "c", "segments": [{"id": "s", "text": "Hi."}]}).deadline_ms is None
    assert load_pipelines().load_request(turn).deadline_ms is None
