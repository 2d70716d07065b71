"""CORS for browser-based CDS clients (the public CDS Hooks sandbox is one), on every path.

Preflight answers for any path, allowing Authorization and Content-Type. Origins come from
settings: `*` in dev mode, none by default in production. Credentials are never allowed.
"""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_HEADERS = "Authorization, Content-Type"
ALLOWED_METHODS = "GET, POST, OPTIONS"


def _origin_allowed(origin: str, allowed: tuple[str, ...]) -> str | None:
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


def register(app: Flask) -> None:
    allowed: tuple[str, ...] = app.config["SETTINGS"].allowed_origins
    # Chrome's Private Network Access: a public page (the CDS Hooks sandbox) calling a service on
    # loopback must be allowed explicitly. Only in dev mode, where the service listens on loopback.
    private_network = app.config["SETTINGS"].dev

    @app.before_request
    def _preflight() -> Response | None:
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            response = app.make_response(("", 204))
            return response
        return None

    # Named origins: the answer depends on Origin, so a cache must key on it, for the answers with
    # no Origin or a refused one too (Fetch, "CORS protocol and HTTP caches"); else a cached answer
    # without Access-Control-Allow-Origin could be served to the allowed browser client, or the reverse.
    vary_on_origin = bool(allowed) and "*" not in allowed

    @app.after_request
    def _cors_headers(response: Response) -> Response:
        if vary_on_origin:
            response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if not origin:
            return response
        value = _origin_allowed(origin, allowed)
        if value is None:
            return response
        response.headers["Access-Control-Allow-Origin"] = value
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
            if private_network and request.headers.get("Access-Control-Request-Private-Network") == "true":
                response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response
