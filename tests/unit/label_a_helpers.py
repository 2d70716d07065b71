"""Run one rule (or the whole engine) on FHIR resources, as the hook edge does (label checks A)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service import cards
from service.app import params_from
from service.clinical import engine, terminology
from service.clinical.findings import Finding, Hook, Params, RuleContext
from service.clinical.orders import parse_draft_orders
from service.clinical.record import ALL_CATEGORIES, build
from service.clinical.rules.base import Rule
from service.settings import Settings
from tests import fhir_builders as fb

PARAMS: Params = params_from(Settings(dev=True))
ORDER_ID = "draft-1"
CARD_CONTENT = cards.load(Path(__file__).resolve().parents[2] / "cards")


def with_params(**changes: Any) -> Params:
    return dataclasses.replace(PARAMS, **changes)


def metastatic(
    *extra: dict[str, Any], weight: float | None = 70.0, weight_days: float = 2
) -> list[dict[str, Any]]:
    """HER2-positive breast cancer, liver metastases since 2025-03-14, first-line THP; optional weight."""
    history: list[dict[str, Any]] = [
        fb.breast_cancer(onset=datetime(2023, 5, 2, tzinfo=UTC)),
        fb.liver_metastases(onset=datetime(2025, 3, 14, tzinfo=UTC)),
        fb.statement("trastuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC)),
        fb.statement("pertuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC)),
        fb.statement("docetaxel", datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC)),
    ]
    if weight is not None:
        history.append(fb.observation("weight", weight, fb.ago(days=weight_days)))
    return [*history, *extra]


def draft(drug: str = "tdm1", dose: float | None = 3.6, unit: str = "mg/kg", **kwargs: Any) -> dict[str, Any]:
    return fb.medication_request(drug, dose=dose, unit=unit, rid=kwargs.pop("rid", ORDER_ID), **kwargs)


def context(
    order: dict[str, Any],
    history: list[dict[str, Any]],
    *,
    hook: Hook = "order-sign",
    now: datetime = fb.NOW,
    available: frozenset[str] = ALL_CATEGORIES,
    params: Params = PARAMS,
    others: list[dict[str, Any]] | None = None,
) -> RuleContext:
    record = build("pat-1", history, terminology.default(), available)
    drafts = [order, *(others or [])]
    bundle = {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]}
    orders = parse_draft_orders(bundle, None, terminology.default(), record.medications)
    return engine.order_context(hook, record, orders[0], orders, now, params)


def evaluate(
    rule: Rule, order: dict[str, Any], history: list[dict[str, Any]], **kwargs: Any
) -> list[Finding]:
    """The rule's findings, each also rendered to a card so missing card facts fail the test."""
    findings = rule.evaluate(context(order, history, **kwargs))
    for finding in findings:
        render(finding)
    return findings


def render(finding: Finding) -> dict[str, Any]:
    card = cards.render(finding, CARD_CONTENT, PARAMS.knowledge)
    assert len(card["summary"]) < 140, card["summary"]
    return card


def all_rules(
    drafts: list[dict[str, Any]],
    history: list[dict[str, Any]],
    *,
    now: datetime = fb.NOW,
    available: frozenset[str] = ALL_CATEGORIES,
) -> list[Finding]:
    record = build("pat-1", history, terminology.default(), available)
    bundle = {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]}
    orders = parse_draft_orders(bundle, None, terminology.default(), record.medications)
    return engine.evaluate_orders("order-sign", record, orders, now, PARAMS)


def ids(findings: list[Finding]) -> list[str]:
    return sorted(f.rule_id for f in findings)
