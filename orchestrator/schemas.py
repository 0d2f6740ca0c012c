"""Marshmallow schemas for every boundary: HTTP body, Kafka event, model output.

Loading returns the plain dataclasses of ``domain.py``. Size limits come from
``Limits`` (built from the settings) so operators can tune them; field errors
are raised as ``marshmallow.ValidationError`` whose ``messages`` is JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

from orchestrator.config import Settings
from orchestrator.domain import JSON, WORKERS, AnalysisRequest, Segment
from orchestrator.prompts import prompt_error

_LANGUAGE = validate.And(
    # \Z, not $: $ also matches before a trailing newline.
    validate.Regexp(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z", error="Not a language tag such as 'en' or 'pt-BR'."),
    validate.Length(max=35),
)
_NOT_BLANK = validate.Regexp(r"\s*\S", error="Must not be empty or only white space.")


class Text(fields.String):
    """A string PostgreSQL can store: no NUL character, no lone surrogate."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain a NUL character.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Must be valid Unicode (no lone surrogates).") from None
        return text


@dataclass(frozen=True)
class Limits:
    """Input limits; the defaults are the settings' (MAX_SEGMENTS, ...)."""

    max_segments: int = Settings.max_segments
    max_total_chars: int = Settings.max_total_chars
    max_id_length: int = Settings.max_id_length

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_segments, settings.max_total_chars, settings.max_id_length)


class SegmentSchema(Schema):
    id = Text(required=True, validate=_NOT_BLANK)
    text = Text(required=True, validate=_NOT_BLANK)
    speaker = Text(load_default=None, allow_none=True, validate=validate.Length(max=200))
    start_ms = fields.Integer(strict=True, load_default=None, allow_none=True, validate=validate.Range(min=0))
    end_ms = fields.Integer(strict=True, load_default=None, allow_none=True, validate=validate.Range(min=0))

    @validates_schema
    def end_not_before_start(self, data: JSON, **_: Any) -> None:
        start, end = data.get("start_ms"), data.get("end_ms")
        if start is not None and end is not None and end < start:
            raise ValidationError("Must not be before start_ms.", "end_ms")

    @post_load
    def make_segment(self, data: JSON, **_: Any) -> Segment:
        return Segment(**data)


class AnalyzeRequestSchema(Schema):
    """Body of ``POST /orchestrator/analyze``."""

    context_id = Text(required=True, validate=_NOT_BLANK)
    language = Text(load_default=None, allow_none=True, validate=_LANGUAGE)
    segments = fields.List(fields.Nested(SegmentSchema), load_default=None, allow_none=True)
    prompt_ids = fields.Dict(keys=Text(), values=Text(), load_default=dict)

    def __init__(self, limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = limits or Limits()

    @validates_schema
    def within_limits(self, data: JSON, **_: Any) -> None:
        """Size limits, unique segment ids and known prompt references."""
        errors: dict[str, Any] = {}
        max_id = self.limits.max_id_length
        for name in ("event_id", "context_id"):
            if len(data.get(name) or "") > max_id:
                errors[name] = [f"Longer than {max_id} characters."]
        segments: list[Segment] | None = data.get("segments")
        if segments is not None:
            segment_errors = _segment_limit_errors(segments, self.limits)
            if segment_errors:
                errors["segments"] = segment_errors
        prompt_errors = {
            worker: [message]
            for worker, ref in data.get("prompt_ids", {}).items()
            if (message := prompt_error(worker, ref))
        }
        if prompt_errors:
            errors["prompt_ids"] = prompt_errors
        if errors:
            raise ValidationError(errors)

    @post_load
    def make_request(self, data: JSON, **_: Any) -> AnalysisRequest:
        segments = data.pop("segments")
        return AnalysisRequest(segments=None if segments is None else tuple(segments), **data)


class AnalysisTaskSchema(AnalyzeRequestSchema):
    """Value of a message on the ``analysis.tasks`` Kafka topic."""

    event_id = Text(required=True, validate=_NOT_BLANK)


def _segment_limit_errors(segments: list[Segment], limits: Limits) -> dict[str, Any] | list[str]:
    if not segments:
        return ["Must contain at least one segment (or omit it to reuse the stored context)."]
    if len(segments) > limits.max_segments:
        return [f"At most {limits.max_segments} segments; got {len(segments)}."]
    total = sum(len(s.text) for s in segments)
    if total > limits.max_total_chars:
        return [f"At most {limits.max_total_chars} characters of text in total; got {total}."]
    errors: dict[str, Any] = {}
    seen: set[str] = set()
    for index, segment in enumerate(segments):
        if len(segment.id) > limits.max_id_length:
            errors[str(index)] = {"id": [f"Longer than {limits.max_id_length} characters."]}
        elif segment.id in seen:
            errors[str(index)] = {"id": [f"Duplicate segment id {segment.id!r}."]}
        seen.add(segment.id)
    return errors


def idempotency_key_error(key: str, limits: Limits) -> str | None:
    """Why an ``Idempotency-Key`` header cannot be an event id, or None."""
    if not key.strip():
        return "Must not be empty."
    if len(key) > limits.max_id_length:
        return f"Longer than {limits.max_id_length} characters."
    return None


# --- Model output, one schema per worker. Extra keys are dropped, not errors:
# --- models add commentary fields freely; what we rely on must be present.


class _Output(Schema):
    class Meta:
        unknown = EXCLUDE


class SummaryOutputSchema(_Output):
    summary = Text(required=True, validate=_NOT_BLANK)
    key_points = fields.List(Text(), required=True)


class ClaimSchema(_Output):
    claim = Text(required=True, validate=_NOT_BLANK)
    evidence = fields.List(Text(), load_default=list)
    stance = Text(required=True, validate=validate.OneOf(["for", "against", "neutral"]))
    speaker = Text(load_default=None, allow_none=True)
    segment_id = Text(load_default=None, allow_none=True)


class ArgumentOutputSchema(_Output):
    claims = fields.List(fields.Nested(ClaimSchema), required=True)


class ImplicationSchema(_Output):
    text = Text(required=True, validate=_NOT_BLANK)
    segment_id = Text(load_default=None, allow_none=True)
    speaker = Text(load_default=None, allow_none=True)


class SentimentScoreSchema(_Output):
    label = Text(required=True, validate=validate.OneOf(["positive", "negative", "neutral"]))
    score = fields.Float(required=True, validate=validate.Range(min=-1.0, max=1.0))


class SentimentSchema(_Output):
    overall = fields.Nested(SentimentScoreSchema, required=True)
    by_speaker = fields.Dict(keys=Text(), values=fields.Nested(SentimentScoreSchema), load_default=dict)


class ImplicationSentimentOutputSchema(_Output):
    implications = fields.List(fields.Nested(ImplicationSchema), required=True)
    sentiment = fields.Nested(SentimentSchema, required=True)


class FindingSchema(_Output):
    type = Text(required=True, validate=_NOT_BLANK)
    quote = Text(required=True)
    segment_id = Text(load_default=None, allow_none=True)
    explanation = Text(load_default="")


class LogicBiasOutputSchema(_Output):
    fallacies = fields.List(fields.Nested(FindingSchema), required=True)
    biases = fields.List(fields.Nested(FindingSchema), required=True)


OUTPUT_SCHEMAS: dict[str, Schema] = {
    "summary": SummaryOutputSchema(),
    "argument": ArgumentOutputSchema(),
    "implication_sentiment": ImplicationSentimentOutputSchema(),
    "logic_bias": LogicBiasOutputSchema(),
}
assert set(OUTPUT_SCHEMAS) == set(WORKERS)
