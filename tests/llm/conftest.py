"""The real local model for the ``llm`` tests: SmolLM2-135M served by llama-cpp-python.

The server is started once per session through ``scripts/local_llm.py`` (as
``make llm`` does) on a free port, and stopped afterwards. These tests are
deselected by a plain ``pytest`` run (pyproject's addopts: ``-m 'not llm'``);
``make test-llm`` installs what they need and runs them with ``-m llm``.

The figures they observe (server start, latency and outcome of every model
call) are printed at the end of the run.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import requests

from orchestrator.config import Settings
from tests.services import ROOT, Process, free_port, service_env, wait_until
from tests.stack import Stack, running_stack

SCRIPT = ROOT / "scripts" / "local_llm.py"
#: The name the server answers to (scripts/local_llm.py's alias).
MODEL_NAME = "smollm2-135m"
#: Context size of the test server. Smaller than ``make llm``'s 2048 on purpose: an
#: answer sent without ``max_tokens`` that never stops runs until the context is full.
#: With 1024 (prompts here are ~200-300 tokens) such an answer costs ~13 s, not ~30 s.
N_CTX = 1024
#: MODEL_MAX_TOKENS of the workers and the adapter tests: every worker's answer fits
#: (the longest valid ones are ~150 tokens); a looping one is cut after ~5 s.
MAX_TOKENS = 256
#: MODEL_RESPONSE_FORMAT: the worker's schema, as llama.cpp takes it. The server then
#: forces the keys; without it SmolLM2 mostly answers JSON with the wrong keys.
RESPONSE_FORMAT = "json_object_schema"
#: Seconds the server may take to load the model (it takes 0.4-2 s).
START_TIMEOUT = 60.0
#: Per-call read timeout of the workers and of the adapter tests. The server answers
#: one request at a time and a worker sends four at once, so the last one waits for
#: the three before it: ~20 s each at worst (a long answer on a busy machine).
READ_TIMEOUT = 120.0
MAX_RETRIES = 1
#: The workers' CELERY_VISIBILITY_TIMEOUT (the production default): far above a task's longest run.
VISIBILITY_TIMEOUT = 300


@dataclass(frozen=True)
class LocalModel:
    """The running server: ``base_url`` is what ``MODEL_ADAPTER_URL`` takes."""

    base_url: str
    process: Process
    ready_s: float


@dataclass
class CallFigure:
    source: str  # "worker" (a stored llm_calls row) or "adapter" (a direct call)
    worker: str
    status: str  # ok, schema (answered, but invalid JSON or not the schema), timeout, error
    latency_ms: float | None
    output_tokens: int | None = None


@dataclass
class Figures:
    """What the llm tests measured, printed in the terminal summary."""

    ready_s: float | None = None
    calls: list[CallFigure] = field(default_factory=list)
    runs: list[tuple[str, str, float]] = field(default_factory=list)  # pipeline, status, seconds

    def lines(self) -> list[str]:
        lines = []
        if self.ready_s is not None:
            lines.append(f"server ready (answering /v1/models) {self.ready_s:.1f} s after start")
        for pipeline, status, seconds in self.runs:
            lines.append(f"{pipeline} request through a Celery worker: {status} in {seconds:.1f} s")
        if self.calls:
            by_status = {s: sum(1 for c in self.calls if c.status == s) for s in ("ok", "schema", "timeout", "error")}
            lines.append(
                f"{len(self.calls)} model calls: {by_status['ok']} valid, {by_status['schema']} failed the schema or "
                f"JSON, {by_status['timeout']} timed out, {by_status['error']} other errors"
            )
            for source, what in (
                ("worker", "through the workers, 4 at once, queueing at the server included"),
                ("adapter", "one at a time, straight from the adapter"),
            ):
                latencies = sorted(c.latency_ms for c in self.calls if c.source == source and c.latency_ms is not None)
                if latencies:
                    lines.append(
                        f"latency per call {what}: median {statistics.median(latencies) / 1000:.1f} s, "
                        f"min {latencies[0] / 1000:.1f} s, max {latencies[-1] / 1000:.1f} s"
                    )
        return lines


FIGURES = Figures()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = FIGURES.lines()
    if lines:
        terminalreporter.write_sep("-", f"local model {MODEL_NAME} (n_ctx {N_CTX})")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def figures() -> Figures:
    return FIGURES


def _serves(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/models", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def local_model(log_dir: Path) -> Iterator[LocalModel]:
    """``scripts/local_llm.py`` on a free port, until the end of the session."""
    port = free_port()
    args = [sys.executable, str(SCRIPT), "--port", str(port), "--n-ctx", str(N_CTX), "--n-threads", "2"]
    started = time.monotonic()
    process = Process("local-llm", args, service_env(), log_dir)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until(lambda: _serves(base_url) or not process.alive(), START_TIMEOUT, "the local model server")
        if not process.alive():
            pytest.fail(f"the local model server exited (is `make llm-install` done?):\n{process.log_tail()}")
        FIGURES.ready_s = time.monotonic() - started
        yield LocalModel(base_url=base_url, process=process, ready_s=FIGURES.ready_s)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def llm_settings(settings: Settings, local_model: LocalModel) -> Settings:
    """The suite's settings with the real model: generous timeouts, one retry, no response cache,
    the worker's schema sent, answers cut at ``MAX_TOKENS``."""
    return replace(
        settings,
        model_adapter_url=local_model.base_url,
        model_name=MODEL_NAME,
        model_read_timeout=READ_TIMEOUT,
        model_max_retries=MAX_RETRIES,
        model_max_tokens=MAX_TOKENS,
        model_response_format=RESPONSE_FORMAT,
        analyze_timeout=300,
        response_cache_ttl=0,
    )


@pytest.fixture(scope="session")
def llm_stack(llm_settings: Settings, log_dir: Path) -> Iterator[Stack]:
    """A Celery worker on its own queues and database, calling the real model.

    ``running_stack`` gives its worker a 10 s visibility timeout and a sweeper
    every 2 s, for the fake model's fast calls. A real model's calls last
    longer than that: Redis would hand each one to the worker again, and the
    sweeper would relaunch the run, piling duplicate calls on a server that
    answers one at a time. So the worker is replaced, before any task is sent,
    by one with the production defaults for both.
    """
    with running_stack(llm_settings, log_dir) as stack:
        stack.worker.stop()
        stack.settings = replace(stack.settings, celery_visibility_timeout=VISIBILITY_TIMEOUT, sweep_interval=0)
        stack.env.update(CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT), SWEEP_INTERVAL="0")
        stack.restart_worker()
        yield stack
