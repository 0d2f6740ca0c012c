"""Where everything is built: settings → services → the Celery app → the Flask app or the bridge.

The one module of the core that may import ``tasks`` and ``bridge`` (the
dependency rule, checked by ``make lint``): the rest of ``orchestrator``
receives what it needs from here.
"""

from __future__ import annotations

import logging

import redis

from bridge.consumer import Bridge
from bridge.dlq import DeadLetterPublisher
from bridge.topics import ensure_topics
from orchestrator.adapters.base import ModelAdapter
from orchestrator.analysers.resources import RESOURCES
from orchestrator.chord import InProcessLaunchMarkers, LaunchMarkers, RedisLaunchMarkers
from orchestrator.config import Settings
from orchestrator.heartbeats import Heartbeats
from orchestrator.live import NoRunEvents, RedisRunEvents
from orchestrator.model_slots import CappedAdapter, ModelSlots
from orchestrator.pipelines import load_pipelines
from orchestrator.response_cache import NoResponseCache, RedisResponseCache, ResponseCache
from orchestrator.schemas import Limits
from orchestrator.services import Services, build_model_chain, builtin_is_fallback
from orchestrator.store import RunStore, create_db_engine
from orchestrator.tracing import start_tracing, trace_database
from tasks.celery_app import OrchestratorCelery, create_celery
from tasks.results import AWAITS_RESULTS

log = logging.getLogger(__name__)


def build_services(settings: Settings, *, retries_database_errors: bool = False) -> Services:
    """The process's services. Nothing connects until first used.

    A process that ``retries_database_errors`` (a Celery worker, the bridge)
    does not test pooled connections before each use (see ``create_db_engine``).
    """
    broker = broker_redis(settings)

    def cap(url: str, adapter: ModelAdapter) -> ModelAdapter:
        if not settings.model_max_concurrency or broker is None:
            return adapter
        slots = ModelSlots(
            broker,
            url,
            limit=settings.model_max_concurrency,
            # A holder that died frees its slot once the longest call it could have made is over.
            lease_s=settings.model_connect_timeout + settings.model_read_timeout + 5,
            wait_s=settings.model_read_timeout,
        )
        return CappedAdapter(adapter, slots)

    # The analysers' resources are per process, like a cache; their budget comes from the settings.
    RESOURCES.budget_bytes = settings.memory_budget_bytes
    markers: LaunchMarkers = (
        InProcessLaunchMarkers() if broker is None else RedisLaunchMarkers(broker, ttl_s=settings.celery_result_expires)
    )
    models = build_model_chain(settings, cap)
    store = RunStore(create_db_engine(settings.database_url, pre_ping=not retries_database_errors))
    trace_database(store.engine)
    return Services(
        settings=settings,
        pipelines=load_pipelines(
            settings.extra_pipeline_modules,
            Limits.from_settings(settings),
            # A default deadline only where a late model can be replaced: by the builtin level, last in the chain.
            default_deadlines=builtin_is_fallback(models),
        ),
        store=store,
        models=models,
        markers=markers,
        dead_letters=DeadLetterPublisher(settings.kafka_bootstrap_servers, settings.kafka_dlq_topic),
        heartbeats=Heartbeats(broker),
        response_cache=build_response_cache(settings, broker),
        prices=settings.prices,
        run_events=NoRunEvents() if broker is None else RedisRunEvents(broker, ttl_s=settings.celery_result_expires),
    )


def broker_redis(settings: Settings) -> redis.Redis | None:
    """A client of the broker's Redis (launch markers, heartbeats); None in the embedded mode."""
    if settings.embedded or settings.celery_broker_url is None:
        return None
    return redis.Redis.from_url(settings.celery_broker_url, socket_timeout=5, socket_connect_timeout=5)


def build_response_cache(settings: Settings, broker: redis.Redis | None) -> ResponseCache:
    """Redis (RESPONSE_CACHE_URL, else the broker's), or no cache: switched off, or embedded (no Redis)."""
    if settings.response_cache_ttl == 0 or settings.embedded:
        return NoResponseCache()
    client = (
        redis.Redis.from_url(settings.response_cache_url, socket_timeout=5, socket_connect_timeout=5)
        if settings.response_cache_url
        else broker
    )
    return NoResponseCache() if client is None else RedisResponseCache(client, settings.response_cache_ttl)


def build_celery(settings: Settings, services: Services | None = None) -> OrchestratorCelery:
    return create_celery(settings, services or build_services(settings, retries_database_errors=True))


def celery_from_env() -> OrchestratorCelery:
    """The Celery app of ``celery -A tasks``, configured from the environment."""
    settings = Settings.from_env()
    start_tracing(settings, "orchestrator-worker")
    celery_app = build_celery(settings)
    celery_app.conf[AWAITS_RESULTS] = False  # its sweeper relaunches chords and never waits for one
    return celery_app


def build_bridge(settings: Settings) -> Bridge:
    """A bridge wired from the settings; creates the topics when missing."""
    created = ensure_topics(
        settings.kafka_bootstrap_servers,
        [settings.kafka_tasks_topic, settings.kafka_dlq_topic],
        settings.kafka_topic_partitions,
        settings.kafka_replication_factor,
    )
    if created:
        log.info("created topics %s", ", ".join(created))
    services = build_services(settings, retries_database_errors=True)
    celery_app = build_celery(settings, services)
    celery_app.conf[AWAITS_RESULTS] = False  # it launches chords and never waits for one
    return Bridge(
        settings,
        pipelines=services.pipelines,
        store=services.store,
        launcher=celery_app.launcher,
        dead_letters=services.dead_letters,
    )
