"""A stack whose degradation chain ends in the builtin analyser (MODEL_FALLBACK_BUILTIN)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.config import Settings
from tests.fake_llm import FakeLLM
from tests.stack import Stack, running_stack


@pytest.fixture()
def builtin_fallback(settings: Settings, log_dir: Path, fake_llm: FakeLLM) -> Iterator[Stack]:
    with running_stack(replace(settings, model_fallback_builtin=True), log_dir) as stack:
        yield stack
