"""Traces: the W3C trace context carried from requests and messages to model calls, and OpenTelemetry spans.

Spans are written through the OpenTelemetry API, which records nothing until
``start_tracing`` installs the SDK in the process: only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, so a process without a collector pays
for no span. Then the maintained instrumentations add theirs: Celery (task
publish and run, the trace context travelling in the task's headers),
requests (model HTTP calls, the ``traceparent`` they send), SQLAlchemy
(statements) and Flask (the API). There is none for our Kafka client's
``poll`` loop: the bridge writes its consume span by hand (``consume_span``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context, propagate, trace

from orchestrator.config import Settings

if TYPE_CHECKING:
    from flask import Flask
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

#: The tracer of the spans this service writes itself.
tracer = trace.get_tracer("orchestrator")


def valid_traceparent(value: str | None) -> str | None:
    """``value`` if it is a well-formed ``traceparent``, else None (W3C: ignore bad ones)."""
    if value is None:
        return None
    value = value.strip().lower()
    return value if _TRACEPARENT.fullmatch(value) else None


def start_tracing(settings: Settings, service_name: str) -> TracerProvider | None:
    """Send this process's spans to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (OTLP over HTTP); None when it is unset.

    ``service_name`` names the process in the traces unless ``OTEL_SERVICE_NAME``
    does. Call it once, at the start of an entry point, before the services
    are built. The SDK reads the other standard variables itself (sampler,
    headers, timeout, resource attributes).
    """
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return None
    if tracing_started():
        return trace.get_tracer_provider()  # type: ignore[return-value]
    # Imported here: a process that does not trace does not load the SDK and the instrumentations.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name or service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    trace.set_tracer_provider(provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RequestsInstrumentor().instrument(tracer_provider=provider)
    log.info("tracing: %s sends its spans to %s", service_name, endpoint)
    return provider


def tracing_started() -> bool:
    """True once ``start_tracing`` installed the SDK in this process."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def trace_database(engine: Engine) -> None:
    """Spans for ``engine``'s statements, if this process traces."""
    if tracing_started():
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # Its declared range ends before SQLAlchemy 2.1, which it predates; the engine events it listens
        # to are unchanged in 2.1 (tests/orchestrator/test_tracing.py sees the statements' spans). It
        # imports sqlalchemy.ext.asyncio, hence the sqlalchemy[asyncio] requirement.
        SQLAlchemyInstrumentor().instrument(
            engine=engine, tracer_provider=trace.get_tracer_provider(), skip_dep_check=True
        )


def trace_flask(app: Flask) -> None:
    """Spans for the API's requests (parented by their ``traceparent``), if this process traces."""
    if tracing_started():
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor.instrument_app(app, tracer_provider=trace.get_tracer_provider())  # type: ignore[no-untyped-call]


def parent_context(traceparent: str | None) -> context.Context | None:
    """The context a stored or received ``traceparent`` continues; None when there is none."""
    if traceparent is None:
        return None
    return propagate.extract({"traceparent": traceparent})


@contextmanager
def continued_span(name: str, traceparent: str | None, **attributes: Any) -> Iterator[trace.Span]:
    """A span named ``name``: a child of the current span, or else of ``traceparent`` (a relaunch's stored one)."""
    current = trace.get_current_span().get_span_context()
    parent = None if current.is_valid else parent_context(traceparent)
    with tracer.start_as_current_span(name, context=parent, attributes=_attributes(attributes)) as span:
        yield span


@contextmanager
def consume_span(topic: str, partition: int, offset: int, traceparent: str | None) -> Iterator[trace.Span]:
    """The span of handling one Kafka message: a child of its ``traceparent`` header's span, if it has one."""
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
    }
    with tracer.start_as_current_span(
        f"process {topic}", context=parent_context(traceparent), kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:  # fmt: skip
        yield span


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes under the ``orchestrator.`` namespace; None values left out."""
    return {f"orchestrator.{name}": value for name, value in values.items() if value is not None}
