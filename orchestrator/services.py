"""The long-lived objects a process needs, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.adapters.base import ModelAdapter
from orchestrator.config import Settings
from orchestrator.store import RunStore, create_db_engine


@dataclass
class Services:
    settings: Settings
    store: RunStore
    adapter: ModelAdapter
    #: Recorded in ``llm_calls`` for attempts that got no answer.
    model_name: str


def build_adapter(settings: Settings) -> tuple[ModelAdapter, str]:
    """The OpenAI-compatible client when MODEL_ADAPTER_URL is set, else builtin."""
    if settings.model_adapter_url:
        from orchestrator.adapters.openai import OpenAIChatAdapter

        adapter = OpenAIChatAdapter(
            base_url=settings.model_adapter_url,
            model=settings.model_name,
            api_key=settings.model_api_key,
            connect_timeout=settings.model_connect_timeout,
            read_timeout=settings.model_read_timeout,
        )
        return adapter, settings.model_name
    from orchestrator.adapters.builtin import BuiltinAdapter

    return BuiltinAdapter(), "builtin"


def build_services(settings: Settings) -> Services:
    adapter, model_name = build_adapter(settings)
    store = RunStore(create_db_engine(settings.database_url))
    return Services(settings=settings, store=store, adapter=adapter, model_name=model_name)
