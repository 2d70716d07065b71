"""Liveness, readiness and a minimal metrics endpoint."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from service.api.errors import error_response

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz():
    checks = {
        "database": current_app.config["STORE"].ping(),
        "knowledge": bool(current_app.config["PARAMS"].knowledge.entries),
        "cards": bool(current_app.config["CARD_CONTENT"]),
    }
    if not all(checks.values()):
        response = error_response(503, "Not ready: " + ", ".join(k for k, ok in checks.items() if not ok))
        return response
    return jsonify({"status": "ready", "checks": checks})
