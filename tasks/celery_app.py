"""The single Celery app, configured from the settings and carrying the services its tasks use."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery, signals
from kombu import Queue  # type: ignore[attr-defined]

import tasks.workers  # noqa: F401  (registers the tasks with every app)
from orchestrator.chord import ChordLauncher
from orchestrator.config import Settings
from orchestrator.maintenance import HEARTBEAT_INTERVAL_S, Duty, Maintenance, outbox_duty
from orchestrator.metrics import serve_process_metrics
from orchestrator.services import Services, has_builtin_level
from orchestrator.sweeper import sweep_stuck_runs
from tasks.results import result_backend_url


class OrchestratorCelery(Celery):  # type: ignore[misc]
    """A Celery app that knows the settings and services of its process.

    Tasks reach them as ``self.app.services`` (see ``tasks.base``). In a
    worker process, ``maintenance`` publishes the dead-letter outbox and
    sweeps for stuck runs on a background thread.
    """

    def __init__(self, settings: Settings, services: Services) -> None:
        super().__init__("orchestrator", set_as_current=False)
        self.settings = settings
        self.services = services
        self.launcher = ChordLauncher(self, services.markers, services.pipelines)
        self.maintenance: Maintenance | None = None

    @property
    def queues_by_source(self) -> dict[str, str]:
        """Kafka runs go to the batch queue; API and CLI runs to the realtime one."""
        batch, realtime = self.settings.celery_batch_queue, self.settings.celery_realtime_queue
        return {"kafka": batch, "api": realtime, "cli": realtime}

    def start_maintenance(self) -> None:
        """Start this process's outbox publisher and sweeper (once)."""
        if self.maintenance is not None:
            return
        services, settings = self.services, self.settings

        def sweep() -> object:
            return sweep_stuck_runs(
                store=services.store,
                launcher=self.launcher,
                markers=services.markers,
                queues=self.queues_by_source,
                lease=timedelta(seconds=settings.claim_lease),
                max_relaunches=settings.max_relaunches,
            )

        self.maintenance = Maintenance(
            [
                outbox_duty(services.store, services.dead_letters),
                Duty("sweeping for stuck runs", sweep, settings.sweep_interval),
                Duty("reporting this process's status", services.heartbeats.publish, HEARTBEAT_INTERVAL_S),
            ]
        )
        self.maintenance.start()

    def warm_analysers(self) -> None:
        """Load the builtin analysers' heavy resources now, so that the first request is not slow.

        Only when they can answer: a worker whose chain has no builtin level
        (a model without ``MODEL_FALLBACK_BUILTIN``) never runs them, and
        saves their ~450 MB.
        """
        if not has_builtin_level(self.services.models):
            return
        for pipeline in self.services.pipelines.values():
            if pipeline.warm is not None:
                pipeline.warm()


def create_celery(settings: Settings, services: Services) -> OrchestratorCelery:
    """Build the Celery app. With no broker configured (embedded mode) tasks run eagerly in-process."""
    app = OrchestratorCelery(settings, services)
    app.conf.update(
        broker_url=settings.celery_broker_url or "memory://",
        # Rides out a Redis failover (READONLY) instead of exiting: see tasks.transport.
        broker_transport="tasks.transport:Transport" if settings.celery_broker_url else None,
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
            # The sweep's lock: a worker killed while holding it would block
            # every sweep for kombu's default 300 s; a sweep takes milliseconds.
            "unacked_mutex_expire": 30,
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
    return app


@signals.worker_init.connect
def _warm_the_worker(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if isinstance(app, OrchestratorCelery) and app.settings.warm_analysers:
        app.warm_analysers()  # before the worker takes its first task


@signals.worker_ready.connect
def _start_worker_duties(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if isinstance(app, OrchestratorCelery):
        serve_process_metrics(app.settings.metrics_port)
        app.start_maintenance()
