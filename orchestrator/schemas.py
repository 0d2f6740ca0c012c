"""Marshmallow schemas for the boundaries every pipeline shares, and its building blocks.

A pipeline's request schema (a ``RunRequestSchema``) turns an HTTP body or a
Kafka event into a ``RunRequest``; its workers' output schemas check model
answers. Size limits come from ``Limits`` (built from the settings) so
operators can tune them; field errors are raised as
``marshmallow.ValidationError`` whose ``messages`` is JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

from orchestrator.config import Settings
from orchestrator.domain import JSON, RunRequest, Segment

if TYPE_CHECKING:
    from orchestrator.pipeline import Pipeline

LANGUAGE = validate.And(
    # \Z, not $: $ also matches before a trailing newline.
    validate.Regexp(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z", error="Not a language tag such as 'en' or 'pt-BR'."),
    validate.Length(max=35),
)
NOT_BLANK = validate.Regexp(r"\s*\S", error="Must not be empty or only white space.")


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
    id = Text(required=True, validate=NOT_BLANK)
    text = Text(required=True, validate=NOT_BLANK)
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


class RunRequestSchema(Schema):
    """What every pipeline's request has: the pipeline's name, an event id
    (required on Kafka), prompt versions per worker. Unknown fields are refused.

    A pipeline's schema adds its own fields and says, in ``split``, which
    context the request belongs to and what its input is.
    """

    pipeline = Text(load_default=None)
    event_id = Text(validate=NOT_BLANK)
    prompt_ids = fields.Dict(keys=Text(), values=Text(), load_default=dict)
    #: False: answer without reading the response cache.
    cache = fields.Boolean(load_default=True)
    #: Answer within this many milliseconds (a model that would take longer gives way to the builtin analyser).
    deadline_ms = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=3_600_000))

    def __init__(self, *, pipeline: Pipeline, limits: Limits | None = None, event: bool = False, **kwargs: Any) -> None:
        # A Kafka event must carry its event id; an HTTP body must not (the
        # Idempotency-Key header gives it), so there it is an unknown field.
        super().__init__(**kwargs, exclude=() if event else ("event_id",))
        if event:
            self.fields["event_id"].required = True
        self.run_pipeline = pipeline
        self.limits = limits or Limits()

    def split(self, data: JSON) -> tuple[str, JSON, bool]:
        """``(context_id, input, input_complete)`` of a loaded request."""
        raise NotImplementedError

    @validates_schema
    def common_limits(self, data: JSON, **_: Any) -> None:
        """Id lengths, the pipeline's name, and prompt references known to the pipeline's workers."""
        errors: dict[str, Any] = {}
        if len(data.get("event_id") or "") > self.limits.max_id_length:
            errors["event_id"] = [f"Longer than {self.limits.max_id_length} characters."]
        if data.get("pipeline") not in (None, self.run_pipeline.name):
            errors["pipeline"] = [f"This request is for the {self.run_pipeline.name} pipeline."]
        prompt_errors = {
            worker: [message]
            for worker, ref in data.get("prompt_ids", {}).items()
            if (message := self.run_pipeline.prompt_error(worker, ref))
        }
        if prompt_errors:
            errors["prompt_ids"] = prompt_errors
        if errors:
            raise ValidationError(errors)

    @post_load
    def make_request(self, data: JSON, **_: Any) -> RunRequest:
        context_id, run_input, complete = self.split(data)
        return RunRequest(
            pipeline=self.run_pipeline.name,
            context_id=context_id,
            input=run_input,
            prompt_ids=dict(data["prompt_ids"]),
            event_id=data.get("event_id"),
            input_complete=complete,
            use_cache=data["cache"],
            deadline_ms=data["deadline_ms"],
        )


def id_length_errors(values: dict[str, str | None], limits: Limits) -> dict[str, list[str]]:
    """Field errors for the ids among ``values`` longer than ``MAX_ID_LENGTH`` (they would not fit their column)."""
    return {
        name: [f"Longer than {limits.max_id_length} characters."]
        for name, value in values.items()
        if len(value or "") > limits.max_id_length
    }


def idempotency_key_error(key: str, limits: Limits) -> str | None:
    """Why an ``Idempotency-Key`` header cannot be an event id, or None."""
    if not key.strip():
        return "Must not be empty."
    if len(key) > limits.max_id_length:
        return f"Longer than {limits.max_id_length} characters."
    return None


class OutputSchema(Schema):
    """Base of model output schemas. Extra keys are dropped, not errors:
    models add commentary fields freely; what we rely on must be present."""

    class Meta:
        unknown = EXCLUDE
