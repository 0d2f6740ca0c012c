"""The tutor pipeline: its request, its fan-in (scores, strategy, next action, level), and its HTTP endpoints.

The endpoint tests run against the real PostgreSQL, Redis and Celery worker;
the model is the fake OpenAI-compatible server, whose tutor knows a few
mistakes ("goes" for "went", "have" for "has", ...).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from marshmallow import ValidationError

from orchestrator.pipelines import load_pipelines
from orchestrator.pipelines.tutor import (
    CEFR_LEVELS,
    choose_strategy,
    merge,
    next_action,
    next_level,
    overall_score,
)
from orchestrator.sessions import SessionHistory
from tests.factories import unique
from tests.fake_llm import FakeLLM, Fault

ANALYZE = "/api/v1/ai/analyze"
PIPELINES = load_pipelines()


def body(text: str = "I goes to school yesterday", **overrides: Any) -> dict[str, Any]:
    return {
        "text": text,
        "session_id": unique("session"),
        "input_type": "text",
        "learner_profile": {"level": "A2"},
        **overrides,
    }


def history(level: str = "A2", recent: list[dict[str, Any]] | None = None) -> SessionHistory:
    return SessionHistory(session_id="s", level=level, turns=len(recent or []), recent=recent or [])


ERROR = {"start": 2, "end": 6, "original": "goes", "correction": "went", "type": "R:VERB:TENSE", "explanation": "x"}


# --- the request ------------------------------------------------------------------------------


def test_a_tutor_request_loads_into_the_sessions_context_with_its_profile() -> None:
    request = PIPELINES.load_request({**body(), "pipeline": "tutor", "learner_profile": {"level": "a2", "name": "An"}})

    assert request.pipeline == "tutor" and request.context_id.startswith("session")
    assert request.input == {
        "text": "I goes to school yesterday",
        "input_type": "text",
        "learner_profile": {"level": "A2", "explanation_language": "en"},
    }


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"input_type": "audio"}, "input_type", "speech-to-text model"),
        ({"input_type": "video"}, "input_type", "Must be one of: text."),
        ({"text": "  "}, "text", "Must not be empty"),
        ({"text": None}, "text", "may not be null"),
        ({"session_id": "s" * 129}, "session_id", "Longer than 128"),
        ({"learner_profile": {"level": "D9"}}, "learner_profile", "Must be one of"),
        ({"learner_profile": {"explanation_language": "fr"}}, "learner_profile", "Must be one of"),
        ({"colour": "blue"}, "colour", "Unknown field"),
    ],
)
def test_a_bad_tutor_request_names_the_field_and_why(change: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        PIPELINES.load_request({**body(), "pipeline": "tutor", **change})

    assert says in str(raised.value.messages[field])


# --- the fan-in ---------------------------------------------------------------------------------


def test_the_overall_score_weighs_grammar_most_and_leaves_out_a_missing_score() -> None:
    assert overall_score({"grammar": 1.0, "fluency": 0.6, "vocabulary": 0.6}) == 0.8
    assert overall_score({"grammar": 1.0, "fluency": None, "vocabulary": 0.4}) == 0.8
    assert overall_score({"grammar": None, "fluency": None, "vocabulary": None}) is None


@pytest.mark.parametrize(
    ("errors", "overall", "level", "repeated", "strategy"),
    [
        ([], 0.9, "B1", [], "positive_feedback"),
        ([ERROR], 0.7, "B1", [], "gentle_correction"),
        ([ERROR], 0.7, "B1", ["R:VERB:TENSE"], "explicit_correction"),
        ([ERROR] * 3, 0.5, "A2", [], "scaffolding"),
        ([ERROR] * 3, 0.5, "B2", [], "gentle_correction"),
        ([ERROR], 0.3, "C1", ["R:VERB:TENSE"], "scaffolding"),
    ],
)
def test_the_strategy_follows_errors_scores_level_and_repetition(
    errors: list[Any], overall: float, level: str, repeated: list[str], strategy: str
) -> None:
    assert choose_strategy(errors=errors, overall=overall, level=level, repeated=repeated) == strategy


def test_each_strategy_has_its_next_action() -> None:
    assert next_action("positive_feedback", 1) == "increase_difficulty"
    assert next_action("positive_feedback", 0) == "continue_conversation"
    assert next_action("gentle_correction", 0) == "ask_to_retry"
    assert next_action("explicit_correction", 0) == "targeted_practice"
    assert next_action("scaffolding", 0) == "provide_hint"


def test_a_learner_who_keeps_scoring_high_moves_up_and_one_who_keeps_failing_moves_down() -> None:
    good = {"error_types": [], "scores": {"overall": 0.9}, "level": "A2"}
    bad = {"error_types": ["R:SPELL"], "scores": {"overall": 0.2}, "level": "A2"}

    assert next_level(history("A2", [good, good]), 0.9, 0) == ("B1", 1)
    assert next_level(history("A2", [good]), 0.9, 0) == ("A2", 0)  # not three in a row yet
    assert next_level(history("A2", [good, good]), 0.9, 1) == ("A2", 0)  # an error breaks the streak
    assert next_level(history("A2", [{**good, "level": "A1"}, good]), 0.9, 0) == ("A2", 0)  # just moved up
    assert next_level(history("A2", [bad, bad]), 0.2, 2) == ("A1", -1)
    assert next_level(history("C2", [good, good]), 0.95, 0) == ("C2", 0)
    assert CEFR_LEVELS[0] == "A1" and CEFR_LEVELS[-1] == "C2"


def test_merge_repairs_a_miscounted_span_and_drops_an_unplaceable_one() -> None:
    grammar = {
        "errors": [
            {**ERROR, "start": 0, "end": 4},  # "I go" is not "goes": found again at 2..6
            {**ERROR, "original": "nowhere", "start": 0, "end": 7},
        ],
        "corrected": "I went to school yesterday",
    }
    feedback = {"reply": "You can say: I went to school yesterday.", "tips": []}

    result = merge({"grammar": grammar, "feedback": feedback}, {"text": "I goes to school yesterday"}, history())

    assert [(e["start"], e["end"]) for e in result["analysis"]["grammar"]["errors"]] == [(2, 6)]
    assert "explanation_vi" not in result["analysis"]["grammar"]["errors"][0]
    assert result["strategy"] == "gentle_correction" and result["next_action"] == "ask_to_retry"
    assert result["text"] == "You can say: I went to school yesterday."  # the worker's recast, as it is
    assert result["session"] == {
        "id": "s", "turn": 1, "level": "A2", "level_change": 0, "repeated_error_types": [],
        "error_counts": {"R:VERB:TENSE": 1},
    }  # fmt: skip


def test_a_pending_tutor_run_has_null_fields() -> None:
    assert set(merge({}, {}, None).values()) == {None}


# --- the endpoints ------------------------------------------------------------------------------


def test_a_learner_sentence_gets_the_tutors_reply_analysis_scores_strategy_and_metadata(
    client: FlaskClient, fake_llm: FakeLLM
) -> None:
    response = client.post(ANALYZE, json=body())

    assert response.status_code == 200, response.json
    answer = response.json
    assert answer["status"] == "ok"
    assert answer["worker_statuses"] == {"grammar": "ok", "fluency": "ok", "vocabulary": "ok", "feedback": "ok"}
    (error,) = answer["analysis"]["grammar"]["errors"]
    assert (error["original"], error["correction"], error["type"]) == ("goes", "went", "R:VERB:TENSE")
    assert "I goes to school yesterday"[error["start"] : error["end"]] == "goes"
    assert answer["analysis"]["grammar"]["corrected"] == "I went to school yesterday"
    assert answer["analysis"]["vocabulary"] in CEFR_LEVELS and 0 <= answer["analysis"]["fluency"] <= 1
    assert set(answer["score"]) == {"fluency", "grammar", "vocabulary", "overall"}
    assert answer["strategy"] == "gentle_correction" and answer["next_action"] == "ask_to_retry"
    assert answer["text"] == "You can say: I went to school yesterday"
    assert answer["metadata"]["models_used"] == ["fake-model"] and answer["metadata"]["cached"] is False
    assert answer["metadata"]["processing_time_ms"] >= 0
    assert answer["run_id"] and answer["session"]["turn"] == 1


def test_a_learner_who_asks_gets_explanations_and_the_reply_in_vietnamese(client: FlaskClient) -> None:
    answer = client.post(ANALYZE, json=body(learner_profile={"level": "A2", "explanation_language": "vi"})).json

    (error,) = answer["analysis"]["grammar"]["errors"]
    assert error["explanation_vi"] == "Dùng 'went' ở đây."
    assert answer["text"] == "Câu đúng là: I went to school yesterday"


def test_a_repeated_error_changes_the_strategy_and_the_session_remembers(client: FlaskClient) -> None:
    session = unique("session")
    first = client.post(ANALYZE, json=body(session_id=session)).json
    second = client.post(ANALYZE, json=body("She goes home yesterday", session_id=session)).json

    assert first["strategy"] == "gentle_correction"
    assert second["strategy"] == "explicit_correction" and second["next_action"] == "targeted_practice"
    assert second["text"].startswith("Let's look at this mistake again.")  # framed by the history
    assert second["session"]["repeated_error_types"] == ["R:VERB:TENSE"]
    stored = client.get(f"/api/v1/ai/sessions/{session}").json
    assert stored["turns"] == 2 and stored["error_counts"] == {"R:VERB:TENSE": 2}
    assert [turn["strategy"] for turn in stored["history"]] == ["gentle_correction", "explicit_correction"]


def test_a_learner_who_keeps_scoring_high_moves_up_a_level(client: FlaskClient) -> None:
    session = unique("session")
    sentence = "Yesterday I visited my grandmother in beautiful Hanoi."
    answers = [client.post(ANALYZE, json=body(sentence, session_id=session)).json for _ in range(3)]

    assert [a["session"]["level"] for a in answers] == ["A2", "A2", "B1"]
    assert answers[-1]["next_action"] == "increase_difficulty"
    assert client.get(f"/api/v1/ai/sessions/{session}").json["level"] == "B1"


def test_a_failing_required_worker_makes_the_turn_partial_and_the_reply_falls_back_to_the_correction(
    client: FlaskClient, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_always("feedback", Fault.status(500))

    answer = client.post(ANALYZE, json=body()).json

    assert answer["status"] == "partial" and answer["worker_statuses"]["feedback"] == "error"
    assert answer["text"] == "Nice try! I went to school yesterday"


def test_a_turn_whose_grammar_worker_failed_is_partial_and_still_a_turn_of_its_session(
    client: FlaskClient, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_always("grammar", Fault.status(400))
    request = body()

    answer = client.post(ANALYZE, json=request).json

    assert answer["status"] == "partial" and answer["worker_statuses"]["grammar"] == "error"
    assert answer["analysis"]["grammar"] is None
    session = client.get(f"/api/v1/ai/sessions/{request['session_id']}").json
    assert session["turns"] == 1 and session["history"][-1]["error_types"] == []


def test_a_failing_optional_worker_leaves_the_turn_ok_without_its_score(client: FlaskClient, fake_llm: FakeLLM) -> None:
    fake_llm.fail_always("fluency", Fault.status(400))

    answer = client.post(ANALYZE, json=body()).json

    assert answer["status"] == "ok" and answer["worker_statuses"]["fluency"] == "error"
    assert answer["score"]["fluency"] is None and answer["score"]["overall"] is not None
    assert "fluency" in answer["errors"]


def test_the_same_idempotency_key_answers_the_same_turn_once(client: FlaskClient, fake_llm: FakeLLM) -> None:
    request = body()
    headers = {"Idempotency-Key": unique("key")}

    first = client.post(ANALYZE, json=request, headers=headers).json
    again = client.post(ANALYZE, json=request, headers=headers).json

    assert first["run_id"] == again["run_id"]
    assert fake_llm.calls_for("grammar") == 1
    assert client.get(f"/api/v1/ai/sessions/{request['session_id']}").json["turns"] == 1


@pytest.mark.parametrize(
    ("request_body", "status", "field"),
    [
        ({"session_id": "s"}, 422, "text"),
        ({**body(), "input_type": "audio"}, 422, "input_type"),
        ({**body(), "pipeline": "analysis"}, 422, "pipeline"),
        ([1, 2], 422, "_schema"),
    ],
)
def test_bad_tutor_input_is_a_4xx_with_field_errors(
    client: FlaskClient, request_body: Any, status: int, field: str
) -> None:
    response = client.post(ANALYZE, json=request_body)

    assert response.status_code == status
    assert field in response.json["fields"]


def test_a_body_that_is_not_json_is_a_400(client: FlaskClient) -> None:
    response = client.post(ANALYZE, data="not json", content_type="application/json")

    assert response.status_code == 400 and response.json["error"] == "invalid_json"


def test_an_unknown_session_is_a_404(client: FlaskClient) -> None:
    assert client.get(f"/api/v1/ai/sessions/{unique('none')}").status_code == 404


def test_the_tutors_health_and_stats_endpoints(client: FlaskClient) -> None:
    client.post(ANALYZE, json=body())

    health = client.get("/api/v1/ai/orchestrator/health")
    stats = client.get("/api/v1/ai/orchestrator/stats?window=600")

    assert health.status_code == 200 and health.json["status"] == "healthy"
    assert set(health.json["pipelines"]) >= {"analysis", "tutor"}
    tutor = stats.json["pipelines"]["tutor"]
    assert tutor["runs"] >= 1 and tutor["workers"]["grammar"]["calls"] >= 1
    assert stats.json["window_s"] == 600
    assert client.get("/orchestrator/stats?window=-1").status_code == 422
