"""Bearer tokens on the HTTP API (API_TOKENS): asked everywhere but the open paths, never revealed."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from flask.testing import FlaskClient

from orchestrator.api import create_app
from orchestrator.auth import BearerTokens
from orchestrator.config import ConfigError, Settings
from orchestrator.services import Services
from tasks.celery_app import OrchestratorCelery
from tests.factories import analyze_body

TOKENS = ("first-token-0123456789", "second-token-0123456789")


@pytest.fixture()
def guarded(settings: Settings, services: Services, celery_app: OrchestratorCelery) -> FlaskClient:
    guarded_settings = replace(settings, api_tokens=",".join(TOKENS))
    return create_app(guarded_settings, services=services, launcher=celery_app.launcher).test_client()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {TOKENS[0]}"},
     {"Authorization": "Bearer"}, {"Authorization": f"Bearer {TOKENS[0]}x"}],
)  # fmt: skip
def test_without_a_valid_bearer_token_the_api_answers_401_with_a_json_error(
    guarded: FlaskClient, headers: dict[str, str]
) -> None:
    for method, path in (
        ("get", "/orchestrator/stats"),
        ("post", "/orchestrator/analyze"),
        ("get", "/orchestrator/runs/x"),
    ):
        response = getattr(guarded, method)(path, headers=headers, json=analyze_body(2))
        assert response.status_code == 401, (path, response.json)
        assert response.json["error"] == "unauthorized" and "Authorization: Bearer" in response.json["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", TOKENS)
def test_each_configured_token_opens_the_api(guarded: FlaskClient, token: str) -> None:
    assert guarded.get("/orchestrator/stats", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert guarded.get("/orchestrator/stats", headers={"Authorization": f"bearer  {token} "}).status_code == 200


def test_health_and_metrics_stay_open(guarded: FlaskClient) -> None:
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/metrics").status_code == 200


def test_open_paths_are_configurable(settings: Settings, services: Services, celery_app: OrchestratorCelery) -> None:
    closed = replace(settings, api_tokens=TOKENS[0], api_open_paths="/healthz")
    client = create_app(closed, services=services, launcher=celery_app.launcher).test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 401


def test_without_tokens_the_api_is_open(client: FlaskClient) -> None:
    assert client.get("/orchestrator/stats").status_code == 200


def test_no_token_ever_shows_in_a_log_or_an_error_body(guarded: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    presented = "presented-secret-0123456789"
    with caplog.at_level(logging.DEBUG):
        wrong = guarded.get("/orchestrator/stats", headers={"Authorization": f"Bearer {presented}"})
        right = guarded.post("/orchestrator/analyze", headers={"Authorization": f"Bearer {TOKENS[0]}"}, json={"x": 1})
    assert wrong.status_code == 401 and right.status_code == 422
    for secret in (presented, *TOKENS):
        assert secret not in wrong.get_data(as_text=True) and secret not in right.get_data(as_text=True)
        assert secret not in caplog.text


def test_a_short_or_spaced_token_is_refused_at_start_without_quoting_it() -> None:
    for tokens in ("short", "has a space inside-0123456789"):
        with pytest.raises(ConfigError, match="API_TOKENS") as refused:
            Settings.from_env({"API_TOKENS": tokens})
        assert tokens not in str(refused.value)


def test_tokens_are_compared_whole() -> None:
    tokens = BearerTokens(TOKENS, ())
    assert tokens.accepts(f"Bearer {TOKENS[1]}")
    assert not tokens.accepts(f"Bearer {TOKENS[1][:-1]}") and not tokens.accepts(None)
