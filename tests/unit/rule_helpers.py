"""Run the engine the way the hook edge does, without HTTP, for rule tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.app import params_from
from service.clinical import engine, terminology
from service.clinical.findings import Finding, Params
from service.clinical.orders import parse_draft_orders
from service.clinical.record import ALL_CATEGORIES, build
from service.settings import Settings
from tests import fhir_builders as fb

PARAMS: Params = params_from(Settings(dev=True))


def orders_of(drafts: list[dict[str, Any]], record_medications: dict | None = None) -> list:
    bundle = {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]}
    return parse_draft_orders(bundle, None, terminology.default(), record_medications or {})


def on_order(
    drafts: list[dict[str, Any]] | dict[str, Any],
    history: list[dict[str, Any]],
    *,
    now: datetime = fb.NOW,
    available: frozenset[str] = ALL_CATEGORIES,
    params: Params = PARAMS,
) -> list[Finding]:
    drafts = drafts if isinstance(drafts, list) else [drafts]
    record = build("pat-1", history, terminology.default(), available)
    return engine.evaluate_orders("order-sign", record, orders_of(drafts, record.medications), now, params)


def on_patient_view(
    history: list[dict[str, Any]], *, now: datetime = fb.NOW, available: frozenset[str] = ALL_CATEGORIES
) -> list[Finding]:
    record = build("pat-1", history, terminology.default(), available)
    return engine.evaluate_patient_view(record, now, PARAMS)


def rule_ids(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


def only(findings: list[Finding], rule_id: str) -> Finding:
    matching = [f for f in findings if f.rule_id == rule_id]
    assert len(matching) == 1, f"expected one {rule_id}, got {[f.rule_id for f in findings]}"
    return matching[0]
