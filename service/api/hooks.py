"""The three CDS services and the one request flow they share.

parse + validate → resolve data (prefetch, then fhirServer) → PatientRecord → rules → cards → log.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify

from service import auth, metrics
from service.api import body
from service.api.errors import ApiError
from service.api.services import REGISTRY, ServiceDeclaration, cds_service
from service.cards import render
from service.clinical import engine
from service.clinical import record as records
from service.clinical.findings import Params
from service.clinical.orders import DraftOrder, parse_draft_orders
from service.clinical.resources import as_dict, as_str, bundle_resources, read_bundle
from service.fhir.client import FhirClient
from service.fhir.resolve import DataNotObtainable, ResolvedData, key_label, resolve
from service.issuers import is_loopback_host, normalise_base
from service.protocol import validation

log = logging.getLogger("tdm1_cds.hooks")
blueprint = Blueprint("hooks", __name__)
ORDER_HOOKS = {"order-select", "order-sign"}


@cds_service(
    id="tdm1-order-select",
    hook="order-select",
    title="T-DM1 order checks (order-select)",
    description=(
        "Checks a newly selected trastuzumab emtansine (T-DM1, Kadcyla) order, and its look-alikes "
        "trastuzumab and trastuzumab deruxtecan, against the KADCYLA label and the ASCO guideline: "
        "line of therapy, fixed-duration stops, pre-dose platelets and liver tests, dose and holds."
    ),
)
def order_select(request_body: dict[str, Any]) -> dict[str, Any]:
    return _evaluate(REGISTRY["tdm1-order-select"][0], request_body)


@cds_service(
    id="tdm1-order-sign",
    hook="order-sign",
    title="T-DM1 order checks (order-sign)",
    description=(
        "Checks trastuzumab emtansine (T-DM1, Kadcyla) orders, and its look-alikes trastuzumab and "
        "trastuzumab deruxtecan, before signing: line of therapy, fixed-duration stops, pre-dose "
        "platelets and liver tests, dose and holds, per the KADCYLA label and the ASCO guideline."
    ),
)
def order_sign(request_body: dict[str, Any]) -> dict[str, Any]:
    return _evaluate(REGISTRY["tdm1-order-sign"][0], request_body)


@cds_service(
    id="tdm1-patient-view",
    hook="patient-view",
    title="T-DM1 treatment summary (patient-view)",
    description=(
        "For a patient on trastuzumab emtansine (T-DM1, Kadcyla): cycles given, last dose, next due, "
        "the checks due before it, and a course stopped as if it had a fixed number of cycles."
    ),
)
def patient_view(request_body: dict[str, Any]) -> dict[str, Any]:
    return _evaluate(REGISTRY["tdm1-patient-view"][0], request_body)


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str):
    declared = REGISTRY.get(service_id)
    if declared is None:
        raise ApiError(404, f"Unknown CDS service {service_id!r}. Discovery is at GET /cds-services.")
    declaration, handler = declared
    request_body = body.read_json()
    problems = validation.errors(request_body, validation.HOOK_REQUEST)
    if problems:
        raise ApiError(400, "The request is not a valid CDS Hooks 2.0.1 service request.", problems)
    if request_body["hook"] != declaration.hook:
        raise ApiError(
            400, f"Service {service_id} answers the {declaration.hook} hook, not {request_body['hook']!r}."
        )
    problems = validation.errors(
        request_body["context"], validation.CONTEXT_BY_HOOK[declaration.hook], prefix="context"
    )
    if problems:
        raise ApiError(400, f"The {declaration.hook} context is not valid.", problems)
    return jsonify(handler(request_body))


def _host_of(server: str) -> str | None:
    """The fhirServer's host; a 400 when its URL cannot be parsed (an open bracket, a bad port)."""
    try:
        parts = urlsplit(server)
        parts.port  # noqa: B018 - reading it is the test: a port that is not one raises
    except ValueError:
        raise ApiError(400, "fhirServer is not a valid URL.") from None
    return parts.hostname


def _fhir_client(request_body: dict[str, Any]) -> FhirClient | None:
    """A client for the request's fhirServer, if this deployment may call it."""
    server = request_body.get("fhirServer")
    if not server:
        return None
    settings = current_app.config["SETTINGS"]
    if not settings.dev:
        # Only the FHIR servers listed for the verified issuer: decided before any lookup or connection.
        caller = auth.current_client()
        if caller is None or not caller.issuer.allows_fhir_server(server):
            log.warning("fhirServer refused: not listed for the issuer", extra=auth.log_fields())
            raise ApiError(400, "fhirServer is not an allowed FHIR server for this client.")
    elif not is_loopback_host(_host_of(server)):
        # The public sandbox sends its own server with complete prefetch: use the prefetch, call nobody.
        log.info("fhirServer ignored in dev mode (not loopback)")
        return None
    elif normalise_base(server) is None:
        # Production refuses these through the issuer's list; dev mode must too, or a query string
        # ("/fhir?x") would swallow the base path and the searches would go to the server's root.
        raise ApiError(
            400,
            "fhirServer is not a plain http(s) base URL (no credentials, query, fragment or dot segments).",
        )
    token = as_dict(request_body.get("fhirAuthorization")).get("access_token")
    return FhirClient(
        server,
        token,
        pool=current_app.config["FHIR_POOL"],
        max_pages=settings.fetch_max_pages,
        page_size=settings.fetch_page_size,
        check_total=settings.check_bundle_total,
    )


def _quick_silence(orders: list[DraftOrder], draft_medications: dict[str, dict[str, Any]]) -> bool:
    """An order hook with no T-DM1 or look-alike in it needs no data at all: answer at once."""
    if any(o.is_lookalike for o in orders):
        return False
    unresolved = records.unresolved_medication_ids([o.resource for o in orders], draft_medications)
    # A selected draft naming a contained Medication that is not there: the card says so.
    return not unresolved and not any(
        o.selected and records.unidentified_drug(o.resource, draft_medications) for o in orders
    )


def _evaluate(declaration: ServiceDeclaration, request_body: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    settings = current_app.config["SETTINGS"]
    terminology = current_app.config["TERMINOLOGY"]
    context = request_body["context"]
    patient_id = str(context["patientId"])
    now: datetime = current_app.config["CLOCK"]()
    hook = declaration.hook
    prefetched = as_dict(request_body.get("prefetch"))
    draft_bundle = context.get("draftOrders")
    # Each prefetch Bundle is walked once here; the count, the Medications and resolve() share it.
    prefetched_reads = {key: read_bundle(value) for key, value in prefetched.items()}
    total = sum(1 for _ in bundle_resources(draft_bundle)) + sum(
        len(read.resources) for read in prefetched_reads.values()
    )
    if total > settings.max_resources:
        raise ApiError(400, f"More than {settings.max_resources} resources in one request.")
    selections = context.get("selections") if hook == "order-select" else None
    # A Medication sent beside the orders in draftOrders names what they order: as good as a
    # contained one, and the EHR may hold no copy yet for the service to fetch.
    draft_medications = {
        f"Medication/{r.get('id')}": r
        for r in bundle_resources(draft_bundle)
        if r.get("resourceType") == "Medication" and as_str(r.get("id"))
    }
    prefetched_medications = {
        **{
            f"Medication/{r.get('id')}": r
            for read in prefetched_reads.values()
            for r in read.resources
            if r.get("resourceType") == "Medication"
        },
        **draft_medications,
    }
    orders = (
        parse_draft_orders(draft_bundle, selections, terminology, prefetched_medications)
        if hook in ORDER_HOOKS
        else []
    )
    # Before anything else: a fhirServer this client may not name is refused even when no data is needed.
    client = _fhir_client(request_body)
    if hook in ORDER_HOOKS and _quick_silence(orders, draft_medications):
        _log_call(declaration, request_body, started, cards=[], data=None)
        return {"cards": []}

    draft_keys = {o.reference for o in orders if o.reference}
    try:
        data = resolve(
            context,
            prefetched,
            client,
            deadline_seconds=settings.fetch_deadline_seconds,
            workers=settings.fetch_workers,
            draft_resources=[
                o.resource
                for o in orders
                if records.unresolved_medication_ids([o.resource], draft_medications)
            ],
            cache=current_app.config.get("FETCH_CACHE"),
            prefetched_reads=prefetched_reads,
            check_total=settings.check_bundle_total,
            excluding=draft_keys,
        )
    except DataNotObtainable as exc:
        reason = str(exc)
        if client is None and request_body.get("fhirServer"):
            # A fhirServer was given and set aside (dev mode calls loopback only): "no fhirServer
            # was given" would send the developer looking for a field that is there.
            reason = "no usable prefetch was sent, and dev mode calls a fhirServer on loopback only"
        raise ApiError(412, f"Data needed and not obtainable: {reason}.") from None

    record = records.build(
        patient_id, data.resources, terminology, frozenset(data.available), excluding=draft_keys
    )
    data.notes += records.notes_on(record)
    params: Params = current_app.config["PARAMS"]
    if hook in ORDER_HOOKS:
        known_medications = {**record.medications, **draft_medications}
        if records.unresolved_medication_ids([o.resource for o in orders], prefetched_medications):
            # Some draft named a Medication that only the FHIR server had: identify it again.
            orders = parse_draft_orders(draft_bundle, selections, terminology, known_medications)
        unidentified = [
            o.reference or "a draft order without an id"
            for o in orders
            if o.selected and not o.is_lookalike and records.unidentified_drug(o.resource, known_medications)
        ]
        findings = engine.evaluate_orders(
            hook,  # type: ignore[arg-type]
            record,
            orders,
            now,
            params,
            notes=data.notes,
            unidentified=unidentified,
        )
    else:
        findings = engine.evaluate_patient_view(record, now, params, notes=data.notes)
    cards = [render(f, current_app.config["CARD_CONTENT"], params.knowledge) for f in findings]
    metrics.cards_issued(cards)
    _record_cards(declaration, patient_id, request_body["hookInstance"], cards)
    _log_call(declaration, request_body, started, cards=cards, data=data)
    return {"cards": cards}


def _record_cards(
    declaration: ServiceDeclaration, patient_id: str, hook_instance: str, cards: list[dict]
) -> None:
    if not cards:
        return
    try:
        current_app.config["STORE"].log_cards(
            declaration.id, declaration.hook, patient_id, hook_instance, cards
        )
    except Exception as exc:  # the EHR still gets its cards; the gap is visible in the log and metrics
        metrics.card_log_write_failed(declaration.id)
        log.error("card log write failed", extra={"error": type(exc).__name__, "service": declaration.id})


def _log_call(
    declaration: ServiceDeclaration,
    request_body: dict[str, Any],
    started: float,
    *,
    cards: list[dict[str, Any]],
    data: ResolvedData | None,
) -> None:
    store = current_app.config["STORE"]
    # Bounded names only: a failed Medication read is "medication", never its (client-chosen) id.
    failures = sorted({key_label(key) for key in data.failures}) if data else []
    if data is not None:
        metrics.prefetch_keys(
            data.prefetched_keys,
            data.fetched_keys,
            failures,
            cached=data.cached_keys,  # reused from a call seconds ago (service/fhir/cache.py)
        )
    log.info(
        "hook call",
        extra={
            "service": declaration.id,
            "hook_instance_hash": store.keyed_hash(str(request_body["hookInstance"]))[:16],
            "patient_hash": store.keyed_hash(str(request_body["context"]["patientId"]))[:16],
            "cards": [c["source"]["topic"]["code"] for c in cards],
            "prefetched": data.prefetched_keys if data else [],
            "fetched": data.fetched_keys if data else [],
            "fetch_failures": failures,
            "ms": round((time.monotonic() - started) * 1000, 1),
            **auth.log_fields(),
        },
    )
