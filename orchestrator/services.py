"""The long-lived objects a process needs, built once from the settings (by ``orchestrator.wiring``)."""

from __future__ import annotations

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
from orchestrator.pipelines import Pipelines
from orchestrator.response_cache import ResponseCache
from orchestrator.store import RunStore


@dataclass
class Services:
    settings: Settings
    #: The pipelines this process runs, by name.
    pipelines: Pipelines
    store: RunStore
    adapter: ModelAdapter
    #: Recorded in ``llm_calls`` for attempts that got no answer.
    model_name: str
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

    def process_status(self) -> list[JSON]:
        """Resident memory and loaded analysers of the processes that run the workers."""
        return self.heartbeats.read()


def build_adapter(settings: Settings) -> tuple[ModelAdapter, str]:
    """The OpenAI-compatible client when MODEL_ADAPTER_URL is set, else builtin."""
    if settings.model_adapter_url:
        adapter = OpenAIChatAdapter(
            base_url=settings.model_adapter_url,
            model=settings.model_name,
            api_key=settings.model_api_key,
            connect_timeout=settings.model_connect_timeout,
            read_timeout=settings.model_read_timeout,
        )
        return adapter, settings.model_name
    return BuiltinAdapter(), BUILTIN_MODEL_NAME
