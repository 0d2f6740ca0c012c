"""The tutor pipeline: a learner's sentence analysed at once for grammar, fluency and vocabulary, and answered.

| worker | produces | required |
|---|---|---|
| ``grammar`` | errors (span, original, correction, ERRANT type, explanations) and the corrected sentence | yes |
| ``fluency`` | a fluency/readability score | no |
| ``vocabulary`` | the sentence's CEFR vocabulary level | no |
| ``feedback`` | the tutor's reply, worded for the learner's level (in Vietnamese when asked) | yes |

Grammar and the reply are what a tutoring turn is for; without them the turn
is ``partial``. Fluency and vocabulary enrich the scores, and a turn
without them is still ``ok`` (their scores are then left out of the overall).

The fan-in (``merge``) computes the scores, then chooses a teaching strategy
and the next action from the scores, the learner's level and the session's
history (``orchestrator.sessions``); see ``choose_strategy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from orchestrator.analysers import tutor as builtin
from orchestrator.domain import JSON
from orchestrator.pipeline import Pipeline, PromptTemplate, WorkerSpec
from orchestrator.schemas import NOT_BLANK, OutputSchema, RunRequestSchema, Text, id_length_errors
from orchestrator.sessions import SessionHistory, TutorSessions

NAME = "tutor"
CEFR_LEVELS = ("A1", "A2", "B1", "B2", "C1", "C2")
#: A learner whose profile gives no level, in a new session.
DEFAULT_LEVEL = "B1"
INPUT_TYPES = ("text",)
#: Input types a tutoring product may send that need a speech model we do not ship.
SPEECH_INPUT_TYPES = ("audio", "speech", "voice", "pronunciation")

STRATEGIES = ("positive_feedback", "gentle_correction", "explicit_correction", "scaffolding")
NEXT_ACTIONS = ("continue_conversation", "increase_difficulty", "ask_to_retry", "targeted_practice", "provide_hint")

# --- the request -----------------------------------------------------------------------------


class LearnerProfileSchema(Schema):
    """What the tutor needs to know of the learner; other profile fields are ignored."""

    class Meta:
        unknown = EXCLUDE

    level = Text(load_default=None, allow_none=True, validate=validate.OneOf(CEFR_LEVELS))
    #: ``vi``: explanations and the reply in Vietnamese.
    explanation_language = Text(load_default="en", validate=validate.OneOf(["en", "vi"]))

    @pre_load
    def upper_case_level(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("level"), str):
            return {**data, "level": data["level"].strip().upper()}
        return data


class TutorRequestSchema(RunRequestSchema):
    """Body of ``POST /api/v1/ai/analyze`` (and of a tutor event on Kafka, with ``event_id``)."""

    text = Text(required=True, validate=NOT_BLANK)
    session_id = Text(required=True, validate=NOT_BLANK)
    input_type = Text(load_default="text")
    learner_profile = fields.Nested(LearnerProfileSchema, load_default=dict)

    @validates_schema
    def within_limits(self, data: JSON, **_: Any) -> None:
        errors: dict[str, Any] = id_length_errors({"session_id": data.get("session_id")}, self.limits)
        if len(data.get("text") or "") > self.limits.max_total_chars:
            errors["text"] = [f"At most {self.limits.max_total_chars} characters; got {len(data['text'])}."]
        input_type = data.get("input_type")
        if input_type in SPEECH_INPUT_TYPES:
            errors["input_type"] = [
                f"input_type {input_type!r} needs a speech-to-text model, which this service does not ship; "
                "transcribe the learner's speech and send it with input_type 'text'."
            ]
        elif input_type not in INPUT_TYPES:
            errors["input_type"] = [f"Must be one of: {', '.join(INPUT_TYPES)}."]
        if errors:
            raise ValidationError(errors)

    def split(self, data: JSON) -> tuple[str, JSON, bool]:
        profile = data.get("learner_profile") or {}
        run_input = {
            "text": data["text"],
            "input_type": data["input_type"],
            "learner_profile": {
                "level": profile.get("level"),
                "explanation_language": profile.get("explanation_language", "en"),
            },
        }
        return data["session_id"], run_input, True


def _profile(run_input: JSON) -> JSON:
    profile: JSON = run_input.get("learner_profile") or {}
    return profile


def explains_in_vietnamese(run_input: JSON) -> bool:
    return _profile(run_input).get("explanation_language") == "vi"


def profile_level(run_input: JSON) -> str:
    return _profile(run_input).get("level") or DEFAULT_LEVEL


def render_sentence(run_input: JSON) -> str:
    language = "Vietnamese" if explains_in_vietnamese(run_input) else "English"
    return (
        f"Learner level (CEFR): {profile_level(run_input)}\n"
        f"Write explanations in: {language}\n"
        f"Learner's sentence: {run_input.get('text', '')}"
    )


# --- what each worker answers ----------------------------------------------------------------


class GrammarErrorSchema(OutputSchema):
    start = fields.Integer(required=True, validate=validate.Range(min=0))
    end = fields.Integer(required=True, validate=validate.Range(min=0))
    original = Text(required=True)
    correction = Text(required=True)
    type = Text(required=True, validate=NOT_BLANK)
    explanation = Text(load_default="")
    explanation_vi = Text(load_default=None, allow_none=True)
    source = Text(load_default="model")


class GrammarOutputSchema(OutputSchema):
    errors = fields.List(fields.Nested(GrammarErrorSchema), required=True)
    corrected = Text(required=True)


class FluencyOutputSchema(OutputSchema):
    score = fields.Float(required=True, validate=validate.Range(min=0.0, max=1.0))
    words = fields.Integer(load_default=None, allow_none=True)
    sentences = fields.Integer(load_default=None, allow_none=True)
    readability = fields.Dict(load_default=dict)


class VocabularyOutputSchema(OutputSchema):
    level = Text(required=True, validate=validate.OneOf(CEFR_LEVELS))
    score = fields.Float(required=True, validate=validate.Range(min=0.0, max=1.0))
    profile = fields.Dict(load_default=dict)
    advanced_words = fields.List(Text(), load_default=list)


class FeedbackOutputSchema(OutputSchema):
    reply = Text(required=True, validate=NOT_BLANK)
    tips = fields.List(Text(), load_default=list)


# --- prompts ---------------------------------------------------------------------------------


def _template(ref: str, instruction: str, shape: str) -> PromptTemplate:
    system = (
        "You are a patient English tutor for learners of English, most of them Vietnamese. "
        "Answer with one JSON object only, no prose, no code fence. The object must have this shape: " + shape
    )
    return PromptTemplate(ref=ref, system=system, instruction=instruction)


GRAMMAR_PROMPTS = (
    _template(
        "grammar@v1",
        "Find every grammar and spelling error in the learner's sentence. For each give the character offsets "
        "of the wrong part (start, end), the original text, its correction, its ERRANT error type (such as "
        "R:VERB:SVA, R:VERB:TENSE, M:DET, R:NOUN:NUM, R:PREP, R:SPELL), a one-sentence explanation a learner of "
        "that level understands, and the explanation in Vietnamese when asked. Give the corrected sentence. "
        "Names of people and places are never errors.",
        '{"errors": [{"start": int, "end": int, "original": string, "correction": string, "type": string, '
        '"explanation": string, "explanation_vi": string|null}], "corrected": string}',
    ),
)
FLUENCY_PROMPTS = (
    _template(
        "fluency@v1",
        "Rate how fluent and natural the learner's sentence reads, from 0 (not understandable) to 1 (native).",
        '{"score": number, "words": int, "sentences": int}',
    ),
)
VOCABULARY_PROMPTS = (
    _template(
        "vocabulary@v1",
        "Give the CEFR level (A1..C2) of the vocabulary the learner used, and a score from 0 to 1 for its range.",
        '{"level": "A1"|"A2"|"B1"|"B2"|"C1"|"C2", "score": number, "advanced_words": [string]}',
    ),
)
FEEDBACK_PROMPTS = (
    _template(
        "feedback@v1",
        "Reply to the learner as their tutor, in two or three short sentences for their level: encourage them, "
        "name the most important mistake (if any) and give the corrected sentence. Write in the language asked "
        "for. Add up to three short tips.",
        '{"reply": string, "tips": [string]}',
    ),
)


# --- the fan-in: scores, strategy, next action -------------------------------------------------

#: Weights of the overall score; a missing (optional, failed) score is left out and the rest renormalised.
WEIGHTS = {"grammar": 0.5, "fluency": 0.25, "vocabulary": 0.25}
#: Each grammar error costs this much of the grammar score (five errors: zero).
ERROR_COST = 0.2
#: A turn at least this good, without errors, counts towards moving the learner up a level.
HIGH_SCORE = 0.85
#: A turn this weak (or, at A1/A2, three errors at once) calls for scaffolding.
LOW_SCORE = 0.4
#: Consecutive turns (this one included) that move the level estimate.
LEVEL_STREAK = 3

_OPENERS = {
    "positive_feedback": ("Great job!", "Làm tốt lắm!"),
    "gentle_correction": ("Nice try!", "Cố gắng tốt lắm!"),
    "explicit_correction": ("Let's look at this mistake again.", "Chúng ta cùng xem lại lỗi này nhé."),
    "scaffolding": ("Let's build this sentence step by step.", "Chúng ta cùng xây dựng câu này từng bước nhé."),
}


def grammar_score(errors: Sequence[JSON]) -> float:
    return round(max(0.0, 1.0 - ERROR_COST * len(errors)), 2)


def overall_score(scores: Mapping[str, float | None]) -> float | None:
    present = {name: weight for name, weight in WEIGHTS.items() if scores.get(name) is not None}
    if not present:
        return None
    total = sum(weight * float(scores[name] or 0.0) for name, weight in present.items())
    return round(total / sum(present.values()), 2)


def choose_strategy(*, errors: Sequence[JSON], overall: float | None, level: str, repeated: Sequence[str]) -> str:
    """The teaching strategy of this turn, by the first rule that applies:

    1. ``scaffolding`` when the turn is weak overall (< 0.4), or a beginner (A1/A2)
       made three or more errors at once: correcting everything would swamp them,
       so the tutor rebuilds the sentence one step at a time.
    2. ``explicit_correction`` when an error type of this turn already occurred in
       the session's recent turns: the gentle correction did not take, so the
       tutor names the rule.
    3. ``gentle_correction`` for other errors: the tutor recasts the sentence
       correctly without dwelling on the mistake.
    4. ``positive_feedback`` when there are no errors: reinforce.
    """
    if (overall is not None and overall < LOW_SCORE) or (level in ("A1", "A2") and len(errors) >= 3):
        return "scaffolding"
    if repeated:
        return "explicit_correction"
    if errors:
        return "gentle_correction"
    return "positive_feedback"


def next_action(strategy: str, level_change: int) -> str:
    """What the tutor asks next: harder material after a level up, practice of a repeated
    error, another try after a correction, a hint after scaffolding."""
    if strategy == "positive_feedback":
        return "increase_difficulty" if level_change > 0 else "continue_conversation"
    return {
        "gentle_correction": "ask_to_retry",
        "explicit_correction": "targeted_practice",
        "scaffolding": "provide_hint",
    }[strategy]


def next_level(history: SessionHistory, overall: float | None, error_count: int) -> tuple[str, int]:
    """The session's level estimate after this turn, and its change (-1, 0, +1).

    Up one level after ``LEVEL_STREAK`` turns in a row at this level scoring at
    least ``HIGH_SCORE`` without errors; down one after as many scoring below
    ``LOW_SCORE``.
    """
    at_level = [turn for turn in history.recent[-(LEVEL_STREAK - 1) :] if turn.get("level") == history.level]
    if len(at_level) < LEVEL_STREAK - 1 or overall is None:
        return history.level, 0
    previous = [(turn.get("scores") or {}).get("overall") for turn in at_level]
    index = CEFR_LEVELS.index(history.level)
    if (
        overall >= HIGH_SCORE
        and error_count == 0
        and all(
            p is not None and p >= HIGH_SCORE and not turn.get("error_types")
            for p, turn in zip(previous, at_level, strict=True)
        )
    ):
        return CEFR_LEVELS[min(index + 1, len(CEFR_LEVELS) - 1)], int(index < len(CEFR_LEVELS) - 1)
    if overall < LOW_SCORE and all(p is not None and p < LOW_SCORE for p in previous):
        return CEFR_LEVELS[max(index - 1, 0)], -int(index > 0)
    return history.level, 0


def _aligned(errors: Sequence[JSON], text: str) -> list[JSON]:
    """Errors whose span points at their original text (a model may miscount offsets)."""
    aligned = []
    for error in errors:
        start, end, original = error["start"], error["end"], error["original"]
        if text[start:end] != original:
            found = text.find(original) if original else -1
            if found < 0:
                continue  # a span we cannot place is not shown as a marked error
            start, end = found, found + len(original)
        shown = {key: value for key, value in error.items() if not (key == "explanation_vi" and value is None)}
        aligned.append({**shown, "start": start, "end": end})
    return aligned


def _reply(strategy: str, feedback: JSON | None, grammar: JSON | None, vietnamese: bool) -> str | None:
    """The feedback worker's reply, framed by the strategy when only the session's history calls for it
    (the worker, which does not see the history, already praises or recasts)."""
    opener = _OPENERS[strategy][1 if vietnamese else 0]
    if feedback is not None:
        framed = strategy in ("explicit_correction", "scaffolding")
        return f"{opener} {feedback['reply']}" if framed else str(feedback["reply"])
    if grammar is not None and grammar["errors"]:  # the reply failed: still show the correction
        return f"{opener} {grammar['corrected']}"
    return opener if grammar is not None else None


def merge(outputs: Mapping[str, JSON], run_input: JSON, history: SessionHistory | None) -> JSON:
    """The tutor's response fields (see the module docstring)."""
    if history is None:  # a run without a result yet
        return dict.fromkeys(("text", "analysis", "score", "strategy", "next_action", "session"))
    grammar, fluency = outputs.get("grammar"), outputs.get("fluency")
    vocabulary, feedback = outputs.get("vocabulary"), outputs.get("feedback")
    text = str(run_input.get("text", ""))
    errors = _aligned(grammar["errors"], text) if grammar is not None else []
    if grammar is not None:
        grammar = {**grammar, "errors": errors}
    scores = {
        "fluency": fluency["score"] if fluency is not None else None,
        "grammar": grammar_score(errors) if grammar is not None else None,
        "vocabulary": vocabulary["score"] if vocabulary is not None else None,
    }
    overall = overall_score(scores)
    error_types = [error["type"] for error in errors]
    seen_before = {kind for turn in history.recent for kind in turn.get("error_types") or []}
    repeated = sorted({kind for kind in error_types if kind in seen_before})
    strategy = choose_strategy(errors=errors, overall=overall, level=history.level, repeated=repeated)
    level, level_change = next_level(history, overall, len(errors))
    counts = dict(history.error_counts)
    for kind in error_types:
        counts[kind] = counts.get(kind, 0) + 1
    return {
        "text": _reply(strategy, feedback, grammar, explains_in_vietnamese(run_input)),
        "analysis": {
            "fluency": scores["fluency"],
            "grammar": grammar,
            "vocabulary": vocabulary["level"] if vocabulary is not None else None,
        },
        "score": {**scores, "overall": overall},
        "strategy": strategy,
        "next_action": next_action(strategy, level_change),
        "tips": feedback["tips"] if feedback is not None else [],
        "session": {
            "id": history.session_id,
            "turn": history.turns + 1,
            "level": level,
            "level_change": level_change,
            "repeated_error_types": repeated,
            "error_counts": counts,
        },
    }


PIPELINE = Pipeline(
    name=NAME,
    workers=(
        WorkerSpec(
            "grammar",
            GrammarOutputSchema(),
            GRAMMAR_PROMPTS,
            lambda run_input: builtin.check_grammar(run_input["text"], explain_vi=explains_in_vietnamese(run_input)),
        ),
        WorkerSpec(
            "fluency",
            FluencyOutputSchema(),
            FLUENCY_PROMPTS,
            lambda run_input: builtin.assess_fluency(run_input["text"]),
            required=False,
        ),
        WorkerSpec(
            "vocabulary",
            VocabularyOutputSchema(),
            VOCABULARY_PROMPTS,
            lambda run_input: builtin.profile_vocabulary(run_input["text"]),
            required=False,
        ),
        WorkerSpec(
            "feedback",
            FeedbackOutputSchema(),
            FEEDBACK_PROMPTS,
            lambda run_input: builtin.write_feedback(
                run_input["text"], level=profile_level(run_input), explain_vi=explains_in_vietnamese(run_input)
            ),
        ),
    ),
    request_schema=TutorRequestSchema,
    render_input=render_sentence,
    merge=merge,
    state=TutorSessions(default_level=DEFAULT_LEVEL),
    warm=builtin.warm,
    # The tutoring document's latency target for a turn.
    default_deadline_ms=350,
)
