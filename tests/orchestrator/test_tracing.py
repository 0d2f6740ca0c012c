"""Traces end to end: bridge, API and Celery worker processes export their spans to a collector over OTLP/HTTP.

One trace per event, continuing the caller's ``traceparent``, with every
span's parent in the same trace across the processes it crossed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from bridge.redrive import read_dead_letters
from orchestrator.chord import AGGREGATE_TASK, ANALYSE_PART_TASK
from orchestrator.config import Settings
from orchestrator.tracing import valid_traceparent
from tests.factories import WORKERS, analyze_body, task_event
from tests.fake_llm import FakeLLM, Fault
from tests.http.conftest import serving
from tests.otlp_collector import CollectedSpan, OtlpCollector
from tests.services import free_port, wait_until
from tests.stack import Stack, as_message, finished, running_stack, runs_for

BRIDGE, WORKER, API = "orchestrator-bridge", "orchestrator-worker", "orchestrator-api"


def new_traceparent() -> tuple[str, str, str]:
    """A sampled ``traceparent`` as a caller would send it: the header, its trace id and its span id."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


@pytest.fixture()
def collector() -> Iterator[OtlpCollector]:
    collector = OtlpCollector().start()
    yield collector
    collector.stop()


@pytest.fixture()
def traced_stack(
    kafka_settings: Settings,
    log_dir: Path,
    fake_llm: FakeLLM,
    collector: OtlpCollector,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export every 100 ms (the SDK's default is 5 s)
    with running_stack(replace(kafka_settings, otel_exporter_otlp_endpoint=collector.endpoint), log_dir) as stack:
        yield stack


def of_trace(collector: OtlpCollector, trace_id: str) -> list[CollectedSpan]:
    return [span for span in collector.spans if span.trace_id == trace_id]


def named(spans: list[CollectedSpan], name: str) -> list[CollectedSpan]:
    return [span for span in spans if span.name == name]


def children(spans: list[CollectedSpan], parent: CollectedSpan) -> list[CollectedSpan]:
    return [span for span in spans if span.parent_span_id == parent.span_id]


def assert_connected(spans: list[CollectedSpan], outside_parent: str) -> None:
    """Every span's parent is in ``spans``, but the root's, which is ``outside_parent`` ("" for none)."""
    ids = {span.span_id for span in spans}
    orphans = [span for span in spans if span.parent_span_id not in ids]
    assert [(s.name, s.parent_span_id) for s in orphans] == [(orphans[0].name, outside_parent)], orphans


def assert_worker_part(spans: list[CollectedSpan], run_id: str) -> None:
    """Each worker ran as a Celery task of this trace, its model call inside, the model's HTTP request inside that."""
    task_runs = named(spans, f"run/{ANALYSE_PART_TASK}")
    assert {span.service for span in task_runs} == {WORKER}
    answered = [span for span in named(spans, "model call") if not span.failed]
    assert sorted(span.attributes["orchestrator.worker"] for span in answered) == sorted(WORKERS)
    for call in answered:
        assert call.attributes["orchestrator.run_id"] == run_id
        assert call.attributes["orchestrator.level"] == 0 and call.attributes["orchestrator.cache_hit"] is False
        assert call.parent_span_id in {span.span_id for span in task_runs}
        (http,) = children(spans, call)
        assert http.name == "POST" and http.service == WORKER
    (aggregate,) = named(spans, "aggregate")
    assert aggregate.attributes == {"orchestrator.run_id": run_id, "orchestrator.status": "ok"}
    assert aggregate.parent_span_id in {span.span_id for span in named(spans, f"run/{AGGREGATE_TASK}")}


def test_each_kafka_event_is_one_trace_across_bridge_worker_and_model_with_its_messages_parent(
    traced_stack: Stack, collector: OtlpCollector, fake_llm: FakeLLM
) -> None:
    stack = traced_stack
    fake_llm.script("summary", Fault.status(500))  # one event's summary needs a second attempt
    traced, plain, broken = task_event(3), task_event(2), b"not json"
    header, trace_id, parent_id = new_traceparent()
    broken_header, broken_trace_id, broken_parent_id = new_traceparent()
    stack.produce(
        [
            as_message(traced, [("traceparent", header.encode())]),
            as_message(plain),
            (b"junk", broken, [("traceparent", broken_header.encode())]),
        ]
    )
    stack.start_bridge()
    event_ids = {traced["event_id"], plain["event_id"]}
    wait_until(lambda: finished(stack.store, event_ids), 60, "both events to finish")
    wait_until(lambda: len(read_dead_letters(*stack.dlq, timeout_s=2)) == 1, 30, "the dead letter")
    runs = {run.event_id: run for run in runs_for(stack.store, event_ids)}
    assert {run.status for run in runs.values()} == {"ok"}
    wait_until(lambda: len(named(collector.spans, "aggregate")) == 2, 30, "both runs' spans")
    time.sleep(0.5)  # the last batches of the other spans

    # The traced event: one trace, the message's span its root's parent, bridge and worker spans linked.
    spans = of_trace(collector, trace_id)
    assert {span.service for span in spans} == {BRIDGE, WORKER}
    assert_connected(spans, parent_id)
    (consume,) = [span for span in spans if span.parent_span_id == parent_id]
    assert consume.name == f"process {stack.settings.kafka_tasks_topic}" and consume.service == BRIDGE
    assert consume.attributes["messaging.system"] == "kafka"
    run_id = runs[traced["event_id"]].id
    (claim,) = named(spans, "claim")
    assert claim.parent_span_id == consume.span_id and claim.attributes["orchestrator.run_id"] == run_id
    (publish,) = named(spans, "chord publish")
    assert publish.parent_span_id == consume.span_id and publish.attributes["orchestrator.run_id"] == run_id
    assert {span.name for span in children(spans, publish)} == {f"apply_async/{ANALYSE_PART_TASK}"}
    assert any(span.attributes.get("db.system") == "postgresql" for span in children(spans, claim))
    assert_worker_part(spans, run_id)
    # The model received the trace context of the HTTP request span (requests' instrumentation sent it).
    http_ids = {span.span_id for span in named(spans, "POST")}
    sent = [valid_traceparent(r.headers.get("traceparent")) for r in fake_llm.requests]
    assert len([h for h in sent if h and h.split("-")[1] == trace_id]) == len(http_ids)
    assert all(h.split("-")[2] in http_ids for h in sent if h and h.split("-")[1] == trace_id)

    # The event without a traceparent: a trace of its own, rooted at the bridge.
    plain_run_id = runs[plain["event_id"]].id
    (plain_claim,) = [s for s in named(collector.spans, "claim") if s.attributes["orchestrator.run_id"] == plain_run_id]
    assert plain_claim.trace_id != trace_id
    plain_spans = of_trace(collector, plain_claim.trace_id)
    assert_connected(plain_spans, "")
    assert_worker_part(plain_spans, plain_run_id)

    # Both runs' spans, and only theirs, in their traces; the retried summary's attempts in one of them.
    for span in collector.spans:
        owner = span.attributes.get("orchestrator.run_id")
        assert owner is None or span.trace_id == {run_id: trace_id, plain_run_id: plain_claim.trace_id}[owner]
    summary_calls = [
        s for s in named(collector.spans, "model call") if s.attributes["orchestrator.worker"] == "summary"
    ]
    attempts = sorted((s.attributes["orchestrator.attempt"], s.failed) for s in summary_calls)
    assert attempts == [(1, False), (1, True), (2, False)]
    (retried,) = [s for s in summary_calls if s.failed]
    assert retried.trace_id in {trace_id, plain_claim.trace_id}

    # The undecodable message: its consume span and the dead letter's send, in the message's trace.
    broken_spans = of_trace(collector, broken_trace_id)
    (broken_consume,) = [span for span in broken_spans if span.parent_span_id == broken_parent_id]
    (send,) = children(broken_spans, broken_consume)
    assert send.name == f"send {stack.settings.kafka_dlq_topic}" and send.service == BRIDGE


def test_an_api_request_is_one_trace_from_the_http_server_span_to_the_model(
    traced_stack: Stack, collector: OtlpCollector, log_dir: Path
) -> None:
    header, trace_id, parent_id = new_traceparent()
    with serving(traced_stack.settings, log_dir, "serve-traced") as (url, _):
        response = requests.post(
            f"{url}/orchestrator/analyze", json=analyze_body(2), headers={"traceparent": header}, timeout=60
        )
        assert response.status_code == 200, response.text
        untraced = requests.post(f"{url}/orchestrator/analyze", json=analyze_body(2), timeout=60)
        assert untraced.status_code == 200, untraced.text
        wait_until(lambda: len(named(collector.spans, "aggregate")) == 2, 30, "both runs' spans")
        time.sleep(0.5)

    spans = of_trace(collector, trace_id)
    assert {span.service for span in spans} == {API, WORKER}
    assert_connected(spans, parent_id)
    (server,) = [span for span in spans if span.parent_span_id == parent_id]
    assert server.service == API and server.name == "POST /orchestrator/analyze"
    run_id = response.json()["run_id"]
    (claim,) = named(spans, "claim")
    assert claim.parent_span_id == server.span_id and claim.attributes["orchestrator.run_id"] == run_id
    (publish,) = named(spans, "chord publish")
    assert publish.parent_span_id == server.span_id
    assert_worker_part(spans, run_id)

    # A request without a traceparent starts a trace of its own at the API.
    untraced_run_id = untraced.json()["run_id"]
    (other_claim,) = [
        s for s in named(collector.spans, "claim") if s.attributes["orchestrator.run_id"] == untraced_run_id
    ]
    other = of_trace(collector, other_claim.trace_id)
    assert other_claim.trace_id != trace_id
    assert_connected(other, "")
    assert_worker_part(other, untraced_run_id)


def test_a_collector_that_is_down_costs_spans_not_events(
    kafka_settings: Settings, log_dir: Path, fake_llm: FakeLLM
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with running_stack(replace(kafka_settings, otel_exporter_otlp_endpoint=nobody), log_dir) as stack:
        events = [task_event(2) for _ in range(3)]
        stack.produce([as_message(event, [("traceparent", new_traceparent()[0].encode())]) for event in events])
        stack.start_bridge()
        event_ids = {event["event_id"] for event in events}
        wait_until(lambda: finished(stack.store, event_ids), 60, "every event to finish")
        assert {run.status for run in runs_for(stack.store, event_ids)} == {"ok"}
        assert stack.worker.alive() and all(bridge.alive() for bridge in stack.bridges)


def test_without_an_endpoint_a_process_does_not_even_load_the_tracing_sdk() -> None:
    code = (
        "import sys, orchestrator.cli, orchestrator.wiring, bridge.consumer\n"
        "from orchestrator.config import Settings\n"
        "from orchestrator.tracing import start_tracing, tracing_started\n"
        "assert start_tracing(Settings(), 'orchestrator-test') is None and not tracing_started()\n"
        "tracing = ('opentelemetry.sdk.trace', 'opentelemetry.instrumentation', 'opentelemetry.exporter')\n"
        "print(sorted(m for m in sys.modules if m.startswith(tracing)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
