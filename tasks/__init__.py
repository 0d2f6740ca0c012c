"""Celery entry point: ``celery -A tasks worker`` finds ``tasks.app``.

The app is built from the environment on first access, not at import time.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import Celery


@cache
def _app_from_env() -> Celery:
    from orchestrator.config import Settings
    from tasks.celery_app import create_celery

    return create_celery(Settings.from_env())


def __getattr__(name: str) -> Any:
    if name in {"app", "celery"}:
        return _app_from_env()
    raise AttributeError(name)
