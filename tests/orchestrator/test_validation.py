"""Input validation: malformed requests are refused with field errors and write nothing.

The HTTP cases go through the real app (PostgreSQL, Redis, a Celery worker);
the schema cases load ``marshmallow`` schemas directly and need no services.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from flask.testing import FlaskClient
from marshmallow import ValidationError
from sqlalchemy import func, select

from orchestrator.api import create_app
from orchestrator.config import Settings
from orchestrator.domain import RunRequest
from orchestrator.models import AnalysisRun, Context, LlmCall
from orchestrator.pipelines import load_pipelines
from orchestrator.pipelines.analysis import SummaryOutputSchema
from orchestrator.schemas import Limits
from orchestrator.store import RunStore
from tests.factories import make_segments, unique

ANALYZE = "/orchestrator/analyze"
JSON_TYPE = "application/json"


def row_counts(store: RunStore) -> dict[str, int]:
    """Rows in every table a request may write."""
    with store.session() as session:
        return {
            model.__tablename__: session.execute(select(func.count()).select_from(model)).scalar_one()
            for model in (AnalysisRun, LlmCall, Context)
        }


def body(**overrides: Any) -> dict[str, Any]:
    """A small valid body; ``overrides`` make it malformed in one place."""
    valid: dict[str, Any] = {"context_id": unique("ctx"), "language": "en", "segments": make_segments(3)}
    valid.update(overrides)
    return valid


def with_segment(bad: Any, index: int = 0) -> dict[str, Any]:
    """A valid body whose segment ``index`` is replaced by ``bad``."""
    segments: list[Any] = make_segments(3)
    segments[index] = bad
    return body(segments=segments)


def seg(**fields: Any) -> dict[str, Any]:
    return {"id": "s1", "text": "A perfectly fine sentence.", **fields}


def load(data: Any, limits: Limits | None = None, *, event: bool = False) -> RunRequest:
    """Validate ``data`` as an HTTP body (or, with ``event``, a Kafka event), as the boundaries do."""
    return load_pipelines(limits=limits).load_request(data, event=event)


def raw(data: str | bytes, content_type: str = JSON_TYPE) -> dict[str, Any]:
    return {"data": data, "content_type": content_type}


@dataclass(frozen=True)
class Bad:
    """A malformed request (``client.post`` keyword arguments) and how it must be refused."""

    request: dict[str, Any]
    #: 400 when the body is not a JSON value at all, 422 for field errors.
    status: int = 422
    #: Key path into ``fields`` of the offending field (422 only).
    path: tuple[str, ...] = ()
    #: A substring of one message at ``path``.
    says: str = ""


def bad(case_id: str, case: Bad, *, bug: str | None = None) -> Any:
    marks = [pytest.mark.xfail(reason=bug, strict=True)] if bug else []
    return pytest.param(case, id=case_id, marks=marks)


NEVER_SEEN = unique("never-seen")
NESTED = "[" * 100_000 + "]" * 100_000

MALFORMED = [
    # --- not a JSON value, or not sent as JSON: 400
    bad("not-json", Bad(raw("context_id=abc&segments=1"), 400)),
    bad("truncated-json", Bad(raw('{"context_id": "abc", "segments": ['), 400)),
    bad("single-quoted-json", Bad(raw("{'context_id': 'abc'}"), 400)),
    bad("empty-body", Bad(raw(""), 400)),
    bad("invalid-utf8", Bad(raw(b'{"context_id": "\xff\xfe"}'), 400)),
    bad("json-null", Bad(raw("null"), 400)),
    bad("text-plain-with-json-looking-body", Bad(raw('{"context_id": "abc"}', "text/plain"), 400)),
    bad("form-encoded", Bad({"data": {"context_id": "abc"}}, 400)),
    bad(
        "deeply-nested-json",
        Bad(raw(NESTED), 400),
    ),
    # --- JSON, but not an object: 422 on the whole body
    bad("json-array", Bad({"json": [body()]}, path=("_schema",), says="Invalid input type")),
    bad("json-string", Bad({"json": "context_id"}, path=("_schema",), says="Invalid input type")),
    bad("json-number", Bad(raw("42"), path=("_schema",), says="Invalid input type")),
    # --- top level
    bad("empty-object", Bad({"json": {}}, path=("context_id",), says="Missing data")),
    bad("missing-context-id", Bad({"json": {"segments": make_segments(3)}}, path=("context_id",), says="Missing")),
    bad("context-id-number", Bad({"json": body(context_id=17)}, path=("context_id",), says="Not a valid string")),
    bad("context-id-null", Bad({"json": body(context_id=None)}, path=("context_id",), says="null")),
    bad("context-id-empty", Bad({"json": body(context_id="")}, path=("context_id",), says="empty")),
    bad("context-id-whitespace", Bad({"json": body(context_id=" \t\n ")}, path=("context_id",), says="empty")),
    bad("context-id-129-chars", Bad({"json": body(context_id="c" * 129)}, path=("context_id",), says="128")),
    bad("event-id-in-body", Bad({"json": body(event_id="evt-1")}, path=("event_id",), says="Unknown field")),
    bad("unknown-top-level-field", Bad({"json": body(foo="bar")}, path=("foo",), says="Unknown field")),
    bad("language-number", Bad({"json": body(language=1)}, path=("language",), says="Not a valid string")),
    bad("language-not-a-tag", Bad({"json": body(language="English!")}, path=("language",), says="language tag")),
    bad("language-underscore", Bad({"json": body(language="en_US")}, path=("language",), says="language tag")),
    bad(
        "language-trailing-newline",
        Bad({"json": body(language="en\n")}, path=("language",), says="language tag"),
    ),
    bad(
        "language-longer-than-its-column",
        Bad({"json": body(language="en-" + "-".join(["abcdefgh"] * 4))}, path=("language",)),
    ),
    # --- segments as a whole
    bad("segments-object", Bad({"json": body(segments={"0": seg()})}, path=("segments",), says="Not a valid list")),
    bad("segments-string", Bad({"json": body(segments="hello")}, path=("segments",), says="Not a valid list")),
    bad("segments-empty-list", Bad({"json": body(segments=[])}, path=("segments",), says="at least one")),
    bad(
        "segments-2001",
        Bad({"json": body(segments=make_segments(2001))}, path=("segments",), says="At most 2000 segments"),
    ),
    bad(
        "segments-over-200000-chars",
        Bad(
            {"json": body(segments=[seg(id=f"s{i}", text="x" * 50_001) for i in range(4)])},
            path=("segments",),
            says="At most 200000 characters",
        ),
    ),
    bad("segments-omitted-unknown-context", Bad({"json": {"context_id": NEVER_SEEN}}, path=("segments",))),
    bad(
        "segments-null-unknown-context",
        Bad({"json": {"context_id": NEVER_SEEN, "segments": None}}, path=("segments",), says="No segments"),
    ),
    # --- one segment
    bad("segment-string", Bad({"json": with_segment("hello")}, path=("segments", "0", "_schema"))),
    bad("segment-null", Bad({"json": with_segment(None)}, path=("segments", "0"), says="null")),
    bad("segment-missing-id", Bad({"json": with_segment({"text": "Hi."})}, path=("segments", "0", "id"))),
    bad("segment-missing-text", Bad({"json": with_segment({"id": "s1"})}, path=("segments", "0", "text"))),
    bad("segment-id-number", Bad({"json": with_segment(seg(id=1))}, path=("segments", "0", "id"))),
    bad("segment-text-list", Bad({"json": with_segment(seg(text=["Hi."]))}, path=("segments", "0", "text"))),
    bad("segment-text-empty", Bad({"json": with_segment(seg(text=""))}, path=("segments", "0", "text"))),
    bad("segment-text-whitespace", Bad({"json": with_segment(seg(text=" \n\t "))}, path=("segments", "0", "text"))),
    bad("segment-id-whitespace", Bad({"json": with_segment(seg(id="  "))}, path=("segments", "0", "id"))),
    bad(
        "segment-id-129-chars",
        Bad({"json": with_segment(seg(id="i" * 129))}, path=("segments", "0", "id"), says="128"),
    ),
    bad(
        "duplicate-segment-ids",
        Bad({"json": body(segments=[seg(id="a"), seg(id="b"), seg(id="a")])}, path=("segments", "2", "id"), says="a"),
    ),
    bad(
        "unknown-segment-field",
        Bad({"json": with_segment(seg(mood="happy"))}, path=("segments", "0", "mood"), says="Unknown field"),
    ),
    bad("start-ms-negative", Bad({"json": with_segment(seg(start_ms=-1))}, path=("segments", "0", "start_ms"))),
    bad("start-ms-string", Bad({"json": with_segment(seg(start_ms="100"))}, path=("segments", "0", "start_ms"))),
    bad("start-ms-float", Bad({"json": with_segment(seg(start_ms=1.5))}, path=("segments", "0", "start_ms"))),
    bad("start-ms-boolean", Bad({"json": with_segment(seg(start_ms=True))}, path=("segments", "0", "start_ms"))),
    bad(
        "start-ms-nan",
        Bad(
            raw('{"context_id": "c", "segments": [{"id": "a", "text": "b", "start_ms": NaN}]}'),
            path=("segments", "0", "start_ms"),
        ),
    ),
    bad("end-ms-negative", Bad({"json": with_segment(seg(end_ms=-5))}, path=("segments", "0", "end_ms"))),
    bad(
        "end-ms-before-start-ms",
        Bad(
            {"json": with_segment(seg(start_ms=5000, end_ms=4999))},
            path=("segments", "0", "end_ms"),
            says="before start_ms",
        ),
    ),
    bad("speaker-number", Bad({"json": with_segment(seg(speaker=7))}, path=("segments", "0", "speaker"))),
    bad("speaker-201-chars", Bad({"json": with_segment(seg(speaker="S" * 201))}, path=("segments", "0", "speaker"))),
    bad("bad-third-segment", Bad({"json": with_segment(seg(text=""), index=2)}, path=("segments", "2", "text"))),
    bad(
        "nul-in-segment-text",
        Bad({"json": with_segment(seg(text="before\x00after"))}, path=("segments", "0", "text")),
    ),
    bad(
        "nul-in-context-id",
        Bad({"json": body(context_id="ctx\x00id")}, path=("context_id",)),
    ),
    bad(
        "lone-surrogate-in-segment-text",
        Bad(raw('{"context_id": "c", "segments": [{"id": "a", "text": "x\\ud800y"}]}'), path=("segments", "0", "text")),
    ),
    # --- prompt_ids
    bad("prompt-ids-list", Bad({"json": body(prompt_ids=["summary@v1"])}, path=("prompt_ids",), says="mapping")),
    bad("prompt-ids-null", Bad({"json": body(prompt_ids=None)}, path=("prompt_ids",), says="null")),
    bad(
        "prompt-ids-unknown-worker",
        Bad({"json": body(prompt_ids={"poetry": "summary@v1"})}, path=("prompt_ids", "poetry"), says="Unknown worker"),
    ),
    bad(
        "unknown-prompt-reference",
        Bad({"json": body(prompt_ids={"summary": "summary@v9"})}, path=("prompt_ids", "summary"), says="summary@v9"),
    ),
    bad(
        "prompt-of-another-worker",
        Bad(
            {"json": body(prompt_ids={"summary": "argument@v1"})},
            path=("prompt_ids", "summary"),
            says="not a summary prompt",
        ),
    ),
    bad("prompt-value-number", Bad({"json": body(prompt_ids={"summary": 1})}, path=("prompt_ids", "summary"))),
    # --- Idempotency-Key header (the body is valid)
    bad("idempotency-key-empty", Bad({"json": body(), "headers": {"Idempotency-Key": ""}}, path=("Idempotency-Key",))),
    bad(
        "idempotency-key-whitespace",
        Bad({"json": body(), "headers": {"Idempotency-Key": "   "}}, path=("Idempotency-Key",), says="empty"),
    ),
    bad(
        "idempotency-key-129-chars",
        Bad({"json": body(), "headers": {"Idempotency-Key": "k" * 129}}, path=("Idempotency-Key",), says="128"),
    ),
]


def json_of(response: Any) -> dict[str, Any]:
    payload = response.get_json(silent=True)
    assert isinstance(payload, dict), response.get_data(as_text=True)[:500]
    return payload


def error_at(fields: Any, path: tuple[str, ...]) -> Any:
    node = fields
    for key in path:
        assert isinstance(node, dict) and key in node, f"no {key!r} on the way to {path} in {fields!r}"
        node = node[key]
    return node


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_request_is_refused_with_its_field_errors_and_writes_nothing(
    client: FlaskClient, store: RunStore, case: Bad
) -> None:
    before = row_counts(store)
    response = client.post(ANALYZE, **case.request)
    after = row_counts(store)

    assert response.status_code == case.status, response.get_data(as_text=True)[:500]
    payload = response.get_json(silent=True)
    assert isinstance(payload, dict), response.get_data(as_text=True)[:500]
    if case.status == 400:
        assert payload["error"] == "invalid_json"
        assert "fields" not in payload
    else:
        assert payload["error"] == "validation_failed"
        fields = payload["fields"]
        assert list(fields) == [case.path[0]], "only the offending field is reported"
        messages = error_at(fields, case.path)
        assert messages, "the offending field has at least one message"
        assert case.says in str(messages)
    assert after == before


def test_enough_distinct_malformed_requests_are_checked() -> None:
    assert len({p.id for p in MALFORMED}) == len(MALFORMED)
    assert sum(1 for p in MALFORMED if not p.marks) >= 35


def test_body_over_max_content_length_gets_a_json_413_and_writes_nothing(
    client: FlaskClient, store: RunStore, settings: Settings
) -> None:
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    assert limit == 8 * settings.max_total_chars + 1024 * 1024
    prefix, suffix = '{"context_id": "big", "segments": [{"id": "s1", "text": "', '"}]}'
    data = prefix + "x" * (limit + 1 - len(prefix) - len(suffix)) + suffix
    before = row_counts(store)

    response = client.post(ANALYZE, data=data, content_type=JSON_TYPE)

    assert response.status_code == 413
    assert response.is_json
    assert json_of(response)["error"] == "request_entity_too_large"
    assert row_counts(store) == before


def test_body_of_exactly_max_content_length_is_parsed_and_judged_by_the_schema(client: FlaskClient) -> None:
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    prefix, suffix = '{"context_id": "big", "segments": [{"id": "s1", "text": "', '"}]}'
    data = prefix + "x" * (limit - len(prefix) - len(suffix)) + suffix
    assert len(data.encode()) == limit

    response = client.post(ANALYZE, data=data, content_type=JSON_TYPE)

    assert response.status_code == 422
    assert "At most 200000 characters" in str(json_of(response)["fields"]["segments"])


def test_the_api_applies_the_limits_of_its_settings(embedded_settings: Settings) -> None:
    app = create_app(replace(embedded_settings, max_segments=2, max_id_length=8))
    client = app.test_client()

    too_many = client.post(ANALYZE, json=body(segments=make_segments(3)))
    long_key = client.post(
        ANALYZE, json=body(context_id="c1", segments=make_segments(2)), headers={"Idempotency-Key": "k" * 9}
    )

    assert too_many.status_code == 422
    assert json_of(too_many)["fields"]["segments"] == ["At most 2 segments; got 3."]
    assert long_key.status_code == 422
    assert json_of(long_key)["fields"]["Idempotency-Key"] == ["Longer than 8 characters."]


# --- Schemas alone (no services)


def test_a_body_with_every_optional_field_loads_into_an_analysis_request_of_segments() -> None:
    segments = [
        {"id": "s1", "text": "Bom dia.", "speaker": None, "start_ms": 0, "end_ms": 1500},
        {"id": "s2", "text": "Boa tarde.", "speaker": "Ana", "start_ms": 1500, "end_ms": 1500},
    ]
    loaded = load(
        {
            "context_id": "debate-1",
            "language": "pt-BR",
            "segments": segments,
            "prompt_ids": {"summary": "summary@v2", "argument": "argument@v1"},
        }
    )

    assert loaded == RunRequest(
        pipeline="analysis",
        context_id="debate-1",
        input={"language": "pt-BR", "segments": segments},
        prompt_ids={"summary": "summary@v2", "argument": "argument@v1"},
        event_id=None,
    )


def test_omitted_optional_fields_get_their_defaults() -> None:
    loaded = load({"context_id": "c1", "segments": [{"id": "s1", "text": "Hi."}]})

    assert loaded == RunRequest(
        pipeline="analysis",
        context_id="c1",
        input={
            "language": None,
            "segments": [{"id": "s1", "text": "Hi.", "speaker": None, "start_ms": None, "end_ms": None}],
        },
    )


def test_omitted_segments_load_as_incomplete_input_to_reuse_the_stored_context() -> None:
    loaded = load({"context_id": "c1"})

    assert loaded.input["segments"] is None and not loaded.input_complete


def test_a_request_may_name_its_pipeline_and_an_unknown_one_is_a_field_error() -> None:
    assert load({"pipeline": "analysis", "context_id": "c1"}).pipeline == "analysis"
    with pytest.raises(ValidationError) as raised:
        load({"pipeline": "astrology", "context_id": "c1"})
    assert list(raised.value.messages) == ["pipeline"]
    with pytest.raises(ValidationError):
        load({"pipeline": ["analysis"], "context_id": "c1"})


@pytest.mark.parametrize(
    "name,value",
    [("context_id", " debate-1"), ("segment id", " s1"), ("segment text", "  Good evening, everyone.")],
)
def test_a_value_with_leading_white_space_is_not_taken_for_a_blank_one(name: str, value: str) -> None:
    request: dict[str, Any] = {"context_id": "debate-1", "segments": [{"id": "s1", "text": "Good evening."}]}
    if name == "context_id":
        request["context_id"] = value
    elif name == "segment id":
        request["segments"][0]["id"] = value
    else:
        request["segments"][0]["text"] = value

    loaded = load(request)

    segment = loaded.input["segments"][0]
    assert value in (loaded.context_id, segment["id"], segment["text"])


def test_a_model_summary_with_leading_white_space_is_accepted() -> None:
    loaded = SummaryOutputSchema().load({"summary": "\nThe debate was civil.", "key_points": []})

    assert loaded["summary"] == "\nThe debate was civil."


def test_task_schema_loads_the_event_id_into_the_request() -> None:
    loaded = load({"event_id": "evt-1", "context_id": "c1", "segments": [seg()]}, event=True)

    assert loaded.event_id == "evt-1"
    assert [s["text"] for s in loaded.input["segments"]] == ["A perfectly fine sentence."]


@pytest.mark.parametrize(
    "event,field_name,message",
    [
        ({"context_id": "c1"}, "event_id", "Missing data for required field."),
        ({"event_id": None, "context_id": "c1"}, "event_id", "Field may not be null."),
        ({"event_id": " ", "context_id": "c1"}, "event_id", "Must not be empty or only white space."),
        ({"event_id": "e" * 129, "context_id": "c1"}, "event_id", "Longer than 128 characters."),
        ({"event_id": "evt-1", "context_id": "c1", "partition": 3}, "partition", "Unknown field."),
        ({"event_id": "evt-1", "context_id": "c1", "segments": [seg(extra=1)]}, "segments", None),
    ],
    ids=["event-id-missing", "event-id-null", "event-id-blank", "event-id-too-long", "unknown-field", "unknown-seg"],
)
def test_task_schema_refuses_a_bad_event_naming_the_field(
    event: dict[str, Any], field_name: str, message: str | None
) -> None:
    with pytest.raises(ValidationError) as raised:
        load(event, event=True)

    messages: Any = raised.value.messages
    assert list(messages) == [field_name]
    if message is not None:
        assert messages[field_name] == [message]
    else:
        assert messages == {"segments": {0: {"extra": ["Unknown field."]}}}


SMALL = Limits(max_segments=3, max_total_chars=20, max_id_length=5)


def test_a_request_exactly_at_every_custom_limit_is_accepted() -> None:
    request = {
        "context_id": "c" * 5,
        "segments": [{"id": "i" * 5, "text": "x" * 10}, {"id": "b", "text": "y" * 5}, {"id": "c", "text": "z" * 5}],
    }

    loaded = load(request, SMALL)
    task = load({**request, "event_id": "e" * 5}, SMALL, event=True)

    assert len(loaded.input["segments"]) == 3
    assert task.event_id == "e" * 5


@pytest.mark.parametrize(
    "request_body,expected",
    [
        (
            {"context_id": "c", "segments": [{"id": f"s{i}", "text": "x"} for i in range(4)]},
            {"segments": ["At most 3 segments; got 4."]},
        ),
        (
            {"context_id": "c", "segments": [{"id": "a", "text": "x" * 11}, {"id": "b", "text": "y" * 10}]},
            {"segments": ["At most 20 characters of text in total; got 21."]},
        ),
        (
            {"context_id": "c", "segments": [{"id": "a", "text": "x"}, {"id": "i" * 6, "text": "y"}]},
            {"segments": {"1": {"id": ["Longer than 5 characters."]}}},
        ),
        (
            {"context_id": "c" * 6, "segments": [{"id": "a", "text": "x"}]},
            {"context_id": ["Longer than 5 characters."]},
        ),
        (
            {"event_id": "e" * 6, "context_id": "c", "segments": [{"id": "a", "text": "x"}]},
            {"event_id": ["Longer than 5 characters."]},
        ),
    ],
    ids=["segments", "total-chars", "segment-id", "context-id", "event-id"],
)
def test_custom_limits_are_enforced_with_their_own_numbers(
    request_body: dict[str, Any], expected: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as raised:
        load(request_body, SMALL, event="event_id" in request_body)

    assert raised.value.messages == expected


def test_limits_come_from_the_settings() -> None:
    assert Limits.from_settings(Settings()) == Limits()
    tuned = replace(Settings(), max_segments=7, max_total_chars=800, max_id_length=9)
    assert Limits.from_settings(tuned) == Limits(max_segments=7, max_total_chars=800, max_id_length=9)
