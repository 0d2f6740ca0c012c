"""The builtin grammar checker's logic: learner-error rules over a spaCy parse,
harper's lints filtered for learners, spelling, and how edits are merged.

Everything here is a plain function of already-loaded tools (the parse, the
lints, a speller); loading them and keeping the checker from ever raising is
``tutor.py``'s job. The rules are narrow on purpose: a false alarm on a correct
sentence is worse than a miss, so each rule fires only on a pattern that is
wrong in standard English whatever the context, and proper names are never
touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from spacy.tokens import Doc, Token

# --- word lists ---------------------------------------------------------------

#: Syllables of Vietnamese names, places and dishes written without accents
#: (harper and the spellers "correct" them: "Minh" -> "Mind"). Common English
#: words ("an", "do", "long", "son") are left out: they need no protection.
VIETNAMESE_WORDS: frozenset[str] = frozenset(
    """
    nguyen tran pham hoang huynh phan vu vo dang bui duong ly dinh doan luong trinh
    truong quach kieu trieu khuong thi minh anh hung chau tuan thanh huong linh trang
    hoa dung duc hieu hai nam phuong thu thuy ngoc quang khanh khoa kiet bao binh cuong
    dat dieu hanh hau hien hoai hong huy khang khoi loan loc luan nga nghia nhan nhi
    nhung oanh phat phong phuc quoc quynh thao thang thien thinh thong tien toan trung
    tuyet uyen vinh vy xuan yen viet nhat hoan kiem nang phu ngai dak lak kon tum ninh
    thuan vung tau rach quy nhon buon thuot soc lao cai dien hanoi saigon haiphong danang
    nha halong mekong cholon pho banh bun cha nem cuon goi xoi che lau phe sua hu tieu
    chao canh chua nuoc mam nuong thit heo tom rau muong xeo bot beo khot tet ao dai
    sapa hoi giang thuong phuoc tri ngan duy dalat bo bun
    """.split()
)

_MODALS = frozenset("can could will would shall should may might must ca wo 'll".split())  # "ca" of "can't"
_ADVERBS_BETWEEN = frozenset(
    "not n't never also always really just only probably still even often usually sometimes "
    "definitely certainly already ever".split()
)
_THIRD_SINGULAR_PRONOUNS = frozenset(
    "he she it this that everyone everybody someone somebody anyone anybody nobody everything "
    "something anything nothing".split()
)
_PLURAL_PRONOUNS = frozenset("we you they these those".split())
_NOMINATIVE = frozenset("i you he she it we they".split())
#: Plural nouns that spaCy may tag as singular.
_PLURAL_NOUNS = frozenset("people children men women police teeth feet mice cattle".split())
#: Subjects whose number depends on what follows them or on the dialect: skipped.
_UNCLEAR_NUMBER = frozenset(
    "lot number majority half rest most all some none kind type sort percent family team staff "
    "class group government audience crew committee couple public company pair variety series "
    "species news mathematics physics economics politics maths athletics gymnastics".split()
)
#: People, and countable things, safe for the missing-article rule ("I am student", "He has car").
_PEOPLE = frozenset(
    """
    student teacher doctor engineer nurse worker farmer driver singer actor actress writer
    lawyer pilot policeman policewoman officer businessman businesswoman accountant architect
    scientist programmer developer designer dentist chef cook waiter waitress manager director
    secretary journalist photographer artist musician player footballer soldier housewife
    boy girl man woman child person friend brother sister son daughter baby tourist guide
    boyfriend girlfriend
    """.split()
)
_COUNTABLE = _PEOPLE | frozenset(
    """
    car bike bicycle motorbike house dog cat computer laptop phone smartphone job book pen bag
    umbrella ticket camera apartment garden idea question problem mistake hospital bank park
    restaurant supermarket museum hotel shop cinema
    """.split()
)
_COPULAS = frozenset("be become".split())
_HAVE_VERBS = frozenset("have buy need want get own rent borrow find".split())
#: Words before a noun that already play the part of an article.
_DETERMINER_LIKE = frozenset(
    "a an the this that these those my your his her its our their such what which whose "
    "quite rather many much more most enough any no every each another other some one".split()
)
#: Nouns that stay singular ("three percent", "8 pm"): the plural rule skips them.
_NO_PLURAL = frozenset(
    """
    percent hundred thousand million billion dozen o'clock am pm times kind type sort
    information advice homework housework furniture equipment luggage baggage knowledge news
    money water rice bread music weather traffic work research evidence feedback software
    meat milk coffee tea food fruit fish sheep deer hair paper
    """.split()
)
#: Uncountable nouns learners pluralise ("informations").
_UNCOUNTABLE_PLURALS = {
    "informations": "information",
    "advices": "advice",
    "homeworks": "homework",
    "housework": "housework",
    "furnitures": "furniture",
    "equipments": "equipment",
    "luggages": "luggage",
    "baggages": "baggage",
    "knowledges": "knowledge",
    "feedbacks": "feedback",
    "softwares": "software",
    "vocabularies": "vocabulary",
}
_QUANTIFIERS_PLURAL = frozenset("many several few these those both various numerous".split())
_QUANTIFIERS_OF = frozenset("one each both many several few".split())
_NUMBER_WORDS = frozenset(
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
    "thousand million billion".split()
)
_SINGULAR_DETERMINERS = frozenset("a an every each another".split())
_PERIODS = frozenset(
    "night week weekend month year summer winter spring autumn fall time semester term monday "
    "tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december".split()
)
_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
_MONTHS = frozenset("january february march april may june july august september october november december".split())
#: Base verbs that learners put after "be" ("I am agree", "It is depend on").
_BE_BASE_VERBS = frozenset("agree disagree depend".split())
#: The same, but only fixed after a personal pronoun ("This is love" is fine).
_BE_BASE_VERBS_PERSON = frozenset(
    "want need know understand believe hope prefer enjoy love hate remember forget think study live work".split()
)
_PERSON_PRONOUNS = frozenset("i you he she we they".split())
_THINGS = frozenset(
    """
    film movie book story lesson game trip show match lecture job program programme song subject
    topic life city place party festival weekend holiday journey experience museum course
    novel
    """.split()
)
_FEELING_ING = {
    "interesting": "interested",
    "boring": "bored",
    "exciting": "excited",
    "tiring": "tired",
    "confusing": "confused",
    "embarrassing": "embarrassed",
    "surprising": "surprised",
    "disappointing": "disappointed",
    "frightening": "frightened",
    "annoying": "annoyed",
    "amazing": "amazed",
    "relaxing": "relaxed",
    "worrying": "worried",
}
_FEELING_ED = {ed: ing for ing, ed in _FEELING_ING.items()}
_FEELING_PREPOSITIONS = frozenset("in with about of by at".split())
_FEELING_VERBS = frozenset("be feel get become".split())
#: Nouns that go with "do", and with "make" (learners swap the two verbs).
_DO_NOUNS = frozenset("homework housework exercise exercises research business best shopping laundry".split())
_MAKE_NOUNS = frozenset("mistake mistakes decision decisions noise progress effort call".split())
_DEVICES = frozenset("tv television light lights lamp radio fan air-conditioner conditioner heater".split())
_SPORTS = frozenset("football soccer badminton volleyball basketball tennis baseball golf chess".split())
_LANGUAGES = frozenset("english vietnamese french chinese japanese korean german spanish russian thai".split())
_LOVE_VERBS = frozenset(
    "like likes liked love loves loved want wants wanted enjoy enjoys enjoyed hate hates hated".split()
)
_SKILLS = frozenset(
    """
    math maths mathematics english physics chemistry biology history geography sport sports football
    music art languages science cooking drawing singing dancing swimming writing
    """.split()
)
_SUBJUNCTIVE_TRIGGERS = frozenset(
    "suggest recommend insist demand require propose request urge important essential necessary vital crucial".split()
)
_OBJECT_PRONOUNS = frozenset("me him her us them".split())
_GO_ACTIVITIES = frozenset("shopping swimming fishing camping jogging hiking dancing sightseeing".split())


# --- edits --------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` with ``correction`` (start == end inserts).

    ``hint`` is the ERRANT type the rule expects, used when ERRANT cannot type
    the edit; ``rule`` names what found it.
    """

    start: int
    end: int
    correction: str
    hint: str
    rule: str


def match_case(model: str, word: str) -> str:
    """``word`` with the capitalisation of ``model`` ("Tomorow" -> "Tomorrow")."""
    if model[:1].isupper() and word[:1].islower():
        return word[:1].upper() + word[1:]
    return word


def _token_end(token: Token) -> int:
    return token.idx + len(token.text)


def _replace(token: Token, word: str, hint: str, rule: str) -> Edit:
    return Edit(token.idx, _token_end(token), match_case(token.text, word), hint, rule)


def _replace_span(first: Token, last: Token, words: str, hint: str, rule: str) -> Edit:
    return Edit(first.idx, _token_end(last), match_case(first.text, words), hint, rule)


def _delete(token: Token, hint: str, rule: str) -> Edit:
    return Edit(token.idx, _token_end(token), "", hint, rule)


def _insert_before(token: Token, word: str, hint: str, rule: str) -> Edit:
    return Edit(token.idx, token.idx, word, hint, rule)


_WORD_WITH_SPACE = re.compile(r"\S+")


def normalise_edit(text: str, edit: Edit) -> Edit | None:
    """The edit reduced to the words that change, with spacing made literal.

    Words the original span and the correction share at either end are
    dropped ("am agree" -> "agree" becomes deleting "am"). A deletion then takes
    one neighbouring space with it, and an insertion gets a trailing space, so
    that applying every edit literally gives a well-spaced sentence. ``None``
    when nothing changes.
    """
    original = [
        (m.start() + edit.start, m.end() + edit.start) for m in _WORD_WITH_SPACE.finditer(text[edit.start : edit.end])
    ]
    corrected = edit.correction.split()
    while original and corrected and text[original[0][0] : original[0][1]] == corrected[0]:
        original.pop(0)
        corrected.pop(0)
    while original and corrected and text[original[-1][0] : original[-1][1]] == corrected[-1]:
        original.pop()
        corrected.pop()
    if not original and not corrected:
        return None
    if original:
        start, end = original[0][0], original[-1][1]
        if corrected:
            return replace(edit, start=start, end=end, correction=" ".join(corrected))
        # A deletion: take the following space, or the preceding one before punctuation.
        if end < len(text) and text[end] == " " and (start == 0 or text[start - 1] in " \n"):
            end += 1
        elif start > 0 and text[start - 1] == " ":
            start -= 1
        return replace(edit, start=start, end=end, correction="")
    # An insertion: before the next word when there is one.
    point = edit.start
    while point < len(text) and text[point] == " ":
        point += 1
    if point < len(text) and not text[point].isspace():
        return replace(edit, start=point, end=point, correction=" ".join(corrected) + " ")
    return replace(edit, start=point, end=point, correction=" " + " ".join(corrected))


def _conflicts(a: Edit, b: Edit) -> bool:
    if a.start == a.end or b.start == b.end:  # insertions clash only at the same point or inside
        return a.start == b.start or a.start < b.start < a.end or b.start < a.start < b.end
    return a.start < b.end and b.start < a.end


def merge_edits(edits_by_priority: Iterable[Edit]) -> list[Edit]:
    """Non-overlapping edits sorted by position; of overlapping ones the first given wins."""
    kept: list[Edit] = []
    for edit in edits_by_priority:
        if not any(_conflicts(edit, other) for other in kept):
            kept.append(edit)
    return sorted(kept, key=lambda edit: (edit.start, edit.end))


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """``text`` with the sorted, non-overlapping ``edits`` applied literally."""
    pieces, position = [], 0
    for edit in edits:
        pieces.append(text[position : edit.start])
        pieces.append(edit.correction)
        position = edit.end
    pieces.append(text[position:])
    return "".join(pieces)


def compose(spelling: Sequence[Edit], later: Iterable[Edit], respelled: str) -> list[Edit]:
    """Edits found on the ``respelled`` text (the original with the sorted
    ``spelling`` edits applied) moved back onto the original text; an edit that
    touches a respelled word takes the word in ("intresting" -> "interested")."""
    spans, shift = [], 0
    for edit in spelling:
        start = edit.start + shift
        spans.append((edit, start, start + len(edit.correction)))
        shift += len(edit.correction) - (edit.end - edit.start)

    def to_original(position: int) -> int:
        return position - sum(len(e.correction) - (e.end - e.start) for e, _, end in spans if end <= position)

    moved = []
    for edit in later:
        touched = [
            (word, start, end)
            for word, start, end in spans
            if start < edit.end and edit.start < end or start < edit.start < end
        ]
        if not touched:
            moved.append(replace(edit, start=to_original(edit.start), end=to_original(edit.end)))
            continue
        first, last = min(edit.start, touched[0][1]), max(edit.end, touched[-1][2])
        correction = respelled[first : edit.start] + edit.correction + respelled[edit.end : last]
        start = touched[0][0].start if touched[0][1] == first else to_original(first)
        end = touched[-1][0].end if touched[-1][2] == last else to_original(last)
        moved.append(replace(edit, start=start, end=end, correction=correction))
    return moved


# --- word forms ---------------------------------------------------------------


def _lemminflect() -> Any:
    import lemminflect  # type: ignore[import-untyped]  # ~80 MB of tables: imported when first needed

    return lemminflect


def _inflect(lemma: str, tag: str) -> str | None:
    forms: tuple[str, ...] = _lemminflect().getInflection(lemma, tag=tag) or ()
    return forms[0] if forms else None


def lemmas(word: str) -> list[str]:
    """The possible lemmas of ``word`` ("went" -> ["go"]), deduplicated, in lemminflect's order."""
    found: dict[str, tuple[str, ...]] = _lemminflect().getAllLemmas(word) or {}
    return list(dict.fromkeys(lemma for forms in found.values() for lemma in forms))


def _verb_lemma(token: Token) -> str:
    if token.pos_ in ("VERB", "AUX") and token.lemma_:
        return token.lemma_.lower()
    found: tuple[str, ...] = _lemminflect().getLemma(token.lower_, upos="VERB") or ()
    return found[0] if found else token.lower_


def _be_present(person: str) -> str:
    return {"1sg": "am", "3sg": "is"}.get(person, "are")


def _be_past(person: str) -> str:
    return "were" if person == "pl" else "was"


def _present(lemma: str, person: str) -> str | None:
    if lemma == "be":
        return _be_present(person)
    return _inflect(lemma, "VBZ" if person == "3sg" else "VBP")


def _past(lemma: str, person: str) -> str | None:
    return _be_past(person) if lemma == "be" else _inflect(lemma, "VBD")


def _plural(noun: Token) -> str | None:
    lemma = noun.lemma_.lower() if noun.lemma_ else noun.lower_
    plural = _inflect(lemma, "NNS")
    return plural if plural and plural != noun.lower_ else None


def indefinite_article(word: str) -> str:
    """The indefinite article for ``word``, by its first sound (a few exceptions listed)."""
    low = word.lower()
    if low.startswith(("hour", "honest", "honour", "honor", "heir")):
        return "an"
    if low.startswith(("uni", "use", "usu", "uti", "eu", "one", "once")):
        return "a"
    return "an" if low[:1] in ("a", "e", "i", "o", "u") else "a"


# --- syntax helpers -----------------------------------------------------------


def _children(token: Token, *deps: str) -> list[Token]:
    return [child for child in token.children if child.dep_ in deps]


def _subject(verb: Token) -> Token | None:
    subjects = _children(verb, "nsubj", "nsubjpass")
    if subjects:
        return subjects[0]
    if verb.dep_ == "conj" and verb.head.pos_ in ("VERB", "AUX"):  # "She go and buy": the first verb's subject
        return _subject(verb.head)
    return None


def _person(subject: Token) -> str | None:
    """The subject's person for agreement: "1sg", "3sg" or "pl" ("you" is plural); None when unclear."""
    low = subject.lower_
    if _children(subject, "conj"):
        if not any(child.dep_ == "cc" and child.lower_ == "and" for child in subject.children):
            return None  # "Either you or he is", "My brother, as well as my sister, lives"
        # "My mother and father", "Lan and I"; not a dish like "fish and chips".
        named = subject.pos_ in ("PRON", "PROPN") or _children(subject, "det", "poss")
        return "pl" if named else None
    if low == "i":
        return "1sg"
    if low in _PLURAL_PRONOUNS:
        return "pl"
    if low in _THIRD_SINGULAR_PRONOUNS:
        return "3sg"
    if low in _UNCLEAR_NUMBER or subject.pos_ not in ("NOUN", "PROPN"):
        return None
    if subject.pos_ == "PROPN" and not subject.text[:1].isupper() or low in ("god", "heaven", "lord"):
        return None  # a lowercase "name" is a misparse ("wanna come"); "God bless you" is right
    if subject.tag_ == "NN" and _wants_plural(subject):
        return "pl"  # "Several country grow": the noun is corrected to plural
    if _children(subject, "nummod"):  # "Two hours is enough"
        return None
    if low in _PLURAL_NOUNS or subject.tag_ == "NNS":
        return "pl"
    if subject.tag_ == "NNPS":
        return None
    return "3sg"


def _auxiliaries(verb: Token) -> list[Token]:
    return [child for child in verb.lefts if child.dep_ in ("aux", "auxpass")]


def _is_finite_main_verb(verb: Token) -> bool:
    """A present-tense verb with no auxiliary that heads its own clause."""
    if verb.tag_ not in ("VBP", "VBZ", "VB") or verb.pos_ not in ("VERB", "AUX") or verb.text.startswith("'"):
        return False
    if verb.dep_ in ("aux", "auxpass", "xcomp", "amod", "acl", "pcomp", "pobj", "dobj", "compound"):
        return False
    if verb.dep_ == "ccomp" and _asks_subjunctive(verb.head):
        return False
    if _auxiliaries(verb):
        return False
    if verb.tag_ == "VB":  # a bare verb is finite only as a main clause with a nominative subject
        subject = _subject(verb)
        if verb.dep_ not in ("ROOT", "conj") or subject is None or subject.lower_ in _OBJECT_PRONOUNS:
            return False
        if verb.dep_ == "conj" and not _is_finite_main_verb(verb.head):
            return False
    return True


def _asks_subjunctive(head: Token) -> bool:
    """Whether ``head`` calls for a subjunctive ("suggest that she take", "important that he be")."""
    words = [head] + [child for child in head.children if child.dep_ in ("acomp", "attr")]
    return any(_verb_lemma(word) in _SUBJUNCTIVE_TRIGGERS or word.lower_ in _SUBJUNCTIVE_TRIGGERS for word in words)


def _next_word(token: Token, skip: frozenset[str] = _ADVERBS_BETWEEN, limit: int = 3) -> Token | None:
    """The next token after ``token``, skipping a few adverbs such as "not"."""
    doc = token.doc
    for index in range(token.i + 1, min(len(doc), token.i + 2 + limit)):
        if doc[index].lower_ not in skip:
            return doc[index]
    return None


def _is_capitalised_name(token: Token) -> bool:
    """A capitalised word that is not the first of its sentence (a name: "Minh", "Hue")."""
    return token.text[:1].isupper() and not token.is_sent_start and token.lower_ != "i"


def _is_name(token: Token) -> bool:
    """A capitalised word inside a sentence, or one opening it before another
    capitalised word ("Do Van Minh", "Pham Minh Chau")."""
    if _is_capitalised_name(token):
        return True
    following = token.doc[token.i + 1] if token.i + 1 < len(token.doc) else None
    return token.text[:1].isupper() and following is not None and _is_capitalised_name(following)


# --- rules: verbs -------------------------------------------------------------


def _will_going_to(doc: Doc) -> Iterator[Edit]:
    """Fix "I will going to Da Nang" to "I am going to" (harper's own fix is wrong)."""
    for token in doc:
        if token.lower_ != "will" or token.i + 2 >= len(doc):
            continue
        going, to = doc[token.i + 1], doc[token.i + 2]
        if going.lower_ != "going" or to.lower_ != "to":
            continue
        subject = _subject(going) or _subject(token)
        person = _person(subject) if subject is not None else None
        if person is not None:
            yield _replace(token, _be_present(person), "R:VERB:TENSE", "will_going_to")


def _modal_to(doc: Doc) -> Iterator[Edit]:
    """Fix "must to go" to "must go"."""
    for token in doc:
        if token.tag_ == "MD" and token.lower_ in _MODALS and token.i + 2 < len(doc):
            to, verb = doc[token.i + 1], doc[token.i + 2]
            if to.lower_ == "to" and verb.tag_ == "VB":
                yield _delete(to, "U:VERB:FORM", "modal_to")


def _base_form(word: str) -> str | None:
    """The base form of ``word`` if it can only be an inflected verb form
    ("went", "goes", "stopped"); None for a word that is also a base form
    ("read", "found", "saw") or not a verb."""
    lemminflect = _lemminflect()
    if lemminflect.getAllInflections(word, upos="VERB"):
        return None  # a verb of its own
    candidates: tuple[str, ...] = lemminflect.getLemma(word, upos="VERB") or ()
    if not candidates or candidates[0] in (word, "be"):
        return None
    forms: dict[str, tuple[str, ...]] = lemminflect.getAllInflections(candidates[0], upos="VERB") or {}
    inflected = {form for tag in ("VBD", "VBZ", "VBN", "VBG") for form in forms.get(tag, ())}
    return candidates[0] if word in inflected else None


def _base_after(verb: Token, rule: str) -> Iterator[Edit]:
    base = _base_form(verb.lower_) if verb.text.isalpha() else None
    if base:
        yield _replace(verb, base, "R:VERB:FORM", rule)


def _verb_form(doc: Doc) -> Iterator[Edit]:
    """The bare verb after modals, "do" and "to": "can goes", "didn't went", "to buys"."""
    for token in doc:
        if token.tag_ == "MD" and token.lower_ in _MODALS:
            verb = _next_word(token)
            if verb is None or verb.pos_ not in ("VERB", "AUX"):
                continue
            if verb.lower_ == "going" and token.lower_ == "will":
                continue  # _will_going_to
            if verb.tag_ != "VBN" and verb.lower_ != "going":  # "will done" may be a missing "be"
                yield from _base_after(verb, "modal_form")
        elif token.lemma_ == "do" and token.dep_ == "aux" and token.lower_ in ("do", "does", "did"):
            verb = token.head
            if verb.i > token.i and verb.tag_ != "VBG" and verb.pos_ == "VERB":
                if all(
                    doc[i].lower_ in ("not", "n't") or doc[i].pos_ in ("PRON", "PROPN", "ADV")
                    for i in range(token.i + 1, verb.i)
                ):
                    yield from _base_after(verb, "do_form")
        elif token.lower_ == "to" and token.tag_ == "TO" and token.dep_ == "aux" and token.i + 1 < len(doc):
            verb = doc[token.i + 1]
            if verb.head.i == token.head.i or token.head.i == verb.i:
                if verb.tag_ != "VBG" and verb.pos_ == "VERB":
                    yield from _base_after(verb, "to_form")


def _be_base_verb(doc: Doc) -> Iterator[Edit]:
    """Fix "I am agree" to "I agree", and "I am not agree" to "I do not agree"."""
    for token in doc:
        if token.lemma_ != "be" or token.lower_ not in ("am", "is", "are", "was", "were", "'m", "'re", "'s"):
            continue
        negated = token.i + 1 < len(doc) and doc[token.i + 1].lower_ in ("not", "n't")
        verb_index = token.i + (2 if negated else 1)
        if verb_index >= len(doc):
            continue
        verb = doc[verb_index]
        subject = _subject(token) or _subject(verb)
        person = _person(subject) if subject is not None else None
        word = verb.lower_
        if person is None or subject is None:
            continue
        if word not in _BE_BASE_VERBS and not (word in _BE_BASE_VERBS_PERSON and subject.lower_ in _PERSON_PRONOUNS):
            continue
        past = token.lower_ in ("was", "were")
        contraction = " " if token.text.startswith("'") else ""
        if negated:
            auxiliary = "did" if past else ("does" if person == "3sg" else "do")
            yield _replace(token, contraction + auxiliary, "R:VERB", "be_not_base_verb")
        else:
            form = _inflect(word, "VBD") if past else _present(word, person)
            if form:
                yield _replace_span(token, verb, contraction + form, "U:VERB", "be_base_verb")


def _past_time_markers(doc: Doc) -> Iterator[Token]:
    """Words that date an event in the past: "yesterday", "last week", "two days ago"."""
    for token in doc:
        previous = doc[token.i - 1] if token.i > 0 else None
        if previous is not None and previous.lower_ in ("since", "until", "till", "by"):
            continue  # "since yesterday" goes with the present perfect
        following = doc[token.i + 1] if token.i + 1 < len(doc) else None
        if token.lower_ == "yesterday" and not (following is not None and following.tag_ == "POS"):
            yield token
        elif token.lower_ == "ago" and previous is not None and previous.tag_ in ("NNS", "NN"):
            yield token
        elif token.lower_ == "last" and following is not None and following.lower_ in _PERIODS:
            if previous is None or previous.tag_ not in ("DT", "PRP$", "POS", "IN"):
                yield following


def _governing_verb(token: Token) -> Token | None:
    for _ in range(4):
        if token.pos_ in ("VERB", "AUX") and token.dep_ not in ("aux", "auxpass"):
            return token
        if token.head.i == token.i:
            return None
        token = token.head
    return None


def _tense_edits_for(verb: Token) -> Iterator[Edit]:
    subject = _subject(verb)
    person = _person(subject) if subject is not None else None
    auxiliaries = _auxiliaries(verb)
    if auxiliaries:
        auxiliary = auxiliaries[0]
        low = auxiliary.lower_
        if low in ("do", "does") and auxiliary.dep_ == "aux":
            yield _replace(auxiliary, "did", "R:VERB:TENSE", "past_time_do")
        elif (
            low in ("am", "is", "are") and person is not None and verb.tag_ in ("VBG", "VBN") and len(auxiliaries) == 1
        ):
            yield _replace(auxiliary, _be_past(person), "R:VERB:TENSE", "past_time_be")
        elif low in ("have", "has") and verb.tag_ == "VBN" and len(auxiliaries) == 1 and auxiliary.i + 1 == verb.i:
            past = _inflect(_verb_lemma(verb), "VBD")
            if past:
                yield _replace_span(auxiliary, verb, past, "U:VERB:TENSE", "past_time_perfect")
        return
    if person is None or not _is_finite_main_verb(verb):
        return
    past = _past(_verb_lemma(verb), person)
    if past and past != verb.lower_:
        yield _replace(verb, past, "R:VERB:TENSE", "past_time")


def _past_time_tense(doc: Doc) -> Iterator[Edit]:
    """A present verb dated in the past: "I go to school yesterday" -> "went"."""
    seen: set[int] = set()
    for marker in _past_time_markers(doc):
        verb = _governing_verb(marker)
        if verb is None or verb.i in seen:
            continue
        seen.add(verb.i)
        yield from _tense_edits_for(verb)
        for conjunct in _children(verb, "conj"):  # "I go to the market and buy fish yesterday"
            if conjunct.pos_ == "VERB" and not _children(conjunct, "nsubj") and conjunct.i not in seen:
                seen.add(conjunct.i)
                yield from _tense_edits_for(conjunct)


def _agreement_clause(token: Token) -> Token | None:
    """The verb whose subject ``token`` must agree with, if ``token`` is a
    finite verb in the present (or "was"): a first auxiliary or a main verb."""
    if token.dep_ in ("aux", "auxpass"):
        if token.lemma_ not in ("be", "do", "have") or token.tag_ not in ("VBP", "VBZ") and token.lower_ != "was":
            return None
        clause = token.head
        first = _auxiliaries(clause)[:1]
        return clause if first and first[0].i == token.i else None  # later auxiliaries are not finite
    if token.lower_ == "was" or _is_finite_main_verb(token):
        return token
    return None


def _agreement(doc: Doc) -> Iterator[Edit]:
    """Subject-verb agreement in the present, and was/were: "I goes", "She go", "They was"."""
    for token in doc:
        clause = _agreement_clause(token)
        if clause is None or token.text.startswith("'"):
            continue
        subject = _subject(clause)
        if subject is None or subject.lower_ in ("who", "which", "that", "what"):
            continue
        person = _person(subject)
        low = token.lower_
        if person is None or low == "were":  # "If I were you" is right
            continue
        if subject.i > token.i and clause.i == token.i and _verb_lemma(token) != "be":
            continue  # a main verb before its subject: "Long live the king"
        expected = _be_past(person) if low == "was" else _present(_verb_lemma(token), person)
        if expected and expected != low:
            yield _replace(token, expected, "R:VERB:SVA", "agreement")


def _there_is_plural(doc: Doc) -> Iterator[Edit]:
    """Fix "There is many people" to "There are many people"."""
    for token in doc:
        if token.lower_ not in ("is", "was") or not any(
            child.lower_ == "there" and child.dep_ == "expl" for child in token.children
        ):
            continue
        attributes = _children(token, "attr", "nsubj")
        if not attributes:
            continue
        noun = attributes[0]
        plural = noun.tag_ == "NNS" or noun.lower_ in _PLURAL_NOUNS
        if plural and noun.i > token.i and not any(child.lower_ in _SINGULAR_DETERMINERS for child in noun.children):
            yield _replace(token, "are" if token.lower_ == "is" else "were", "R:VERB:SVA", "there_is_plural")


def _like_misparsed(doc: Doc) -> Iterator[Edit]:
    """Fix "My sister like chocolate", where spaCy reads "like" as a preposition."""
    for sentence in doc.sents:
        if any(token.pos_ in ("VERB", "AUX") for token in sentence):
            continue
        for token in sentence:
            if token.lower_ != "like" or token.i == sentence.start:
                continue
            previous = doc[token.i - 1]
            if previous.is_punct or previous.lower_ in ("very", "really", "also", "always"):
                break  # "Like father, like son"; "I very like" is the "very" rule's
            subject = previous if previous.pos_ in ("NOUN", "PROPN", "PRON") else None
            if subject is None or subject.dep_ in ("pobj", "dobj"):
                # "Everyone in my class like": the subject is the sentence's root noun.
                root = sentence.root
                subject = root if root.i < token.i else None
            if subject is not None and _clear_subject(subject) and _person(subject) == "3sg":
                yield _replace(token, "likes", "R:VERB:SVA", "like_misparsed")
            break


def _clear_subject(token: Token) -> bool:
    """A subject, not the start of a fragment such as "Something like that" or "A man like him"."""
    if token.pos_ == "PRON":
        return token.lower_ in ("he", "she", "everyone", "everybody")
    if token.pos_ == "PROPN":
        return token.text[:1].isupper()
    return token.pos_ == "NOUN" and bool(_children(token, "poss"))


# --- rules: nouns and articles -------------------------------------------------


def _a_an(doc: Doc) -> Iterator[Edit]:
    """Fix "a apple" and "an big" where the first letter settles it
    (harper's rule covers the rest; it misses British spellings such as "a honour")."""
    for token in doc:
        if token.lower_ not in ("a", "an") or token.dep_ != "det" or token.head.i <= token.i:
            continue
        if doc[token.i + 1].pos_ not in ("NOUN", "ADJ", "ADV", "NUM"):
            continue  # "An is my friend": a name
        word = doc[token.i + 1].text
        if not word.isalpha() or word.isupper() or word.lower().startswith(("u", "eu", "one", "once")):
            continue
        if word.lower().startswith("h") and token.lower_ == "an":
            continue  # "an herb", "an historic" are in use
        expected = indefinite_article(word)
        if expected != token.lower_:
            yield _replace(token, expected, "R:DET", "a_an")


def _missing_article(doc: Doc) -> Iterator[Edit]:
    """A singular countable noun with no article: "I am student", "He has car", "work as guide"."""
    for noun in doc:
        if noun.tag_ != "NN" or noun.lower_ not in _COUNTABLE or noun.text[:1].isupper():
            continue
        if not _needs_article(noun) or noun.i + 1 < len(doc) and doc[noun.i + 1].lower_ == "with":
            continue  # "became friend with" wants "friends with", not an article
        if any(child.dep_ in ("det", "poss", "nummod", "predet", "case") for child in noun.children):
            continue
        first = noun.left_edge
        phrase = doc[first.i : noun.i + 1]
        if any(word.lower_ in _DETERMINER_LIKE or word.tag_ in ("PRP$", "POS", "CD", "DT") for word in phrase):
            continue
        if any(word.pos_ not in ("ADJ", "ADV", "NOUN") for word in phrase[:-1]):
            continue
        if first.i > 0 and doc[first.i - 1].tag_ in ("DT", "PRP$", "POS"):
            continue
        yield _insert_before(first, indefinite_article(first.text), "M:DET", "missing_article")


def _needs_article(noun: Token) -> bool:
    """Whether the noun's place asks for an article: after "be", as the object of
    "have", or after "as" (but not "such as")."""
    head = noun.head
    if noun.dep_ == "attr":
        return _verb_lemma(head) in _COPULAS
    if noun.dep_ == "dobj":
        return _verb_lemma(head) in _HAVE_VERBS
    if noun.dep_ == "pobj" and head.lower_ == "as":
        return not (head.i > 0 and noun.doc[head.i - 1].lower_ == "such")
    return False


def _unnecessary_the(doc: Doc) -> Iterator[Edit]:
    """Fix "play the football", "speak the English": no article before sports and languages."""
    for token in doc:
        if token.lower_ != "the" or token.dep_ != "det":
            continue
        noun = token.head
        if noun.i != token.i + 1 or list(noun.rights):
            continue
        verb = _verb_lemma(noun.head)
        if (
            noun.lower_ in _SPORTS
            and verb == "play"
            or noun.lower_ in _LANGUAGES
            and verb in ("speak", "learn", "study")
        ):
            yield _delete(token, "U:DET", "unnecessary_the")


def _noun_number(doc: Doc) -> Iterator[Edit]:
    """Plural after numbers and quantifiers ("three book", "many student", "one of my friend"),
    and no plural for uncountable nouns ("informations")."""
    for noun in doc:
        if noun.pos_ != "NOUN" or not noun.text.isalpha() or noun.text[:1].isupper() or len(noun.text) < 3:
            continue
        following = doc[noun.i + 1] if noun.i + 1 < len(doc) else None
        if noun.dep_ == "compound" or following is not None and (following.text == "-" or following.lower_ == "old"):
            continue
        if noun.i > 0 and doc[noun.i - 1].text == "-":
            continue
        if noun.tag_ == "NN" and noun.lower_ not in _NO_PLURAL and _wants_plural(noun):
            plural = _plural(noun)
            if plural:
                yield _replace(noun, plural, "R:NOUN:NUM", "plural")
        elif noun.tag_ == "NNS" and noun.lower_ in _UNCOUNTABLE_PLURALS:
            yield _replace(noun, _UNCOUNTABLE_PLURALS[noun.lower_], "R:NOUN:INFL", "uncountable_plural")


def _wants_plural(noun: Token) -> bool:
    """Whether a number or quantifier before ``noun`` asks for its plural."""
    for child in noun.lefts:
        low = child.lower_
        if child.dep_ == "nummod" and (low in _NUMBER_WORDS or _is_plural_number(low)):
            return True
        if child.dep_ in ("amod", "det") and low in _QUANTIFIERS_PLURAL:
            return True
    # "one of my friend", "both of my parent"
    if noun.dep_ == "pobj" and noun.head.lower_ == "of" and noun.head.head.lower_ in _QUANTIFIERS_OF:
        return any(child.dep_ in ("poss", "det") and child.lower_ not in ("a", "an") for child in noun.children)
    return False


def _is_plural_number(word: str) -> bool:
    digits = word.replace(",", "")
    if not digits.isdigit():
        return False
    value = int(digits)
    return value != 1 and not (len(digits) == 4 and 1000 <= value <= 2100)  # not a year


# --- rules: prepositions -------------------------------------------------------


def _pairs(doc: Doc) -> Iterator[tuple[Token, Token, Token | None]]:
    """Each token with the next one and the one after that."""
    for token in doc[:-1]:
        yield token, doc[token.i + 1], doc[token.i + 2] if token.i + 2 < len(doc) else None


def _wrong_prepositions(doc: Doc) -> Iterator[Edit]:
    """Verbs and adjectives with the wrong preposition: "depend of", "married with",
    "arrive to", "interested about", "good in", "discuss about", "go to home"."""
    for token, following, after in _pairs(doc):
        low, lemma, nxt = token.lower_, _verb_lemma(token), following.lower_
        if nxt == "to" and after is not None and after.pos_ in ("VERB", "AUX"):
            continue  # "arrived to find", "went to see": an infinitive
        verb = token.pos_ == "VERB"
        if lemma == "depend" and verb and nxt in ("of", "from"):
            yield _replace(following, "on", "R:PREP", "depend_on")
        elif lemma == "marry" and nxt == "with" and not _with_children(after):
            if token.tag_ in ("VBN", "JJ") and (_verb_lemma(token.head) in ("be", "get") or _auxiliaries(token)):
                yield _replace(following, "to", "R:PREP", "married_to")
            elif verb:
                yield _delete(following, "U:PREP", "marry_with")
        elif lemma == "arrive" and verb and nxt == "to" and after is not None:
            if after.lower_ == "home":
                yield _delete(following, "U:PREP", "arrive_home")
            else:  # "in" a city or country, "at" a place
                yield _replace(following, "in" if after.tag_ == "NNP" else "at", "R:PREP", "arrive_at")
        elif low == "interested" and nxt in ("about", "on", "with", "for") and after is not None and after.tag_ != "VB":
            yield _replace(following, "in", "R:PREP", "interested_in")
        elif low in ("good", "bad") and nxt == "in" and after is not None:
            if after.tag_ == "VBG" or after.lower_ in _SKILLS:
                yield _replace(following, "at", "R:PREP", "good_at")
        elif lemma == "discuss" and verb and nxt == "about":
            yield _delete(following, "U:PREP", "discuss_about")
        elif lemma in ("go", "come", "return", "get") and verb and nxt == "to" and after is not None:
            adverb = after.lower_ in ("home", "there", "here", "abroad", "downtown")
            if (adverb or lemma == "go" and after.lower_ in _GO_ACTIVITIES) and not _modifies_noun(after):
                yield _delete(following, "U:PREP", "go_home")  # but "go to home page"


def _missing_prepositions(doc: Doc) -> Iterator[Edit]:
    """Verbs that need a preposition before their object: "listen music", "explain me", "wait you"."""
    for token, following, _ in _pairs(doc):
        if token.pos_ != "VERB":
            continue
        lemma, nxt = _verb_lemma(token), following.lower_
        if lemma == "listen" and nxt != "to":
            objects = _children(token, "dobj")
            if objects and objects[0].left_edge.i == token.i + 1:
                yield _insert_before(following, "to", "M:PREP", "listen_to")
        elif lemma == "explain" and nxt in _OBJECT_PRONOUNS:
            yield _insert_before(following, "to", "M:PREP", "explain_to")
        elif lemma == "wait" and (nxt in _OBJECT_PRONOUNS or nxt == "you"):
            yield _insert_before(following, "for", "M:PREP", "wait_for")


def _time_prepositions(doc: Doc) -> Iterator[Edit]:
    """Time prepositions: "on Monday", "in 1998", "in May", "in the morning", "at night"."""
    for token, following, after in _pairs(doc):
        low, nxt = token.lower_, following.lower_
        if low in ("in", "at") and nxt.removesuffix("s") in _WEEKDAYS and not _modifies_noun(following):
            yield _replace(token, "on", "R:PREP", "on_weekday")
        elif low in ("on", "at") and _is_year(following) and not _modifies_noun(following):
            yield _replace(token, "in", "R:PREP", "in_year")
        elif low in ("on", "at") and nxt in _MONTHS and not _followed_by_number(following):
            yield _replace(token, "in", "R:PREP", "in_month")
        elif low in ("on", "at") and nxt == "the" and after is not None:
            if (
                after.lower_ in ("morning", "afternoon", "evening")
                and not list(after.rights)
                and not _modifies_noun(after)
            ):
                yield _replace(token, "in", "R:PREP", "in_the_morning")  # but "on the morning of May 5"
        elif low == "in" and nxt == "night" and not list(following.children) and not _modifies_noun(following):
            yield _replace(token, "at", "R:PREP", "at_night")


def _with_children(after_with: Token | None) -> bool:
    """Whether "with" is followed by a number or children ("married with two children" is right)."""
    return after_with is not None and (after_with.like_num or after_with.lower_ in ("children", "kids", "no", "one"))


def _modifies_noun(token: Token) -> bool:
    """Whether the word qualifies the next noun ("Monday's meeting", "2020 prices", "home page")."""
    doc = token.doc
    after = doc[token.i + 1] if token.i + 1 < len(doc) else None
    return after is not None and (after.tag_ == "POS" or after.pos_ in ("NOUN", "PROPN"))


def _is_year(token: Token) -> bool:
    return token.text.isdigit() and len(token.text) == 4 and 1000 <= int(token.text) <= 2100


def _followed_by_number(token: Token) -> bool:
    doc = token.doc
    return token.i + 1 < len(doc) and (doc[token.i + 1].like_num or doc[token.i + 1].tag_ == "CD")


# --- rules: word choice --------------------------------------------------------


def _feeling_adjectives(doc: Doc) -> Iterator[Edit]:
    """Fix "I am interesting in music" (interested) and "The film was interested" (interesting)."""
    for token in doc:
        low = token.lower_
        if low not in _FEELING_ING and low not in _FEELING_ED:
            continue
        verb = token.head if token.dep_ in ("acomp", "attr", "oprd") else token
        if _verb_lemma(verb) not in _FEELING_VERBS:
            # spaCy sometimes makes the adjective the root with "am" as its auxiliary.
            auxiliaries = [a for a in _auxiliaries(token) if a.lemma_ == "be"]
            if not auxiliaries or token.dep_ != "ROOT":
                continue
            verb = token
        subject = _subject(verb)
        if subject is None:
            continue
        following = doc[token.i + 1] if token.i + 1 < len(doc) else None
        person = subject.lower_ in _PERSON_PRONOUNS or subject.pos_ == "PROPN" or subject.lower_ in _PEOPLE
        if low in _FEELING_ING and person:
            if following is not None and following.lower_ in _FEELING_PREPOSITIONS or _verb_lemma(verb) == "feel":
                yield _replace(token, _FEELING_ING[low], "R:ADJ", "feeling_ed")
        elif low in _FEELING_ED and subject.lower_ in _THINGS:
            if following is None or following.lower_ not in _FEELING_PREPOSITIONS and following.pos_ != "PART":
                yield _replace(token, _FEELING_ED[low], "R:ADJ", "feeling_ing")


def _make_do(doc: Doc) -> Iterator[Edit]:
    """Fix "make homework" (do) and "do a mistake" (make)."""
    for token in doc:
        lemma = _verb_lemma(token)
        if lemma not in ("make", "do") or token.pos_ != "VERB" or token.dep_ in ("aux", "auxpass"):
            continue
        objects = _children(token, "dobj")
        if not objects:
            continue
        noun = objects[0].lower_
        if noun in ("lot", "lots"):  # "make a lot of exercise"
            quantified = [grand for child in objects[0].children if child.lower_ == "of" for grand in child.children]
            noun = quantified[0].lower_ if quantified else noun
        wanted = (
            "do" if lemma == "make" and noun in _DO_NOUNS else "make" if lemma == "do" and noun in _MAKE_NOUNS else None
        )
        if wanted is None:
            continue
        form = wanted if token.tag_ in ("VB", "VBP") else _inflect(wanted, token.tag_)
        if form:
            yield _replace(token, form, "R:VERB", "make_do")


def _very_with_verbs(doc: Doc) -> Iterator[Edit]:
    """Fix "I very like it" to "I really like it" ("very" cannot modify a verb)."""
    for token in doc:
        if token.lower_ != "very" or token.i + 1 >= len(doc) or doc[token.i + 1].lower_ not in _LOVE_VERBS:
            continue
        previous = doc[token.i - 1] if token.i > 0 else None
        if previous is not None and previous.lemma_ in ("be", "look", "seem", "sound", "feel", "taste"):
            continue  # "She looks very like her mother"
        if previous is not None and previous.pos_ in ("PRON", "PROPN", "NOUN"):
            yield _replace(token, "really", "R:ADV", "very_like")


def _turn_on_off(doc: Doc) -> Iterator[Edit]:
    """Fix "open the light" (turn on) and "close the TV" (turn off)."""
    for token in doc:
        lemma = _verb_lemma(token)
        if lemma not in ("open", "close") or token.pos_ != "VERB":
            continue
        objects = [child for child in _children(token, "dobj") if child.lower_ in _DEVICES]
        if not objects:
            continue
        turn = "turn" if token.tag_ in ("VB", "VBP") else _inflect("turn", token.tag_)
        if turn:
            particle = "on" if lemma == "open" else "off"
            yield _replace(token, f"{turn} {particle}", "R:VERB", "turn_on_off")


def _say_tell(doc: Doc) -> Iterator[Edit]:
    """Fix "He said me that..." to "He told me that..."."""
    for token in doc:
        if _verb_lemma(token) != "say" or token.pos_ != "VERB" or token.i + 1 >= len(doc):
            continue
        if doc[token.i + 1].lower_ in _OBJECT_PRONOUNS:
            form = "tell" if token.tag_ in ("VB", "VBP") else _inflect("tell", token.tag_)
            if form:
                yield _replace(token, form, "R:VERB", "say_tell")


#: The rules, in priority order: when two edits overlap, the earlier rule's wins.
RULES: tuple[Callable[[Doc], Iterator[Edit]], ...] = (
    _will_going_to,
    _modal_to,
    _verb_form,
    _be_base_verb,
    _past_time_tense,
    _there_is_plural,
    _agreement,
    _like_misparsed,
    _noun_number,
    _a_an,
    _unnecessary_the,
    _missing_article,
    _wrong_prepositions,
    _missing_prepositions,
    _time_prepositions,
    _feeling_adjectives,
    _make_do,
    _very_with_verbs,
    _turn_on_off,
    _say_tell,
)


def rule_edits(doc: Doc) -> list[Edit]:
    """Every rule's edits, in priority order (not yet merged), except those that
    would change a name ("Hoi An" is not "Hoi a")."""
    names = [(token.idx, _token_end(token)) for token in doc if _is_name(token)]
    return [
        edit
        for rule in RULES
        for edit in rule(doc)
        if not any(start < edit.end and edit.start < end for start, end in names)
    ]


# --- spelling and harper --------------------------------------------------------


class Speller(Protocol):
    def is_misspelled(self, word: str) -> bool: ...

    def correction(self, word: str, *, common: bool = False) -> str | None: ...


def _protected(token: Token) -> bool:
    """Names and Vietnamese words, which no checker may respell."""
    if token.lower_ in VIETNAMESE_WORDS or not token.text.isascii():
        return True
    return _is_name(token) or token.text.isupper() and len(token.text) > 1


def overregularised(word: str, participle: bool = False) -> str | None:
    """The irregular form a learner regularised: "buyed" -> "bought", "goed" -> "went"."""
    if not word.endswith("ed"):
        return None
    for stem in (word[:-2], word[:-1], word[:-3]):  # buy-ed, writ-e-d, stopp-ed
        forms: dict[str, tuple[str, ...]] = _lemminflect().getAllInflections(stem, upos="VERB") or {}
        wanted = forms.get("VBN" if participle else "VBD", ())
        if forms.get("VB") == (stem,) and wanted and not wanted[0].endswith("ed") and word not in wanted:
            return wanted[0]
    return None


def spelling_edits(doc: Doc, flagged: set[tuple[int, int]], speller: Speller) -> list[Edit]:
    """Words harper flags that the speller confirms are misspelled, with its correction."""
    edits = []
    for token in doc:
        span = (token.idx, _token_end(token))
        if span not in flagged or not token.text.isalpha() or len(token.text) < 3 or _protected(token):
            continue
        if not speller.is_misspelled(token.lower_):
            continue
        previous = token.doc[token.i - 1].lemma_ if token.i > 0 else ""
        irregular = overregularised(token.lower_, participle=previous in ("have", "be"))
        if irregular:
            edits.append(_replace(token, irregular, "R:VERB:INFL", "overregularised"))
            continue
        correction = speller.correction(token.lower_, common=token.text[:1].isupper())
        if correction and correction != token.lower_:
            edits.append(_replace(token, correction, "R:SPELL", "spelling"))
    return edits


class LintLike(Protocol):
    """What we read of a harper ``Lint``."""

    @property
    def lint_kind(self) -> str: ...

    @property
    def problem_text(self) -> str: ...


#: harper lint kinds that are about grammar (its style, capitalisation,
#: punctuation and readability lints are not what a learner asked for).
HARPER_KINDS = frozenset(
    {"Agreement", "Grammar", "Usage", "WordChoice", "Miscellaneous", "Eggcorn", "Malapropism", "BoundaryError"}
)
#: harper rules of other kinds that are learner errors ("more taller").
HARPER_EXTRA_RULES = frozenset({"AdjectiveDoubleDegree"})
#: harper rules left out: wrong for learners, or done better by our rules.
HARPER_SKIPPED_RULES = frozenset(
    {
        "WillGonna",  # its fix for "will going to" is wrong; _will_going_to
        "SplitWords",  # "adress" -> "a dress"; spelling does it
        "WrongNegative",  # "untill" -> "distill"
        "MissingPreposition",  # no suggestion
        "ExpandThough",  # "Can Tho" -> "Can Though"
        "SpellCheck",  # spelling_edits
        "GoodAt",  # "good in" anything; _wrong_prepositions checks the object
        "MissingTo",  # "Every child needs love" -> "needs to love"
        "ThisTypeOfThing",  # "these kind of things" is everyday English
    }
)


def harper_spans(doc: Doc, lint_spans: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """The lint spans that are exactly one token (candidate misspellings)."""
    token_spans = {(token.idx, _token_end(token)) for token in doc}
    return {span for span in lint_spans if span in token_spans}


def harper_edit_allowed(doc: Doc, rule: str, kind: str, start: int, end: int) -> bool:
    """Whether a harper lint may become an edit: a grammar rule, touching no name."""
    if rule in HARPER_SKIPPED_RULES or kind not in HARPER_KINDS and rule not in HARPER_EXTRA_RULES:
        return False
    # The words next to the span count too: "tried bun bo Hue" is not "tried to".
    inside = [token.i for token in doc if token.idx < end and _token_end(token) > start]
    if not inside:  # an insertion point
        inside = [token.i for token in doc if token.idx >= start][:1]
    if not inside:
        return False
    touched = doc[max(0, inside[0] - 1) : inside[-1] + 2]
    return not any(_protected(token) for token in touched)


def foreign_sentences(doc: Doc, is_common: Callable[[str], bool]) -> list[tuple[int, int]]:
    """Character ranges of sentences that are mostly not common English words
    (Vietnamese with or without accents): they are left unchecked."""
    ranges = []
    for sentence in doc.sents:
        words = [token.lower_ for token in sentence if token.is_alpha]
        foreign = [word for word in words if not word.isascii() or word in VIETNAMESE_WORDS or not is_common(word)]
        if words and len(foreign) > len(words) / 2:
            ranges.append((sentence.start_char, sentence.end_char))
    return ranges
