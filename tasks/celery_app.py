"""The single Celery app, configured from the settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, signals
from kombu import Queue  # type: ignore[attr-defined]

from bridge.dlq import DeadLetterPublisher
from orchestrator.config import Settings
from orchestrator.metrics import serve_process_metrics
from orchestrator.services import Services, build_services
from tasks.results import result_backend_url

_build_lock = threading.Lock()


def create_celery(settings: Settings, services: Services | None = None) -> Celery:
    """Build the Celery app and register the tasks.

    With no broker configured (embedded mode) tasks run eagerly in-process.
    ``services`` may be handed in to share the caller's database engine;
    otherwise each process builds its own on first use (after any fork).
    """
    app = Celery("orchestrator", set_as_current=False)
    app.conf.update(
        broker_url=settings.celery_broker_url or "memory://",
        result_backend=result_backend_url(settings.result_backend) if settings.result_backend else "cache+memory://",
        task_always_eager=settings.embedded,
        task_eager_propagates=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A task is acknowledged only once done, and requeued if its process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=settings.celery_result_expires,
        broker_transport_options={
            "visibility_timeout": settings.celery_visibility_timeout,
            # Sweep for tasks of dead workers every 5 s (kombu's default is
            # ~100 s), so recovery takes about the visibility timeout.
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.celery_batch_queue,
        task_queues=[Queue(settings.celery_realtime_queue), Queue(settings.celery_batch_queue)],
        # Model calls are I/O-bound: threads beat processes (see README).
        worker_pool="threads",
        worker_concurrency=16,
        # Task events cost a Redis publish per task; Flower switches them on
        # in the workers when it starts (or run the worker with -E).
        worker_send_task_events=False,
    )
    app.orchestrator_settings = settings
    app.orchestrator_services = services
    app.orchestrator_dead_letters = None

    from tasks.workers import register_tasks

    register_tasks(app, settings)
    return app


@signals.worker_init.connect
def _serve_worker_metrics(sender: Any = None, **_: Any) -> None:
    settings = getattr(getattr(sender, "app", None), "orchestrator_settings", None)
    if settings is not None:
        serve_process_metrics(settings.metrics_port)


def dead_letter_publisher(app: Celery) -> DeadLetterPublisher:
    """This process's dead-letter producer for ``app``, created on first use."""
    settings = app.orchestrator_settings
    publisher: DeadLetterPublisher = _built_once(
        app,
        "orchestrator_dead_letters",
        lambda: DeadLetterPublisher(settings.kafka_bootstrap_servers, settings.kafka_dlq_topic),
    )
    return publisher


def services_of(app: Celery) -> Services:
    """This process's services for ``app``, built on first use (after any fork)."""
    services: Services = _built_once(app, "orchestrator_services", lambda: build_services(app.orchestrator_settings))
    return services


def _built_once(app: Celery, attribute: str, build: Callable[[], Any]) -> Any:
    value = getattr(app, attribute)
    if value is None:
        with _build_lock:
            value = getattr(app, attribute)
            if value is None:
                value = build()
                setattr(app, attribute, value)
    return value
