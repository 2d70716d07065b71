"""POST /cds-services/{id}/feedback: CDS Hooks 2.0 feedback, validated and kept."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify

from service import auth
from service.api import body
from service.api.errors import ApiError
from service.api.services import REGISTRY
from service.protocol import validation

log = logging.getLogger("tdm1_cds.feedback")
blueprint = Blueprint("feedback", __name__)


@blueprint.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str):
    if service_id not in REGISTRY:
        raise ApiError(404, f"Unknown CDS service {service_id!r}.")
    document = body.read_json()
    problems = validation.errors(document, validation.FEEDBACK)
    if problems:
        raise ApiError(400, "The feedback is not valid CDS Hooks 2.0.1 feedback.", problems)
    store = current_app.config["STORE"]
    try:
        stored = store.save_feedback(service_id, document["feedback"])
    except Exception as exc:
        log.error("feedback write failed", extra={"error": type(exc).__name__, "service": service_id})
        auth.release_token()  # nothing was stored: the retry, with the same JWT or not, stores it
        raise ApiError(503, "Feedback could not be stored; please retry.") from None
    log.info("feedback", extra={"service": service_id, "items": len(document["feedback"]), "new": stored})
    return jsonify({"received": len(document["feedback"]), "stored": stored}), 200
