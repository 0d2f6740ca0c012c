"""Every metric the service exports, declared once.

The API's metrics live in a registry per Flask app, so several apps (tests,
the embedded CLI) can share a process. The bridge's and the workers'
metrics are process-wide (default registry), served on METRICS_PORT.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

# --- bridge and workers (default registry) ---------------------------------

#: Kafka messages handed off by the bridge, by outcome: launched, duplicate,
#: dead_letter_decode, dead_letter_validation, dead_letter_processing.
BRIDGE_EVENTS = Counter("orchestrator_bridge_events", "Kafka messages handed off, by outcome", ["outcome"])
#: Hand-offs retried because the database, Redis or Kafka failed.
BRIDGE_RETRIES = Counter("orchestrator_bridge_retries", "Hand-offs retried after an infrastructure error")
#: Runs launched by this bridge and not finished (bounded by BRIDGE_MAX_IN_FLIGHT).
BRIDGE_IN_FLIGHT = Gauge("orchestrator_bridge_in_flight", "Runs launched by this bridge and not finished")
#: 1 while the bridge has paused its partitions for backpressure.
BRIDGE_PAUSED = Gauge("orchestrator_bridge_paused", "1 while partitions are paused for backpressure")
#: Failed attempts to publish a dead letter (each retry counts; none is dropped).
DEAD_LETTER_PUBLISH_FAILURES = Counter(
    "orchestrator_dead_letter_publish_failures", "Failed attempts to publish a dead letter (each retry counts)"
)
#: Retries scheduled by the tasks, by task and reason: ``model`` (a transient
#: model error), ``fallback`` (a move down the degradation chain) or ``outage``
#: (the database or Redis was unreachable).
TASK_RETRIES = Counter("orchestrator_task_retries", "Task retries by task and reason", ["task", "reason"])
#: Finished runs by source and status, counted by the worker that aggregated them.
#: (Per pipeline: the stats endpoint, computed from the database.)
RUNS_FINISHED = Counter("orchestrator_runs_finished", "Finished runs by source and status", ["source", "status"])
#: Model call attempts by worker and status (ok, cached, error, timeout). Worker names
#: are unique across the builtin pipelines.
MODEL_CALLS = Counter("orchestrator_model_calls", "Model call attempts by worker and status", ["worker", "status"])
#: Reads and writes of the response cache that failed (the call went to the model instead).
RESPONSE_CACHE_ERRORS = Counter(
    "orchestrator_response_cache_errors", "Failed reads and writes of the response cache", ["operation"]
)


def serve_process_metrics(port: int) -> None:
    """Expose the process-wide metrics on ``port`` (0: not at all)."""
    if port:
        start_http_server(port)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        #: Runs answered by POST /orchestrator/analyze, by final status
        #: (ok, partial, failed, or timeout when the caller got a 504).
        self.runs = Counter("orchestrator_api_runs", "Realtime runs by outcome", ["status"], registry=registry)
        #: Worker outcomes of those runs: which worker fails, and how.
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
