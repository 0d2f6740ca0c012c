"""Settings.from_env: defaults, variable names, conversions and errors."""

from __future__ import annotations

from dataclasses import fields

import pytest

from orchestrator.config import ConfigError, Settings


def test_no_variables_give_the_embedded_mode() -> None:
    settings = Settings.from_env({})

    assert settings.embedded is True
    assert settings.database_url.startswith("sqlite:///")
    assert settings.celery_broker_url is None
    assert settings.result_backend is None
    assert settings.model_adapter_url is None
    assert settings == Settings()


def test_an_explicit_mapping_is_read_instead_of_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-os-environ/db")

    assert Settings.from_env({}).database_url == Settings().database_url
    assert Settings.from_env().database_url == "postgresql://from-os-environ/db"


@pytest.mark.parametrize(
    "variable,attribute,value",
    [
        ("DATABASE_URL", "database_url", "postgresql+psycopg2://u:p%40ss@db:5432/orch"),
        ("CELERY_BROKER_URL", "celery_broker_url", "redis://redis:6379/0"),
        ("CELERY_RESULT_BACKEND", "celery_result_backend", "redis://redis:6379/1"),
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers", "k1:9092,k2:9092"),
        ("MODEL_ADAPTER_URL", "model_adapter_url", "http://vllm:8000/v1"),
        ("MODEL_NAME", "model_name", "llama-3.1-8b-instruct"),
        ("MODEL_API_KEY", "model_api_key", "sk-test-123"),
        ("CELERY_REALTIME_QUEUE", "celery_realtime_queue", "rt"),
        ("KAFKA_TASKS_TOPIC", "kafka_tasks_topic", "tasks.v2"),
        ("LOG_LEVEL", "log_level", "DEBUG"),
    ],
)
def test_each_pinned_variable_sets_its_field(variable: str, attribute: str, value: str) -> None:
    settings = Settings.from_env({variable: value})

    assert getattr(settings, attribute) == value
    others = {f.name for f in fields(Settings)} - {attribute}
    assert all(getattr(settings, name) == getattr(Settings(), name) for name in others)


def test_every_field_reads_the_upper_case_variable_of_its_name() -> None:
    env: dict[str, str] = {}
    expected: dict[str, object] = {}
    for f in fields(Settings):
        kind = str(f.type).removesuffix(" | None")
        if kind == "int":
            env[f.name.upper()], expected[f.name] = "7", 7
        elif kind == "float":
            env[f.name.upper()], expected[f.name] = "7.5", 7.5
        elif kind == "bool":
            env[f.name.upper()], expected[f.name] = "no" if f.default else "yes", not f.default
        elif f.name == "log_level":  # validated: one of the logging levels
            env[f.name.upper()] = expected[f.name] = "DEBUG"
        elif f.name == "model_response_format":  # validated: one of the formats
            env[f.name.upper()] = expected[f.name] = "json_schema"
        elif f.name == "model_prices":  # validated: name=input:output,...
            env[f.name.upper()] = expected[f.name] = "value-of-model=1:2"
        else:
            env[f.name.upper()] = expected[f.name] = f"value-of-{f.name}"

    settings = Settings.from_env(env)

    assert {f.name: getattr(settings, f.name) for f in fields(Settings)} == expected
    assert all(getattr(settings, name) != getattr(Settings(), name) for name in expected)


def test_a_broker_url_leaves_the_embedded_mode() -> None:
    settings = Settings.from_env({"CELERY_BROKER_URL": "redis://redis:6379/0"})

    assert settings.embedded is False


@pytest.mark.parametrize(
    "variable,raw,attribute,expected",
    [
        ("MAX_SEGMENTS", "10", "max_segments", 10),
        ("MAX_TOTAL_CHARS", " 5000 ", "max_total_chars", 5000),
        ("MAX_ID_LENGTH", "64", "max_id_length", 64),
        ("MODEL_MAX_RETRIES", "0", "model_max_retries", 0),
        ("CELERY_VISIBILITY_TIMEOUT", "900", "celery_visibility_timeout", 900),
        ("KAFKA_TOPIC_PARTITIONS", "12", "kafka_topic_partitions", 12),
        ("MODEL_READ_TIMEOUT", "2.5", "model_read_timeout", 2.5),
        ("MODEL_CONNECT_TIMEOUT", "1", "model_connect_timeout", 1.0),
        ("ANALYZE_TIMEOUT", "0.25", "analyze_timeout", 0.25),
        ("MODEL_RETRY_BACKOFF_MAX", "1e1", "model_retry_backoff_max", 10.0),
    ],
)
def test_numeric_variables_are_converted_to_the_type_of_their_field(
    variable: str, raw: str, attribute: str, expected: float
) -> None:
    value = getattr(Settings.from_env({variable: raw}), attribute)

    assert value == expected
    assert type(value) is type(getattr(Settings(), attribute))


@pytest.mark.parametrize(
    "variable,raw,kind",
    [
        ("MAX_SEGMENTS", "ten", "int"),
        ("MAX_SEGMENTS", "10.5", "int"),
        ("MODEL_MAX_RETRIES", "3 times", "int"),
        ("MODEL_READ_TIMEOUT", "fast", "float"),
        ("ANALYZE_TIMEOUT", "2,5", "float"),
    ],
)
def test_a_bad_number_raises_config_error_naming_the_variable_and_value(variable: str, raw: str, kind: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: raw})

    message = str(raised.value)
    assert variable in message
    assert repr(raw) in message
    assert kind in message
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_empty_values_count_as_unset(blank: str) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": blank,
            "CELERY_BROKER_URL": blank,
            "MODEL_ADAPTER_URL": blank,
            "MAX_SEGMENTS": blank,
            "MODEL_READ_TIMEOUT": blank,
        }
    )

    assert settings == Settings()
    assert settings.embedded is True


def test_values_are_stripped_of_surrounding_white_space() -> None:
    settings = Settings.from_env({"CELERY_BROKER_URL": "  redis://redis:6379/0\n"})

    assert settings.celery_broker_url == "redis://redis:6379/0"


def test_result_backend_defaults_to_the_broker_url() -> None:
    settings = Settings.from_env({"CELERY_BROKER_URL": "redis://redis:6379/0"})

    assert settings.celery_result_backend is None
    assert settings.result_backend == "redis://redis:6379/0"


def test_an_explicit_result_backend_wins_over_the_broker_url() -> None:
    settings = Settings.from_env(
        {"CELERY_BROKER_URL": "redis://redis:6379/0", "CELERY_RESULT_BACKEND": "redis://other:6379/5"}
    )

    assert settings.result_backend == "redis://other:6379/5"


def test_lower_case_variable_names_are_ignored() -> None:
    settings = Settings.from_env({"celery_broker_url": "redis://redis:6379/0", "max_segments": "5"})

    assert settings == Settings()


def test_an_unknown_log_level_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="LOG_LEVEL='verbose'"):
        Settings.from_env({"LOG_LEVEL": "verbose"})


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("1", True), ("Yes", True), ("off", False), ("0", False)])
def test_a_boolean_variable_reads_the_usual_spellings(raw: str, value: bool) -> None:
    assert Settings.from_env({"WARM_ANALYSERS": raw}).warm_analysers is value


def test_a_boolean_variable_that_is_neither_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="WARM_ANALYSERS='maybe'"):
        Settings.from_env({"WARM_ANALYSERS": "maybe"})


@pytest.mark.parametrize(
    "variable,raw",
    [
        ("RESPONSE_CACHE_TTL", "-1"),
        ("MODEL_MAX_CONCURRENCY", "-2"),
        ("SWEEP_INTERVAL", "-5"),
        ("MODEL_MAX_TOKENS", "0"),
        ("CLAIM_LEASE", "0"),
        ("MODEL_READ_TIMEOUT", "0"),
        ("MODEL_FALLBACK_READ_TIMEOUT", "-1"),
        ("MODEL_RESPONSE_FORMAT", "xml"),
    ],
)
def test_a_number_out_of_its_range_is_refused_at_start_naming_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: raw})
