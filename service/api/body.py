"""Reading a JSON request body: media type, size, syntax, depth. Each failure is a clear 4xx."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request

from service.api.errors import ApiError
from service.api.json_depth import depth_exceeds

JSON_TYPES = {"application/json", "application/fhir+json"}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


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
