"""The analysis pipeline: a transcript analysed along four axes at once.

| worker | produces |
|---|---|
| ``summary`` | a short summary and key points |
| ``argument`` | claims with their evidence, stance and speaker |
| ``implication_sentiment`` | implications of what is said, and sentiment (overall and per speaker) |
| ``logic_bias`` | logical fallacies and cognitive biases, each with the quote that shows it |

All four are required: each axis is part of what the caller asked for, so a
bundle missing one is ``partial``, not ``ok``.

Its input is ``{"language", "segments"}``; a request may omit the segments
of a context sent before (they are stored in ``contexts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, pre_load, validate, validates_schema

from orchestrator.analysers import analysis as builtin
from orchestrator.domain import JSON, Segment
from orchestrator.pipeline import Pipeline, PromptTemplate, WorkerSpec
from orchestrator.schemas import (
    LANGUAGE,
    NOT_BLANK,
    Limits,
    OutputSchema,
    RunRequestSchema,
    SegmentSchema,
    Text,
    id_length_errors,
)

NAME = "analysis"

# --- the request -----------------------------------------------------------------------------


class AnalysisRequestSchema(RunRequestSchema):
    """Body of ``POST /orchestrator/analyze``, and the fields of an AnalysisTask on Kafka."""

    context_id = Text(required=True, validate=NOT_BLANK)
    language = Text(load_default=None, allow_none=True, validate=LANGUAGE)
    segments = fields.List(fields.Nested(SegmentSchema), load_default=None, allow_none=True)

    @pre_load
    def refuse_too_many_segments(self, data: Any, **_: Any) -> Any:
        # Checked before loading them: a message of a million tiny segments
        # must not cost the bridge seconds of validation.
        if isinstance(data, dict) and isinstance(data.get("segments"), list):
            if len(data["segments"]) > self.limits.max_segments:
                limit = self.limits.max_segments
                raise ValidationError({"segments": [f"At most {limit} segments; got {len(data['segments'])}."]})
        return data

    @validates_schema
    def within_limits(self, data: JSON, **_: Any) -> None:
        """Size limits and unique segment ids."""
        errors: dict[str, Any] = id_length_errors({"context_id": data.get("context_id")}, self.limits)
        segments: list[Segment] | None = data.get("segments")
        if segments is not None:
            segment_errors = _segment_limit_errors(segments, self.limits)
            if segment_errors:
                errors["segments"] = segment_errors
        if errors:
            raise ValidationError(errors)

    def split(self, data: JSON) -> tuple[str, JSON, bool]:
        segments: list[Segment] | None = data.get("segments")
        run_input = {
            "language": data.get("language"),
            "segments": None if segments is None else [segment.to_json() for segment in segments],
        }
        return data["context_id"], run_input, segments is not None


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


def segments_of(run_input: JSON) -> tuple[Segment, ...]:
    return tuple(Segment.from_json(segment) for segment in run_input.get("segments") or ())


def render_transcript(run_input: JSON) -> str:
    """The transcript as prompts show it: one ``[id] speaker: text`` line per segment."""
    language = run_input.get("language")
    note = f"The transcript language is {language}.\n" if language else ""
    lines = [f"[{s.id}] {s.speaker or 'unknown'}: {s.text}" for s in segments_of(run_input)]
    return note + "Transcript:\n" + "\n".join(lines)


# --- what each worker answers ----------------------------------------------------------------


class SummaryOutputSchema(OutputSchema):
    summary = Text(required=True, validate=NOT_BLANK)
    key_points = fields.List(Text(), required=True)


class ClaimSchema(OutputSchema):
    claim = Text(required=True, validate=NOT_BLANK)
    evidence = fields.List(Text(), load_default=list)
    stance = Text(required=True, validate=validate.OneOf(["for", "against", "neutral"]))
    speaker = Text(load_default=None, allow_none=True)
    segment_id = Text(load_default=None, allow_none=True)


class ArgumentOutputSchema(OutputSchema):
    claims = fields.List(fields.Nested(ClaimSchema), required=True)


class ImplicationSchema(OutputSchema):
    text = Text(required=True, validate=NOT_BLANK)
    segment_id = Text(load_default=None, allow_none=True)
    speaker = Text(load_default=None, allow_none=True)
    #: Optional (the builtin analyser gives them): "conditional", "causal" or
    #: "consequence", and which words showed it.
    kind = Text(load_default=None, allow_none=True)
    explanation = Text(load_default="")


class SentimentScoreSchema(OutputSchema):
    label = Text(required=True, validate=validate.OneOf(["positive", "negative", "neutral"]))
    score = fields.Float(required=True, validate=validate.Range(min=-1.0, max=1.0))


class SentimentSchema(OutputSchema):
    overall = fields.Nested(SentimentScoreSchema, required=True)
    by_speaker = fields.Dict(keys=Text(), values=fields.Nested(SentimentScoreSchema), load_default=dict)


class ImplicationSentimentOutputSchema(OutputSchema):
    implications = fields.List(fields.Nested(ImplicationSchema), required=True)
    sentiment = fields.Nested(SentimentSchema, required=True)


class FindingSchema(OutputSchema):
    type = Text(required=True, validate=NOT_BLANK)
    quote = Text(required=True)
    segment_id = Text(load_default=None, allow_none=True)
    explanation = Text(load_default="")


class LogicBiasOutputSchema(OutputSchema):
    fallacies = fields.List(fields.Nested(FindingSchema), required=True)
    biases = fields.List(fields.Nested(FindingSchema), required=True)


# --- prompts ---------------------------------------------------------------------------------

_JSON_ONLY = "Answer with one JSON object only, no prose, no code fence."


def _template(ref: str, instruction: str, shape: str) -> PromptTemplate:
    system = (
        "You analyse transcripts of debates, meetings and interviews. "
        f"{_JSON_ONLY} The object must have this shape: {shape}"
    )
    return PromptTemplate(ref=ref, system=system, instruction=instruction)


_SUMMARY_SHAPE = '{"summary": string, "key_points": [string]}'
_ARGUMENT_SHAPE = (
    '{"claims": [{"claim": string, "evidence": [string], '
    '"stance": "for"|"against"|"neutral", "speaker": string|null, "segment_id": string}]}'
)
_IMPLICATION_SHAPE = (
    '{"implications": [{"text": string, "segment_id": string, "speaker": string|null}], '
    '"sentiment": {"overall": {"label": "positive"|"negative"|"neutral", "score": number}, '
    '"by_speaker": {"<speaker>": {"label": ..., "score": number}}}}'
)
_LOGIC_BIAS_SHAPE = (
    '{"fallacies": [{"type": string, "quote": string, "segment_id": string, '
    '"explanation": string}], "biases": [same keys as fallacies]}'
)

SUMMARY_PROMPTS = (
    _template(
        "summary@v1",
        "Summarise the transcript in two or three sentences and list its key points.",
        _SUMMARY_SHAPE,
    ),
    _template(
        "summary@v2",
        "Summarise the transcript in one neutral sentence per speaker, then list at most "
        "five key points, each naming who raised it.",
        _SUMMARY_SHAPE,
    ),
)
ARGUMENT_PROMPTS = (
    _template(
        "argument@v1",
        "List every claim made, with the evidence offered for it, its stance towards the "
        "motion and the speaker. Quote the segment id each claim comes from.",
        _ARGUMENT_SHAPE,
    ),
)
IMPLICATION_SENTIMENT_PROMPTS = (
    _template(
        "implication_sentiment@v1",
        "List the implications of what is said (consequences speakers draw or imply), and "
        "rate the sentiment overall and per speaker from -1 (negative) to 1 (positive).",
        _IMPLICATION_SHAPE,
    ),
)
LOGIC_BIAS_PROMPTS = (
    _template(
        "logic_bias@v1",
        "Find logical fallacies and cognitive biases. For each, give its type, the exact "
        "quote that shows it, the segment id and a one-sentence explanation.",
        _LOGIC_BIAS_SHAPE,
    ),
)


# --- the response ----------------------------------------------------------------------------


def merge(outputs: Mapping[str, JSON], run_input: JSON, state: None) -> JSON:
    """The bundle's analysis fields; a failed worker's fields are null.

    ``arguments`` is the ``argument`` worker's output; ``implications`` and
    ``sentiment`` both come from ``implication_sentiment``.
    """
    implication_sentiment = outputs.get("implication_sentiment")
    return {
        "summary": outputs.get("summary"),
        "arguments": outputs.get("argument"),
        "implications": implication_sentiment["implications"] if implication_sentiment else None,
        "sentiment": implication_sentiment["sentiment"] if implication_sentiment else None,
        "logic_bias": outputs.get("logic_bias"),
    }


PIPELINE = Pipeline(
    name=NAME,
    workers=(
        WorkerSpec(
            "summary",
            SummaryOutputSchema(),
            SUMMARY_PROMPTS,
            lambda run_input: builtin.summarise(segments_of(run_input)),
        ),
        WorkerSpec(
            "argument",
            ArgumentOutputSchema(),
            ARGUMENT_PROMPTS,
            lambda run_input: builtin.extract_claims(segments_of(run_input)),
        ),
        WorkerSpec(
            "implication_sentiment",
            ImplicationSentimentOutputSchema(),
            IMPLICATION_SENTIMENT_PROMPTS,
            lambda run_input: builtin.implications_and_sentiment(segments_of(run_input)),
        ),
        WorkerSpec(
            "logic_bias",
            LogicBiasOutputSchema(),
            LOGIC_BIAS_PROMPTS,
            lambda run_input: builtin.detect_logic_and_bias(segments_of(run_input)),
        ),
    ),
    request_schema=AnalysisRequestSchema,
    render_input=render_transcript,
    merge=merge,
    stores_context=True,
    warm=builtin.warm,
)
