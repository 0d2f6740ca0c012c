"""The ``orchestrator`` command, run as a real subprocess in embedded mode.

No broker and no model URL: the chord runs in-process with the builtin model
on a SQLite database in a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import segments_from_text
from orchestrator.config import Settings
from tests.factories import WORKERS

REPO = Path(__file__).resolve().parents[2]
DEBATE = REPO / "examples" / "debate.json"
SETTINGS_VARIABLES = {f.name.upper() for f in fields(Settings)}

TALK = """\
Alice: We should build the new bridge, because river traffic doubled last year.

Bob: I disagree. The bridge costs far too much and taxes would have to rise again.

Alice: Studies show that a bridge pays for itself within ten years.
"""


def cli(*args: str, db: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m orchestrator.cli ARGS`` with only DATABASE_URL (and ``env``) configured."""
    environ = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    environ.update(DATABASE_URL=f"sqlite:///{db}", **env)
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def split_output(stdout: str) -> tuple[dict[str, Any], list[str]]:
    """The printed bundle and the status lines after it."""
    bundle, end = json.JSONDecoder().raw_decode(stdout)
    return bundle, stdout[end:].strip().splitlines()


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def debate_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return cli("analyze", str(DEBATE.relative_to(REPO)), db=tmp_path_factory.mktemp("debate") / "x.db")


@pytest.fixture(scope="module")
def talk_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("talk") / "x.db"


@pytest.fixture(scope="module")
def talk_run(tmp_path_factory: pytest.TempPathFactory, talk_db: Path) -> subprocess.CompletedProcess[str]:
    talk = tmp_path_factory.mktemp("input") / "town-hall.txt"
    talk.write_text(TALK, encoding="utf-8")
    return cli("analyze", str(talk), "--language", "en", db=talk_db)


def test_analyze_of_the_example_debate_exits_0_with_an_ok_bundle_and_four_ok_status_lines(
    debate_run: subprocess.CompletedProcess[str],
) -> None:
    assert debate_run.returncode == 0, debate_run.stderr
    bundle, lines = split_output(debate_run.stdout)
    request = json.loads(DEBATE.read_text(encoding="utf-8"))

    assert bundle["status"] == "ok"
    assert bundle["context_id"] == request["context_id"]
    assert bundle["worker_statuses"] == {w: "ok" for w in WORKERS}
    assert bundle["errors"] == {}
    assert bundle["summary"]["summary"]
    assert set(bundle["sentiment"]["by_speaker"]) == {s["speaker"] for s in request["segments"]}
    assert [line.split() for line in lines[:4]] == [[w, "ok"] for w in WORKERS]
    assert lines[4] == f"run {bundle['run_id']} event {bundle['event_id']}: ok"
    assert len(lines) == 5


def test_plain_text_gives_its_own_bundle_with_speakers_from_name_prefixes(
    debate_run: subprocess.CompletedProcess[str], talk_run: subprocess.CompletedProcess[str], talk_db: Path
) -> None:
    assert talk_run.returncode == 0, talk_run.stderr
    debate, _ = split_output(debate_run.stdout)
    talk, lines = split_output(talk_run.stdout)

    assert talk["status"] == "ok"
    assert talk["context_id"] == "town-hall"
    assert talk["summary"] != debate["summary"]
    assert "bridge" in talk["summary"]["summary"]
    assert set(talk["sentiment"]["by_speaker"]) == {"Alice", "Bob"}
    assert [line.split() for line in lines[:4]] == [[w, "ok"] for w in WORKERS]
    [(segments, language)] = query(talk_db, "SELECT segments, language FROM contexts WHERE context_id = 'town-hall'")
    assert language == "en"
    assert [(s["id"], s["speaker"], s["text"]) for s in json.loads(segments)] == [
        ("p1", "Alice", "We should build the new bridge, because river traffic doubled last year."),
        ("p2", "Bob", "I disagree. The bridge costs far too much and taxes would have to rise again."),
        ("p3", "Alice", "Studies show that a bridge pays for itself within ten years."),
    ]


def test_a_transcript_of_one_line_per_turn_gives_one_segment_per_turn_with_its_speaker(tmp_path: Path) -> None:
    transcript = tmp_path / "remote-work.txt"
    transcript.write_text(
        "Alice: I think remote work is great because everyone saves two hours of commuting every day.\n"
        "Bob: But that is just lazy thinking; everyone who works from home slacks off, my neighbour does.\n"
        "Alice: If we ban remote work, the best engineers will leave\n"
        "and the company will fail.\n",
        encoding="utf-8",
    )

    result = cli("analyze", str(transcript), db=tmp_path / "x.db")

    assert result.returncode == 0, result.stderr
    [(segments,)] = query(tmp_path / "x.db", "SELECT segments FROM contexts WHERE context_id = 'remote-work'")
    assert [(s["speaker"], s["text"]) for s in json.loads(segments)] == [
        ("Alice", "I think remote work is great because everyone saves two hours of commuting every day."),
        ("Bob", "But that is just lazy thinking; everyone who works from home slacks off, my neighbour does."),
        ("Alice", "If we ban remote work, the best engineers will leave and the company will fail."),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alice: one\nBob: two", [("Alice", "one"), ("Bob", "two")]),
        (
            "Alice: one\ncontinued\n\nA new paragraph\nof prose.",
            [("Alice", "one continued"), (None, "A new paragraph of prose.")],
        ),
        ("Just prose.\n\nMore prose.", [(None, "Just prose."), (None, "More prose.")]),
        ("  \n\n  ", []),
    ],
    ids=["turns", "continuation-then-prose", "paragraphs", "blank"],
)
def test_plain_text_becomes_turns_and_paragraphs(text: str, expected: list[tuple[str | None, str]]) -> None:
    assert [(s.speaker, s.text) for s in segments_from_text(text)] == expected


def test_a_file_that_does_not_exist_exits_2_with_a_message_on_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"

    result = cli("analyze", str(missing), db=tmp_path / "x.db")

    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert "No such file" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "x.db").exists()


def test_an_invalid_json_file_exits_2_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"context_id": "c1", "segments": [', encoding="utf-8")

    result = cli("analyze", str(broken), db=tmp_path / "x.db")

    assert result.returncode == 2
    assert f"{broken} is not valid JSON" in result.stderr
    assert result.stdout == ""


def test_a_json_file_failing_validation_exits_2_with_the_field_errors_and_runs_nothing(tmp_path: Path) -> None:
    invalid = tmp_path / "invalid.json"
    invalid.write_text(
        json.dumps({"context_id": "c1", "segments": [{"id": "s1", "text": " "}], "colour": "red"}), encoding="utf-8"
    )

    result = cli("analyze", str(invalid), db=tmp_path / "x.db")

    assert result.returncode == 2
    assert result.stdout == ""
    prefix = "orchestrator analyze: invalid request: "
    assert result.stderr.startswith(prefix), result.stderr
    errors = json.loads(result.stderr[len(prefix) :])
    assert errors == {
        "segments": {"0": {"text": ["Must not be empty or only white space."]}},
        "colour": ["Unknown field."],
    }
    assert not (tmp_path / "x.db").exists()


def test_a_bad_language_for_plain_text_exits_2_naming_the_field(tmp_path: Path) -> None:
    talk = tmp_path / "talk.txt"
    talk.write_text(TALK, encoding="utf-8")

    result = cli("analyze", str(talk), "--language", "English!", db=tmp_path / "x.db")

    assert result.returncode == 2
    assert '"language"' in result.stderr


def test_a_text_file_without_text_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n\n", encoding="utf-8")

    result = cli("analyze", str(empty), db=tmp_path / "x.db")

    assert result.returncode == 2
    assert "holds no text" in result.stderr


def test_a_request_without_segments_for_an_unknown_context_exits_2(tmp_path: Path) -> None:
    request = tmp_path / "no-segments.json"
    request.write_text('{"context_id": "never-seen"}', encoding="utf-8")

    result = cli("analyze", str(request), db=tmp_path / "x.db")

    assert result.returncode == 2
    assert "No segments are stored for context 'never-seen'" in result.stderr
    assert query(tmp_path / "x.db", "SELECT count(*) FROM analysis_runs") == [(0,)]


def test_the_same_event_id_twice_prints_the_same_run_and_analyses_once(tmp_path: Path) -> None:
    db = tmp_path / "x.db"

    first = cli("analyze", "examples/debate.json", "--event-id", "evt-cli-1", db=db)
    second = cli("analyze", "examples/debate.json", "--event-id", "evt-cli-1", db=db)

    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    one, _ = split_output(first.stdout)
    two, _ = split_output(second.stdout)
    assert one["event_id"] == two["event_id"] == "evt-cli-1"
    assert two["run_id"] == one["run_id"]
    assert two == one
    assert query(db, "SELECT count(*) FROM analysis_runs") == [(1,)]
    assert query(db, "SELECT count(*) FROM llm_calls WHERE run_id = ?", one["run_id"]) == [(len(WORKERS),)]


def test_a_json_request_with_an_event_id_runs_under_that_event_id(tmp_path: Path) -> None:
    request = json.loads(DEBATE.read_text(encoding="utf-8"))
    task = tmp_path / "task.json"
    task.write_text(json.dumps({**request, "event_id": "evt-from-file"}), encoding="utf-8")

    result = cli("analyze", str(task), "--quiet", db=tmp_path / "x.db")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(" event evt-from-file: ok")
    assert query(tmp_path / "x.db", "SELECT event_id, source FROM analysis_runs") == [("evt-from-file", "cli")]


def test_an_event_id_longer_than_the_limit_exits_2(tmp_path: Path) -> None:
    result = cli("analyze", "examples/debate.json", "--quiet", "--event-id", "e" * 200, db=tmp_path / "x.db")

    assert result.returncode == 2
    assert "128" in result.stderr


def test_help_exits_0_and_lists_the_commands() -> None:
    script = Path(sys.executable).with_name("orchestrator")
    environ = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}

    result = subprocess.run([str(script), "--help"], cwd=REPO, env=environ, capture_output=True, text=True, timeout=30)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: orchestrator")
    for command in ("analyze", "serve", "db"):
        assert re.search(rf"^\s+{command}\b", result.stdout, re.MULTILINE), command


def test_analyze_help_exits_0_and_lists_its_arguments(tmp_path: Path) -> None:
    result = cli("analyze", "--help", db=tmp_path / "x.db")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: orchestrator analyze")
    for argument in ("file", "--context-id", "--event-id", "--language", "--quiet"):
        assert argument in result.stdout


def test_no_command_is_a_usage_error_exiting_2(tmp_path: Path) -> None:
    result = cli(db=tmp_path / "x.db")

    assert result.returncode == 2
    assert "usage: orchestrator" in result.stderr
    assert "COMMAND" in result.stderr


def test_a_bad_numeric_variable_exits_2_naming_it(tmp_path: Path) -> None:
    result = cli("db", "upgrade", db=tmp_path / "x.db", MAX_SEGMENTS="ten")

    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert "MAX_SEGMENTS='ten'" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_db_upgrade_on_a_fresh_sqlite_database_creates_the_tables(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"

    result = cli("db", "upgrade", db=db)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "database at head"
    tables = {name for (name,) in query(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"analysis_runs", "llm_calls", "contexts", "alembic_version"} <= tables
    assert query(db, "SELECT count(*) FROM alembic_version") == [(1,)]


def test_runs_relaunch_dry_run_reports_no_stuck_runs_on_a_fresh_database(tmp_path: Path) -> None:
    assert cli("db", "upgrade", db=tmp_path / "x.db").returncode == 0

    result = cli("runs", "relaunch", "--dry-run", "--older-than", "60", db=tmp_path / "x.db")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 stuck runs (pending over 60 s after launch)"


def test_runs_relaunch_refuses_a_non_positive_age(tmp_path: Path) -> None:
    result = cli("runs", "relaunch", "--older-than", "0", db=tmp_path / "x.db")

    assert result.returncode == 2
    assert "--older-than must be positive" in result.stderr


def test_tutor_answers_a_learner_sentence_offline_and_a_session_builds_up(tmp_path: Path) -> None:
    db = tmp_path / "tutor.db"
    first = cli("tutor", "I goes to school yesterday", "--level", "A2", "--session", "learner-1", db=db)
    second = cli("tutor", "She go to work yesterday", "--session", "learner-1", "--vietnamese", "--quiet", db=db)

    assert first.returncode == 0, first.stderr
    answer, lines = split_output(first.stdout)
    assert answer["analysis"]["grammar"]["corrected"] == "I went to school yesterday"
    assert answer["metadata"]["models_used"] == ["builtin"] and answer["session"]["turn"] == 1
    assert lines[0].startswith("tutor: ") and lines[-1].endswith(": ok")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("tutor: ") and "strategy explicit_correction" in second.stdout  # tense again
    assert query(db, "SELECT turns, level FROM tutor_sessions WHERE session_id = 'learner-1'") == [(2, "A2")]


def test_tutor_refuses_an_unknown_level_as_a_usage_error(tmp_path: Path) -> None:
    result = cli("tutor", "Hello", "--level", "Z9", db=tmp_path / "x.db")

    assert result.returncode == 2 and "--level" in result.stderr
