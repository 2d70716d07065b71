"""GET /metrics (Prometheus text format) and the per-request counters every route feeds."""

from __future__ import annotations

import time

from flask import Blueprint, Response, g, request

from service import metrics
from service.api.services import REGISTRY

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def scrape() -> Response:
    payload, content_type = metrics.render()
    return Response(payload, status=200, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


@blueprint.before_app_request
def _start_timer() -> None:
    g.tdm1_started = time.perf_counter()


@blueprint.after_app_request
def _count(response: Response) -> Response:
    # Only route templates and declared service ids become labels: a scanner's random paths must not
    # create new time series.
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    view_args = request.view_args or {}
    service_id = view_args.get("service_id")
    declared = REGISTRY.get(service_id) if isinstance(service_id, str) else None
    service = service_id if declared is not None else "-"
    metrics.observe_request(service, route, response.status_code)
    started = g.get("tdm1_started")
    if declared is not None and route == "/cds-services/<service_id>" and started is not None:
        metrics.observe_hook(service, declared[0].hook, time.perf_counter() - started)
    return response
