"""JSON Schema validation of what clients send, with errors that name the field.

Valid requests, nearly all of them, are answered by a check compiled from the same schema files
(fast_schema); jsonschema runs only when that check says no, and so writes every error message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from service.protocol import fast_schema

log = logging.getLogger("tdm1_cds.validation")

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


@cache
def _fast_check(schema_id: str) -> Callable[[Any], bool] | None:
    """The compiled yes/no check, or None if the schema uses something fast_schema does not know.

    Compiled on first use; two threads racing here both compile, and either result is right.
    """
    validator = _validator(schema_id)
    try:
        return fast_schema.compile_schema(
            schema_id, _registry(), format_asserted=validator.format_checker is not None
        )
    except Exception as exc:  # any failure only costs speed: jsonschema still validates everything
        # Once per schema and process, never per request: the cache keeps the None.
        log.warning("schema not compiled, jsonschema only", extra={"schema": schema_id, "error": str(exc)})
        return None


def _fast_valid(instance: Any, schema_id: str) -> bool:
    check = _fast_check(schema_id)
    if check is None:
        return False
    try:
        return check(instance)
    except Exception:  # e.g. RecursionError on a pathological document: let jsonschema decide
        return False


def errors(instance: Any, schema_id: str, *, prefix: str = "") -> list[str]:
    """Every violation as "path: message", sorted, at most 20."""
    if _fast_valid(instance, schema_id):
        return []
    found = []
    for error in _validator(schema_id).iter_errors(instance):
        path = "/".join(str(p) for p in error.absolute_path)
        where = f"{prefix}{'/' if prefix and path else ''}{path}" or "(body)"
        message = error.message if len(error.message) < 300 else error.message[:297] + "..."
        found.append(f"{where}: {message}")
        if len(found) >= 20:
            break
    return sorted(found)


def warm() -> None:
    """Compile every schema's fast check now, before gunicorn forks: not on a first hook call, and a
    schema that cannot be compiled says so at start."""
    for schema_id in (HOOK_REQUEST, FEEDBACK, *CONTEXT_BY_HOOK.values()):
        _fast_check(schema_id)
