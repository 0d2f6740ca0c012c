"""The builtin analysers of the analysis pipeline: offline and deterministic, in plain Python.

They are not language models: they analyse the segments with simple
heuristics (sentence scoring, cue lexicons from ``cues.py`` and VADER
sentiment). They let the service run end to end with no network and no model
downloads, and are the last resort when models fail. Cues and VADER are
English-only; the language is ignored.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from orchestrator.analysers import cues
from orchestrator.domain import JSON, Segment

#: Sentences picked for the summary, and how many key points at most.
SUMMARY_SENTENCES_SHORT = 2
SUMMARY_SENTENCES_LONG = 3
LONG_TRANSCRIPT_SENTENCES = 6
MAX_KEY_POINTS = 5
#: How many following sentences of the same speaker may hold a claim's evidence.
EVIDENCE_LOOKAHEAD = 3
#: VADER's usual thresholds on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
UNKNOWN_SPEAKER = "unknown"

Stance = Literal["for", "against", "neutral"]


# --- cue compilation -------------------------------------------------------


def _cue_regex(cue: str) -> str:
    """Regex for one lexicon cue: words separated by any whitespace, ``...``
    a gap of up to 12 words, and ``'`` matching the typographic apostrophe too."""
    pieces = []
    for piece in cue.split("..."):
        words = [re.escape(word).replace("'", "['’]") for word in piece.split()]
        pieces.append(r"\s+".join(words))
    return r"\s+(?:\S+\s+){0,12}?".join(pieces)


def compile_cues(phrases: Iterable[str], *extra_patterns: str) -> re.Pattern[str]:
    """One case-insensitive pattern matching any cue on word boundaries."""
    alternatives = [_cue_regex(phrase) for phrase in phrases] + list(extra_patterns)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


_CLAIM = compile_cues(cues.CLAIM_CUES)
_EVIDENCE = compile_cues(cues.EVIDENCE_CUES, cues.NUMBER_PATTERN)
_AGAINST = compile_cues(cues.AGAINST_CUES)
_FOR = compile_cues(cues.FOR_CUES)
_IMPLICATION = compile_cues(cues.IMPLICATION_CUES)


@dataclass(frozen=True)
class _CueType:
    name: str
    explanation: str
    pattern: re.Pattern[str]


def _compile_types(
    lexicon: dict[str, tuple[str, tuple[str, ...]]],
) -> tuple[_CueType, ...]:
    return tuple(_CueType(name, explanation, compile_cues(phrases)) for name, (explanation, phrases) in lexicon.items())


_FALLACIES = _compile_types(cues.FALLACY_CUES)
_BIASES = _compile_types(cues.BIAS_CUES)

# A sentence ends at ., ! or ? followed by whitespace (so "3.5" and "e.g.x" stay
# whole), at a line break, or at the end of the text.
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+(?=\s|$)|(?=\n)|$)", re.DOTALL)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


# --- transcript model ------------------------------------------------------


@dataclass(frozen=True)
class _Sentence:
    """One sentence, verbatim from its segment, with where it came from."""

    text: str
    segment_id: str
    speaker: str | None
    first_in_segment: bool


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, each a verbatim (stripped) substring of it."""
    sentences = (match.group().strip() for match in _SENTENCE.finditer(text))
    return [sentence for sentence in sentences if sentence]


def _sentences(segments: Sequence[Segment]) -> list[_Sentence]:
    return [
        _Sentence(text, segment.id, segment.speaker, position == 0)
        for segment in segments
        for position, text in enumerate(split_sentences(segment.text))
    ]


def _content_words(text: str) -> list[str]:
    words = _WORD.findall(text.lower().replace("’", "'"))
    return [word for word in words if len(word) > 2 and word not in cues.STOPWORDS]


def _with_speaker(sentence: _Sentence) -> str:
    return f"{sentence.speaker}: {sentence.text}" if sentence.speaker else sentence.text


# --- summary ---------------------------------------------------------------


def _sentence_scores(sentences: Sequence[_Sentence]) -> list[float]:
    """Normalised frequency of a sentence's content words across the transcript;
    sqrt length normalisation favours informative over merely long sentences,
    and the opening sentence of a segment (often its topic) gets a small bonus."""
    words = [_content_words(sentence.text) for sentence in sentences]
    frequency = Counter(word for sentence_words in words for word in sentence_words)
    top = max(frequency.values(), default=1)
    scores = []
    for sentence, sentence_words in zip(sentences, words, strict=True):
        score = sum(frequency[word] for word in sentence_words) / top
        score /= math.sqrt(len(sentence_words) or 1)
        scores.append(score * (1.2 if sentence.first_in_segment else 1.0))
    return scores


def summarise(segments: Sequence[Segment]) -> JSON:
    """``{"summary": str, "key_points": [str]}``: the best 2-3 sentences in
    transcript order, and up to 5 best sentences (speaker-prefixed) by rank."""
    sentences = _sentences(segments)
    if not sentences:
        return {"summary": "(empty transcript)", "key_points": []}
    scores = _sentence_scores(sentences)
    ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    unique: list[int] = []
    seen: set[str] = set()
    for index in ranked:  # repeated sentences would crowd out the rest
        key = sentences[index].text.lower()
        if key not in seen:
            seen.add(key)
            unique.append(index)
    long = len(unique) >= LONG_TRANSCRIPT_SENTENCES
    picked = sorted(unique[: SUMMARY_SENTENCES_LONG if long else SUMMARY_SENTENCES_SHORT])
    return {
        "summary": " ".join(sentences[index].text for index in picked),
        "key_points": [_with_speaker(sentences[index]) for index in unique[:MAX_KEY_POINTS]],
    }


# --- argument --------------------------------------------------------------


def _same_voice(a: _Sentence, b: _Sentence) -> bool:
    """Same speaker; without speaker names, only the same segment counts."""
    if a.speaker is None or b.speaker is None:
        return a.segment_id == b.segment_id
    return a.speaker == b.speaker


def _cue_stance(text: str) -> Stance | None:
    if _AGAINST.search(text):  # checked first: "we should not" is against
        return "against"
    if _FOR.search(text):
        return "for"
    return None


def _stance(sentence: _Sentence, previous: _Sentence | None) -> Stance:
    """The claim's own cues, else those of the sentence before it in the same
    segment ("I disagree. It is too expensive."), else neutral."""
    stance = _cue_stance(sentence.text)
    if stance is None and previous is not None and previous.segment_id == sentence.segment_id:
        stance = _cue_stance(previous.text)
    return stance or "neutral"


def _inline_evidence(text: str, claim: re.Match[str]) -> str | None:
    """The evidence part of a claim sentence: from the evidence cue to the end,
    or up to the claim cue when the evidence comes first ("Since X, we must Y")."""
    evidence = _EVIDENCE.search(text)
    if evidence is None:
        return None
    if evidence.start() < claim.start():
        part = text[evidence.start() : claim.start()].rstrip(" ,;:-")
        return part or None
    return text[evidence.start() :]


def _following_evidence(sentences: Sequence[_Sentence], index: int) -> list[str]:
    """Evidence sentences right after a claim, while the same speaker goes on
    and before their next claim."""
    found = []
    for sentence in sentences[index + 1 : index + 1 + EVIDENCE_LOOKAHEAD]:
        if not _same_voice(sentences[index], sentence) or _CLAIM.search(sentence.text):
            break
        if _EVIDENCE.search(sentence.text):
            found.append(sentence.text)
    return found


def extract_claims(segments: Sequence[Segment]) -> JSON:
    """``{"claims": [{"claim", "evidence", "stance", "speaker", "segment_id"}]}``:
    one claim per non-question sentence with a claim cue; evidence and stance
    come from their own cue lexicons."""
    sentences = _sentences(segments)
    claims = []
    for index, sentence in enumerate(sentences):
        claim_cue = _CLAIM.search(sentence.text)
        if claim_cue is None or sentence.text.endswith("?"):  # a question asserts nothing
            continue
        inline = _inline_evidence(sentence.text, claim_cue)
        evidence = ([inline] if inline else []) + _following_evidence(sentences, index)
        previous = sentences[index - 1] if index > 0 else None
        claims.append(
            {
                "claim": sentence.text,
                "evidence": evidence,
                "stance": _stance(sentence, previous),
                "speaker": sentence.speaker,
                "segment_id": sentence.segment_id,
            }
        )
    return {"claims": claims}


# --- implications and sentiment --------------------------------------------


class _PolarityScorer(Protocol):
    def polarity_scores(self, text: str) -> dict[str, float]: ...


def _label(score: float) -> str:
    if score >= POSITIVE_THRESHOLD:
        return "positive"
    if score <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


def _mean_sentiment(scores: Sequence[float]) -> JSON:
    mean = round(sum(scores) / len(scores), 4) if scores else 0.0
    return {"label": _label(mean), "score": mean}


def find_implications(sentences: Sequence[_Sentence]) -> list[JSON]:
    """Sentences carrying a consequence cue ("therefore", "will lead to", ...)."""
    return [
        {
            "text": sentence.text,
            "segment_id": sentence.segment_id,
            "speaker": sentence.speaker,
        }
        for sentence in sentences
        if _IMPLICATION.search(sentence.text)
    ]


def score_sentiment(segments: Sequence[Segment], scorer: _PolarityScorer) -> JSON:
    """VADER compound per non-empty segment, averaged overall and per speaker
    (segments without a speaker are pooled under ``"unknown"``)."""
    overall: list[float] = []
    by_speaker: dict[str, list[float]] = {}
    for segment in segments:
        if not segment.text.strip():
            continue
        compound = float(scorer.polarity_scores(segment.text)["compound"])
        overall.append(compound)
        by_speaker.setdefault(segment.speaker or UNKNOWN_SPEAKER, []).append(compound)
    return {
        "overall": _mean_sentiment(overall),
        "by_speaker": {speaker: _mean_sentiment(scores) for speaker, scores in by_speaker.items()},
    }


# --- logic and bias --------------------------------------------------------


def _cue_hits(sentences: Sequence[_Sentence], types: Sequence[_CueType]) -> list[JSON]:
    """One finding per (sentence, type) whose cue occurs in the sentence."""
    return [
        {
            "type": cue_type.name,
            "quote": sentence.text,
            "segment_id": sentence.segment_id,
            "explanation": cue_type.explanation,
        }
        for sentence in sentences
        for cue_type in types
        if cue_type.pattern.search(sentence.text)
    ]


def detect_logic_and_bias(segments: Sequence[Segment]) -> JSON:
    """``{"fallacies": [...], "biases": [...]}``, each finding quoting verbatim
    the sentence that holds the cue."""
    sentences = _sentences(segments)
    return {
        "fallacies": _cue_hits(sentences, _FALLACIES),
        "biases": _cue_hits(sentences, _BIASES),
    }


def implications_and_sentiment(segments: Sequence[Segment]) -> JSON:
    """``{"implications": [...], "sentiment": {...}}``."""
    return {
        "implications": find_implications(_sentences(segments)),
        "sentiment": score_sentiment(segments, _sentiment_scorer()),
    }


_scorer: _PolarityScorer | None = None
_scorer_lock = threading.Lock()


def _sentiment_scorer() -> _PolarityScorer:
    # Building VADER reads its lexicon (tens of ms): once per process, on first use.
    global _scorer
    with _scorer_lock:
        if _scorer is None:
            _scorer = SentimentIntensityAnalyzer()
        return _scorer
