"""GET /openapi.json: an OpenAPI 3.1 description of this service's own HTTP API.

Built from the same JSON Schemas that validate requests (service/protocol/schemas) and from the
service declarations, so it cannot drift from what is enforced; tests/security/test_openapi.py
checks that every Flask route is documented and every documented route exists, and validates real
responses against it. The fuzzers (tests/fuzz) generate requests from it.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from flask import Blueprint, jsonify

from service.api.services import REGISTRY
from service.protocol.validation import CONTEXT_BY_HOOK, FEEDBACK, HOOK_REQUEST, SCHEMA_DIR

blueprint = Blueprint("openapi", __name__)

JSON = "application/json"
REF = "#/components/schemas/"
# Component names for the protocol schemas, by their $id.
PROTOCOL_SCHEMAS = {
    HOOK_REQUEST: "HookRequest",
    FEEDBACK: "Feedback",
    "urn:tdm1-cds:schema:draft-orders": "DraftOrders",
    CONTEXT_BY_HOOK["order-select"]: "OrderSelectContext",
    CONTEXT_BY_HOOK["order-sign"]: "OrderSignContext",
    CONTEXT_BY_HOOK["patient-view"]: "PatientViewContext",
}
ERROR_STATUSES = {
    "400": "Malformed or invalid request (the OperationOutcome says what and where).",
    "401": "Authentication failed (production mode): bare, by design.",
    "404": "Unknown CDS service.",
    "412": "Data needed and not obtainable: no usable prefetch and no fhirServer.",
    "413": "Request body too large.",
    "415": "Content-Type is not application/json, or the body is compressed (Content-Encoding).",
    "503": "A dependency (database, replay cache) is unavailable; retry.",
}


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in {"$schema", "$id"}:
                continue
            if key == "$ref" and value in PROTOCOL_SCHEMAS:
                out[key] = REF + PROTOCOL_SCHEMAS[value]
            else:
                out[key] = _rewrite_refs(value)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _protocol_components() -> dict[str, Any]:
    components = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        name = PROTOCOL_SCHEMAS.get(schema.get("$id", ""))
        if name:
            components[name] = _rewrite_refs(schema)
    return components


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema_name)}}}


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: _json("OperationOutcome", ERROR_STATUSES[status]) for status in statuses}


RESPONSE_SCHEMAS: dict[str, Any] = {
    "OperationOutcome": {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["severity", "code"],
                    "properties": {
                        "severity": {"enum": ["fatal", "error", "warning", "information"]},
                        "code": {"type": "string"},
                        "diagnostics": {"type": "string"},
                    },
                },
            },
        },
    },
    "Coding": {
        "type": "object",
        "required": ["system", "code"],
        "properties": {
            "system": {"type": "string"},
            "code": {"type": "string"},
            "display": {"type": "string"},
        },
    },
    "Link": {
        "type": "object",
        "required": ["label", "url", "type"],
        "properties": {
            "label": {"type": "string"},
            "url": {"type": "string"},
            "type": {"enum": ["absolute", "smart"]},
            "appContext": {"type": "string"},
        },
    },
    "Action": {
        "type": "object",
        "required": ["type", "description"],
        "properties": {
            "type": {"enum": ["create", "update", "delete"]},
            "description": {"type": "string"},
            "resource": {"type": "object", "required": ["resourceType"]},
            "resourceId": {"type": "string"},
        },
        # create and update carry the whole resource; this service deletes by resourceId.
        "if": {"properties": {"type": {"const": "delete"}}},
        "then": {"required": ["resourceId"]},
        "else": {"required": ["resource"]},
    },
    "Suggestion": {
        "type": "object",
        "required": ["label", "uuid"],
        "properties": {
            "label": {"type": "string"},
            "uuid": {"type": "string"},
            "isRecommended": {"type": "boolean"},
            "actions": {"type": "array", "items": _ref("Action")},
        },
    },
    "Card": {
        "type": "object",
        "required": ["uuid", "summary", "indicator", "source"],
        "properties": {
            "uuid": {"type": "string"},
            "summary": {"type": "string", "maxLength": 139},  # the spec: "<140-character"
            "detail": {"type": "string"},
            "indicator": {"enum": ["info", "warning", "critical"]},
            "source": {
                "type": "object",
                "required": ["label", "topic"],
                "properties": {
                    "label": {"type": "string"},
                    "url": {"type": "string"},
                    "icon": {"type": "string"},
                    "topic": _ref("Coding"),
                },
            },
            "suggestions": {"type": "array", "items": _ref("Suggestion")},
            "selectionBehavior": {"enum": ["at-most-one", "any"]},
            "overrideReasons": {
                "type": "array",
                "items": {"allOf": [_ref("Coding"), {"required": ["display"]}]},
            },
            "links": {"type": "array", "items": _ref("Link")},
        },
        "dependentRequired": {"suggestions": ["selectionBehavior"]},
    },
    "CdsResponse": {
        "type": "object",
        "required": ["cards"],
        "properties": {
            "cards": {"type": "array", "items": _ref("Card")},
            "systemActions": {"type": "array", "items": _ref("Action")},
        },
    },
    "Discovery": {
        "type": "object",
        "required": ["services"],
        "properties": {
            "services": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["hook", "description", "id"],
                    "properties": {
                        "hook": {"type": "string"},
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                        "id": {"type": "string"},
                        "prefetch": {"type": "object", "additionalProperties": {"type": "string"}},
                        "usageRequirements": {"type": "string"},
                    },
                },
            }
        },
    },
    "FeedbackReceipt": {
        "type": "object",
        "required": ["received", "stored"],
        "properties": {"received": {"type": "integer"}, "stored": {"type": "integer"}},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Ready": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {"status": {"const": "ready"}, "checks": {"type": "object"}},
    },
}

SECURED = [{"cdsHooksJwt": []}]
OPEN: list[dict[str, list[str]]] = []


def _hook_operation(service_id: str, hook: str, title: str, description: str) -> dict[str, Any]:
    context = CONTEXT_BY_HOOK[hook]
    body = {
        "allOf": [_ref("HookRequest")],
        "properties": {"hook": {"const": hook}, "context": _ref(PROTOCOL_SCHEMAS[context])},
    }
    return {
        "post": {
            "operationId": f"call-{service_id}",
            "tags": ["cds-hooks"],
            "summary": title,
            "description": description,
            "security": SECURED,
            "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
            "responses": {
                "200": _json("CdsResponse", "Cards (possibly none)."),
                **_errors("400", "401", "412", "413", "415", "503"),
            },
        }
    }


def _feedback_operation(service_id: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"feedback-{service_id}",
            "tags": ["cds-hooks"],
            "summary": f"Feedback on cards issued by {service_id}",
            "security": SECURED,
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Feedback")}}},
            "responses": {
                "200": _json("FeedbackReceipt", "Feedback received."),
                **_errors("400", "401", "413", "415", "503"),
            },
        }
    }


def _html(
    operation_id: str, summary: str, *, parameters: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": ["auxiliary"],
        "summary": summary,
        "security": OPEN,
        "responses": {
            "200": {"description": "The page or resource.", "content": {"*/*": {}}},
            "401": _json("OperationOutcome", "Admin token missing or wrong."),
            "404": _json("OperationOutcome", "Switched off in this deployment, or no such item."),
        },
    }
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


@cache
def _document() -> str:
    paths: dict[str, Any] = {
        "/cds-services": {
            "get": {
                "operationId": "discovery",
                "tags": ["cds-hooks"],
                "summary": "CDS Hooks discovery",
                "security": SECURED,
                "responses": {"200": _json("Discovery", "The services."), **_errors("401")},
            }
        }
    }
    for declaration, _handler in REGISTRY.values():
        paths[f"/cds-services/{declaration.id}"] = _hook_operation(
            declaration.id, declaration.hook, declaration.title, declaration.description
        )
        paths[f"/cds-services/{declaration.id}/feedback"] = _feedback_operation(declaration.id)
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "tags": ["operations"],
            "summary": "Liveness",
            "security": OPEN,
            "responses": {"200": _json("Health", "Alive.")},
        }
    }
    paths["/readyz"] = {
        "get": {
            "operationId": "readyz",
            "tags": ["operations"],
            "summary": "Readiness: database, knowledge and card content",
            "security": OPEN,
            "responses": {
                "200": _json("Ready", "Ready."),
                "503": _json("OperationOutcome", "Not ready; the diagnostics say what is missing."),
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "operationId": "metrics",
            "tags": ["operations"],
            "summary": "Prometheus metrics",
            "security": OPEN,
            "responses": {"200": {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "tags": ["operations"],
            "summary": "This document",
            "security": OPEN,
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}
            },
        }
    }
    paths["/admin/report"] = _html("admin-report", "Override analytics (HTML); needs TDM1_CDS_ADMIN_TOKEN")
    paths["/preview/"] = _html("preview", "Card preview UI (dev mode, or TDM1_CDS_PREVIEW=1)")
    paths["/preview/scenarios"] = _html("preview-scenarios", "Preview scenarios")
    paths["/preview/scenarios/{name}"] = _html(
        "preview-scenario", "One preview scenario", parameters=[_path_parameter("name")]
    )
    paths["/preview/static/{filename}"] = _html(
        "preview-static", "Preview assets", parameters=[_path_parameter("filename")]
    )
    document = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "tdm1-cds",
            "version": "1.0.0",
            "summary": "CDS Hooks 2.0.1 service for trastuzumab emtansine (T-DM1, Kadcyla)",
            "description": (
                "Without --dev every /cds-services request needs `Authorization: Bearer <JWT>` signed by a "
                "trusted CDS client (CDS Hooks 2.0.1 §Trusting CDS Clients); `aud` is the URL called."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"cdsHooksJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {**_protocol_components(), **RESPONSE_SCHEMAS},
        },
    }
    return json.dumps(document)


def document() -> dict[str, Any]:
    """A fresh copy, so that a caller (a test, a fuzzer) cannot change what is served."""
    return copy.deepcopy(json.loads(_document()))


@blueprint.get("/openapi.json")
def openapi_json():
    return jsonify(document())
