"""A pipeline added as one definition file runs everywhere, with nothing changed in the engine.

``tests/toy_pipeline.py`` is loaded with ``PIPELINE_MODULES``; it runs
through the HTTP API, Kafka and the embedded command, on the real worker,
store and broker, with the builtin model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.redrive import read_dead_letters
from orchestrator.config import Settings
from orchestrator.models import LlmCall
from tests.factories import unique
from tests.services import ROOT, wait_until
from tests.stack import Stack, finished, running_stack, runs_for

TOY = "tests.toy_pipeline"


@pytest.fixture()
def stack(kafka_settings: Settings, log_dir: Path) -> Iterator[Stack]:
    with running_stack(replace(kafka_settings, pipeline_modules=TOY, model_adapter_url=None), log_dir) as stack:
        yield stack


def test_the_toy_pipeline_runs_through_the_api_with_its_optional_worker_allowed_to_fail(stack: Stack) -> None:
    client = stack.api_client()

    counted = client.post(
        "/orchestrator/analyze", json={"pipeline": "wordcount", "context_id": unique("c"), "text": "three little words"}
    )
    no_letters = client.post("/orchestrator/analyze", json={"pipeline": "wordcount", "context_id": "c", "text": "1 2"})
    unknown = client.post("/orchestrator/analyze", json={"pipeline": "nope", "context_id": "c", "text": "x"})
    wrong_fields = client.post("/orchestrator/analyze", json={"pipeline": "wordcount", "context_id": "c"})

    assert counted.status_code == 200, counted.json
    assert counted.json["status"] == "ok"
    assert (counted.json["words"], counted.json["longest_word"]) == (3, "little")
    assert counted.json["worker_statuses"] == {"count": "ok", "longest": "ok"}
    assert no_letters.json["status"] == "ok"  # the optional worker failed: listed, and the run is still ok
    assert no_letters.json["worker_statuses"] == {"count": "ok", "longest": "error"}
    assert no_letters.json["longest_word"] is None and "longest" in no_letters.json["errors"]
    assert unknown.status_code == 422 and "pipeline" in unknown.json["fields"]
    assert wrong_fields.status_code == 422 and "text" in wrong_fields.json["fields"]
    run = stack.store.get_run(counted.json["run_id"])
    assert run is not None and run.pipeline == "wordcount"
    with stack.store.session() as session:
        calls = session.execute(select(LlmCall.pipeline, LlmCall.worker).where(LlmCall.run_id == run.id)).all()
    assert sorted(calls) == [("wordcount", "count"), ("wordcount", "longest")]


def test_the_toy_pipeline_runs_from_kafka_and_an_unknown_pipeline_is_dead_lettered(stack: Stack) -> None:
    event = {"event_id": unique("evt"), "pipeline": "wordcount", "context_id": unique("c"), "text": "one two"}
    unknown = {"event_id": unique("evt"), "pipeline": "horoscope", "context_id": "c", "text": "x"}
    stack.produce([(b"k", json.dumps(event).encode(), []), (b"k", json.dumps(unknown).encode(), [])])
    stack.start_bridge()

    wait_until(lambda: finished(stack.store, {event["event_id"]}), 60, "the toy run")
    wait_until(lambda: len(read_dead_letters(*stack.dlq, timeout_s=2)) == 1, 30, "the dead letter")

    (run,) = runs_for(stack.store, {event["event_id"]})
    assert (run.pipeline, run.status, run.result) == ("wordcount", "ok", {"words": 2, "longest_word": "one"})
    (letter,) = read_dead_letters(*stack.dlq, timeout_s=2)
    assert letter.stage == "validation" and "pipeline" in letter.body["reason"]["field_errors"]


def test_the_toy_pipeline_runs_embedded_from_the_command_line(tmp_path: Path) -> None:
    request = tmp_path / "toy.json"
    request.write_text(json.dumps({"pipeline": "wordcount", "context_id": "c", "text": "embedded and quick"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "MODEL_", "DATABASE_"))}
    env.update(PIPELINE_MODULES=TOY, DATABASE_URL=f"sqlite:///{tmp_path / 'toy.db'}")

    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "analyze", str(request)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    bundle, end = json.JSONDecoder().raw_decode(result.stdout)
    assert (bundle["words"], bundle["longest_word"]) == (3, "embedded")
    assert [line.split() for line in result.stdout[end:].strip().splitlines()[:2]] == [
        ["count", "ok"],
        ["longest", "ok"],
    ]
