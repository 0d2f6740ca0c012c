"""Versioned prompt templates, one family per worker.

A prompt reference is ``<worker>@<version>`` (``summary@v1``). Requests may
override the version per worker with ``prompt_ids``; an unknown reference is
a validation error at the boundary, never a failure inside a worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.adapters.base import Prompt
from orchestrator.domain import WORKERS, Segment

_JSON_ONLY = "Answer with one JSON object only, no prose, no code fence."


@dataclass(frozen=True)
class PromptTemplate:
    ref: str
    system: str
    #: Placed before the transcript in the user message.
    instruction: str


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

PROMPTS: dict[str, PromptTemplate] = {
    t.ref: t
    for t in (
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
        _template(
            "argument@v1",
            "List every claim made, with the evidence offered for it, its stance towards the "
            "motion and the speaker. Quote the segment id each claim comes from.",
            _ARGUMENT_SHAPE,
        ),
        _template(
            "implication_sentiment@v1",
            "List the implications of what is said (consequences speakers draw or imply), and "
            "rate the sentiment overall and per speaker from -1 (negative) to 1 (positive).",
            _IMPLICATION_SHAPE,
        ),
        _template(
            "logic_bias@v1",
            "Find logical fallacies and cognitive biases. For each, give its type, the exact "
            "quote that shows it, the segment id and a one-sentence explanation.",
            _LOGIC_BIAS_SHAPE,
        ),
    )
}

DEFAULT_PROMPTS: dict[str, str] = {
    "summary": "summary@v1",
    "argument": "argument@v1",
    "implication_sentiment": "implication_sentiment@v1",
    "logic_bias": "logic_bias@v1",
}
assert set(DEFAULT_PROMPTS) == set(WORKERS)


def prompt_error(worker: str, ref: str) -> str | None:
    """Why ``ref`` cannot serve ``worker``, or None when it can."""
    if worker not in DEFAULT_PROMPTS:
        return f"Unknown worker {worker!r}; expected one of {', '.join(WORKERS)}."
    if ref not in PROMPTS:
        known = ", ".join(sorted(r for r in PROMPTS if r.startswith(f"{worker}@")))
        return f"Unknown prompt reference {ref!r}; known for {worker}: {known}."
    if not ref.startswith(f"{worker}@"):
        return f"Prompt {ref!r} is not a {worker} prompt."
    return None


def prompt_ref_for(worker: str, overrides: Mapping[str, str]) -> str:
    return overrides.get(worker, DEFAULT_PROMPTS[worker])


def render_prompt(ref: str, segments: Sequence[Segment], language: str | None) -> Prompt:
    """Fill the template ``ref`` with the transcript. Raises KeyError if unknown."""
    template = PROMPTS[ref]
    lines = [_segment_line(s) for s in segments]
    language_note = f"The transcript language is {language}. " if language else ""
    user = f"{language_note}{template.instruction}\n\nTranscript:\n" + "\n".join(lines)
    return Prompt(ref=ref, system=template.system, user=user)


def _segment_line(segment: Segment) -> str:
    speaker = segment.speaker or "unknown"
    return f"[{segment.id}] {speaker}: {segment.text}"
