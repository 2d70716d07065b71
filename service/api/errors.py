"""Every error is JSON (a FHIR OperationOutcome) with the right status; never a 500 for client input."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("tdm1_cds.errors")

ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    412: "incomplete",
    413: "too-large",
    415: "not-supported",
    429: "throttled",
    500: "exception",
    503: "transient",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []


RETRY_AFTER_SECONDS = "2"


def outcome(status: int, message: str = "", details: list[str] | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": ISSUE_CODES.get(status, "processing")}
    if message:
        issue["diagnostics"] = message
    issues = [issue]
    issues += [{"severity": "error", "code": "invalid", "diagnostics": d} for d in details or []]
    return {"resourceType": "OperationOutcome", "issue": issues}


def error_response(status: int, message: str = "", details: list[str] | None = None) -> Response:
    response = jsonify(outcome(status, message, details))
    response.status_code = status
    if status == 503:
        # RFC 9110 §10.2.3: when to retry. Every 503 here is transient (database, replay cache).
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        if error.status == 401:
            return error_response(401)  # bare: the reason goes to the log, not to the caller
        return error_response(error.status, error.message, error.details)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        messages = {
            404: "No such endpoint. Discovery is at GET /cds-services.",
            405: "Method not allowed on this endpoint.",
            413: "Request body too large.",
        }
        response = error_response(status, messages.get(status, error.description or ""))
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error", extra={"error": type(error).__name__})
        return error_response(500, "Internal error; it has been logged.")
