"""The builtin tutor (orchestrator.analysers.tutor): no services, real models.

The module's resources are warmed once; the grammar memo is cleared where a
test must see a fresh analysis.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from orchestrator.analysers import grammar, tutor
from orchestrator.analysers.resources import RESOURCES

LEVELS = {"A1", "A2", "B1", "B2", "C1", "C2"}
#: Letters only Vietnamese uses: a reply containing them is in Vietnamese.
VIETNAMESE_LETTERS = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]")


@pytest.fixture(scope="module", autouse=True)
def warmed() -> Iterator[None]:
    tutor.warm()
    yield


def corrections(text: str) -> list[tuple[str, str, str]]:
    return [(error["original"], error["correction"], error["type"]) for error in tutor.check_grammar(text)["errors"]]


def assert_consistent(text: str, result: dict[str, Any]) -> None:
    """Spans point at the text, are sorted and disjoint, and applying them gives ``corrected``."""
    position, pieces = 0, []
    for error in result["errors"]:
        assert text[error["start"] : error["end"]] == error["original"]
        assert error["start"] >= position
        pieces += [text[position : error["start"]], error["correction"]]
        position = error["end"]
    assert "".join(pieces) + text[position:] == result["corrected"]


# --- check_grammar -------------------------------------------------------------


def test_grammar_output_has_the_documented_shape() -> None:
    result = tutor.check_grammar("She have two cat.")

    assert set(result) == {"errors", "corrected"}
    assert result["errors"]
    for error in result["errors"]:
        assert set(error) == {"start", "end", "original", "correction", "type", "explanation", "source"}
        assert isinstance(error["start"], int) and isinstance(error["end"], int)
        assert re.fullmatch(r"[MRU]:[A-Z]+(:[A-Z]+)?", error["type"])
        assert error["explanation"].endswith(".")
        assert error["source"] == "builtin"


@pytest.mark.parametrize(
    ("text", "corrected", "types"),
    [
        ("I goes to school yesterday.", "I went to school yesterday.", {"R:VERB:TENSE"}),
        ("She have two cat.", "She has two cats.", {"R:VERB:SVA", "R:NOUN:NUM"}),
        ("She go to the market.", "She goes to the market.", {"R:VERB:SVA"}),
        ("He can goes home.", "He can go home.", {"R:VERB:FORM"}),
        ("I didn't went there.", "I didn't go there.", {"R:VERB:FORM"}),
        ("I must to go now.", "I must go now.", {"U:VERB:FORM"}),
        ("I am student.", "I am a student.", {"M:DET"}),
        ("I eat a apple.", "I eat an apple.", {"R:DET"}),
        ("There are many student here.", "There are many students here.", {"R:NOUN:NUM"}),
        ("It depends of the weather.", "It depends on the weather.", {"R:PREP"}),
        ("I recieve your letter.", "I receive your letter.", {"R:SPELL"}),
        ("I am interesting in music.", "I am interested in music.", None),
        ("I make homework every day.", "I do homework every day.", {"R:VERB"}),
        ("I am agree with you.", "I agree with you.", None),
        ("I will going to Da Nang next week.", "I am going to Da Nang next week.", None),
    ],
)
def test_typical_learner_errors_are_corrected(text: str, corrected: str, types: set[str] | None) -> None:
    result = tutor.check_grammar(text)

    assert result["corrected"] == corrected
    assert_consistent(text, result)
    if types is not None:
        assert {error["type"] for error in result["errors"]} == types


def test_spans_cover_the_erroneous_characters() -> None:
    text = "Yesterday my freind go to the libary and buy three book."

    result = tutor.check_grammar(text)

    assert result["corrected"] == "Yesterday my friend went to the library and bought three books."
    assert [(e["original"], e["correction"]) for e in result["errors"]] == [
        ("freind", "friend"),
        ("go", "went"),
        ("libary", "library"),
        ("buy", "bought"),
        ("book", "books"),
    ]
    assert_consistent(text, result)


def test_a_misspelled_word_with_a_grammar_error_gets_one_correction() -> None:
    assert corrections("She recieve a letter yesterday.") == [("recieve", "received", "R:VERB:TENSE")]


def test_insertions_and_deletions_keep_the_spacing() -> None:
    inserted = tutor.check_grammar("My father is engineer.")
    deleted = tutor.check_grammar("We should to study harder.")

    assert inserted["errors"][0]["start"] == inserted["errors"][0]["end"]
    assert inserted["errors"][0]["correction"] == "an "
    assert deleted["errors"][0]["correction"] == ""
    assert deleted["corrected"] == "We should study harder."


@pytest.mark.parametrize(
    "text",
    [
        "My name is Nguyen Van An and I live in Da Nang.",
        "Tran Thi Mai is my best friend.",
        "I was born in Ho Chi Minh City.",
        "We ate pho and banh mi in Hue last weekend.",
        "My family visited Phu Quoc last summer.",
        "Hanoi is the capital of Vietnam.",
        "Pham Minh Chau works at a bank in Can Tho.",
        "We stayed at a hotel near Hoan Kiem Lake.",
        "Have you ever tried bun bo Hue?",
        "Dalat is cooler than Saigon.",
        "My best friend's name is Pham Quang Huy.",
        "Thanh lives in Bien Hoa with her parents.",
        "We visited Hoi An last summer.",
        "An is my classmate.",
        "Do Van Minh is a teacher in Hai Phong.",
        "Hanh, Thu and Phuong are my classmates.",
        "Com tam is my favourite breakfast.",
    ],
)
def test_vietnamese_names_places_and_dishes_are_not_flagged(text: str) -> None:
    assert corrections(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "I'm gonna grab a coffee, wanna come?",
        "If I were you, I would call her.",
        "Mathematics is my favourite subject.",
        "Fish and chips is a popular British dish.",
        "She is married with two children.",
        "We arrived to find the door locked.",
        "I have lived here since last year.",
        "I suggest that she take the train.",
        "God bless you.",
        "Like father, like son.",
        "These kind of things happen.",
        "Every child needs love.",
        "My brother, as well as my sister, lives in Hanoi.",
        "The colour of the centre is grey.",
        "lol that's so funny",
        "It depends in part on the price.",
    ],
)
def test_correct_and_informal_english_is_not_flagged(text: str) -> None:
    assert corrections(text) == []


def test_explain_vi_adds_vietnamese_explanations() -> None:
    english = tutor.check_grammar("She go to school.")
    vietnamese = tutor.check_grammar("She go to school.", explain_vi=True)

    assert "explanation_vi" not in english["errors"][0]
    assert VIETNAMESE_LETTERS.search(vietnamese["errors"][0]["explanation_vi"])
    assert vietnamese["errors"][0]["explanation"] == english["errors"][0]["explanation"]


def test_results_are_deterministic() -> None:
    text = "Last week my brother buy two new book and he very like them."
    first = tutor.check_grammar(text, explain_vi=True)
    tutor.clear_cache()
    second = tutor.check_grammar(text, explain_vi=True)

    assert first == second
    assert tutor.write_feedback(text, level="A2") == tutor.write_feedback(text, level="A2")
    assert tutor.profile_vocabulary(text) == tutor.profile_vocabulary(text)


def test_callers_cannot_change_the_memoised_result() -> None:
    text = "He don't like tea."
    tutor.check_grammar(text)["errors"].clear()

    assert tutor.check_grammar(text)["errors"]


# --- robustness -------------------------------------------------------------------

ODD_INPUTS = [
    "",
    "   \n\t ",
    "I goes to school yesterday. " * 200,  # 5,600 characters
    "😀🎉 I goes home 😀",
    "1234567890 42",
    "Tôi là sinh viên năm nhất ở Hà Nội.",
    "Toi la sinh vien nam nhat o Ha Noi.",
    "!!! ??? ...",
    "a",
]


@pytest.mark.parametrize("text", ODD_INPUTS, ids=range(len(ODD_INPUTS)))
def test_odd_input_never_raises(text: str) -> None:
    grammar_result = tutor.check_grammar(text, explain_vi=True)
    fluency = tutor.assess_fluency(text)
    vocabulary = tutor.profile_vocabulary(text)
    feedback = tutor.write_feedback(text, level="A1", explain_vi=True)

    assert_consistent(text, grammar_result)
    assert 0.0 <= fluency["score"] <= 1.0
    assert vocabulary["level"] in LEVELS and 0.0 <= vocabulary["score"] <= 1.0
    assert isinstance(feedback["reply"], str) and feedback["reply"]


@pytest.mark.parametrize("text", ["Tôi là sinh viên năm nhất ở Hà Nội.", "Toi la sinh vien nam nhat o Ha Noi."])
def test_non_english_text_is_left_alone(text: str) -> None:
    assert corrections(text) == []


def test_only_the_start_of_a_long_text_is_checked() -> None:
    text = "I goes to school. " * 400  # 7,200 characters

    result = tutor.check_grammar(text)

    assert result["errors"]
    assert all(error["end"] <= tutor.MAX_CHECKED_CHARS for error in result["errors"])
    assert result["corrected"].startswith("I go to school. I go to school.")
    assert result["corrected"].endswith(text[tutor.MAX_CHECKED_CHARS :])


def test_wrong_argument_types_do_not_raise() -> None:
    odd: Any = None
    assert tutor.check_grammar(odd) == {"errors": [], "corrected": ""}
    assert tutor.assess_fluency(odd)["score"] == 0.0
    assert tutor.profile_vocabulary(odd)["level"] == "A1"
    assert tutor.write_feedback(odd, level=odd)["reply"]


def test_an_internal_error_is_logged_and_reported_as_no_errors(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(doc: object) -> list[grammar.Edit]:
        raise RuntimeError("rule layer bug")

    monkeypatch.setattr(grammar, "rule_edits", broken)
    tutor.clear_cache()
    with caplog.at_level(logging.ERROR, logger="orchestrator.analysers.tutor"):
        result = tutor.check_grammar("She go to school.")
        feedback = tutor.write_feedback("She go to school.")

    assert result == {"errors": [], "corrected": "She go to school."}
    assert feedback["reply"]
    assert "rule layer bug" in caplog.text
    tutor.clear_cache()


def test_resources_come_from_the_pool_and_reload_after_unloading() -> None:
    names = {tutor.PIPELINE, tutor.HARPER, tutor.SPELLCHECKER, tutor.WORD_FREQUENCIES, tutor.CEFR}
    assert names <= set(RESOURCES.loaded())

    for name in (tutor.PIPELINE, tutor.HARPER, tutor.SPELLCHECKER):
        assert RESOURCES.unload(name)
    result = tutor.check_grammar("My sister go to work by bus.")  # a text not analysed before

    assert result["corrected"] == "My sister goes to work by bus."
    assert names <= set(RESOURCES.loaded())


def test_concurrent_checks_get_the_same_answers() -> None:
    texts = [f"My brother play football {n} times a week." for n in ("two", "three", "four", "five", "six", "seven")]
    expected = [text.replace("play", "plays") for text in texts]
    tutor.clear_cache()

    with ThreadPoolExecutor(3) as pool:
        corrected = [result["corrected"] for result in pool.map(tutor.check_grammar, texts)]

    assert corrected == expected


# --- fluency, vocabulary, feedback -------------------------------------------------


def test_fluency_output_and_ordering() -> None:
    good = tutor.assess_fluency("Although it was raining, we walked to the old market and bought fresh fruit.")
    choppy = tutor.assess_fluency("Rain. Market. Fruit fruit fruit.")

    assert set(good) >= {"score", "words", "sentences", "readability"}
    assert set(good["readability"]) == {"flesch_reading_ease", "flesch_kincaid_grade"}
    assert good["words"] == 14 and good["sentences"] == 1
    assert 0.0 <= choppy["score"] < good["score"] <= 1.0
    assert tutor.assess_fluency("") == {
        "score": 0.0,
        "words": 0,
        "sentences": 0,
        "readability": {"flesch_reading_ease": 0.0, "flesch_kincaid_grade": 0.0},
    }


def test_vocabulary_profile() -> None:
    simple = tutor.profile_vocabulary("My mother likes to cook rice and fish.")
    advanced = tutor.profile_vocabulary("The committee postponed the negotiations because of ubiquitous scepticism.")

    for profile in (simple, advanced):
        assert set(profile) >= {"level", "score", "profile", "advanced_words"}
        assert list(profile["profile"]) == ["A1", "A2", "B1", "B2", "C1", "C2"]
        assert sum(profile["profile"].values()) == profile["words"]
    assert simple["level"] in {"A1", "A2"} and simple["advanced_words"] == []
    assert advanced["score"] > simple["score"]
    assert "ubiquitous" in advanced["advanced_words"]
    assert "pho" not in tutor.profile_vocabulary("We ate pho in Hue.")["advanced_words"]


def test_feedback_names_the_main_error_and_gives_the_correction() -> None:
    feedback = tutor.write_feedback("I goes to school yesterday.", level="A1")

    assert '"I went to school yesterday."' in feedback["reply"]
    assert "went" in feedback["reply"]
    assert max(len(sentence.split()) for sentence in re.split(r"[.!:]\s", feedback["reply"])) <= 14


def test_feedback_praises_a_correct_sentence() -> None:
    basic = tutor.write_feedback("I like tea.", level="A2")
    proficient = tutor.write_feedback("I like tea.", level="C1")

    assert basic["reply"].startswith("Great job!")
    assert basic["reply"] != proficient["reply"]
    assert basic["tips"]


def test_feedback_in_vietnamese() -> None:
    with_error = tutor.write_feedback("She go to school.", level="A2", explain_vi=True)
    correct = tutor.write_feedback("She goes to school.", level="B2", explain_vi=True)

    assert VIETNAMESE_LETTERS.search(with_error["reply"])
    assert '"She goes to school."' in with_error["reply"]
    assert VIETNAMESE_LETTERS.search(correct["reply"])


def test_feedback_reuses_the_grammar_analysis() -> None:
    tutor.clear_cache()
    tutor.check_grammar("They was happy.")
    misses = tutor._check.cache_info().misses

    tutor.write_feedback("They was happy.", level="B1")

    assert tutor._check.cache_info().misses == misses
