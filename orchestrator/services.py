"""The long-lived objects a process needs, built once from the settings (by ``orchestrator.wiring``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.adapters.base import ModelAdapter
from orchestrator.adapters.builtin import MODEL_NAME as BUILTIN_MODEL_NAME
from orchestrator.adapters.builtin import BuiltinAdapter
from orchestrator.adapters.openai import OpenAIChatAdapter
from orchestrator.chord import LaunchMarkers
from orchestrator.config import Settings
from orchestrator.costs import Prices
from orchestrator.dead_letters import DeadLetterSink
from orchestrator.domain import JSON
from orchestrator.heartbeats import Heartbeats
from orchestrator.live import RunEvents
from orchestrator.pipelines import Pipelines
from orchestrator.response_cache import ResponseCache
from orchestrator.store import RunStore


@dataclass(frozen=True)
class ModelLevel:
    """One level of the degradation chain: who answers, and the model name recorded for its calls."""

    adapter: ModelAdapter
    name: str


@dataclass
class Services:
    settings: Settings
    #: The pipelines this process runs, by name.
    pipelines: Pipelines
    store: RunStore
    #: The degradation chain: the model, its fallback, the builtin analyser.
    models: tuple[ModelLevel, ...]
    #: Evidence, beside each chord in the broker, that it was not lost.
    markers: LaunchMarkers
    #: Where the dead-letter outbox is published.
    dead_letters: DeadLetterSink
    #: The worker processes' status reports.
    heartbeats: Heartbeats
    #: Workers' answers reused for the same call.
    response_cache: ResponseCache
    #: MODEL_PRICES, parsed.
    prices: Prices
    #: Each run's progress, for the clients that follow it live.
    run_events: RunEvents

    def process_status(self) -> list[JSON]:
        """Resident memory and loaded analysers of the processes that run the workers."""
        return self.heartbeats.read()


def build_model_chain(
    settings: Settings, cap: Callable[[str, ModelAdapter], ModelAdapter] = lambda url, adapter: adapter
) -> tuple[ModelLevel, ...]:
    """The model (``MODEL_ADAPTER_URL``, else the builtin analyser), then the fallback model
    (``MODEL_FALLBACK_URL``), then the builtin analyser (``MODEL_FALLBACK_BUILTIN``).

    Fixed and acyclic: a call only ever moves down it. ``cap`` wraps each
    model endpoint's adapter (the cap on calls in flight).
    """
    if not settings.model_adapter_url:
        return (ModelLevel(BuiltinAdapter(), BUILTIN_MODEL_NAME),)
    endpoints = [(settings.model_adapter_url, settings.model_name, settings.model_read_timeout)]
    if settings.model_fallback_url:
        endpoints.append((
            settings.model_fallback_url,
            settings.model_fallback_name or settings.model_name,
            settings.model_fallback_read_timeout or settings.model_read_timeout,
        ))  # fmt: skip
    levels = [
        ModelLevel(cap(url, _openai_adapter(settings, url, name, read_timeout)), name)
        for url, name, read_timeout in endpoints
    ]
    if settings.model_fallback_builtin:
        levels.append(ModelLevel(BuiltinAdapter(), BUILTIN_MODEL_NAME))
    return tuple(levels)


def has_builtin_level(models: tuple[ModelLevel, ...]) -> bool:
    """Whether the builtin analyser answers at some level of the chain (alone, or as the last resort)."""
    return models[-1].name == BUILTIN_MODEL_NAME


def builtin_is_fallback(models: tuple[ModelLevel, ...]) -> bool:
    """Whether the builtin analyser ends a chain of models as its last resort (it answers past a deadline)."""
    return len(models) > 1 and has_builtin_level(models)


def _openai_adapter(settings: Settings, url: str, name: str, read_timeout: float) -> OpenAIChatAdapter:
    return OpenAIChatAdapter(
        base_url=url,
        model=name,
        api_key=settings.model_api_key,
        connect_timeout=settings.model_connect_timeout,
        read_timeout=read_timeout,
        max_tokens=settings.model_max_tokens,
        response_format=settings.model_response_format,
    )
