"""Patterns of reasoning over one parsed sentence: fallacies, biases and implications.

Each detector combines cue phrases (``cues.py``) with the sentence's spaCy
dependency parse (subjects, auxiliaries, conditional clauses, coordinated
consequences), and answers with the words that triggered it, or None. Those
words go into the finding's explanation, so a reader can see why it fired.

Taxonomy: the common informal fallacies (ad hominem, straw man, slippery
slope, false dilemma, hasty generalisation, appeal to authority, bandwagon,
appeal to emotion, appeal to tradition, post hoc, circular reasoning) and
cognitive biases (confirmation bias, anchoring, availability heuristic,
overconfidence, in-group bias).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from orchestrator.analysers import cues

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span, Token

ImplicationKind = Literal["conditional", "causal", "consequence"]


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


def _search(pattern: re.Pattern[str], doc: Doc) -> str | None:
    match = pattern.search(doc.text)
    return match.group() if match else None


def _quoted(*words: str) -> str:
    return " … ".join(f'"{word}"' for word in words)


# --- parse helpers -----------------------------------------------------------------


def _low(token: Token) -> str:
    return token.lower_.replace("’", "'")


def _has_aux(verb: Token, words: frozenset[str]) -> bool:
    return any(child.dep_ in ("aux", "auxpass") and _low(child) in words for child in verb.children)


def _inherits_aux(verb: Token, words: frozenset[str]) -> bool:
    """The verb or the verb it is coordinated with has one of these auxiliaries ("will leave and fail")."""
    while True:
        if _has_aux(verb, words):
            return True
        if verb.dep_ != "conj" or verb.head is verb:
            return False
        verb = verb.head


def _subject(verb: Token) -> Token | None:
    return next((child for child in verb.children if child.dep_ in ("nsubj", "nsubjpass", "csubj")), None)


def _in_subtree(token: Token, root: Token) -> bool:
    return root.left_edge.i <= token.i <= root.right_edge.i


def _clause_marks(doc: Doc | Span, marks: frozenset[str]) -> list[Token]:
    """Subordinating words ("if", "because") that introduce a clause."""
    return [token for token in doc if _low(token) in marks and token.dep_ in ("mark", "advmod", "prep", "cc")]


def _consequence_verbs(doc: Doc | Span, outside: Token | None = None) -> list[Token]:
    """Verbs in the future or conditional ("will leave", "'ll expect", "would apply"), and
    verbs coordinated with them; none inside ``outside``'s clause."""
    return [
        token
        for token in doc
        if token.pos_ in ("VERB", "AUX")
        and token.dep_ not in ("aux", "auxpass")
        and _inherits_aux(token, cues.CONSEQUENCE_MODALS)
        and (outside is None or not _in_subtree(token, outside))
    ]


_CONCLUSION = compile_cues(cues.CONCLUSION_MARKERS)
_NOT_A_CONCLUSION = frozenset({"many", "much", "far", "that", "called", "long", "what"})


def _conclusion_after(doc: Doc, start: int) -> Token | None:
    """The first word at or after ``start`` that draws a conclusion from what came before
    ("..., so", "which shows", "clearly", a semicolon): not "so many", "so that"."""
    for match in _CONCLUSION.finditer(doc.text):
        span = doc.char_span(match.start(), match.end(), alignment_mode="expand")
        if span is None or span.start < start or span.start == 0:
            continue
        after = doc[span.end] if span.end < len(doc) else None
        if _low(span[0]) == "so" and after is not None and _low(after) in _NOT_A_CONCLUSION:
            continue
        return span[0]
    return next((t for t in doc[start:] if t.text == ";" and t.i > 0), None)


def _is_person(token: Token) -> bool:
    return _low(token) in _PERSONS or token.lemma_ in cues.PERSON_NOUNS or token.pos_ == "PROPN"


# --- fallacies ---------------------------------------------------------------------

_AD_HOMINEM = compile_cues(cues.AD_HOMINEM_CUES)
_PERSONS = {"you", "he", "she", "they", "him", "her", "them", "someone", "person", "guy", "people", "anyone"}


def ad_hominem(doc: Doc) -> str | None:
    """An attack on the speaker: an insult aimed at a person or their thinking, a
    "why would we listen to you", a "too young to have an opinion", or a cue."""
    cue = _search(_AD_HOMINEM, doc)
    if cue:
        return f"{_quoted(cue)} (a remark about the speaker, not the argument)"
    for token in doc:
        low = _low(token)
        if low in cues.INSULTS:
            head = token.head
            if token.dep_ == "amod" and (head.lower_ in cues.MINDSET_NOUNS or head.pos_ in ("PROPN", "PRON")):
                return f"{_quoted(token.text + ' ' + head.text)} (an insult about the speaker's thinking)"
            if token.dep_ == "amod" and head.dep_ in ("attr", "appos"):
                subject = _subject(head.head)
                if subject is not None and (_low(subject) in _PERSONS or subject.pos_ == "PROPN"):
                    return f"{_quoted(subject.text, token.text + ' ' + head.text)} (an insult about the speaker)"
            if token.dep_ in ("acomp", "attr"):
                subject = _subject(head)
                if subject is not None and (_low(subject) in _PERSONS or subject.pos_ == "PROPN"):
                    return f"{_quoted(subject.text, token.text)} (an insult about the speaker)"
        if token.lemma_ in cues.CREDENCE_VERBS:
            negated = any(child.dep_ == "neg" for child in token.children) or doc[0].lower_ == "why"
            persons = [t for t in token.subtree if t.i > token.i and _is_person(t)]
            if negated and persons:
                return f"{_quoted(token.text, persons[0].text)} (doubts the speaker instead of the claim)"
        if low == "even" and token.head.pos_ in ("VERB", "AUX"):  # "the man can't even keep his own ..."
            verb = token.head
            subject = _subject(verb)
            negated = any(c.dep_ == "neg" or _low(c) == "never" for c in verb.children)
            if negated and subject is not None and _is_person(subject) and _low(subject) not in ("i", "we"):
                return f"{_quoted(subject.text, token.text)} (a personal failing instead of a reply)"
        if low == "too" and token.head.lower_ in cues.DISQUALIFYING_TRAITS:
            trait = token.head
            subject = _subject(trait.head)
            if subject is not None and _low(subject) in _PERSONS and any(c.dep_ == "xcomp" for c in trait.children):
                return f"{_quoted('too ' + trait.text)} (disqualifies the speaker by who they are)"
    dismissed = next((t for t in doc if t.lemma_ in cues.ARGUMENT_NOUNS and t.dep_ in ("nsubj", "nsubjpass")), None)
    verdict = next((t for t in doc if _low(t) in cues.DISMISSIVE_WORDS), None)
    if dismissed is not None and verdict is not None:
        for token in doc:
            if token.dep_ in ("nsubj", "nsubjpass") and token.i > verdict.i and _is_person(token):
                return f"{_quoted(verdict.text, token.text)} (the argument dismissed for who made it)"
    return None


def _floating_all(token: Token) -> bool:
    """A quantifier floated after its subject: "the French are all unfriendly", "they all are"."""
    before = token.doc[token.i - 1] if token.i > 0 else None
    return _low(token) == "all" and before is not None and (before.lemma_ == "be" or before.pos_ == "PRON")


def hasty_generalization(doc: Doc) -> str | None:
    """A sweeping claim ("everyone", "they all", "never") resting on one or two cases
    ("my neighbour", "one bad meal", "the last contractor") in the same sentence."""
    sweeping = next(
        (
            t
            for t in doc
            if _low(t) in cues.UNIVERSALS and (t.dep_ != "advmod" or _floating_all(t)) or _low(t) in ("never", "always")
        ),
        None,
    )
    if sweeping is None:
        return None
    for token in doc:
        if token.i == sweeping.i:
            continue
        if (
            token.lemma_ in cues.ACQUAINTANCES
            and token.tag_ == "NN"
            and any(_low(c) in ("my", "our") for c in token.children)
        ):
            return f"{_quoted(sweeping.text, 'my ' + token.text)} (a sweeping claim from a single case)"
        if token.pos_ == "NOUN" and token.i < sweeping.i:
            few = [c for c in token.children if _low(c) in cues.FEW and c.dep_ in ("nummod", "amod", "det")]
            counted = [c for c in few if _low(c) in ("one", "two", "single", "last")]
            if counted:
                return (
                    f"{_quoted(counted[0].text + ' ' + token.text, sweeping.text)} (a sweeping claim from a few cases)"
                )
    return None


_SLIPPERY_SLOPE = compile_cues(cues.SLIPPERY_SLOPE_CUES)


def _imperative_opening(doc: Doc) -> bool:
    """The sentence opens with a bare command ("Cut the budget and ...", "Legalise this ..."):
    a root verb, or a capitalised root the tagger took for a name, with no subject."""
    first = doc[0]
    return (
        first.dep_ == "ROOT"
        and first.tag_ in ("VB", "VBP", "NNP")
        and first.lower_ not in ("please", "let's")
        and _subject(first) is None
        and any(c.dep_ == "conj" and c.pos_ in ("VERB", "AUX") for c in first.children)
        or first.dep_ == "ROOT"
        and first.tag_ == "VB"
    )


def slippery_slope(doc: Doc) -> str | None:
    """A first step ("if we ban", "once we raise", "let students") followed by a chain of
    consequences ("will leave and ... will fail") that ends in an extreme outcome."""
    cue = _search(_SLIPPERY_SLOPE, doc)
    if cue:
        return f"{_quoted(cue)} (an unstoppable chain of consequences)"
    trigger = next((t for t in _clause_marks(doc, cues.CONDITIONAL_MARKS) if t.dep_ == "mark"), None)
    first_step = trigger.head if trigger is not None else None
    if trigger is None and _imperative_opening(doc):  # "Let students redo one exam and ..."
        trigger = doc[0]
    if trigger is None:
        return None
    steps = _consequence_verbs(doc, outside=first_step)
    if not steps:
        return None
    last = steps[-1].left_edge.i  # the last step's clause, its subject included ("the whole policy will fall")
    extreme = [t for t in doc[last:] if _low(t) in cues.EXTREME_OUTCOMES or t.lemma_ in cues.EXTREME_OUTCOMES]
    escalation = [t for t in doc if _low(t) in cues.ESCALATION]
    small_step = [t for t in doc[: steps[0].i] if _low(t) in cues.SMALL_STEP_WORDS]
    if len(steps) == 1 and not (extreme and (escalation or small_step)):
        return None
    if len(steps) >= 3 or extreme or escalation:
        end = (extreme or escalation or [steps[-1]])[0]
        chain = _quoted(trigger.text, *(step.text for step in steps))
        return f"{chain} (a chain of consequences from one step, ending in {_quoted(end.text)})"
    return None


_FALSE_DILEMMA = compile_cues(cues.FALSE_DILEMMA_CUES)


def false_dilemma(doc: Doc) -> str | None:
    """Two options presented as the only ones: "either ... or", "only two options", or
    "if you don't support X, you must support Y"."""
    cue = _search(_FALSE_DILEMMA, doc)
    if cue:
        return f"{_quoted(cue)} (only two options offered)"
    either = next((t for t in doc if _low(t) == "either" and t.dep_ in ("preconj", "advmod", "cc", "det")), None)
    if either is not None and any(_low(t) == "or" for t in doc[either.i + 1 :]):
        return f"{_quoted('either', 'or')} (only two options offered)"
    condition = next((t for t in doc if _low(t) == "if" and t.dep_ == "mark"), None)
    if condition is not None:
        clause = condition.head
        negated = any(c.dep_ == "neg" for c in clause.children)
        main = clause.head
        subject = _subject(main)
        if negated and subject is not None and _low(subject) == "you" and _has_aux(main, frozenset({"must"})):
            return f"{_quoted('if you don’t', 'you must')} (not doing one thing is made the same as its opposite)"
    return None


_DEFERENCE = compile_cues(cues.DEFERENCE_CUES)


def _authority(doc: Doc) -> Token | None:
    for token in doc:
        low = _low(token)
        if token.lemma_ in cues.AUTHORITIES or low in cues.AUTHORITIES:
            return token
        if low in cues.PRESTIGE and token.head.pos_ in ("NOUN", "PROPN") and token.head.i > token.i:
            return token.head
    return None


def appeal_to_authority(doc: Doc) -> str | None:
    """Someone's status taken as proof: an authority ("a famous actor", "my professor", "Dr.")
    and a conclusion drawn from their word ("so it must work", "that settles it"); or
    vague experts who "agree" with no evidence given."""
    authority = _authority(doc)
    if authority is None:
        return None
    deference = _search(_DEFERENCE, doc)
    if deference:
        return f"{_quoted(authority.text, deference)} (status taken as proof)"
    if _low(authority) in cues.ANONYMOUS_AUTHORITIES and authority.dep_ == "nsubj" and authority.head.lemma_ in (
        "agree", "say", "confirm", "know",
    ):  # fmt: skip
        return f"{_quoted(authority.text + ' ' + authority.head.text)} (unnamed experts instead of evidence)"
    word = _word_of(authority)
    if word is not None:
        conclusion = _conclusion_after(doc, word.i + 1)
        if conclusion is not None:
            return f"{_quoted(authority.text + ' ' + word.text, conclusion.text)} (status taken as proof)"
    return None


def _word_of(authority: Token) -> Token | None:
    """What the authority offers in place of evidence: their word ("X recommends",
    "according to X") or their credentials ("X has thirty years of experience")."""
    head = authority.head
    if authority.dep_ in ("nsubj", "nsubjpass") and head.lemma_ in cues.ENDORSE_VERBS:
        return head
    if authority.dep_ == "pobj" and _low(head) == "to" and head.i > 0 and _low(head.doc[head.i - 1]) == "according":
        return head
    if authority.dep_ == "nsubj" and any(t.lemma_ in cues.CREDENTIALS for t in head.subtree):
        return head
    return None


_BANDWAGON = compile_cues(cues.BANDWAGON_CUES)


def _in_subject(token: Token) -> bool:
    return any(t.dep_ in ("nsubj", "nsubjpass") for t in (token, *token.ancestors) if t.pos_ != "VERB")


def _crowd(doc: Doc) -> Token | None:
    for token in doc:
        low = _low(token)
        if low in cues.CROWDS and token.pos_ in ("PRON", "NOUN", "DET", "ADJ", "NUM"):
            head = token if token.dep_ in ("nsubj", "nsubjpass") else token.head
            if (
                head.dep_ in ("nsubj", "nsubjpass", "ROOT")
                or _in_subject(token)
                or low in ("millions", "thousands", "everyone", "everybody", "popular")
            ):
                return token
        if low == "other" and token.i > 0 and _low(doc[token.i - 1]) == "every" and _in_subject(token):
            return token
        if token.lemma_ in ("million", "thousand") and token.dep_ in ("nsubj", "nummod", "quantmod"):
            return token
    return None


def bandwagon(doc: Doc) -> str | None:
    """Popularity taken as proof: many people ("millions", "everybody", "all our
    competitors", "the whole office") and a conclusion from it ("so it must be the best",
    "so we should too", "get on board"), or "everyone knows"."""
    cue = _search(_BANDWAGON, doc)
    if cue:
        return f"{_quoted(cue)} (popularity taken as proof)"
    crowd = _crowd(doc)
    if crowd is None or _authority(doc) is not None:
        return None
    deference = _search(_DEFERENCE, doc)
    if deference:
        return f"{_quoted(crowd.text, deference)} (popularity taken as proof)"
    conclusion = _conclusion_after(doc, crowd.i + 1)
    if conclusion is not None:
        verdict = next((t for t in doc[conclusion.i :] if _low(t) in cues.NORMATIVE_WORDS), None)
        if verdict is not None:
            return f"{_quoted(crowd.text, conclusion.text, verdict.text)} (popularity taken as proof)"
    return None


_APPEAL_TO_EMOTION = compile_cues(cues.APPEAL_TO_EMOTION_CUES)


def appeal_to_emotion(doc: Doc) -> str | None:
    """Feelings in place of reasons: "how would you feel", "think of the children", or an
    imperative to picture something ("imagine the tears ...") about emotive things."""
    cue = _search(_APPEAL_TO_EMOTION, doc)
    if cue:
        return f"{_quoted(cue)} (asks for feelings instead of giving reasons)"
    first = next((t for t in doc if not t.is_punct and _low(t) not in ("please", "just", "now", "so")), None)
    if first is not None and first.lemma_ in cues.PICTURE_VERBS and first.tag_ == "VB":
        emotive = [t for t in doc if _low(t) in cues.EMOTIVE_WORDS]
        if emotive:
            return f"{_quoted(first.text, emotive[0].text)} (asks the listener to picture something moving)"
    emotive = [t for t in doc if _low(t) in cues.EMOTIVE_WORDS]
    listener = next((t for t in doc if _low(t) == "you" and t.dep_ in ("nsubj", "nsubjpass")), None)
    question = doc.text.rstrip().endswith("?")
    if listener is not None and emotive and (question or len(emotive) >= 2):
        return f"{_quoted(listener.text, *(t.text for t in emotive[:2]))} (the listener's feelings made the argument)"
    return None


_TRADITION = compile_cues(cues.TRADITION_CUES)
_CONSERVE = compile_cues(cues.CONSERVE_CUES)


_LONG_TIME = re.compile(r"(?<!\w)for\s+(?:\w+\s+)?(?:years|decades|centuries|generations|ages)(?!\w)", re.IGNORECASE)


def _long_habit(doc: Doc) -> str | None:
    """A habit of long standing: "for thirty years", or "have always <done>"."""
    match = _LONG_TIME.search(doc.text)
    if match:
        return match.group()
    for token in doc:
        if _low(token) == "always" and _has_aux(token.head, frozenset({"have", "has", "'ve", "had"})):
            return f"{token.text} {token.head.text}"
    return None


def _refused_change(doc: Doc) -> str | None:
    """A change refused: a verb or noun of changing under a negation ("don't need to be
    replaced", "should never be abolished", "not about to stop")."""
    for token in doc:
        if token.lemma_ in cues.CHANGE_WORDS:
            scope = [token, *token.ancestors][:3]
            if any(_low(c) in ("not", "n't", "never", "no") for t in scope for c in t.children):
                return token.text
    return None


def appeal_to_tradition(doc: Doc) -> str | None:
    """Age or habit taken as justification: a tradition ("we've always", "for centuries",
    "my grandparents") and a conclusion to keep it ("no reason to change", "worked fine")."""
    tradition = _search(_TRADITION, doc) or _long_habit(doc)
    if tradition is None:
        return None
    conserve = _search(_CONSERVE, doc) or _refused_change(doc)
    if conserve is None:
        return None
    return f"{_quoted(tradition, conserve)} (habit taken as a reason)"


_SEQUENCE = compile_cues(cues.SEQUENCE_CUES)
_CAUSAL_CONCLUSION = compile_cues(cues.CAUSAL_CONCLUSION_CUES)


def _effect_conclusion(doc: Doc, sequence: re.Match[str] | None) -> str | None:
    """After the events, a conclusion ("so", "which shows", ";") that one of them had an
    effect ("the tea cured them", "he's the problem", "vitamin C works")."""
    start = 1
    if sequence is not None:
        span = doc.char_span(sequence.start(), sequence.end(), alignment_mode="expand")
        start = span.end if span is not None else 1
    conclusion = _conclusion_after(doc, start)
    if conclusion is None:
        return None
    effect = next((t for t in doc[conclusion.i + 1 :] if t.lemma_ in cues.EFFECT_WORDS), None)
    return f"{conclusion.text} … {effect.text}" if effect is not None else None


def post_hoc(doc: Doc) -> str | None:
    """Cause read from order: one event after another ("after", "ever since", or two past
    events joined by "and") and a causal conclusion ("so the logo caused it", "proves")."""
    sequence_match = _SEQUENCE.search(doc.text)
    conclusion = _search(_CAUSAL_CONCLUSION, doc) or _effect_conclusion(doc, sequence_match)
    if conclusion is None:
        return None
    sequence = sequence_match.group() if sequence_match else None
    if sequence is None:
        past = [
            t
            for t in doc
            if t.dep_ in ("ROOT", "conj", "ccomp")
            and (
                t.tag_ == "VBD"
                or t.tag_ == "VBN"
                and any(c.tag_ == "VBD" and c.dep_.startswith("aux") for c in t.children)
            )
        ]
        if len(past) >= 2 and any(_low(t) == "and" for t in doc[past[0].i : past[1].i]):
            sequence = f"{past[0].text} and {past[1].text}"
    if sequence is None:
        return None
    return f"{_quoted(sequence, conclusion)} (one event after another taken as cause)"


_CIRCULAR = compile_cues(cues.CIRCULAR_CUES)
_SUBJECT_PRONOUNS = {"it", "he", "she", "they", "this", "that"}


def _stem(token: Token) -> str:
    return token.lemma_.lower()


_NEGATING_PREFIX = re.compile(r"^(?:un|in|im|ir|il|dis|non)(?=\w{4})")


def _same_stem(word: str, others: Iterable[str]) -> bool:
    """Same word up to a suffix or a negating prefix ("fair" and "fairly", "trust" and
    "trustworthy", "unhealthy" and "health", "reliable" and "relied")."""
    for other in others:
        for a in {word, _NEGATING_PREFIX.sub("", word)}:
            for b in {other, _NEGATING_PREFIX.sub("", other)}:
                if a == b and len(a) >= 3:
                    return True
                common = len(os.path.commonprefix([a, b]))
                if common >= 4 and common >= 0.6 * min(len(a), len(b)):
                    return True
    return False


def circular_reasoning(doc: Doc) -> str | None:
    """A reason that restates the claim: the "because" clause repeats the claim's own
    content words about the same subject ("fair because it treats everyone fairly")."""
    cue = _search(_CIRCULAR, doc)
    if cue:
        return f"{_quoted(cue)} (the reason is the claim itself)"
    for mark in _clause_marks(doc, frozenset({"because", "since"})):
        reason = mark.head
        if reason is mark or not _in_subtree(mark, reason):
            continue
        content = ("NOUN", "ADJ", "VERB", "ADV", "PROPN")
        inside = [t for t in reason.subtree if t.pos_ in content and not t.is_stop]
        outside = [
            form
            for t in doc
            if t.pos_ in content and not t.is_stop and not _in_subtree(t, reason)
            for form in (_stem(t), _low(t))
        ]
        shared = [t for t in inside if _same_stem(_stem(t), outside) or _same_stem(_low(t), outside)]
        subject = _subject(reason)
        claimed = _subject(reason.head) if reason.head is not reason else None
        same_subject = subject is not None and (
            _low(subject) in _SUBJECT_PRONOUNS or _same_stem(_stem(subject), outside)
        )
        if claimed is not None and any(_same_stem(_stem(claimed), [_stem(t)]) for t in inside):
            same_subject = True  # "the law must be obeyed because breaking it is against the law"
        if shared and same_subject:
            return f"{_quoted(mark.text, shared[0].text)} (the reason repeats the claim)"
    return None


# --- biases ------------------------------------------------------------------------

_CONFIRMATION = compile_cues(cues.CONFIRMATION_BIAS_CUES)
_CONTRARY = compile_cues(cues.CONTRARY_EVIDENCE)


def confirmation_bias(doc: Doc) -> str | None:
    """Only confirming evidence counts: "proves my point", "I only follow people who
    agree with me", or setting aside contrary evidence ("I ignore the negative reviews")."""
    cue = _search(_CONFIRMATION, doc)
    if cue:
        return f"{_quoted(cue)} (only confirming evidence counts)"
    for token in doc:
        if token.lemma_ in cues.DISMISS_VERBS or (
            token.lemma_ == "leave" and any(_low(c) == "out" for c in token.children)
        ):
            contrary = _search(_CONTRARY, doc)
            if contrary:
                return f"{_quoted(token.text, contrary)} (contrary evidence set aside)"
    return None


_RELATIVE = compile_cues(cues.RELATIVE_JUDGMENTS)


def anchoring(doc: Doc) -> str | None:
    """A figure judged against the first one heard: a number, an anchor ("first",
    "original", "listed at", "opening offer") and a relative judgment ("a bargain")."""
    numbers = [t for t in doc if t.like_num or t.tag_ == "CD" or t.text in ("$", "€", "£", "%")]
    if len(numbers) < 2:
        return None
    anchor = next((t for t in doc[: numbers[-1].i] if _low(t) in cues.ANCHOR_WORDS), None)
    judgment = _search(_RELATIVE, doc)
    if anchor is None or judgment is None:
        return None
    return f"{_quoted(anchor.text, judgment)} (a figure judged against the first one heard)"


_EXPOSURE = compile_cues(cues.EXPOSURE_CUES)
_LIKELIHOOD = compile_cues(cues.LIKELIHOOD_JUDGMENTS)


_EVERYONE = frozenset({"everyone", "everybody", "all", "nobody", "anyone", "anybody"})


def _single_case(doc: Doc) -> str | None:
    """One event that happened to someone ("a guy on our street won", "my friend's house
    was broken into"), told in the past."""
    for token in doc:
        if token.tag_ == "VBD" or token.tag_ == "VBN" and _has_aux(token, frozenset({"was", "were"})):
            subject = _subject(token)
            if subject is None:
                continue
            owner = [t for t in subject.subtree if t.lemma_ in cues.ACQUAINTANCES or t.lemma_ in cues.PERSON_NOUNS]
            single = any(_low(t) in ("a", "an", "my", "one", "our") for t in subject.subtree)
            if owner and single:
                return f"{owner[0].text} {token.text}"
    return None


def availability_heuristic(doc: Doc) -> str | None:
    """Likelihood judged from one vivid or recent case ("I saw on the news ... dangerous")."""
    likelihood = _search(_LIKELIHOOD, doc)
    if likelihood is None:
        return None
    exposure = _search(_EXPOSURE, doc)
    if exposure is None and not any(_low(t) in _EVERYONE for t in doc):
        exposure = _single_case(doc)
    if exposure:
        return f"{_quoted(exposure, likelihood)} (likelihood judged from a case that comes to mind)"
    return None


_OVERCONFIDENCE = compile_cues(cues.OVERCONFIDENCE_CUES)


def overconfidence(doc: Doc) -> str | None:
    """Certainty beyond what anyone can know ("absolutely certain", "guaranteed")."""
    cue = _search(_OVERCONFIDENCE, doc)
    return f"{_quoted(cue)} (more certainty than the evidence allows)" if cue else None


_IN_GROUP = compile_cues(cues.IN_GROUP_CUES)


#: Comparatives of size or amount: "our office is bigger" measures, it does not rank people.
_MEASURES = frozenset(
    {"bigger", "larger", "smaller", "older", "newer", "taller", "more", "fewer", "less", "higher", "lower",
     "longer", "shorter", "biggest", "largest", "smallest", "oldest", "newest", "earlier", "later"}
)  # fmt: skip


def _outgroup(token: Token) -> bool:
    """A word for the other group: "outsiders", "theirs", or "other"/"those" with a group or
    person noun ("people from other teams")."""
    low = _low(token)
    if low not in cues.OUTGROUP_WORDS:
        return False
    if low in ("other", "those"):
        head = token.head
        return _low(head) in cues.GROUP_NOUNS or head.lemma_ in cues.GROUP_NOUNS or _is_person(head)
    return True


def in_group_bias(doc: Doc) -> str | None:
    """One's own group favoured ("people like us", "outsiders never fit in", "our team
    would never ... unlike the Berlin office")."""
    cue = _search(_IN_GROUP, doc)
    ours = any(_low(t) in ("we", "us", "our", "ours") for t in doc)
    if cue is not None:
        superior = next((t for t in doc if _low(t) in cues.SUPERIORITY_WORDS), None)
        if ours or superior is not None:
            return f"{_quoted(cue)} (one's own group favoured over others)"
        return None
    for token in doc:  # "our school's students are smarter than ...", "engineers like us ... better"
        group = _low(token) in cues.GROUP_NOUNS or token.lemma_ in cues.GROUP_NOUNS or token.tag_ == "NNS"
        if token.dep_ in ("nsubj", "nsubjpass") and group:
            mine = any(_low(t) in ("our", "us") for t in token.subtree)
            verb = token.head
            ranked = [
                t
                for t in verb.subtree
                if t.i > token.i
                and _low(t) not in _MEASURES
                and (t.tag_ in ("JJR", "RBR") and any(_low(x) == "than" for x in doc[t.i :]) or t.tag_ == "JJS")
                or _low(t) == "most"
                and t.head.pos_ == "ADJ"
            ]
            if mine and ranked:
                return f"{_quoted(token.text, ranked[0].text)} (one's own group ranked above others)"
    others = next((t for t in doc if _outgroup(t)), None)
    if ours and others is not None:
        judged = [
            t
            for t in doc
            if t.dep_ == "neg" or t.dep_ in ("acomp", "attr") and t.pos_ in ("ADJ", "NOUN") or _low(t) == "never"
        ]
        if judged:
            return f"{_quoted(others.text, judged[0].text)} (one's own group set against others)"
    return None


_REPHRASE = compile_cues(cues.REPHRASE_MARKERS)
_YOU_RATHER = compile_cues(("you'd rather ... than", "you would rather ... than", "you'd prefer ... than"))


def straw_man(doc: Doc) -> str | None:
    """The other side's view restated to attack it: a marker of restatement ("so you're
    saying", "in other words", "apparently") and a verb of saying or wanting whose
    subject is the other side."""
    rather = _search(_YOU_RATHER, doc)
    if rather:
        return f"{_quoted(rather)} (the other side's view restated to attack it)"
    marker = _search(_REPHRASE, doc)
    if marker is None:
        return None
    for token in doc:
        if token.lemma_ in cues.REPHRASE_VERBS:
            subject = _subject(token) if token.pos_ in ("VERB", "AUX") else None
            if subject is not None and (_low(subject) in cues.OPPONENTS or subject.lemma_ in cues.OPPONENTS):
                return (
                    f"{_quoted(marker, subject.text + ' ' + token.text)} (the other side's view restated to attack it)"
                )
        if token.lemma_ in cues.ARGUMENT_NOUNS and token.dep_ == "nsubj":
            owner = next((c for c in token.children if _low(c) in ("your", "his", "her", "their")), None)
            if owner is not None:
                return f"{_quoted(marker, owner.text + ' ' + token.text)} (the other side's view restated to attack it)"
    return None


@dataclass(frozen=True)
class Pattern:
    type: str
    description: str
    detect: Callable[[Doc], str | None]


FALLACY_PATTERNS: tuple[Pattern, ...] = (
    Pattern("ad_hominem", "Attacks the person instead of their argument.", ad_hominem),
    Pattern("straw_man", "Restates the other position in a distorted, easier-to-attack form.", straw_man),
    Pattern("slippery_slope", "Claims a small step will inevitably lead to an extreme outcome.", slippery_slope),
    Pattern("false_dilemma", "Presents only two options when more exist.", false_dilemma),
    Pattern("appeal_to_authority", "Relies on someone's status rather than on evidence.", appeal_to_authority),
    Pattern("bandwagon", "Argues something is true or good because many people do or believe it.", bandwagon),
    Pattern("hasty_generalization", "Draws a sweeping conclusion from too few cases.", hasty_generalization),
    Pattern("appeal_to_emotion", "Uses emotion in place of a reasoned argument.", appeal_to_emotion),
    Pattern("appeal_to_tradition", "Argues something is right because it has long been done.", appeal_to_tradition),
    Pattern("post_hoc", "Takes one event following another as proof that it caused it.", post_hoc),
    Pattern("circular_reasoning", "Supports the claim with a reason that restates it.", circular_reasoning),
)
BIAS_PATTERNS: tuple[Pattern, ...] = (
    Pattern("confirmation_bias", "Favours information that confirms an existing belief.", confirmation_bias),
    Pattern("anchoring", "Relies too heavily on the first figure mentioned.", anchoring),
    Pattern("availability_heuristic", "Judges likelihood from a vivid or recent example.", availability_heuristic),
    Pattern("overconfidence", "Expresses more certainty than the evidence supports.", overconfidence),
    Pattern("in_group_bias", "Favours one's own group over others.", in_group_bias),
)


# --- implications ------------------------------------------------------------------

_CONSEQUENCE = compile_cues(cues.CONSEQUENCE_CUES)
_PURPOSE_MODALS = frozenset({"can", "could", "may", "might"})


_WHEN = frozenset({"when", "whenever"})
#: Conditions that only say when the main clause is relevant or polite, not what it depends on.
_RELEVANCE_VERBS = frozenset({"want", "like", "wish", "ask", "need", "prefer", "interest", "care", "work"})


def _general_result(condition: Token, past_excluded: bool) -> Token | None:
    """The main clause a conditional clause hangs from, when it states a result with
    its own subject ("if it rains, the picnic is off"): not a command ("if you have
    questions, send me a message") nor, after "when", a story in the past."""
    main = condition.head
    subject = _subject(main)
    if main is condition or main.pos_ not in ("VERB", "AUX") or subject is None or _low(subject) in ("'s", "us"):
        return None
    if condition.lemma_ in _RELEVANCE_VERBS:  # "if you want, I can send it", "if anyone asks, it's in room 4"
        return None
    if past_excluded and (main.tag_ in ("VBD", "VBN") or condition.tag_ == "VBD" or _is_person(subject)):
        return None  # after "when": a story, or someone's routine ("whenever she visits, she brings ...")
    return main


def _other_conditional(doc: Doc) -> str | None:
    """Conditions without "if": "assuming X, Y", "suppose X; Y would", "in case X, Y",
    "without X, Y will", and a command with its outcome ("cut the budget and we lose ...")."""
    for token in doc:
        low = _low(token)
        if low in cues.CONDITION_VERBS and token.dep_ in ("advcl", "ROOT", "prep", "mark"):
            main = token.head if token.dep_ != "ROOT" else None
            results = [main] if main is not None and _subject(main) is not None else _consequence_verbs(doc, token)
            if results and results[0] is not token:
                return f"{_quoted(token.text, results[0].text)} (a condition and its consequence)"
        if low == "in" and token.i + 1 < len(doc) and _low(doc[token.i + 1]) == "case" and token.head.dep_ == "advcl":
            main = token.head.head
            if _subject(main) is not None:
                return f"{_quoted('in case', main.text)} (a condition and its consequence)"
        if low == "without" and token.dep_ == "prep" and token.i < token.head.i == token.head.head.i:
            if _inherits_aux(token.head, cues.CONSEQUENCE_MODALS):
                return f"{_quoted(token.text, token.head.text)} (a condition and its consequence)"
    first = doc[0]
    if first.tag_ == "VB" and first.dep_ == "csubj" and _inherits_aux(first.head, cues.CONSEQUENCE_MODALS):
        return f"{_quoted(first.text, first.head.text)} (a command and what follows from it)"  # "Raise X and Y will"
    if first.dep_ == "ROOT" and first.tag_ in ("VB", "NNP") and _subject(first) is None:
        for conj in first.children:
            joined = any(_low(c) in ("and", "or") for c in first.children if c.dep_ == "cc")
            if conj.dep_ == "conj" and conj.pos_ in ("VERB", "AUX") and _subject(conj) is not None and joined:
                return f"{_quoted(first.text, conj.text)} (a command and what follows from it)"
    return None


def implication(doc: Doc) -> tuple[ImplicationKind, str] | None:
    """A conditional ("if X, Y will ..."), a causal link ("because", "leads to", "X, so Y")
    or a consequence ("therefore", "which means", "this decision will push ..."), with
    the words that show it."""
    for mark in _clause_marks(doc, cues.CONDITIONAL_MARKS | _WHEN | frozenset({"as"})):
        if _low(mark) == "as" and not doc[mark.i : mark.i + 3].text.lower().startswith("as long as"):
            continue
        if mark.dep_ not in ("mark", "advmod") or mark.head is mark:
            continue
        condition = mark.head
        results = _consequence_verbs(doc, outside=condition) or [
            t for t in doc if _low(t) == "then" and not _in_subtree(t, condition)
        ]
        if not results and condition.dep_ == "advcl" and _low(mark) != "once":
            results = [main] if (main := _general_result(condition, past_excluded=_low(mark) in _WHEN)) else []
        if results:
            return "conditional", f"{_quoted(mark.text, results[0].text)} (a condition and its consequence)"
    if doc[0].lower_ in ("should", "were", "had") and doc[0].dep_ == "aux" and doc[0].head.dep_ == "advcl":
        return "conditional", f"{_quoted(doc[0].text)} (an inverted condition)"
    other = _other_conditional(doc)
    if other is not None:
        return "conditional", other
    cue = _search(_CONSEQUENCE, doc)
    if cue:
        causal = cue.lower() in ("due to", "because of", "thanks to") or doc.text[
            doc.text.lower().find(cue.lower()) :
        ].lower().startswith(cue.lower() + " of")  # "as a result of X, Y" names the cause
        kind: ImplicationKind = "causal" if causal else "consequence"
        return kind, f"{_quoted(cue)} (draws a consequence)"
    for token in doc:
        low = _low(token)
        if low == "because" and token.dep_ == "mark":
            return "causal", f"{_quoted(token.text)} (gives a cause)"
        if low == "since" and token.dep_ == "mark" and token.head.dep_ == "advcl":
            main = token.head.head
            if not _has_aux(main, frozenset({"has", "have", "'ve", "had"})) and main.tag_ != "VBN":
                return "causal", f"{_quoted(token.text)} (gives a cause)"
        after_comma = token.i > 0 and doc[token.i - 1].text in (",", ";")
        if low == "so" and (
            token.dep_ in ("advmod", "mark", "cc") and token.head.pos_ in ("VERB", "AUX") or after_comma
        ):
            clause = token.head if token.head.pos_ in ("VERB", "AUX") else token.sent.root
            subject = _subject(clause)
            purpose = _has_aux(clause, _PURPOSE_MODALS) or (token.i + 1 < len(doc) and _low(doc[token.i + 1]) == "that")
            if subject is not None and token.i < subject.i and not purpose and token.i > 0:
                return "causal", f"{_quoted(', so')} (a result follows)"
        if token.lemma_ in cues.CAUSAL_VERBS and token.pos_ == "VERB":
            if token.lemma_ in ("lead", "result") and not any(_low(c) in ("to", "in") for c in token.children):
                continue
            if token.lemma_ == "mean" and _subject(token) is None:
                continue
            kind = (
                "consequence" if _inherits_aux(token, cues.CONSEQUENCE_MODALS) or token.lemma_ == "mean" else "causal"
            )
            return kind, f"{_quoted(token.text)} (a cause and its effect)"
    for verb in _consequence_verbs(doc):
        subject = _subject(verb)
        if subject is not None and (
            subject.tag_ == "VBG" or subject.dep_ == "csubj" or subject.lemma_ in cues.EVENT_NOUNS
        ):
            return "consequence", f"{_quoted(subject.text, verb.text)} (what an action will bring about)"
    return None


def hypothetical(doc: Doc) -> bool:
    """The sentence is about what may happen (a conditional or "would/could ..."): its tone
    says little about how the speaker feels now."""
    found = implication(doc)
    return (
        found is not None
        and found[0] == "conditional"
        or any(_low(t) in ("would", "could", "might", "'d") and t.dep_ == "aux" for t in doc)
    )
