"""The builtin analysers of the analysis pipeline: offline and deterministic.

They are not language models: they analyse the segments with rules over
spaCy's dependency parse and cue lexicons (``argument_patterns.py``,
``cues.py``), VADER sentiment and a TextRank summary. They let the service
run end to end with no network and no model downloads, and are the last
resort when models fail. The parser, cues and VADER are English-only; the
language is ignored. ``benchmarks/analysis_quality.py`` measures them.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from orchestrator.analysers import argument_patterns, cues, parsing
from orchestrator.analysers.argument_patterns import compile_cues
from orchestrator.domain import JSON, Segment

if TYPE_CHECKING:
    from spacy.tokens import Doc

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
#: Weight of a hypothetical sentence ("if ..., it will fail") in a speaker's sentiment.
HYPOTHETICAL_WEIGHT = 0.3
#: TextRank's damping factor and iterations; above this many sentences the
#: (quadratic) graph gives way to word-frequency scores.
TEXTRANK_DAMPING = 0.85
TEXTRANK_ITERATIONS = 30
TEXTRANK_MAX_SENTENCES = 150

Stance = Literal["for", "against", "neutral"]


# --- cues ------------------------------------------------------------------

_CLAIM = compile_cues(cues.CLAIM_CUES)
_EVIDENCE = compile_cues(cues.EVIDENCE_CUES, cues.NUMBER_PATTERN)
_AGAINST = compile_cues(cues.AGAINST_CUES)
_FOR = compile_cues(cues.FOR_CUES)
_AGREEMENT = compile_cues(cues.AGREEMENT_CUES)

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


def _parses(sentences: Sequence[_Sentence]) -> list[Doc]:
    return parsing.parse([sentence.text for sentence in sentences])


def _content_words(text: str) -> list[str]:
    words = _WORD.findall(text.lower().replace("’", "'"))
    return [word for word in words if len(word) > 2 and word not in cues.STOPWORDS]


def _with_speaker(sentence: _Sentence) -> str:
    """The sentence with its speaker in front, unless it already starts with it
    (transcripts often keep "Alice: ..." in the text)."""
    speaker = sentence.speaker
    if not speaker or sentence.text.lower().startswith(speaker.lower() + ":"):
        return sentence.text
    return f"{speaker}: {sentence.text}"


# --- summary ---------------------------------------------------------------


def _frequency_scores(words: Sequence[Sequence[str]]) -> list[float]:
    """Normalised frequency of a sentence's content words across the transcript;
    sqrt length normalisation favours informative over merely long sentences."""
    frequency = Counter(word for sentence_words in words for word in sentence_words)
    top = max(frequency.values(), default=1)
    return [sum(frequency[word] for word in w) / top / math.sqrt(len(w) or 1) for w in words]


def _textrank_scores(words: Sequence[Sequence[str]]) -> list[float]:
    """TextRank: PageRank over the graph of sentences weighted by shared content
    words (normalised by log lengths), so central sentences score highest."""
    sets = [set(w) for w in words]
    count = len(sets)
    weights = [[0.0] * count for _ in range(count)]
    for i in range(count):
        for j in range(i + 1, count):
            shared = len(sets[i] & sets[j])
            if shared:
                weight = shared / (math.log(len(sets[i]) + 1) + math.log(len(sets[j]) + 1))
                weights[i][j] = weights[j][i] = weight
    totals = [sum(row) for row in weights]
    scores = [1.0] * count
    for _ in range(TEXTRANK_ITERATIONS):
        scores = [
            (1 - TEXTRANK_DAMPING)
            + TEXTRANK_DAMPING * sum(weights[j][i] / totals[j] * scores[j] for j in range(count) if weights[j][i])
            for i in range(count)
        ]
    return scores


def _sentence_scores(sentences: Sequence[_Sentence]) -> list[float]:
    """TextRank centrality (word frequency on long transcripts, where the graph
    costs too much); a segment's opening sentence (often its topic) gets a
    small bonus, the transcript's first (which usually sets the topic) a larger one,
    and sentences without content words score next to nothing."""
    words = [_content_words(sentence.text) for sentence in sentences]
    scores = _textrank_scores(words) if len(sentences) <= TEXTRANK_MAX_SENTENCES else _frequency_scores(words)
    return [
        score
        * (1.2 if sentence.first_in_segment else 1.0)
        * (1.3 if index == 0 else 1.0)
        * (1.0 if sentence_words else 0.1)
        for index, (score, sentence, sentence_words) in enumerate(zip(scores, sentences, words, strict=True))
    ]


def summarise(segments: Sequence[Segment]) -> JSON:
    """``{"summary": str, "key_points": [str]}``: the 2-3 most central sentences in
    transcript order, and up to 5 (speaker-prefixed, once) by rank."""
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


def _is_claim(sentence: _Sentence, doc: Doc) -> bool:
    """A statement that takes a position: a claim or stance cue, an evaluation
    ("that is a bad idea", "Mondays are packed") or a modal judgment ("would not work")."""
    if sentence.text.endswith("?"):  # a question asserts nothing
        return False
    if _CLAIM.search(sentence.text) or _AGAINST.search(sentence.text) or _AGREEMENT.search(sentence.text):
        return True
    for token in doc:
        if token.dep_ == "acomp" and token.pos_ == "ADJ":
            return True
        if token.dep_ == "attr" and any(child.pos_ == "ADJ" for child in token.children):
            return True
        if token.dep_ == "aux" and token.lower_ in ("would", "should", "must", "could"):
            return True
    return argument_patterns.implication(doc) is not None  # "if we ban it, they will leave" argues


def _negated(doc: Doc) -> bool:
    """A negated verb ("would not help"); "better, not worse" negates no verb."""
    return any(token.dep_ == "neg" and token.head.pos_ in ("VERB", "AUX") for token in doc)


def _relative_stance(sentence: _Sentence, doc: Doc, main: _Sentence, main_doc: Doc, earlier: Stance | None) -> Stance:
    """Stance towards the main claim: agreement or disagreement cues; a reply that
    opens with "But"; else the side this speaker took before; else the same content
    with the opposite polarity is against, with the same polarity for; else neutral."""
    if _AGREEMENT.search(sentence.text):
        return "for"
    if _AGAINST.search(sentence.text):
        return "against"
    first = next((token for token in doc if not token.is_punct), None)
    if first is not None and first.lower_ in cues.CONTRAST_OPENERS and not _same_voice(sentence, main):
        return "against"
    if earlier is not None:
        return earlier
    shared = set(_content_words(sentence.text)) & set(_content_words(main.text))
    if shared:
        return "against" if _negated(doc) != _negated(main_doc) else "for"
    return "neutral"


def _own_stance(text: str) -> Stance | None:
    if _AGAINST.search(text):  # checked first: "we should not" is against
        return "against"
    if _FOR.search(text):
        return "for"
    return None


def _inline_evidence(text: str, claim: re.Match[str] | None) -> str | None:
    """The evidence part of a claim sentence: from the evidence cue to the end,
    or up to the claim cue when the evidence comes first ("Since X, we must Y")."""
    evidence = _EVIDENCE.search(text)
    if evidence is None or evidence.start() == 0 and claim is None:  # the whole sentence is no part of it
        return None
    if claim is not None and evidence.start() < claim.start():
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
    one claim per statement that takes a position. The first claim is the main
    one: its stance comes from its own cues (else it is "for": it states the
    position); later claims' stance is towards it."""
    sentences = _sentences(segments)
    docs = _parses(sentences)
    claims = []
    main: tuple[_Sentence, Doc] | None = None
    sides: dict[str | None, Stance] = {}  # the side each speaker took so far
    for index, (sentence, doc) in enumerate(zip(sentences, docs, strict=True)):
        if not _is_claim(sentence, doc):
            continue
        previous = sentences[index - 1] if index > 0 else None
        if main is None:
            main = (sentence, doc)
            stance = _own_stance(sentence.text)
            if stance is None and previous is not None and previous.segment_id == sentence.segment_id:
                stance = _own_stance(previous.text)  # "I disagree. It is too expensive."
            stance = stance or "for"  # the main claim states the position the others take a stance on
        else:
            stance = _relative_stance(sentence, doc, *main, sides.get(sentence.speaker or sentence.segment_id))
        if stance != "neutral":
            sides[sentence.speaker or sentence.segment_id] = stance
        evidence_inline = _inline_evidence(sentence.text, _CLAIM.search(sentence.text))
        claims.append(
            {
                "claim": sentence.text,
                "evidence": ([evidence_inline] if evidence_inline else []) + _following_evidence(sentences, index),
                "stance": stance or "neutral",
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


def _weighted_sentiment(scores: Sequence[tuple[float, float]]) -> JSON:
    weight = sum(w for _, w in scores)
    mean = round(sum(score * w for score, w in scores) / weight, 4) if weight else 0.0
    return {"label": _label(mean), "score": mean}


def find_implications(sentences: Sequence[_Sentence], docs: Sequence[Doc]) -> list[JSON]:
    """Sentences that draw a consequence: conditionals ("if X, Y will ..."), causal
    links ("because", "leads to", "X, so Y") and consequences ("therefore", "which means")."""
    found = []
    for sentence, doc in zip(sentences, docs, strict=True):
        implication = argument_patterns.implication(doc)
        if implication is not None:
            kind, trigger = implication
            found.append(
                {
                    "text": sentence.text,
                    "segment_id": sentence.segment_id,
                    "speaker": sentence.speaker,
                    "kind": kind,
                    "explanation": f"A {kind} construction: {trigger}.",
                }
            )
    return found


def score_sentiment(sentences: Sequence[_Sentence], docs: Sequence[Doc], scorer: _PolarityScorer) -> JSON:
    """VADER compound per sentence, averaged overall and per speaker (no speaker:
    ``"unknown"``). Hypothetical sentences ("if we ban it, the company will fail")
    weigh less: a warning about what may happen is not how the speaker feels."""
    overall: list[tuple[float, float]] = []
    by_speaker: dict[str, list[tuple[float, float]]] = {}
    for sentence, doc in zip(sentences, docs, strict=True):
        compound = float(scorer.polarity_scores(sentence.text)["compound"])
        weight = HYPOTHETICAL_WEIGHT if argument_patterns.hypothetical(doc) else 1.0
        overall.append((compound, weight))
        by_speaker.setdefault(sentence.speaker or UNKNOWN_SPEAKER, []).append((compound, weight))
    return {
        "overall": _weighted_sentiment(overall),
        "by_speaker": {speaker: _weighted_sentiment(scores) for speaker, scores in by_speaker.items()},
    }


def implications_and_sentiment(segments: Sequence[Segment]) -> JSON:
    """``{"implications": [...], "sentiment": {...}}``."""
    sentences = _sentences(segments)
    docs = _parses(sentences)
    return {
        "implications": find_implications(sentences, docs),
        "sentiment": score_sentiment(sentences, docs, _sentiment_scorer()),
    }


# --- logic and bias --------------------------------------------------------


#: A type not reported when another explains the same words better: a slippery
#: slope's "every exam ... nothing" is its extreme end, not a generalisation, and
#: "two planes crashed this month, so flying is getting more dangerous every year" judges
#: a likelihood from recent cases (availability), not a sweeping claim.
_SUBSUMED_BY = {"hasty_generalization": ("slippery_slope", "availability_heuristic")}


_PATTERNS = {
    pattern.type: pattern for pattern in (*argument_patterns.FALLACY_PATTERNS, *argument_patterns.BIAS_PATTERNS)
}


def _findings(
    sentences: Sequence[_Sentence], docs: Sequence[Doc], patterns: Sequence[argument_patterns.Pattern]
) -> list[JSON]:
    """One finding per (sentence, type) whose pattern matches the sentence's parse."""
    found = []
    for sentence, doc in zip(sentences, docs, strict=True):
        triggers = {pattern.type: pattern.detect(doc) for pattern in patterns}
        for pattern in patterns:
            trigger = triggers[pattern.type]
            subsumers = _SUBSUMED_BY.get(pattern.type, ())
            if trigger is not None and all(
                (triggers[other] if other in triggers else _PATTERNS[other].detect(doc)) is None for other in subsumers
            ):
                found.append(
                    {
                        "type": pattern.type,
                        "quote": sentence.text,
                        "segment_id": sentence.segment_id,
                        "explanation": f"{pattern.description} Triggered by {trigger}.",
                    }
                )
    return found


def detect_logic_and_bias(segments: Sequence[Segment]) -> JSON:
    """``{"fallacies": [...], "biases": [...]}``, each finding quoting verbatim the
    sentence that shows it and saying which words triggered it."""
    sentences = _sentences(segments)
    docs = _parses(sentences)
    return {
        "fallacies": _findings(sentences, docs, argument_patterns.FALLACY_PATTERNS),
        "biases": _findings(sentences, docs, argument_patterns.BIAS_PATTERNS),
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


def warm() -> None:
    """Load the parser and the sentiment lexicon now rather than on a worker's first analysis."""
    parsing.warm()
    _sentiment_scorer()
