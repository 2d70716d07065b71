"""GET /cds-services: generated from the service declarations."""

from __future__ import annotations

from flask import Blueprint, jsonify

from service.api.services import REGISTRY

blueprint = Blueprint("discovery", __name__)


@blueprint.get("/cds-services")
def discovery():
    return jsonify({"services": [declaration.discovery() for declaration, _handler in REGISTRY.values()]})
