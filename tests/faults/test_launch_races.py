"""A run is launched once: launchers paused past their lease, and a "mark launched" that fails."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.result import AsyncResult

from bridge.redrive import read_dead_letters
from orchestrator.chord import ChordLauncher
from orchestrator.config import Settings
from orchestrator.pipelines.analysis import PIPELINE as ANALYSIS
from orchestrator.runs import submit_analysis, wait_for_bundle
from orchestrator.store import RunStore
from tasks.celery_app import OrchestratorCelery
from tests.factories import WORKERS, expire_lease, run_request, task_event, unique
from tests.fake_llm import FakeLLM
from tests.faults.conftest import report
from tests.services import Process, make_statements_fail, wait_until
from tests.stack import as_message, finished, ok_calls_per_worker, running_stack, runs_for

EVENTS = 40


def test_a_bridge_stopped_with_sigstop_past_its_lease_launches_no_run_twice(
    kafka_settings: Settings, log_dir: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.latency_s = 0.05
    events = [task_event(2) for _ in range(EVENTS)]
    ids = {str(e["event_id"]) for e in events}
    with running_stack(replace(kafka_settings, claim_lease=2.0), log_dir) as stack:
        store = stack.store
        stack.produce([as_message(e) for e in events])
        paused = stack.start_bridge("--max-in-flight", "4")
        wait_until(lambda: len(runs_for(store, ids)) >= 3, 60, "the first claims")
        paused.popen.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            stack.start_bridge()  # takes the partitions over once the stopped one leaves the group
            wait_until(lambda: finished(store, ids), 120, "every event, handed off by the other bridge")
            recovery = time.monotonic() - stopped_at
        finally:
            paused.popen.send_signal(signal.SIGCONT)
        time.sleep(5)  # the resumed bridge finishes what it had started, with a lease it lost

        runs = runs_for(store, ids)
        assert len(runs) == EVENTS and {r.status for r in runs} == {"ok"}
        assert set(ok_calls_per_worker(store, [r.id for r in runs]).values()) == {1}
        assert all(fake_llm.calls_for(worker) == EVENTS for worker in WORKERS)
        assert read_dead_letters(*stack.dlq, timeout_s=2) == []
        assert paused.alive()
        report(
            "bridge stopped (SIGSTOP) past its claim lease",
            events=EVENTS,
            launched_twice=sum(fake_llm.calls_for(w) for w in WORKERS) // 4 - EVENTS,
            lost=EVENTS - len(runs),
            all_stored_after_the_stop=f"{recovery:.1f} s",
        )


def test_a_launcher_paused_between_its_lease_check_and_its_publish_sends_a_chord_that_does_nothing(
    settings: Settings, store: RunStore, celery_app: OrchestratorCelery, celery_worker: Process, fake_llm: FakeLLM
) -> None:
    at_publish, resume = threading.Event(), threading.Event()

    class PausedLauncher(ChordLauncher):
        def launch(self, run_id: str, **kwargs: Any) -> AsyncResult:
            at_publish.set()
            resume.wait(30)
            return super().launch(run_id, **kwargs)

    event_id = unique("evt")
    request = run_request(event_id=event_id, segments=[{"id": "s1", "text": "We should act now."}])
    options: dict[str, Any] = {"source": "kafka", "store": store, "queue": settings.celery_batch_queue}
    lease = timedelta(seconds=15)
    first: list[Any] = []
    paused = threading.Thread(
        target=lambda: first.append(
            submit_analysis(
                request,
                launcher=PausedLauncher(celery_app, celery_app.launcher.markers, celery_app.launcher.pipelines),
                lease=lease,
                **options,
            )  # fmt: skip
        )
    )
    paused.start()
    assert at_publish.wait(20)
    run = store.get_run(event_id)
    assert run is not None
    expire_lease(store, run.id)  # the pause outlasted the lease

    second = submit_analysis(request, launcher=celery_app.launcher, lease=lease, **options)
    assert second.launched
    assert wait_for_bundle(second, pipeline=ANALYSIS, store=store, timeout=20)["status"] == "ok"
    resume.set()  # the paused launcher now publishes its chord, with the token it lost
    paused.join(20)
    time.sleep(3)

    assert first and first[0].launched  # it did publish...
    assert all(fake_llm.calls_for(worker) == 1 for worker in WORKERS)  # ...but its tasks did nothing
    assert len(store.calls_for(run.id)) == 4


def test_a_failing_mark_launched_neither_launches_twice_nor_dead_letters(
    kafka_settings: Settings, log_dir: Path, fake_llm: FakeLLM
) -> None:
    events = [task_event(2) for _ in range(15)]
    ids = {str(e["event_id"]) for e in events}
    application = f"bridge-{unique('mark')[-8:]}"
    with running_stack(kafka_settings, log_dir) as stack:
        store = stack.store
        make_statements_fail(
            stack.settings.database_url,
            "BEFORE UPDATE",
            condition=f"current_setting('application_name') = '{application}' "
            "AND OLD.launched_at IS NULL AND NEW.launched_at IS NOT NULL",
        )
        stack.produce([as_message(e) for e in events])
        bridge = stack.start_bridge(PGAPPNAME=application)  # libpq names the bridge's sessions
        wait_until(lambda: finished(store, ids), 90, "every event")
        time.sleep(2)

        runs = runs_for(store, ids)
        assert len(runs) == 15 and {r.status for r in runs} == {"ok"}
        assert all(r.launched_at is not None for r in runs)  # marked by their first worker task
        assert set(ok_calls_per_worker(store, [r.id for r in runs]).values()) == {1}
        assert read_dead_letters(*stack.dlq, timeout_s=2) == []
        assert "not recorded as launched yet" in bridge.log_tail(500)
