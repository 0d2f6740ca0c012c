"""All configuration, read from the environment in one place.

Only entry points (the Flask app factory, the Celery app module, the CLI and
the bridge) call ``Settings.from_env()``; everything else receives settings.
The defaults give the embedded mode: no broker (the chord runs in-process),
SQLite, and the builtin model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from orchestrator.auth import MIN_TOKEN_LENGTH

#: MODEL_RESPONSE_FORMAT's values (see ``orchestrator.adapters.openai``).
RESPONSE_FORMATS = ("json_object", "json_schema", "json_object_schema", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


class ConfigError(ValueError):
    """An environment variable holds a value of the wrong kind."""


def parse_prices(raw: str) -> dict[str, tuple[float, float]]:
    """``"name=input:output,..."`` as ``{name: (input, output)}``; raises ``ConfigError``.

    The name is what comes before the last ``=`` (names such as ``llama3:8b`` keep their colon).
    """
    prices: dict[str, tuple[float, float]] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, _, price = entry.rpartition("=")
        try:
            input_price, output_price = (float(value) for value in price.split(":"))
        except ValueError:
            raise ConfigError(
                f"MODEL_PRICES entry {entry!r} is not name=input:output (dollars per 1k tokens)"
            ) from None
        if not name.strip() or input_price < 0 or output_price < 0:
            raise ConfigError(f"MODEL_PRICES entry {entry!r} needs a model name and prices of at least 0")
        prices[name.strip()] = (input_price, output_price)
    return prices


@dataclass(frozen=True)
class Settings:
    """Every setting, with its environment variable and default (see README)."""

    #: DATABASE_URL: SQLAlchemy URL. PostgreSQL in production; SQLite embedded.
    database_url: str = "sqlite:///orchestrator.db"
    #: CELERY_BROKER_URL: unset means embedded mode (the chord runs in-process).
    celery_broker_url: str | None = None
    #: CELERY_RESULT_BACKEND: defaults to the broker URL (Redis).
    celery_result_backend: str | None = None
    #: CELERY_VISIBILITY_TIMEOUT: seconds before Redis redelivers an unacked task
    #: of a dead worker. Must stay far above the longest task (all retries).
    celery_visibility_timeout: int = 300
    #: CELERY_RESULT_EXPIRES: seconds chord results live in Redis; the truth is
    #: in the database.
    celery_result_expires: int = 3600
    #: CELERY_REALTIME_QUEUE / CELERY_BATCH_QUEUE: API work never waits behind
    #: a Kafka backlog.
    celery_realtime_queue: str = "realtime"
    celery_batch_queue: str = "analysis"

    #: MODEL_ADAPTER_URL: OpenAI-compatible base URL (e.g. http://host:8000/v1);
    #: unset means the builtin offline analyser.
    model_adapter_url: str | None = None
    #: MODEL_NAME / MODEL_API_KEY: sent to the OpenAI-compatible endpoint.
    model_name: str = "gpt-4o-mini"
    model_api_key: str | None = None
    #: MODEL_CONNECT_TIMEOUT / MODEL_READ_TIMEOUT: seconds, per HTTP call.
    model_connect_timeout: float = 3.05
    model_read_timeout: float = 30.0
    #: MODEL_MAX_RETRIES: retries after the first attempt of a worker's call.
    model_max_retries: int = 3
    #: MODEL_RETRY_BACKOFF_MAX: cap in seconds on the delay between attempts.
    model_retry_backoff_max: float = 20.0
    #: MODEL_MAX_TOKENS: most tokens a model may write per answer (sent as
    #: ``max_tokens``); unset leaves it to the server.
    model_max_tokens: int | None = None
    #: MODEL_FALLBACK_URL / MODEL_FALLBACK_NAME: a second OpenAI-compatible
    #: model, asked when the first one failed (its name defaults to MODEL_NAME).
    model_fallback_url: str | None = None
    model_fallback_name: str | None = None
    #: MODEL_FALLBACK_READ_TIMEOUT: the fallback model's own MODEL_READ_TIMEOUT
    #: (defaults to it): each level of the chain waits as long as it should.
    model_fallback_read_timeout: float | None = None
    #: MODEL_FALLBACK_BUILTIN: the builtin analyser answers when every model
    #: failed (the worker's status is then ``fallback``, not ``error``).
    model_fallback_builtin: bool = False
    #: MODEL_RESPONSE_FORMAT: how answers are constrained: json_object (any
    #: JSON object), json_schema (the worker's schema, OpenAI structured
    #: outputs), json_object_schema (the schema, llama.cpp's way), none.
    model_response_format: str = "json_object"
    #: MODEL_MAX_CONCURRENCY: most calls in flight to the model endpoint across
    #: all workers (shared through Redis); 0 means no cap.
    model_max_concurrency: int = 0
    #: MODEL_PRICES: US dollars per 1,000 input and output tokens, per model
    #: name, as "name=input:output,..." (e.g. "gpt-4o-mini=0.00015:0.0006").
    #: A model without a price has a null cost; the builtin model costs 0.
    model_prices: str = ""
    #: RESPONSE_CACHE_TTL: seconds a worker's answer is reused for the same
    #: call (7 days); 0 switches the cache off.
    response_cache_ttl: int = 7 * 24 * 3600
    #: RESPONSE_CACHE_URL: the Redis holding the cache; defaults to the broker's.
    response_cache_url: str | None = None

    #: ANALYZE_TIMEOUT: seconds POST /orchestrator/analyze waits before a 504.
    analyze_timeout: float = 120.0
    #: MAX_SEGMENTS / MAX_TOTAL_CHARS / MAX_ID_LENGTH: input limits.
    max_segments: int = 2000
    max_total_chars: int = 200_000
    max_id_length: int = 128

    #: KAFKA_*: the ingestion bridge and the dead-letter producer.
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_group_id: str = "orchestrator"
    kafka_tasks_topic: str = "analysis.tasks"
    kafka_dlq_topic: str = "analysis.dlq"
    kafka_topic_partitions: int = 3
    #: KAFKA_REPLICATION_FACTOR: for topics the bridge creates (3 on a real cluster).
    kafka_replication_factor: int = 1
    #: BRIDGE_MAX_IN_FLIGHT: runs launched by one bridge and not yet finished
    #: before it pauses its partitions.
    bridge_max_in_flight: int = 64

    #: DATABASE_RETRY_TIMEOUT: seconds a worker task, the fan-in or the bridge
    #: keeps retrying while the database (or Redis) is unreachable, before it
    #: gives up. Separate from the model's retries: an outage is waited out.
    database_retry_timeout: float = 600.0
    #: CLAIM_LEASE: seconds the claimer of an event has to launch its chord;
    #: afterwards another caller may take the claim over.
    claim_lease: float = 15.0
    #: SWEEP_INTERVAL: seconds between two sweeps for lost chords, in every
    #: Celery worker process; 0 turns the sweeper off.
    sweep_interval: float = 30.0
    #: MAX_RELAUNCHES: how often the sweeper relaunches a run whose chord was
    #: lost before it records the run as failed.
    max_relaunches: int = 2

    #: METRICS_PORT: where a bridge or Celery worker process serves its
    #: Prometheus metrics; 0 turns it off (the API serves /metrics itself).
    metrics_port: int = 0

    #: OTEL_EXPORTER_OTLP_ENDPOINT: an OpenTelemetry collector's OTLP/HTTP base
    #: URL (e.g. http://collector:4318); spans are sent to its /v1/traces.
    #: Unset: no traces. The SDK reads the other standard OTEL_* variables.
    otel_exporter_otlp_endpoint: str | None = None
    #: OTEL_SERVICE_NAME: the processes' name in the traces; unset, each
    #: names itself (orchestrator-api, -bridge, -worker, -cli).
    otel_service_name: str | None = None

    #: ORCHESTRATOR_MAX_MEMORY_GB: resident memory a process may use before the
    #: least recently used builtin analysers are unloaded; unset means no limit.
    orchestrator_max_memory_gb: float | None = None

    #: WARM_ANALYSERS: load the builtin analysers when a Celery worker starts
    #: (a few seconds and about 500 MB), so that its first request is not slow.
    warm_analysers: bool = True

    #: PIPELINE_MODULES: comma-separated modules, each defining a ``PIPELINE``,
    #: run besides the builtin pipelines.
    pipeline_modules: str = ""

    #: API_TOKENS: comma-separated bearer tokens of the HTTP API; unset leaves
    #: the API open. API_OPEN_PATHS: paths served without a token.
    api_tokens: str = ""
    api_open_paths: str = "/,/healthz,/metrics"

    #: LOG_LEVEL: DEBUG, INFO, WARNING, ...
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        # The id columns are VARCHAR(128): a longer limit would let ids pass
        # validation and then fail to store.
        if not 1 <= self.max_id_length <= 128:
            raise ConfigError(f"MAX_ID_LENGTH={self.max_id_length} must be between 1 and 128")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL={self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        for name in ("max_segments", "max_total_chars", "bridge_max_in_flight", "kafka_topic_partitions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.upper()} must be at least 1")
        for name in ("database_retry_timeout", "claim_lease"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.upper()} must be positive")
        for name in ("sweep_interval", "max_relaunches", "response_cache_ttl", "model_max_concurrency"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.upper()} must not be negative")
        if self.model_response_format not in RESPONSE_FORMATS:
            raise ConfigError(
                f"MODEL_RESPONSE_FORMAT={self.model_response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}"
            )
        for name in ("model_read_timeout", "model_connect_timeout", "model_fallback_read_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name.upper()} must be positive")
        for token in self.bearer_tokens:
            if len(token) < MIN_TOKEN_LENGTH or any(character.isspace() for character in token):
                # (The token itself is not quoted: it is a secret.)
                raise ConfigError(f"API_TOKENS: every token needs at least {MIN_TOKEN_LENGTH} characters and no spaces")
        parse_prices(self.model_prices)  # refused at start, not at the first call
        if self.model_max_tokens is not None and self.model_max_tokens < 1:
            raise ConfigError("MODEL_MAX_TOKENS must be at least 1")
        if self.orchestrator_max_memory_gb is not None and self.orchestrator_max_memory_gb <= 0:
            raise ConfigError("ORCHESTRATOR_MAX_MEMORY_GB must be positive")

    @property
    def prices(self) -> dict[str, tuple[float, float]]:
        """``MODEL_PRICES`` as ``{model: (input, output)}``, in US dollars per 1,000 tokens."""
        return parse_prices(self.model_prices)

    @property
    def bearer_tokens(self) -> list[str]:
        return [token.strip() for token in self.api_tokens.split(",") if token.strip()]

    @property
    def open_paths(self) -> list[str]:
        return [path.strip() for path in self.api_open_paths.split(",") if path.strip()]

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: tasks run in-process."""
        return not self.celery_broker_url

    @property
    def memory_budget_bytes(self) -> int | None:
        gigabytes = self.orchestrator_max_memory_gb
        return None if gigabytes is None else int(gigabytes * 2**30)

    @property
    def extra_pipeline_modules(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.pipeline_modules.split(",") if name.strip())

    @property
    def result_backend(self) -> str | None:
        return self.celery_result_backend or self.celery_broker_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``).

        Each field reads the upper-case variable of its name; empty values
        count as unset. Raises ``ConfigError`` naming the variable on a bad value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = env.get(field.name.upper(), "").strip()
            if not raw:
                continue
            values[field.name] = _convert(field.name.upper(), raw, str(field.type))
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, raw: str, annotation: str) -> object:
    """``raw`` as the type the field is annotated with (``int``, ``float``, optionally ``| None``, else text)."""
    kind = annotation.removesuffix(" | None")
    if kind == "bool":
        if raw.lower() not in _BOOLEANS:
            raise ConfigError(f"{name}={raw!r} is not a valid bool (true/false, 1/0, yes/no)")
        return _BOOLEANS[raw.lower()]
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw
