"""Reading a JSON request body: media type, size, syntax, depth. Each failure is a clear 4xx."""

from __future__ import annotations

import codecs
from typing import Any

import orjson
from flask import current_app, request
from werkzeug.exceptions import HTTPException

from service.api import json_depth
from service.api.errors import ApiError

# application/json+fhir: FHIR DSTU2's media type, which older clients still send.
JSON_TYPES = {"application/json", "application/fhir+json", "application/json+fhir"}


try:  # gunicorn's errors for a body it cannot parse; NoMoreData and socket errors are OSErrors
    from gunicorn.http.errors import ParseException as _ParseException
except ImportError:  # another WSGI server: its body errors (Werkzeug's dechunker's too) are OSErrors
    _ParseException = OSError  # type: ignore[assignment,misc]
_UNREADABLE_BODY = (OSError, _ParseException)


# Python's json reads these; JSON does not. orjson refuses them: the message names the token.
_NOT_JSON_TOKENS = (b"NaN", b"-Infinity", b"Infinity")


def read_json() -> Any:
    settings = current_app.config["SETTINGS"]
    if request.mimetype not in JSON_TYPES:
        raise ApiError(415, f"Content-Type must be application/json, not {request.mimetype or 'absent'!r}.")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        # Nothing here inflates a body (nor should it: a small gzip can expand past any limit), and
        # the compressed bytes were reported as "not UTF-8". RFC 9110 §15.5.16: 415 for a coding.
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported: send the body uncompressed.")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise ApiError(413, f"Request body larger than {settings.max_body_bytes} bytes.")
    try:
        raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH bounds a body sent without a length
    except HTTPException:
        raise  # Werkzeug's own: 413 past MAX_CONTENT_LENGTH, 400 for a client that went away
    except _UNREADABLE_BODY:
        # The server could not read the body as it was sent: gunicorn raises its parse errors (a
        # malformed chunk size or terminator, a body cut short) from wsgi.input. They were a 500.
        # Anything else raised here (a bug, MemoryError) is the server's: a 500, logged as such.
        raise ApiError(
            400, "Request body could not be read: malformed or incomplete chunked encoding."
        ) from None
    if request.content_length is None and len(raw) > settings.max_body_bytes:
        # Werkzeug stops reading a length-less (chunked) body at MAX_CONTENT_LENGTH (the limit + 1)
        # without saying so: a body past the limit was cut, and must be refused as too large, not
        # parsed as truncated JSON. One of exactly the limit is read whole, as with a Content-Length.
        raise ApiError(413, f"Request body larger than {settings.max_body_bytes} bytes.")
    if raw.startswith(codecs.BOM_UTF8):  # RFC 8259 §8.1: a parser may ignore it; .NET clients send one
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        # orjson: the same strictness as json.loads without NaN/Infinity (and UTF-8 checked as it
        # parses), at a third of the cost for a FHIR prefetch (bench/RESULTS.md).
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, syntax_message(raw, exc, settings.max_json_depth)) from None
    if json_depth.exceeds(raw, document, settings.max_json_depth):
        raise ApiError(400, f"Request body is nested deeper than {settings.max_json_depth} levels.")
    if not isinstance(document, dict):
        raise ApiError(400, "Request body must be a JSON object.")
    return document


def syntax_message(raw: bytes, exc: orjson.JSONDecodeError, depth_limit: int) -> str:
    reason = exc.msg
    if "not valid UTF-8" in reason:
        return "Request body is not UTF-8."
    if "depth limit" in reason:
        # orjson stops at 1,024 levels, far past any configured limit (settings refuse more).
        return f"Request body is nested deeper than {depth_limit} levels."
    # orjson points at the token, or just past the sign of -Infinity.
    token = next(
        (t for t in _NOT_JSON_TOKENS for at in (exc.pos, exc.pos - 1) if at >= 0 and raw.startswith(t, at)),
        None,
    )
    if token:
        return f"Request body is not valid JSON: {token.decode()} is not a JSON value ({exc})."
    return f"Request body is not valid JSON: {exc}"
