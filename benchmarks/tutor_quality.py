"""Quality and speed of the builtin tutor on the labelled learner sentences.

Imports the analysers directly (no services) and warms them. For each split,
per category: the sentences, the detection rate (erroneous sentences with at
least one error reported), the exact-correction rate (the corrected sentence
equals the gold one, whitespace normalised) and the false-alarm rate (correct
sentences with any error reported). Then the latency of one full analysis
(check_grammar + assess_fluency + profile_vocabulary + write_feedback of one
sentence, warm, in-process, grammar memo cleared first) and the resident
memory after warming.

The "dev" sentences were used to tune the rules, the "heldout" ones were not.

    .venv/bin/python benchmarks/tutor_quality.py [--split dev|heldout|all] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import percentile  # also puts the repository on sys.path

from orchestrator.analysers import tutor  # noqa: E402
from orchestrator.analysers.resources import RESOURCES, resident_memory_bytes  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "learner_sentences.jsonl"
CATEGORIES = ("agreement", "tense", "verb_form", "article", "plural", "preposition", "spelling", "word_choice")
#: Each sentence is timed this many times for the latency figures.
LATENCY_ROUNDS = 3


def normalise(text: str) -> str:
    return " ".join(text.split())


def load(split: str) -> list[dict[str, Any]]:
    with DATA.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [row for row in rows if split == "all" or row["split"] == split]


def rate(hits: int, total: int) -> str:
    return f"{100 * hits / total:5.1f}%" if total else "    -"


def report(split: str, rows: Sequence[dict[str, Any]], verbose: bool) -> None:
    results = {row["id"]: tutor.check_grammar(row["text"]) for row in rows}
    print(f"\nsplit {split}: {len(rows)} sentences")
    print(f"{'category':<14}{'sentences':>10}{'detected':>10}{'exact':>9}{'false alarms':>14}")
    totals = [0, 0, 0]
    for category in (*CATEGORIES, "correct"):
        members = [row for row in rows if row["category"] == category]
        if not members:
            continue
        flagged = sum(1 for row in members if results[row["id"]]["errors"])
        if category == "correct":
            print(f"{category:<14}{len(members):>10}{'-':>10}{'-':>9}{rate(flagged, len(members)):>14}")
            continue
        exact = sum(1 for row in members if normalise(results[row["id"]]["corrected"]) == normalise(row["gold"]))
        totals = [totals[0] + len(members), totals[1] + flagged, totals[2] + exact]
        print(
            f"{category:<14}{len(members):>10}{rate(flagged, len(members)):>10}{rate(exact, len(members)):>9}{'-':>14}"
        )
    print(f"{'all errors':<14}{totals[0]:>10}{rate(totals[1], totals[0]):>10}{rate(totals[2], totals[0]):>9}{'-':>14}")
    if verbose:
        for row in rows:
            result = results[row["id"]]
            wrong = normalise(result["corrected"]) != normalise(row["gold"])
            if wrong or row["category"] == "correct" and result["errors"]:
                found = [(error["original"], error["correction"], error["type"]) for error in result["errors"]]
                print(f"  {row['id']}: {row['text']!r} -> {result['corrected']!r} (gold {row['gold']!r}) {found}")


def latency(rows: Sequence[dict[str, Any]]) -> list[float]:
    """Seconds per full analysis of one sentence, grammar memo cleared first."""
    timings = []
    for _ in range(LATENCY_ROUNDS):
        for row in rows:
            tutor.clear_cache()
            started = time.perf_counter()
            tutor.check_grammar(row["text"])
            tutor.assess_fluency(row["text"])
            tutor.profile_vocabulary(row["text"])
            tutor.write_feedback(row["text"], level=row["level"])
            timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--split", choices=("dev", "heldout", "all"), default="all")
    parser.add_argument("--verbose", action="store_true", help="list the sentences not exactly corrected")
    args = parser.parse_args()

    started = time.perf_counter()
    tutor.warm()
    warm_s = time.perf_counter() - started
    memory_mb = resident_memory_bytes() / 2**20
    print(f"warm() took {warm_s:.1f} s; resident memory after warming: {memory_mb:.0f} MB")
    print(f"resources: {', '.join(RESOURCES.loaded())}")

    splits = ("dev", "heldout", "all") if args.split == "all" else (args.split,)
    for split in splits:
        report(split, load(split), args.verbose)

    timings = latency(load(args.split))
    p50, p95 = percentile(timings, 50) * 1000, percentile(timings, 95) * 1000
    print(f"\nlatency per full analysis ({len(timings)} runs, warm): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"resident memory at the end: {resident_memory_bytes() / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
