"""Every metric the service exports, declared once.

Each Flask app gets its own registry so that several apps (tests, the
embedded CLI) can live in one process without clashing names.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        #: Runs answered by POST /orchestrator/analyze, by final status
        #: (ok, partial, failed, or timeout when the caller got a 504).
        self.runs = Counter("orchestrator_api_runs", "Realtime runs by outcome", ["status"], registry=registry)
        #: Worker outcomes of those runs: which axis fails, and how.
        self.worker_outcomes = Counter(
            "orchestrator_api_worker_outcomes",
            "Worker outcomes of realtime runs",
            ["worker", "status"],
            registry=registry,
        )
        #: Requests that named an event already stored or in flight.
        self.duplicates = Counter(
            "orchestrator_api_duplicate_events", "Requests whose event was already claimed", registry=registry
        )

    def observe_bundle(self, status: str, worker_statuses: Mapping[str, str]) -> None:
        self.runs.labels(status=status).inc()
        for worker, worker_status in worker_statuses.items():
            self.worker_outcomes.labels(worker=worker, status=worker_status).inc()
