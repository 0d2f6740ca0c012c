"""The OpenAPI document: valid OpenAPI 3.1, every route described, its examples accepted by the API."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from orchestrator.openapi import ANALYSIS_EXAMPLE, TUTOR_EXAMPLE
from orchestrator.pipelines import load_pipelines


@pytest.fixture()
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json
    return body


def test_the_document_is_valid_openapi_3(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.") and document["components"]["securitySchemes"]["bearer"]


def test_every_route_of_the_api_is_described_with_its_methods(api: Flask, document: dict[str, Any]) -> None:
    for rule in api.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        assert path in document["paths"], path
        methods = set(rule.methods or ()) - {"HEAD", "OPTIONS"}
        assert {method.lower() for method in methods} <= set(document["paths"][path]), (path, methods)


def test_the_request_bodies_are_the_pipelines_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["AnalysisRequest"]["properties"]) >= {"context_id", "segments", "prompt_ids", "deadline_ms"}
    assert set(schemas["TutorRequest"]["required"]) == {"session_id", "text"}


def test_the_examples_validate_and_the_api_accepts_them(client: FlaskClient, document: dict[str, Any]) -> None:
    pipelines = load_pipelines()
    paths = document["paths"]
    examples = {
        "/orchestrator/analyze": paths["/orchestrator/analyze"]["post"]["requestBody"]["content"]["application/json"],
        "/api/v1/ai/analyze": paths["/api/v1/ai/analyze"]["post"]["requestBody"]["content"]["application/json"],
    }
    assert examples["/orchestrator/analyze"]["example"] == ANALYSIS_EXAMPLE
    assert examples["/api/v1/ai/analyze"]["example"] == TUTOR_EXAMPLE
    assert pipelines.load_request(ANALYSIS_EXAMPLE).context_id == "debate-42"
    assert pipelines.load_request({**TUTOR_EXAMPLE, "pipeline": "tutor"}).pipeline == "tutor"
    answer = client.post("/orchestrator/analyze", json=ANALYSIS_EXAMPLE)
    assert answer.status_code == 200 and answer.json["status"] == "ok", answer.json


def test_the_docs_page_lists_every_operation(client: FlaskClient, document: dict[str, Any]) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    for path, operations in document["paths"].items():
        for method in operations:
            assert f"{method.upper()} {path}" in text
