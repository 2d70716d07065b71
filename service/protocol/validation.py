"""JSON Schema validation of what clients send, with errors that name the field."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
HOOK_REQUEST = "urn:tdm1-cds:schema:hook-request"
FEEDBACK = "urn:tdm1-cds:schema:feedback"
CONTEXT_BY_HOOK = {
    "order-select": "urn:tdm1-cds:schema:context-order-select",
    "order-sign": "urn:tdm1-cds:schema:context-order-sign",
    "patient-view": "urn:tdm1-cds:schema:context-patient-view",
}


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def _validator(schema_id: str) -> Draft202012Validator:
    schema = _registry().contents(schema_id)
    return Draft202012Validator(schema, registry=_registry())


def errors(instance: Any, schema_id: str, *, prefix: str = "") -> list[str]:
    """Every violation as "path: message", sorted, at most 20."""
    found = []
    for error in _validator(schema_id).iter_errors(instance):
        path = "/".join(str(p) for p in error.absolute_path)
        where = f"{prefix}{'/' if prefix and path else ''}{path}" or "(body)"
        message = error.message if len(error.message) < 300 else error.message[:297] + "..."
        found.append(f"{where}: {message}")
        if len(found) >= 20:
            break
    return sorted(found)
