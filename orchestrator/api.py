"""The HTTP API: a Flask app factory.

``POST /orchestrator/analyze`` runs the same chord as the Kafka path and waits
for it. Bad input is answered 400/422 with field errors and writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from celery import Celery
from flask import Flask, Response, jsonify, request
from marshmallow import ValidationError
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics
from werkzeug.exceptions import HTTPException

from orchestrator.config import Settings
from orchestrator.domain import JSON
from orchestrator.metrics import ApiMetrics
from orchestrator.pipeline import bundle_response
from orchestrator.runs import ClaimInProgress, RunTimeout, UnknownContext, submit_analysis_waiting, wait_for_bundle
from orchestrator.schemas import AnalyzeRequestSchema, Limits, idempotency_key_error
from orchestrator.services import Services, build_services
from orchestrator.tracing import valid_traceparent

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    celery_app: Celery | None = None,
) -> Flask:
    """Build the API. Nothing connects until the first request."""
    settings = settings or Settings.from_env()
    services = services or build_services(settings)
    if celery_app is None:
        from tasks.celery_app import create_celery

        celery_app = create_celery(settings, services)

    app = Flask(__name__)
    # Generous enough for the largest valid body, small enough to refuse
    # absurd ones before parsing them.
    app.config["MAX_CONTENT_LENGTH"] = 8 * settings.max_total_chars + 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    registry = CollectorRegistry()
    PrometheusMetrics(app, group_by="url_rule", registry=registry)
    api_metrics = ApiMetrics(registry)
    schema = AnalyzeRequestSchema(limits=Limits.from_settings(settings))
    store = services.store

    @app.post("/orchestrator/analyze")
    def analyze() -> tuple[Response, int]:
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # absurdly deep nesting is not a usable body
            body = None
        if body is None:
            return _error(400, "invalid_json", "The body must be a JSON object (Content-Type: application/json).")
        try:
            analysis = schema.load(body)
        except ValidationError as exc:
            return _field_errors(exc.messages)
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            problem = idempotency_key_error(key, schema.limits)
            if problem:
                return _field_errors({"Idempotency-Key": [problem]})
            analysis = replace(analysis, event_id=key)
        try:
            submission = submit_analysis_waiting(
                analysis,
                timeout=settings.analyze_timeout,
                source="api",
                store=store,
                celery_app=celery_app,
                queue=settings.celery_realtime_queue,
                traceparent=_traceparent(),
            )
        except UnknownContext as exc:
            return _field_errors({"segments": [str(exc)]})
        except ClaimInProgress as exc:
            api_metrics.runs.labels(status="timeout").inc()
            return _error(504, "timeout", f"{exc}; try again later")
        if not submission.launched:
            api_metrics.duplicates.inc()
        try:
            bundle = wait_for_bundle(submission, store=store, timeout=settings.analyze_timeout)
        except RunTimeout as exc:
            api_metrics.runs.labels(status="timeout").inc()
            response = jsonify(
                error="timeout",
                message=str(exc),
                run_id=exc.run_id,
                status_url=f"/orchestrator/runs/{exc.run_id}",
            )
            return response, 504
        api_metrics.observe_bundle(bundle["status"], bundle["worker_statuses"])
        return jsonify(bundle), 200

    @app.get("/orchestrator/runs/<run_key>")
    def get_run(run_key: str) -> tuple[Response, int]:
        run = store.get_run(run_key)
        if run is None:
            return _error(404, "not_found", f"No run with run id or event id {run_key!r}.")
        detail: JSON = {
            **bundle_response(run),
            "source": run.source,
            "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "duration_ms": run.duration_ms,
        }
        return jsonify(detail), 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        checks = {"database": _check(store.ping), "broker": _check(lambda: _ping_broker(celery_app, settings))}
        healthy = all(v == "ok" for v in checks.values())
        return jsonify(status="ok" if healthy else "unavailable", checks=checks), 200 if healthy else 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        return _error(code, (exc.name or "error").lower().replace(" ", "_"), exc.description or "")

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")

    return app


def _error(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify(error=error, message=message), status


def _field_errors(messages: Any) -> tuple[Response, int]:
    return jsonify(error="validation_failed", fields=messages), 422


def _traceparent() -> str | None:
    return valid_traceparent(request.headers.get("traceparent"))


def _check(probe: Any) -> str:
    try:
        probe()
    except Exception as exc:  # a health check reports, it does not raise
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


def _ping_broker(celery_app: Celery, settings: Settings) -> None:
    if settings.embedded:
        return  # in-process: there is no broker to lose
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
