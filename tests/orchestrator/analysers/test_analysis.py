from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.adapters.base import ModelCall
from orchestrator.adapters.builtin import BuiltinAdapter
from orchestrator.analysers import analysis
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
        assert set(implication) == {"text", "segment_id", "speaker"}
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


def test_claim_without_stance_cue_is_neutral(adapter: BuiltinAdapter) -> None:
    segments = (Segment("a", "I believe the weather shapes turnout.", None),)
    claims = output(adapter, "argument", segments)["claims"]

    assert [(c["stance"], c["speaker"]) for c in claims] == [("neutral", None)]


# --- implications and sentiment ---------------------------------------------


def test_implications_come_from_consequence_cues(adapter: BuiltinAdapter) -> None:
    implications = output(adapter, "implication_sentiment", DEBATE)["implications"]

    assert {(i["text"], i["segment_id"], i["speaker"]) for i in implications} == {
        ("This will lead to healthier neighbourhoods.", "s1", "Alice"),
        ("Therefore the council must decide this week.", "s4", None),
    }


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


def test_fallacies_and_biases_are_detected_from_cues(adapter: BuiltinAdapter) -> None:
    result = output(adapter, "logic_bias", DEBATE)
    fallacies = {(f["type"], f["segment_id"]) for f in result["fallacies"]}
    biases = {(b["type"], b["segment_id"]) for b in result["biases"]}

    assert {
        ("ad_hominem", "s2"),
        ("hasty_generalization", "s2"),
        ("false_dilemma", "s4"),
    } <= fallacies
    assert ("confirmation_bias", "s3") in biases


def test_cues_match_case_insensitively_on_word_boundaries(
    adapter: BuiltinAdapter,
) -> None:
    segments = (
        Segment("a", "EVERYONE KNOWS this. The hallways are wide.", None),
        Segment("b", "She’s definitely right, as I Always Said.", None),
    )
    result = output(adapter, "logic_bias", segments)

    assert [(f["type"], f["quote"]) for f in result["fallacies"]] == [
        ("bandwagon", "EVERYONE KNOWS this."),
        ("hasty_generalization", "She’s definitely right, as I Always Said."),
    ]
    assert {b["type"] for b in result["biases"]} == {
        "overconfidence",
        "confirmation_bias",
    }


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
