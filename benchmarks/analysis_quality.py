"""Quality and speed of the builtin analysis analysers on labelled segments.

Runs the same functions the builtin adapter calls (``orchestrator.analysers.analysis``),
in-process, on ``benchmarks/data/analysis_segments.jsonl``. One JSON object a line:

    {"id": "fallacy-dev-001", "split": "dev" | "heldout", "task": TASK,
     "segments": [{"id": "s1", "speaker": "Alice" | null, "text": "..."}, ...],
     "labels": {...}}

with, per TASK, these labels:

* ``logic_bias``: ``{"types": ["ad_hominem", ...]}``, the fallacy and bias types the
  (single) segment shows, spelled as the analyser emits them (taxonomy below);
* ``implication``: ``{"kind": "conditional" | "causal" | "consequence"}``: the segment
  draws one implication of that kind;
* ``argument``: ``{"segment_id": "s2", "stance": "for" | "against" | "neutral",
  "evidence": bool}``: the stance of that segment's claim towards the first segment's
  (the context's main claim), and whether it gives evidence;
* ``sentiment``: ``{"by_speaker": {"Alice": "positive" | "negative" | "neutral"}}``;
* ``neutral``: ``{}``: an ordinary statement with no fallacy, bias or implication;
* ``summary``: ``{"reference": "..."}``: a reference summary of the transcript.

Taxonomy: fallacies ``ad_hominem``, ``straw_man``, ``slippery_slope``, ``false_dilemma``,
``appeal_to_authority``, ``bandwagon``, ``hasty_generalization``, ``appeal_to_emotion``,
``appeal_to_tradition``, ``post_hoc``, ``circular_reasoning``; biases
``confirmation_bias``, ``anchoring``, ``availability_heuristic``, ``overconfidence``,
``in_group_bias``.

The "dev" items were used to tune the rules; the "heldout" items were written
afterwards with different wording and not tuned on.

Figures: per type, precision and recall over the logic_bias and neutral items (a
type found on an item not labelled with it is a false positive); implication recall
and precision (over implication and neutral items) and kind accuracy; stance accuracy
(the labelled segment's first claim; no claim counts as neutral) and evidence
accuracy; per-speaker sentiment label accuracy; ROUGE-1 recall and F1 of the summary
against the reference; the share of neutral items flagged with anything. Then the
latency of each worker on a 40-segment transcript built from the set: p50/p95 over
warm runs (parses cached, as for the second worker of a run) and cold runs (parse
cache cleared first, as for the first).

    .venv/bin/python benchmarks/analysis_quality.py [--split dev|heldout|all] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import percentile  # also puts the repository on sys.path

from orchestrator.analysers import analysis, argument_patterns, parsing  # noqa: E402
from orchestrator.domain import Segment  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "analysis_segments.jsonl"
FALLACY_TYPES = tuple(pattern.type for pattern in argument_patterns.FALLACY_PATTERNS)
BIAS_TYPES = tuple(pattern.type for pattern in argument_patterns.BIAS_PATTERNS)
LATENCY_SEGMENTS = 40
WARM_ROUNDS = 50
COLD_ROUNDS = 10
WORKERS: dict[str, Callable[[Sequence[Segment]], Any]] = {
    "summary": analysis.summarise,
    "argument": analysis.extract_claims,
    "implication_sentiment": analysis.implications_and_sentiment,
    "logic_bias": analysis.detect_logic_and_bias,
}

Row = dict[str, Any]


def load(split: str) -> list[Row]:
    with DATA.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [row for row in rows if split == "all" or row["split"] == split]


def segments_of(row: Row) -> list[Segment]:
    return [Segment(s["id"], s["text"], s.get("speaker")) for s in row["segments"]]


def pct(hits: int, total: int) -> str:
    return f"{100 * hits / total:5.1f}%" if total else "    -"


def found_types(row: Row) -> set[str]:
    result = analysis.detect_logic_and_bias(segments_of(row))
    return {finding["type"] for finding in result["fallacies"] + result["biases"]}


def found_implications(row: Row) -> list[Row]:
    implications: list[Row] = analysis.implications_and_sentiment(segments_of(row))["implications"]
    return implications


def report_logic_bias(rows: Sequence[Row], verbose: bool) -> None:
    items = [row for row in rows if row["task"] in ("logic_bias", "neutral")]
    found = {row["id"]: found_types(row) for row in items}
    print(f"\nfallacies and biases ({sum(r['task'] == 'logic_bias' for r in items)} labelled segments)")
    print(f"{'type':<24}{'labelled':>9}{'found':>7}{'correct':>9}{'precision':>11}{'recall':>8}")
    totals = Counter[str]()
    for kind in (*FALLACY_TYPES, *BIAS_TYPES):
        labelled = sum(1 for row in items if kind in row["labels"].get("types", ()))
        predicted = sum(1 for row in items if kind in found[row["id"]])
        correct = sum(1 for row in items if kind in found[row["id"]] and kind in row["labels"].get("types", ()))
        totals.update(labelled=labelled, predicted=predicted, correct=correct)
        if labelled or predicted:
            print(
                f"{kind:<24}{labelled:>9}{predicted:>7}{correct:>9}"
                f"{pct(correct, predicted):>11}{pct(correct, labelled):>8}"
            )
    print(
        f"{'all types':<24}{totals['labelled']:>9}{totals['predicted']:>7}{totals['correct']:>9}"
        f"{pct(totals['correct'], totals['predicted']):>11}{pct(totals['correct'], totals['labelled']):>8}"
    )
    if verbose:
        for row in items:
            expected = set(row["labels"].get("types", ()))
            if found[row["id"]] != expected:
                print(f"  {row['id']}: expected {sorted(expected)} found {sorted(found[row['id']])}")
                print(f"    {row['segments'][0]['text']}")


def report_implications(rows: Sequence[Row], verbose: bool) -> None:
    items = [row for row in rows if row["task"] in ("implication", "neutral")]
    found = {row["id"]: found_implications(row) for row in items}
    labelled = [row for row in items if row["task"] == "implication"]
    flagged = [row for row in items if found[row["id"]]]
    correct = [row for row in labelled if found[row["id"]]]
    kind_right = [row for row in correct if found[row["id"]][0].get("kind") == row["labels"]["kind"]]
    print(f"\nimplications ({len(labelled)} labelled segments)")
    print(f"{'kind':<24}{'labelled':>9}{'found':>7}{'recall':>8}")
    for kind in ("conditional", "causal", "consequence"):
        members = [row for row in labelled if row["labels"]["kind"] == kind]
        hits = sum(1 for row in members if found[row["id"]])
        print(f"{kind:<24}{len(members):>9}{hits:>7}{pct(hits, len(members)):>8}")
    print(
        f"all: recall {pct(len(correct), len(labelled))}, precision {pct(len(correct), len(flagged))}, "
        f"kind right {pct(len(kind_right), len(correct))} of those found"
    )
    if verbose:
        for row in items:
            expected = row["labels"].get("kind")
            got = [imp.get("kind") for imp in found[row["id"]]]
            if bool(expected) != bool(got) or (got and got[0] != expected):
                print(f"  {row['id']}: expected {expected} found {got}: {row['segments'][0]['text']}")


def report_neutral(rows: Sequence[Row], verbose: bool) -> None:
    neutral = [row for row in rows if row["task"] == "neutral"]
    flagged = [row for row in neutral if found_types(row) or found_implications(row)]
    print(f"\nneutral segments flagged with any fallacy, bias or implication: {len(flagged)} of {len(neutral)}", end="")
    print(f" ({pct(len(flagged), len(neutral)).strip()})")
    if verbose:
        for row in flagged:
            print(f"  {row['id']}: {sorted(found_types(row))} {row['segments'][0]['text']}")


def report_arguments(rows: Sequence[Row], verbose: bool) -> None:
    items = [row for row in rows if row["task"] == "argument"]
    stance_right = evidence_right = 0
    for row in items:
        claims = analysis.extract_claims(segments_of(row))["claims"]
        labels = row["labels"]
        mine = [claim for claim in claims if claim["segment_id"] == labels["segment_id"]]
        stance = mine[0]["stance"] if mine else "neutral"
        evidence = bool(mine and mine[0]["evidence"])
        stance_right += stance == labels["stance"]
        evidence_right += evidence == labels["evidence"]
        if verbose and (stance != labels["stance"] or evidence != labels["evidence"]):
            print(f"  {row['id']}: stance {stance} (gold {labels['stance']}), evidence {evidence}: {mine}")
    print(f"\nclaims ({len(items)} labelled replies to a main claim)")
    print(
        f"stance accuracy {pct(stance_right, len(items))}, "
        f"evidence found/absent right {pct(evidence_right, len(items))}"
    )


def report_sentiment(rows: Sequence[Row], verbose: bool) -> None:
    items = [row for row in rows if row["task"] == "sentiment"]
    right = total = 0
    for row in items:
        by_speaker = analysis.implications_and_sentiment(segments_of(row))["sentiment"]["by_speaker"]
        for speaker, label in row["labels"]["by_speaker"].items():
            got = by_speaker.get(speaker, {}).get("label")
            total += 1
            right += got == label
            if verbose and got != label:
                print(f"  {row['id']}: {speaker} {got} (gold {label}) {by_speaker.get(speaker)}")
    print(f"\nsentiment per speaker: label accuracy {pct(right, total)} ({right} of {total} speakers)")


_TOKEN = re.compile(r"[a-z0-9]+")


def rouge1(candidate: str, reference: str) -> tuple[float, float]:
    """ROUGE-1 recall and F1 (unigram overlap, clipped counts, lower-cased)."""
    got, want = Counter(_TOKEN.findall(candidate.lower())), Counter(_TOKEN.findall(reference.lower()))
    overlap = sum((got & want).values())
    recall = overlap / max(1, sum(want.values()))
    precision = overlap / max(1, sum(got.values()))
    return recall, (2 * precision * recall / (precision + recall) if overlap else 0.0)


def report_summaries(rows: Sequence[Row], verbose: bool) -> None:
    items = [row for row in rows if row["task"] == "summary"]
    scores = []
    for row in items:
        summary = analysis.summarise(segments_of(row))
        scores.append(rouge1(summary["summary"], row["labels"]["reference"]))
        if verbose:
            print(f"  {row['id']}: {summary['summary']!r} {summary['key_points']}")
    if scores:
        recall = sum(score[0] for score in scores) / len(scores)
        f1 = sum(score[1] for score in scores) / len(scores)
        print(f"\nsummaries ({len(items)} transcripts): ROUGE-1 recall {recall:.2f}, F1 {f1:.2f}")


def latency_transcript(rows: Sequence[Row]) -> list[Segment]:
    """40 segments in the set's order, speakers taken from a small cast."""
    texts = [segment["text"] for row in rows for segment in row["segments"]]
    cast = ("Alice", "Bob", "Chen", "Dana")
    return [Segment(f"t{i}", texts[i % len(texts)], cast[i % len(cast)]) for i in range(LATENCY_SEGMENTS)]


def report_latency(rows: Sequence[Row]) -> None:
    transcript = latency_transcript(rows)
    parsing.warm()
    analysis.implications_and_sentiment(transcript[:1])  # VADER loaded
    print(f"\nlatency per worker on a {LATENCY_SEGMENTS}-segment transcript (ms)")
    print(f"{'worker':<24}{'warm p50':>9}{'warm p95':>9}{'cold p50':>9}{'cold p95':>9}")
    for name, worker in WORKERS.items():
        warm, cold = [], []
        for _ in range(COLD_ROUNDS):
            parsing.clear_cache()
            started = time.perf_counter()
            worker(transcript)
            cold.append(1000 * (time.perf_counter() - started))
        for _ in range(WARM_ROUNDS):
            started = time.perf_counter()
            worker(transcript)
            warm.append(1000 * (time.perf_counter() - started))
        print(
            f"{name:<24}{percentile(warm, 50):>9.1f}{percentile(warm, 95):>9.1f}"
            f"{percentile(cold, 50):>9.1f}{percentile(cold, 95):>9.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "heldout", "all"), default="all")
    parser.add_argument("--verbose", action="store_true", help="list every wrong item")
    args = parser.parse_args()
    splits = ("dev", "heldout") if args.split == "all" else (args.split,)
    for split in splits:
        rows = load(split)
        print(f"\n=== split {split}: {len(rows)} items ===")
        report_logic_bias(rows, args.verbose)
        report_implications(rows, args.verbose)
        report_neutral(rows, args.verbose)
        report_arguments(rows, args.verbose)
        report_sentiment(rows, args.verbose)
        report_summaries(rows, args.verbose)
    report_latency(load("all"))


if __name__ == "__main__":
    main()
