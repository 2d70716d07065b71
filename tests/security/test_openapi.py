"""GET /openapi.json describes exactly the routes Flask serves, and real responses validate against it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from service.api.services import REGISTRY
from tests import fhir_builders as fb

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


def served(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":  # Flask's default static folder: this app has none to serve
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        # One documented path per CDS service, so that each documents its own hook context.
        paths = [path.replace("{service_id}", sid) for sid in REGISTRY] if "{service_id}" in path else [path]
        found |= {(p, m) for p in paths for m in (rule.methods or set()) & METHODS}
    return found


@pytest.fixture
def doc(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def validator_for(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    registry = Registry().with_resource("urn:openapi", DRAFT202012.create_resource(doc))
    rewritten = _rebase(schema)
    return Draft202012Validator(rewritten, registry=registry)


def _rebase(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: ("urn:openapi" + v if k == "$ref" and v.startswith("#/") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def assert_conforms(doc: dict[str, Any], path: str, method: str, response: Any) -> None:
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in responses, (
        f"{method} {path} answered an undocumented {response.status_code}"
    )
    content = responses[str(response.status_code)].get("content", {})
    if "application/json" in content:
        schema = content["application/json"]["schema"]
        errors = list(validator_for(doc, schema).iter_errors(response.get_json()))
        assert errors == [], [e.message for e in errors]


def test_every_route_is_documented_and_every_documented_route_exists(app: Flask, doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    assert served(app) == documented(doc)


def test_component_schemas_are_valid_json_schema(doc: dict[str, Any]) -> None:
    for name, schema in doc["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as exc:  # name the component that is wrong
            raise AssertionError(f"components.schemas.{name}: {exc}") from exc


def test_real_responses_validate(client: FlaskClient, frozen_now, doc: dict[str, Any]) -> None:
    assert_conforms(doc, "/cds-services", "GET", client.get("/cds-services"))
    sign = fb.hook_request(
        "order-sign", drafts=[fb.medication_request("tdm1", dose=4.2)], history=fb.metastatic_history()
    )
    response = client.post("/cds-services/tdm1-order-sign", json=sign)
    assert response.get_json()["cards"], "need cards to validate the card schema"
    assert_conforms(doc, "/cds-services/tdm1-order-sign", "POST", response)
    view = fb.hook_request("patient-view", history=fb.metastatic_history())
    assert_conforms(
        doc,
        "/cds-services/tdm1-patient-view",
        "POST",
        client.post("/cds-services/tdm1-patient-view", json=view),
    )
    card = response.get_json()["cards"][0]["uuid"]
    feedback = {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": fb.iso(fb.NOW)}]}
    assert_conforms(
        doc,
        "/cds-services/tdm1-order-sign/feedback",
        "POST",
        client.post("/cds-services/tdm1-order-sign/feedback", json=feedback),
    )
    assert_conforms(doc, "/healthz", "GET", client.get("/healthz"))
    assert_conforms(doc, "/readyz", "GET", client.get("/readyz"))
    # Errors are documented and shaped as documented.
    assert_conforms(
        doc, "/cds-services/tdm1-order-sign", "POST", client.post("/cds-services/tdm1-order-sign", json={})
    )
    assert_conforms(
        doc,
        "/cds-services/tdm1-order-sign",
        "POST",
        client.post("/cds-services/tdm1-order-sign", data="x", content_type="text/plain"),
    )
    no_data = fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")], prefetch={})
    assert_conforms(
        doc,
        "/cds-services/tdm1-order-sign",
        "POST",
        client.post("/cds-services/tdm1-order-sign", json=no_data),
    )


def test_openapi_is_open_in_production(prod_client: FlaskClient) -> None:
    assert prod_client.get("/openapi.json").status_code == 200


def test_served_document_cannot_be_changed_by_a_caller(client: FlaskClient) -> None:
    from service.api import openapi

    openapi.document()["paths"].clear()
    assert client.get("/openapi.json").get_json()["paths"]
