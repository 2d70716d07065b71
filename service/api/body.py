"""Reading a JSON request body: media type, size, syntax, depth. Each failure is a clear 4xx."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request

from service.api.errors import ApiError

JSON_TYPES = {"application/json", "application/fhir+json"}
CONTAINERS = (dict, list)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative, so a hostile document cannot exhaust the stack while being measured.

    Level by level, carrying only containers: a large prefetch is mostly strings and numbers, and
    a (value, depth) tuple for each of them made this check cost more than parsing the JSON.
    A scalar still counts as one level below its container.
    """
    level = [value]
    depth = 1
    while level:
        if depth > limit:
            return True
        deeper: list[Any] = []
        has_children = False
        for item in level:
            if isinstance(item, dict):
                children: Any = item.values()
            elif isinstance(item, list):
                children = item
            else:
                continue
            if children:
                has_children = True
                deeper += [c for c in children if isinstance(c, CONTAINERS)]
        if has_children and depth + 1 > limit:
            return True
        level = deeper
        depth += 1
    return False


def read_json() -> Any:
    settings = current_app.config["SETTINGS"]
    if request.mimetype not in JSON_TYPES:
        raise ApiError(415, f"Content-Type must be application/json, not {request.mimetype or 'absent'!r}.")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise ApiError(413, f"Request body larger than {settings.max_body_bytes} bytes.")
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH bounds a body sent without a length
    if request.content_length is None and len(raw) >= settings.max_body_bytes:
        # Werkzeug stops reading a length-less (chunked) body at the limit without saying so: a body
        # that filled it was cut, and must be refused as too large, not parsed as truncated JSON.
        raise ApiError(413, f"Request body larger than {settings.max_body_bytes} bytes.")
    try:
        text = raw.decode("utf-8")
        document = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "Request body is not UTF-8.") from None
    except RecursionError:
        raise ApiError(400, "Request body is nested too deeply.") from None
    except ValueError as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from None
    if depth_exceeds(document, settings.max_json_depth):
        raise ApiError(400, f"Request body is nested deeper than {settings.max_json_depth} levels.")
    if not isinstance(document, dict):
        raise ApiError(400, "Request body must be a JSON object.")
    return document
