"""The Kafka bridge end to end: a real broker, bridge process, Celery worker and PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from bridge.redrive import read_dead_letters
from orchestrator.config import Settings
from orchestrator.dead_letters import REPLAY_ATTEMPT_HEADER
from orchestrator.sessions import read_session
from orchestrator.store import RunStore
from tests.factories import WORKERS, task_event, unique
from tests.fake_llm import FakeLLM, Fault
from tests.services import free_port, make_statements_fail, wait_until
from tests.stack import Stack, as_message, finished, ok_calls_per_worker, running_stack, runs_for

FAIL_MARKER = "MODEL-FAILS-FOR-THIS-EVENT"


@pytest.fixture()
def stack(kafka_settings: Settings, log_dir: Path, fake_llm: FakeLLM) -> Iterator[Stack]:
    with running_stack(kafka_settings, log_dir) as stack:
        yield stack


@pytest.fixture()
def store(stack: Stack) -> RunStore:
    """The stack's own database."""
    return stack.store


def test_a_mixed_stream_ends_in_one_run_per_valid_event_and_fifteen_dead_letters_then_replay_recovers(
    stack: Stack, store: RunStore, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    valid = [task_event(3) for _ in range(175)]
    failing = [task_event(2, segments=[{"id": "s1", "text": f"{FAIL_MARKER} {unique('x')}"}]) for _ in range(5)]
    fake_llm.fail_matching(FAIL_MARKER, Fault.status(500))
    not_json = [f"not json {unique('garbage')}".encode() for _ in range(5)]
    invalid = [{"event_id": unique("bad"), "context_id": "c", "segments": [{"id": "s1", "text": ""}]} for _ in range(5)]
    messages = [as_message(e) for e in valid + failing]
    messages += [as_message(e) for e in valid[:10]]  # ten duplicates
    messages += [(b"junk", raw, [("source", b"test")]) for raw in not_json]
    messages += [as_message(e) for e in invalid]
    assert len(messages) == 200
    stack.produce(messages)

    stack.start_bridge()
    distinct = {e["event_id"] for e in valid + failing}
    wait_until(lambda: finished(store, distinct), 120, "every valid event to finish")
    wait_until(lambda: len(read_dead_letters(*stack.dlq, timeout_s=2)) >= 15, 60, "15 dead letters")
    time.sleep(2)  # nothing more may arrive

    runs = runs_for(store, distinct)
    assert len(runs) == 180
    assert Counter(r.status for r in runs) == {"ok": 175, "failed": 5}
    assert all(r.source == "kafka" for r in runs)
    ok_runs = [r.id for r in runs if r.status == "ok"]
    assert set(ok_calls_per_worker(store, ok_runs).values()) == {1}  # each worker called once per run
    letters = read_dead_letters(*stack.dlq, timeout_s=5)
    assert len(letters) == 15
    assert Counter(letter.stage for letter in letters) == {"decode": 5, "validation": 5, "processing": 5}
    listed = stack.cli("dlq", "list", "--json")
    assert json.loads(listed)["by_stage"] == {"decode": 5, "validation": 5, "processing": 5}
    decode = [letter for letter in letters if letter.stage == "decode"]
    assert sorted(letter.original_payload() for letter in decode) == sorted(not_json)
    assert all(("source", b"test") in letter.headers for letter in decode)
    validation = [letter for letter in letters if letter.stage == "validation"]
    assert {letter.event_id for letter in validation} == {e["event_id"] for e in invalid}
    assert all("segments" in json.dumps(letter.body["reason"]["field_errors"]) for letter in validation)
    processing = [letter for letter in letters if letter.stage == "processing"]
    assert {letter.event_id for letter in processing} == {e["event_id"] for e in failing}
    for letter in processing:
        assert set(letter.body["reason"]["worker_errors"]) == set(WORKERS)
        assert letter.body["source"]["topic"] == stack.settings.kafka_tasks_topic
        assert json.loads(letter.original_payload() or b"")["event_id"] == letter.event_id

    # The model endpoint recovers. Replaying the processing failures twice
    # while the bridge is down still analyses each of them once.
    for bridge in stack.bridges:
        bridge.stop()
    fake_llm.reset()
    failed_ids = {e["event_id"] for e in failing}
    for _ in range(2):
        assert "replayed 5 of 15" in stack.cli("dlq", "replay", "--stage", "processing")
    stack.start_bridge()
    wait_until(lambda: all(r.status == "ok" for r in runs_for(store, failed_ids)), 60, "replayed runs ok")
    time.sleep(3)
    replayed = runs_for(store, failed_ids)
    assert len(replayed) == 5 and all(r.status == "ok" and r.attempt == 2 for r in replayed)
    assert set(ok_calls_per_worker(store, [r.id for r in replayed]).values()) == {1}
    assert len(read_dead_letters(*stack.dlq, timeout_s=3)) == 15


def test_killing_the_bridge_mid_stream_and_restarting_it_analyses_every_event_once(
    stack: Stack, store: RunStore, fake_llm: FakeLLM
) -> None:
    fake_llm.latency_s = 0.05
    events = [task_event(2) for _ in range(80)]
    stack.produce([as_message(e) for e in events])
    ids = {e["event_id"] for e in events}

    bridge = stack.start_bridge("--max-in-flight", "8")
    wait_until(lambda: len(runs_for(store, ids)) >= 10, 60, "the first runs")
    bridge.kill()
    killed_at = time.monotonic()
    assert len(runs_for(store, ids)) < len(ids), "the bridge finished before it was killed"
    stack.start_bridge()
    wait_until(lambda: finished(store, ids), 120, "every event to finish")
    print(f"bridge crash: all 80 events stored {time.monotonic() - killed_at:.1f} s after the kill")

    runs = runs_for(store, ids)
    assert len(runs) == 80 and {r.status for r in runs} == {"ok"}
    per_worker = ok_calls_per_worker(store, [r.id for r in runs])
    assert len(per_worker) == 80 * 4 and set(per_worker.values()) == {1}
    assert fake_llm.calls_for("summary") == 80


def test_killing_the_worker_mid_chord_and_restarting_it_completes_every_run_once(
    kafka_settings: Settings, log_dir: Path, fake_llm: FakeLLM
) -> None:
    # Tasks the dead worker held come back after the visibility timeout (10 s
    # here). A task it had taken off the queue but not yet recorded as
    # unacknowledged is lost (kombu's Redis transport does the two in separate
    # steps); its run is relaunched by the sweeper once its launch marker
    # expires with the chord results: 30 s here, CELERY_RESULT_EXPIRES in
    # production. Either way every run must end once.
    with running_stack(replace(kafka_settings, celery_result_expires=30), log_dir) as stack:
        store = stack.store
        fake_llm.latency_s = 0.8  # below the suite's 1 s model read timeout
        events = [task_event(2) for _ in range(6)]
        stack.produce([as_message(e) for e in events])
        ids = {e["event_id"] for e in events}
        stack.start_bridge()
        wait_until(lambda: len(fake_llm.requests) >= 4, 60, "model calls in flight")

        stack.worker.kill()
        killed_at = time.monotonic()
        stack.restart_worker()
        try:
            wait_until(lambda: finished(store, ids), 90, "every run to finish after the worker restart")
        except TimeoutError as exc:
            pending = [(r.id, r.worker_statuses, r.relaunches) for r in runs_for(store, ids) if r.status == "pending"]
            raise AssertionError(f"{exc}; pending: {pending}\n{stack.worker.log_tail()}") from exc
        recovery = time.monotonic() - killed_at

        runs = runs_for(store, ids)
        assert len(runs) == 6 and {r.status for r in runs} == {"ok"}
        assert set(ok_calls_per_worker(store, [r.id for r in runs]).values()) == {1}
        assert len(read_dead_letters(*stack.dlq, timeout_s=2)) == 0
        print(f"worker crash recovery: {recovery:.1f} s (visibility timeout 10 s)")


def test_backpressure_bounds_the_runs_in_flight(stack: Stack, store: RunStore, fake_llm: FakeLLM) -> None:
    fake_llm.latency_s = 0.3
    events = [task_event(2) for _ in range(12)]
    stack.produce([as_message(e) for e in events])
    ids = {e["event_id"] for e in events}

    stack.start_bridge("--max-in-flight", "2")
    most_pending = 0
    deadline = time.monotonic() + 90
    while not finished(store, ids) and time.monotonic() < deadline:
        most_pending = max(most_pending, sum(r.status == "pending" for r in runs_for(store, ids)))
        time.sleep(0.05)

    assert finished(store, ids)
    assert 1 <= most_pending <= 2
    log = stack.bridges[0].log_tail(500)
    assert "pausing" in log and "resuming" in log


def test_sigterm_finishes_handing_off_commits_and_exits_zero(stack: Stack, store: RunStore, fake_llm: FakeLLM) -> None:
    events = [task_event(2) for _ in range(30)]
    stack.produce([as_message(e) for e in events])
    ids = {e["event_id"] for e in events}
    bridge = stack.start_bridge()
    wait_until(lambda: len(runs_for(store, ids)) >= 1, 60, "the first run")

    bridge.popen.send_signal(signal.SIGTERM)
    assert bridge.popen.wait(20) == 0, bridge.log_tail()
    assert "bridge stopped" in bridge.log_tail()
    stack.start_bridge()
    wait_until(lambda: finished(store, ids), 60, "every event")
    assert len(runs_for(store, ids)) == 30
    assert fake_llm.calls_for("summary") == 30


def test_a_kafka_traceparent_reaches_the_run_and_the_model_and_a_malformed_one_is_ignored(
    stack: Stack, store: RunStore, fake_llm: FakeLLM
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    event, badly_traced = task_event(2), task_event(2)
    stack.produce(
        [
            as_message(event, [("traceparent", traceparent.encode())]),
            as_message(badly_traced, [("traceparent", b"x" * 300)]),
        ],
    )
    metrics_port = free_port()
    stack.start_bridge(METRICS_PORT=str(metrics_port))
    wait_until(lambda: finished(store, {event["event_id"], badly_traced["event_id"]}), 60, "the runs")
    metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'orchestrator_bridge_events_total{outcome="launched"} 2.0' in metrics
    (ignored,) = runs_for(store, {badly_traced["event_id"]})
    assert ignored.status == "ok" and ignored.traceparent is None

    (run,) = runs_for(store, {event["event_id"]})
    assert run.traceparent == traceparent
    assert run.attempt == 1
    assert {r.headers.get("traceparent") for r in fake_llm.requests} == {traceparent, None}


def test_a_replayed_event_whose_run_succeeded_is_not_analysed_again(
    stack: Stack, store: RunStore, fake_llm: FakeLLM
) -> None:
    event = task_event(2)
    stack.produce([as_message(event)])
    stack.start_bridge()
    wait_until(lambda: finished(store, {event["event_id"]}), 60, "the run")

    stack.produce([as_message(event, [(REPLAY_ATTEMPT_HEADER, b"2")])])
    time.sleep(3)

    (run,) = runs_for(store, {event["event_id"]})
    assert run.status == "ok" and run.attempt == 1
    assert fake_llm.calls_for("summary") == 1


def test_an_event_without_segments_for_an_unknown_context_is_dead_lettered_as_invalid(
    stack: Stack, store: RunStore
) -> None:
    event = {"event_id": unique("evt"), "context_id": unique("never-seen")}
    stack.produce([as_message(event)])
    stack.start_bridge()
    wait_until(lambda: len(read_dead_letters(*stack.dlq, timeout_s=2)) == 1, 60, "the dead letter")

    (letter,) = read_dead_letters(*stack.dlq, timeout_s=2)
    assert letter.stage == "validation" and letter.error_type == "UnknownContext"
    assert letter.event_id == event["event_id"]
    assert runs_for(store, {event["event_id"]}) == []


def test_the_bridge_exits_3_with_a_message_when_kafka_is_unreachable(stack: Stack) -> None:
    env = {**stack.env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "bridge"], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 3
    assert "cannot reach Kafka" in result.stderr


def test_a_valid_event_that_cannot_be_stored_is_dead_lettered_and_does_not_block_its_partition(
    stack: Stack, store: RunStore
) -> None:
    context_id = unique("ctx-poison")
    make_statements_fail(stack.settings.database_url, "BEFORE INSERT", condition=f"NEW.context_id = '{context_id}'")
    poison, behind_it = task_event(2, context_id=context_id), task_event(2)
    # Both under the poison's key: one partition, the healthy event second.
    _, healthy_value, _ = as_message(behind_it)
    stack.produce([as_message(poison), (context_id.encode(), healthy_value, [])])
    stack.start_bridge()

    wait_until(lambda: finished(store, {behind_it["event_id"]}), 60, "the event behind the poisonous one")
    wait_until(lambda: len(read_dead_letters(*stack.dlq, timeout_s=2)) == 1, 30, "the dead letter")

    (letter,) = read_dead_letters(*stack.dlq, timeout_s=2)
    # The database's error as the driver classes it: psycopg makes a trigger's RAISE (P0001) a ProgrammingError.
    assert (letter.stage, letter.error_type, letter.event_id) == ("processing", "ProgrammingError", poison["event_id"])
    assert runs_for(store, {poison["event_id"]}) == []


def test_a_tutor_event_runs_the_tutor_pipeline_once_and_records_its_session_turn(
    stack: Stack, store: RunStore, fake_llm: FakeLLM
) -> None:
    session = unique("session")
    event = {
        "event_id": unique("evt"),
        "pipeline": "tutor",
        "session_id": session,
        "text": "She have two brothers",
        "learner_profile": {"level": "B1"},
    }
    message = (session.encode(), json.dumps(event).encode(), [])
    stack.produce([message, message])  # delivered twice: analysed once
    stack.start_bridge()

    wait_until(lambda: finished(store, {event["event_id"]}), 60, "the tutor run")
    time.sleep(2)

    (run,) = runs_for(store, {event["event_id"]})
    assert (run.pipeline, run.status, run.context_id) == ("tutor", "ok", session)
    assert run.result is not None and run.result["analysis"]["grammar"]["corrected"] == "She has two brothers"
    assert fake_llm.calls_for("grammar") == 1
    stored = read_session(store, session)
    assert stored is not None and stored["turns"] == 1 and stored["error_counts"] == {"R:VERB:SVA": 1}
