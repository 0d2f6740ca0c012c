"""The HTTP API: a Flask app factory.

``POST /orchestrator/analyze`` runs the same chord as the Kafka path and waits
for it. Bad input is answered 400/422 with field errors and writes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from flask import Flask, Response, jsonify, request
from marshmallow import ValidationError
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics
from werkzeug.exceptions import HTTPException

from orchestrator import wiring
from orchestrator.auth import BearerTokens
from orchestrator.chord import ChordLauncher
from orchestrator.config import Settings
from orchestrator.domain import JSON
from orchestrator.engine import bundle_response
from orchestrator.errors import Verdict, classify, describe
from orchestrator.metrics import ApiMetrics
from orchestrator.openapi import build_openapi, render_docs
from orchestrator.pipelines.tutor import NAME as TUTOR
from orchestrator.runs import (
    ClaimInProgress,
    RunTimeout,
    UnknownContext,
    follow_run,
    run_metadata,
    submit_analysis_waiting,
    wait_for_bundle,
)
from orchestrator.schemas import idempotency_key_error
from orchestrator.services import Services
from orchestrator.sessions import read_session
from orchestrator.stats import DEFAULT_WINDOW_S, MAX_WINDOW_S, compute_stats
from orchestrator.tracing import trace_flask, valid_traceparent

log = logging.getLogger(__name__)

#: The web page served at ``/`` (plain HTML and JavaScript, no build step).
PAGE = (Path(__file__).parent / "web" / "index.html").read_text(encoding="utf-8")


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    launcher: ChordLauncher | None = None,
) -> Flask:
    """Build the API. Nothing connects until the first request.

    What is not handed in is built from the settings (by ``orchestrator.wiring``).
    """
    settings = settings or Settings.from_env()
    services = services or wiring.build_services(settings)
    launcher = launcher or wiring.build_celery(settings, services).launcher

    app = Flask(__name__)
    trace_flask(app)
    # Generous enough for the largest valid body, small enough to refuse
    # absurd ones before parsing them.
    app.config["MAX_CONTENT_LENGTH"] = 8 * settings.max_total_chars + 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    registry = CollectorRegistry()
    PrometheusMetrics(app, group_by="url_rule", registry=registry)
    api_metrics = ApiMetrics(registry)
    pipelines, store = services.pipelines, services.store
    tokens = BearerTokens(settings.bearer_tokens, settings.open_paths)

    @app.before_request
    def authenticate() -> tuple[Response, int] | None:
        if not tokens.enabled or tokens.is_open(request.path) or tokens.accepts(request.headers.get("Authorization")):
            return None
        response, status = _error(
            401, "unauthorized", "This API needs a token: send the header 'Authorization: Bearer <token>'."
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="orchestrator"'
        return response, status

    def run_to_the_end(body: Any) -> JSON | tuple[Response, int]:
        """Validate the body, run it (or find its run) and wait for it: the bundle, or an error response."""
        if body is None:
            return _error(400, "invalid_json", "The body must be a JSON object (Content-Type: application/json).")
        try:
            analysis = pipelines.load_request(body)
        except ValidationError as exc:
            return _field_errors(exc.messages)
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            problem = idempotency_key_error(key, pipelines.limits)
            if problem:
                return _field_errors({"Idempotency-Key": [problem]})
            analysis = replace(analysis, event_id=key)
        if _asks_for_fresh_answers(request.headers.get("Cache-Control", "")):
            analysis = replace(analysis, use_cache=False)
        pipeline = pipelines[analysis.pipeline]
        try:
            submission = submit_analysis_waiting(
                analysis,
                timeout=settings.analyze_timeout,
                source="api",
                store=store,
                launcher=launcher,
                queue=settings.celery_realtime_queue,
                lease=timedelta(seconds=settings.claim_lease),
                traceparent=_traceparent(),
            )
        except UnknownContext as exc:
            return _field_errors({"segments": [str(exc)]})
        except ClaimInProgress as exc:
            api_metrics.runs.labels(status="timeout").inc()
            return _error(504, "timeout", f"{exc}; try again later")
        if not submission.launched:
            api_metrics.duplicates.inc()
        if _prefers_async(request.headers.get("Prefer", "")):
            run_id = submission.run.id
            accepted = jsonify(
                run_id=run_id,
                event_id=submission.run.event_id,
                status="pending",
                status_url=f"/orchestrator/runs/{run_id}",
                events_url=f"/orchestrator/runs/{run_id}/events",
            )
            accepted.headers["Preference-Applied"] = "respond-async"
            accepted.headers["Location"] = f"/orchestrator/runs/{run_id}"
            return accepted, 202
        try:
            bundle = wait_for_bundle(submission, pipeline=pipeline, store=store, timeout=settings.analyze_timeout)
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
        return {**bundle, "metadata": run_metadata(store, bundle["run_id"])}

    @app.post("/orchestrator/analyze")
    def analyze() -> tuple[Response, int]:
        outcome = run_to_the_end(_json_body())
        return outcome if isinstance(outcome, tuple) else (jsonify(outcome), 200)

    @app.post("/api/v1/ai/analyze")
    def tutor_analyze() -> tuple[Response, int]:
        """The tutoring document's endpoint: the tutor pipeline."""
        body = _json_body()
        if isinstance(body, dict):
            if body.get("pipeline", TUTOR) != TUTOR:
                return _field_errors({"pipeline": [f"This endpoint runs the {TUTOR} pipeline."]})
            body = {**body, "pipeline": TUTOR}
        outcome = run_to_the_end(body)
        return outcome if isinstance(outcome, tuple) else (jsonify(outcome), 200)

    @app.get("/api/v1/ai/sessions/<session_id>")
    def get_session(session_id: str) -> tuple[Response, int]:
        session = read_session(store, session_id)
        if session is None:
            return _error(404, "not_found", f"No tutoring session {session_id!r}.")
        return jsonify(session), 200

    @app.get("/api/v1/ai/orchestrator/health")
    def tutor_health() -> tuple[Response, int]:
        checks, healthy = health_checks()
        body = {"status": "healthy" if healthy else "unhealthy", "checks": checks, "pipelines": list(pipelines)}
        return jsonify(body), 200 if healthy else 503

    @app.get("/orchestrator/stats")
    @app.get("/api/v1/ai/orchestrator/stats")
    def stats() -> tuple[Response, int]:
        try:
            window_s = float(request.args.get("window", DEFAULT_WINDOW_S))
        except ValueError:
            window_s = -1.0
        if not 0 < window_s <= MAX_WINDOW_S:
            return _field_errors({"window": [f"Seconds, more than 0 and at most {MAX_WINDOW_S:g}."]})
        return jsonify(compute_stats(store, window_s=window_s, processes=services.process_status())), 200

    @app.get("/orchestrator/runs/<run_key>/events")
    def run_events(run_key: str) -> Response | tuple[Response, int]:
        """Server-Sent Events: one ``worker`` event per worker as it finishes, then the ``bundle``."""
        run = store.get_run(run_key)
        if run is None:
            return _error(404, "not_found", f"No run with run id or event id {run_key!r}.")
        events = follow_run(
            run,
            pipeline=pipelines[run.pipeline],
            store=store,
            run_events=services.run_events,
            timeout=settings.analyze_timeout,
        )

        def stream() -> Iterator[str]:
            for event in events:
                yield ": keep-alive\n\n" if event is None else _server_sent(*event)

        response = Response(stream(), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # a proxy must not hold the stream back
        return response

    @app.get("/orchestrator/runs/<run_key>/calls")
    def run_calls(run_key: str) -> tuple[Response, int]:
        """Every model call of the run, in order: the audit, without the outputs."""
        run = store.get_run(run_key)
        if run is None:
            return _error(404, "not_found", f"No run with run id or event id {run_key!r}.")
        calls = [
            {
                "worker": call.worker,
                "attempt": call.attempt,
                "level": call.level,
                "repair": call.repair,
                "model": call.model,
                "prompt_ref": call.prompt_ref,
                "status": call.status,
                "latency_ms": call.latency_ms,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "cost_usd": call.cost_usd,
                "error": call.error,
            }
            for call in store.calls_for(run.id)
        ]
        return jsonify(calls), 200

    @app.get("/")
    def page() -> Response:
        """The web page: try a pipeline and watch it work."""
        return Response(PAGE, mimetype="text/html")

    @app.get("/orchestrator/runs/<run_key>")
    def get_run(run_key: str) -> tuple[Response, int]:
        run = store.get_run(run_key)
        if run is None:
            return _error(404, "not_found", f"No run with run id or event id {run_key!r}.")
        detail: JSON = {
            **bundle_response(run, pipelines[run.pipeline]),
            "pipeline": run.pipeline,
            "source": run.source,
            "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "duration_ms": run.duration_ms,
        }
        return jsonify(detail), 200

    def health_checks() -> tuple[dict[str, str], bool]:
        checks = {"database": _check(store.ping), "broker": _check(lambda: _ping_broker(launcher.app, settings))}
        return checks, all(v == "ok" for v in checks.values())

    openapi = build_openapi(pipelines)
    docs = render_docs(openapi)

    @app.get("/openapi.json")
    def openapi_document() -> tuple[Response, int]:
        return jsonify(openapi), 200

    @app.get("/docs")
    def openapi_docs() -> Response:
        return Response(docs, mimetype="text/html")

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        checks, healthy = health_checks()
        return jsonify(status="ok" if healthy else "unavailable", checks=checks), 200 if healthy else 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        return _error(code, (exc.name or "error").lower().replace(" ", "_"), exc.description or "")

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> tuple[Response, int]:
        if classify(exc) is Verdict.INFRASTRUCTURE:
            log.warning("%s %s: a service is unavailable: %s", request.method, request.path, exc)
            response, status = _error(503, "unavailable", f"A service is unavailable; try again: {describe(exc)}")
            response.headers["Retry-After"] = "5"
            return response, status
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal_error", describe(exc))

    return app


def _json_body() -> Any:
    """The request's JSON body, or None when there is none usable."""
    try:
        return request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting is not a usable body
        return None


def _error(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify(error=error, message=message), status


def _field_errors(messages: Any) -> tuple[Response, int]:
    return jsonify(error="validation_failed", fields=messages), 422


def _prefers_async(prefer: str) -> bool:
    """``Prefer: respond-async`` (RFC 7240): answer at once with where to follow the run."""
    return "respond-async" in {part.strip().lower() for part in prefer.replace(";", ",").split(",")}


def _server_sent(kind: str, data: JSON) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _asks_for_fresh_answers(cache_control: str) -> bool:
    """``Cache-Control: no-cache`` (or ``no-store``): answer without the response cache."""
    directives = {part.strip().lower() for part in cache_control.split(",")}
    return bool(directives & {"no-cache", "no-store"})


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
