from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from orchestrator.adapters.base import ModelCall
from orchestrator.adapters.builtin import BuiltinAdapter
from orchestrator.analysers import analysis, parsing
from orchestrator.analysers.analysis import split_sentences
from orchestrator.domain import ModelReply, Segment
from orchestrator.pipelines.analysis import PIPELINE as ANALYSIS
from tests.factories import WORKERS

DEBATE = (
    Segment(
        "s1",
        "I think we should build the new park because studies show green space "
        "cuts stress by 20%. It would be wonderful and great for families. "
        "This will lead to healthier neighbourhoods.",
        "Alice",
    ),
    Segment(
        "s2",
        "I disagree. We should not spend the money on a park. People like you "
        "never think about the budget, it is a terrible and awful plan.",
        "Bob",
    ),
    Segment(
        "s3",
        "Honestly, this proves my point. The data from last year shows 300 "
        "visitors a day at the old park, a lovely success.",
        "Alice",
    ),
    Segment(
        "s4",
        "Either we build it now or the land is lost forever. Therefore the council must decide this week.",
        None,
    ),
)


@pytest.fixture(scope="module")
def adapter() -> BuiltinAdapter:
    return BuiltinAdapter()


def run(adapter: BuiltinAdapter, worker: str, segments: tuple[Segment, ...]) -> ModelReply:
    """The analysis pipeline's builtin analyser for ``worker``, through the builtin adapter."""
    run_input = {"language": "en", "segments": [segment.to_json() for segment in segments]}
    prompt = ANALYSIS.render_prompt(worker, ANALYSIS.worker(worker).default_prompt, run_input)
    return adapter.complete(
        ModelCall(pipeline="analysis", worker=ANALYSIS.worker(worker), prompt=prompt, input=run_input)
    )


def output(adapter: BuiltinAdapter, worker: str, segments: tuple[Segment, ...]) -> Any:
    return run(adapter, worker, segments).output


def segment_text(segment_id: str, segments: tuple[Segment, ...] = DEBATE) -> str:
    return next(segment.text for segment in segments if segment.id == segment_id)


# --- shapes -----------------------------------------------------------------


def test_summary_has_nonempty_summary_and_at_most_five_key_points(
    adapter: BuiltinAdapter,
) -> None:
    result = output(adapter, "summary", DEBATE)

    assert set(result) == {"summary", "key_points"}
    assert isinstance(result["summary"], str) and result["summary"]
    assert 1 <= len(result["key_points"]) <= 5
    assert all(isinstance(point, str) for point in result["key_points"])
    assert "Alice: " in " ".join(result["key_points"])


def test_summary_is_extracted_sentences_in_transcript_order(
    adapter: BuiltinAdapter,
) -> None:
    summary = output(adapter, "summary", DEBATE)["summary"]
    all_text = " ".join(segment.text for segment in DEBATE)
    sentences = [s for s in split_sentences(all_text) if s in summary]

    assert 2 <= len(sentences) <= 3
    assert summary == " ".join(sentences)


def test_argument_claims_have_the_documented_keys(adapter: BuiltinAdapter) -> None:
    claims = output(adapter, "argument", DEBATE)["claims"]

    assert claims
    for claim in claims:
        assert set(claim) == {"claim", "evidence", "stance", "speaker", "segment_id"}
        assert claim["stance"] in {"for", "against", "neutral"}
        assert claim["claim"] in segment_text(claim["segment_id"])
        assert all(isinstance(item, str) for item in claim["evidence"])


def test_implication_sentiment_has_implications_and_sentiment(
    adapter: BuiltinAdapter,
) -> None:
    result = output(adapter, "implication_sentiment", DEBATE)

    assert set(result) == {"implications", "sentiment"}
    for implication in result["implications"]:
        assert set(implication) == {"text", "segment_id", "speaker", "kind", "explanation"}
        assert implication["kind"] in {"conditional", "causal", "consequence"}
    sentiment = result["sentiment"]
    assert set(sentiment) == {"overall", "by_speaker"}
    for score in [sentiment["overall"], *sentiment["by_speaker"].values()]:
        assert set(score) == {"label", "score"}
        assert score["label"] in {"positive", "negative", "neutral"}
        assert -1.0 <= score["score"] <= 1.0


def test_logic_bias_findings_have_the_documented_keys(adapter: BuiltinAdapter) -> None:
    result = output(adapter, "logic_bias", DEBATE)

    assert set(result) == {"fallacies", "biases"}
    for finding in result["fallacies"] + result["biases"]:
        assert set(finding) == {"type", "quote", "segment_id", "explanation"}
        assert finding["explanation"]


# --- argument ----------------------------------------------------------------


def test_claim_with_because_gets_inline_evidence_and_for_stance(
    adapter: BuiltinAdapter,
) -> None:
    claims = output(adapter, "argument", DEBATE)["claims"]
    park = next(c for c in claims if c["claim"].startswith("I think we should build"))

    assert park["evidence"] == ["because studies show green space cuts stress by 20%."]
    assert park["stance"] == "for"
    assert park["speaker"] == "Alice"
    assert park["segment_id"] == "s1"


def test_negated_claim_has_against_stance(adapter: BuiltinAdapter) -> None:
    claims = output(adapter, "argument", DEBATE)["claims"]
    stances = {claim["claim"]: claim["stance"] for claim in claims}

    assert stances["We should not spend the money on a park."] == "against"
    assert stances["I disagree."] == "against"


def test_evidence_comes_from_following_sentences_of_the_same_speaker_only(
    adapter: BuiltinAdapter,
) -> None:
    segments = (
        Segment("a", "In my view the city must fix the roads.", "Dana"),
        Segment("b", "For example, 40% of them have potholes.", "Dana"),
        Segment("c", "Data from the survey says otherwise.", "Eve"),
    )
    claims = output(adapter, "argument", segments)["claims"]

    assert len(claims) == 1
    assert claims[0]["evidence"] == ["For example, 40% of them have potholes."]


def test_main_claim_without_stance_cue_is_for_and_an_unrelated_reply_is_neutral(adapter: BuiltinAdapter) -> None:
    segments = (
        Segment("a", "I believe the weather shapes turnout.", None),
        Segment("b", "In my view the canteen is too small.", "Eve"),
    )
    claims = output(adapter, "argument", segments)["claims"]

    assert [(c["stance"], c["speaker"]) for c in claims] == [("for", None), ("neutral", "Eve")]


def test_a_reply_that_negates_the_main_claim_is_against_it(adapter: BuiltinAdapter) -> None:
    segments = (
        Segment("a", "I think the city should build more bike lanes.", "Ana"),
        Segment("b", "Bike lanes would not help anyone here.", "Ben"),
        Segment("c", "But buses are cheaper.", "Ben"),
    )
    stances = [c["stance"] for c in output(adapter, "argument", segments)["claims"]]

    assert stances[:2] == ["for", "against"]


# --- implications and sentiment ---------------------------------------------


def test_implications_come_from_causal_and_consequence_constructions(adapter: BuiltinAdapter) -> None:
    implications = output(adapter, "implication_sentiment", DEBATE)["implications"]

    assert {(i["text"], i["segment_id"], i["speaker"], i["kind"]) for i in implications} == {
        (segment_text("s1").split(". ")[0] + ".", "s1", "Alice", "causal"),
        ("This will lead to healthier neighbourhoods.", "s1", "Alice", "consequence"),
        ("Therefore the council must decide this week.", "s4", None, "consequence"),
    }


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("If the supplier raises prices, we will cut the budget.", "conditional"),
        ("Should the vote pass, the rules would change in May.", "conditional"),
        ("The plant closed because demand collapsed.", "causal"),
        ("Rents went up, so young people moved away.", "causal"),
        ("Higher fuel prices lead to dearer food.", "causal"),
        ("The trial failed, which means the drug will not be sold.", "consequence"),
        ("This decision will push small shops out of the market.", "consequence"),
        ("When demand drops, prices usually fall.", "conditional"),
        ("Assuming the train is on time, we arrive at noon.", "conditional"),
        ("Without a permit, the festival will be cancelled.", "conditional"),
        ("Skip the warm-up and you get injured.", "conditional"),
        ("If you water it, the plant grows.", "conditional"),
    ],
)
def test_conditional_causal_and_consequence_constructions_are_implications_of_their_kind(
    adapter: BuiltinAdapter, text: str, kind: str
) -> None:
    implications = output(adapter, "implication_sentiment", (Segment("a", text, "Zoe"),))["implications"]

    assert [(i["text"], i["kind"]) for i in implications] == [(text, kind)]
    assert implications[0]["explanation"]


def test_sentiment_separates_positive_and_negative_speakers(
    adapter: BuiltinAdapter,
) -> None:
    sentiment = output(adapter, "implication_sentiment", DEBATE)["sentiment"]
    by_speaker = sentiment["by_speaker"]

    assert set(by_speaker) == {"Alice", "Bob", "unknown"}
    assert by_speaker["Alice"]["label"] == "positive"
    assert by_speaker["Bob"]["label"] == "negative"
    assert by_speaker["Alice"]["score"] > by_speaker["Bob"]["score"]


# --- logic and bias ----------------------------------------------------------


def test_fallacy_and_bias_quotes_are_verbatim_text_of_their_segment(
    adapter: BuiltinAdapter,
) -> None:
    result = output(adapter, "logic_bias", DEBATE)

    assert result["fallacies"] and result["biases"]
    for finding in result["fallacies"] + result["biases"]:
        assert finding["quote"] in segment_text(finding["segment_id"])


def test_fallacies_and_biases_are_detected_in_the_debate(adapter: BuiltinAdapter) -> None:
    result = output(adapter, "logic_bias", DEBATE)
    fallacies = {(f["type"], f["segment_id"]) for f in result["fallacies"]}
    biases = {(b["type"], b["segment_id"]) for b in result["biases"]}

    # "People like you never think ..." attacks the speaker; with no single case
    # behind it, it is not reported as a hasty generalisation.
    assert {("ad_hominem", "s2"), ("false_dilemma", "s4")} <= fallacies
    assert ("hasty_generalization", "s2") not in fallacies
    assert ("confirmation_bias", "s3") in biases


def test_cues_match_case_insensitively_and_with_typographic_apostrophes(
    adapter: BuiltinAdapter,
) -> None:
    segments = (
        Segment("a", "EVERYONE KNOWS this. The hallways are wide.", None),
        Segment("b", "See, I KNEW IT, this proves my point.", None),
        Segment("c", "So you’re saying we should do nothing?", None),
    )
    result = output(adapter, "logic_bias", segments)

    assert [(f["type"], f["quote"]) for f in result["fallacies"]] == [
        ("bandwagon", "EVERYONE KNOWS this."),
        ("straw_man", "So you’re saying we should do nothing?"),
    ]
    assert [b["type"] for b in result["biases"]] == ["confirmation_bias"]


TEXTBOOK_EXAMPLES = [
    ("ad_hominem", "You can't believe a word he says about taxes, he's a known liar."),
    ("hasty_generalization", "My uncle smoked and lived to ninety, so smoking never hurts anyone."),
    ("slippery_slope", "If we allow phones in class, students will stop listening and the school will fail."),
    ("straw_man", "So you're saying we should let people drive as fast as they like?"),
    ("false_dilemma", "Either you support the new stadium or you hate this city."),
    ("appeal_to_authority", "A famous footballer recommends this diet, so it must be healthy."),
    ("bandwagon", "Millions of people use this app, so it must be the best."),
    ("appeal_to_emotion", "Think of the children who will go hungry if we cut this programme."),
    ("post_hoc", "I changed my phone case and my battery lasted longer, so the case caused it."),
    ("circular_reasoning", "The rule is right because it is the rule."),
    ("confirmation_bias", "I only read reviews that agree with me, the rest are fake."),
    ("anchoring", "The first price was 800 euros, so 500 is a bargain."),
    ("appeal_to_tradition", "We've always done it this way, so there's no reason to change."),
    # wordings the first rules missed: popularity, habit, sequence and status without the stock phrases
    ("bandwagon", "All my colleagues have switched banks, so I should switch too."),
    ("appeal_to_tradition", "Our club has held the dinner in June for decades, so moving it would be a mistake."),
    ("post_hoc", "Ever since we repainted the shop, sales went up, so the new colour clearly works."),
    ("appeal_to_authority", "A renowned chef recommends this pan, so I'm buying two."),
    ("availability_heuristic", "I keep hearing about bike thefts, so cycling to work is far too risky."),
    ("in_group_bias", "Our nurses are simply better than the staff at the other hospital."),
    ("circular_reasoning", "The test is unfair because it does not treat us fairly."),
]


@pytest.mark.parametrize(("kind", "text"), TEXTBOOK_EXAMPLES, ids=[kind for kind, _ in TEXTBOOK_EXAMPLES])
def test_each_textbook_fallacy_or_bias_is_detected_with_its_type(adapter: BuiltinAdapter, kind: str, text: str) -> None:
    result = output(adapter, "logic_bias", (Segment("x", text, "Sam"),))
    findings = result["fallacies"] + result["biases"]

    assert kind in {finding["type"] for finding in findings}
    assert all(finding["quote"] == text and finding["segment_id"] == "x" for finding in findings)


def test_explanations_name_the_words_that_triggered_the_finding(adapter: BuiltinAdapter) -> None:
    text = "Either we cut salaries or the company goes bankrupt."
    finding = output(adapter, "logic_bias", (Segment("x", text, None),))["fallacies"][0]

    assert finding["type"] == "false_dilemma"
    assert '"either"' in finding["explanation"].lower() and '"or"' in finding["explanation"]


@pytest.mark.parametrize(
    "text",
    [
        "The quarterly report is on the shared drive.",
        "Let's meet at three if that works for everyone.",
        "Everyone is invited to the farewell lunch on Friday.",
        "He always takes the early shift on Mondays.",
        "My neighbour grows tomatoes on her balcony.",
        "The experts from the audit firm arrive tomorrow.",
        "I'll share my screen so you can see the chart.",
        "It was so good to see everyone again.",
        "After the match we went for a pizza.",
        "Many people came to the concert in the park.",
        "We have always had lunch at noon on Fridays.",
        "The professor said the exam will be on Monday.",
        "If you want, I can send you the file tonight.",
        "Whenever she visits, she brings flowers.",
        "Our office is bigger than the one in Leeds.",
    ],
)
def test_ordinary_statements_are_not_flagged(adapter: BuiltinAdapter, text: str) -> None:
    segments = (Segment("n", text, "Max"),)
    logic = output(adapter, "logic_bias", segments)

    assert logic == {"fallacies": [], "biases": []}
    assert output(adapter, "implication_sentiment", segments)["implications"] == []


REMOTE_WORK = (
    Segment(
        "1", "Alice: I think remote work is great because everyone saves two hours of commuting every day.", "Alice"
    ),
    Segment(
        "2", "Bob: But that is just lazy thinking; everyone who works from home slacks off, my neighbour does.", "Bob"
    ),
    Segment("3", "Alice: If we ban remote work, the best engineers will leave and the company will fail.", "Alice"),
)


def test_remote_work_transcript_finds_the_conditional_consequence(adapter: BuiltinAdapter) -> None:
    implications = output(adapter, "implication_sentiment", REMOTE_WORK)["implications"]

    assert ("3", "conditional") in {(i["segment_id"], i["kind"]) for i in implications}


def test_remote_work_transcript_finds_bobs_fallacies_and_alices_slippery_slope(adapter: BuiltinAdapter) -> None:
    fallacies = {(f["type"], f["segment_id"]) for f in output(adapter, "logic_bias", REMOTE_WORK)["fallacies"]}

    assert fallacies == {("hasty_generalization", "2"), ("ad_hominem", "2"), ("slippery_slope", "3")}


def test_an_enthusiastic_speaker_who_warns_of_consequences_is_not_negative(adapter: BuiltinAdapter) -> None:
    by_speaker = output(adapter, "implication_sentiment", REMOTE_WORK)["sentiment"]["by_speaker"]

    assert by_speaker["Alice"]["label"] == "positive"
    assert by_speaker["Bob"]["label"] == "negative"


def test_key_points_never_repeat_a_speaker_prefix_the_text_already_has(adapter: BuiltinAdapter) -> None:
    points = output(adapter, "summary", REMOTE_WORK)["key_points"]

    assert points and all(not point.startswith(("Alice: Alice:", "Bob: Bob:")) for point in points)
    assert all(point.startswith(("Alice: ", "Bob: ")) for point in points)


def test_summary_picks_the_central_sentences(adapter: BuiltinAdapter) -> None:
    segments = (
        Segment("1", "The council must decide on the new library budget.", "Chair"),
        Segment("2", "Lunch is at noon.", "Clerk"),
        Segment("3", "The library budget covers books, staff and longer opening hours.", "Ana"),
        Segment("4", "Longer library hours help students who work during the day.", "Ben"),
        Segment("5", "The weather is nice.", "Clerk"),
    )
    summary = output(adapter, "summary", segments)["summary"]

    assert "Lunch" not in summary and "weather" not in summary
    assert "library budget" in summary


# --- adapter contract --------------------------------------------------------


@pytest.mark.parametrize("worker", WORKERS)
def test_output_changes_when_input_changes(adapter: BuiltinAdapter, worker: str) -> None:
    other = (
        Segment("x1", "We must cut taxes since 70% of voters want it.", "Zoe"),
        Segment("x2", "Everybody is miserable, so costs will lead to ruin.", "Yan"),
        Segment("x3", "So you're saying I'm certainly wrong? Experts agree.", "Zoe"),
    )

    assert output(adapter, worker, DEBATE) != output(adapter, worker, other)


@pytest.mark.parametrize("worker", WORKERS)
def test_output_is_deterministic_and_json_serialisable(adapter: BuiltinAdapter, worker: str) -> None:
    first = output(adapter, worker, DEBATE)

    assert json.loads(json.dumps(first)) == first
    assert output(BuiltinAdapter(), worker, DEBATE) == first


def test_usage_counts_the_words_of_the_prompt_and_of_the_answer_and_names_builtin_model(
    adapter: BuiltinAdapter,
) -> None:
    reply = run(adapter, "summary", DEBATE)
    words = sum(len(segment.text.split()) for segment in DEBATE)

    assert reply.usage.model == "builtin"
    assert reply.usage.input_tokens is not None and reply.usage.input_tokens > words
    assert reply.usage.output_tokens == len(json.dumps(reply.output).split())
    assert reply.usage.latency_ms >= 0.0


def test_the_sentiment_analyser_is_built_once_per_process(adapter: BuiltinAdapter) -> None:
    run(adapter, "implication_sentiment", DEBATE)
    first = analysis._sentiment_scorer()
    run(adapter, "implication_sentiment", DEBATE)

    assert analysis._sentiment_scorer() is first


@pytest.mark.parametrize("worker", WORKERS)
def test_single_short_segment_gives_valid_output(adapter: BuiltinAdapter, worker: str) -> None:
    result = output(adapter, worker, (Segment("only", "ok", None),))

    json.dumps(result)
    if worker == "summary":
        assert result == {"summary": "ok", "key_points": ["ok"]}


def test_summary_of_blank_transcript_is_still_nonempty(adapter: BuiltinAdapter) -> None:
    assert output(adapter, "summary", (Segment("blank", "   ", None),))["summary"]


def test_two_thousand_segments_complete_for_every_worker(
    adapter: BuiltinAdapter,
) -> None:
    segments = tuple(Segment(f"seg-{i}", f"{DEBATE[i % 4].text} Item {i}.", DEBATE[i % 4].speaker) for i in range(2000))
    results = {worker: output(adapter, worker, segments) for worker in WORKERS}

    assert results["summary"]["summary"]
    assert len(results["argument"]["claims"]) >= 2000
    assert results["implication_sentiment"]["implications"][-1]["segment_id"] == "seg-1999"
    assert results["logic_bias"]["fallacies"][-1]["segment_id"] == "seg-1999"


def test_workers_of_a_run_parsing_at_once_share_one_parse_of_each_sentence() -> None:
    sentences = [f"Sentence number {i} says that the budget will grow next year." for i in range(30)]
    parsing.clear_cache()
    start = threading.Barrier(4)

    def parse_as_a_worker() -> list[Any]:
        start.wait()
        return parsing.parse(sentences)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: parse_as_a_worker(), range(4)))

    for docs in results[1:]:
        assert all(doc is first for doc, first in zip(docs, results[0], strict=True))
