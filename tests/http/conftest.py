"""`orchestrator serve` as a real process, for the tests that talk to it over HTTP."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from orchestrator.config import Settings
from tests.conftest import settings_env
from tests.services import Process, free_port, service_env, wait_until


@contextmanager
def serving(settings: Settings, log_dir: Path, name: str, *options: str) -> Iterator[tuple[str, Process]]:
    """``orchestrator serve OPTIONS`` on a free port, once it answers /healthz: its URL and process."""
    port = free_port()
    args = [sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(port), *options]
    server = Process(name, args, service_env(**settings_env(settings)), log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(url) or not server.alive(), 60, f"orchestrator serve ({name})")
        assert server.alive(), server.log_tail()
        yield url, server
    finally:
        server.stop()


def answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
