"""Build a RuleContext for one rule from FHIR resources, as the engine would (label checks B)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.clinical import engine, terminology
from service.clinical.findings import Hook, Params, RuleContext
from service.clinical.record import ALL_CATEGORIES, build
from service.clinical.terminology import TDM1
from tests import fhir_builders as fb
from tests.unit.rule_helpers import PARAMS, orders_of

ORDER_ID = "tdm1-draft"


def metastatic(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Breast cancer with liver metastases (setting metastatic), no labs unless given."""
    return [
        fb.breast_cancer(onset=datetime(2023, 5, 2, tzinfo=UTC)),
        fb.liver_metastases(onset=datetime(2025, 3, 14, tzinfo=UTC)),
        *extra,
    ]


def early(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Breast cancer, no metastatic evidence (setting early)."""
    return [fb.breast_cancer(onset=datetime(2026, 1, 10, tzinfo=UTC)), *extra]


def unknown(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """No cancer condition at all (setting unknown)."""
    return list(extra)


def context(
    history: list[dict[str, Any]],
    *,
    drafts: list[dict[str, Any]] | None = None,
    hook: Hook = "order-sign",
    now: datetime = fb.NOW,
    available: frozenset[str] = ALL_CATEGORIES,
    params: Params = PARAMS,
) -> RuleContext:
    record = build("pat-1", history, terminology.default(), available)
    if hook == "patient-view":
        return RuleContext(hook=hook, record=record, now=now, params=params, dose_time=now)
    drafts = drafts if drafts is not None else [fb.medication_request(rid=ORDER_ID)]
    orders = orders_of(drafts, record.medications)
    order = next(o for o in orders if o.family == TDM1)
    return engine.order_context(hook, record, order, orders, now, params)
