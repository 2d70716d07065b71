"""Runs the rules over a record and the draft orders. Pure: everything it needs is passed in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cache

from service.clinical.findings import Finding, Hook, Params, RuleContext
from service.clinical.orders import DraftOrder
from service.clinical.record import (
    CONDITIONS,
    MEDICATION_ADMINISTRATIONS,
    MEDICATION_HISTORY,
    MEDICATION_REQUESTS,
    MEDICATION_STATEMENTS,
    OBSERVATIONS,
    PATIENT,
    PatientRecord,
)
from service.clinical.rules import RULES
from service.clinical.rules.base import Rule
from service.clinical.rules.course import tdm1_course
from service.clinical.terminology import TDM1

DATA_NAMES = {
    PATIENT: "patient demographics",
    CONDITIONS: "problem list (Conditions)",
    OBSERVATIONS: "lab results and vital signs (Observations)",
    MEDICATION_REQUESTS: "medication orders (MedicationRequest)",
    MEDICATION_ADMINISTRATIONS: "administrations (MedicationAdministration)",
    MEDICATION_STATEMENTS: "medication statements (MedicationStatement)",
}
INDICATOR_ORDER = {"critical": 0, "warning": 1, "info": 2}


def dose_time(order: DraftOrder, now: datetime) -> datetime:
    """The dose is given at the order's planned start when that lies ahead, otherwise now."""
    return order.start if order.start and order.start > now else now


def order_context(
    hook: Hook,
    record: PatientRecord,
    order: DraftOrder,
    orders: list[DraftOrder],
    now: datetime,
    params: Params,
    notes: list[str] | None = None,
) -> RuleContext:
    """What a rule sees for one draft order: the whole session's orders and the planned dose time."""
    return RuleContext(
        hook=hook,
        record=record,
        now=now,
        params=params,
        order=order,
        draft_orders=tuple(orders),
        dose_time=dose_time(order, now),
        notes=notes if notes is not None else [],
    )


@cache
def _order_rules(family: str | None) -> tuple[Rule, ...]:
    """The rules that look at draft orders of this family, in RULES order (RULES never changes)."""
    return tuple(rule for rule in RULES if rule.on_orders and family in rule.families)


def _run(rule: Rule, ctx: RuleContext, on_patient_view: bool, skipped: dict[str, set[str]]) -> list[Finding]:
    needs = rule.needs_for(on_patient_view)
    if not needs <= ctx.record.available:
        skipped.setdefault(rule.rule_id, set()).update(needs - ctx.record.available)
        return []
    return rule.evaluate(ctx)


def _unique(findings: Iterable[Finding | tuple[int, Finding]]) -> list[Finding]:
    """One finding per rule id per order. A finding may come with the index of the draft it was
    found on: an order without an id has no order_ref, and two such drafts (5.4 and 4.4 mg/kg T-DM1)
    are still two orders, each owed its own card."""
    seen: set[tuple[str, str | int | None]] = set()
    unique = []
    for item in findings:
        index, finding = item if isinstance(item, tuple) else (None, item)
        key = (finding.rule_id, finding.order_ref or index)
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return sorted(unique, key=lambda f: INDICATOR_ORDER[f.indicator])


def _data_unavailable(skipped: dict[str, set[str]], notes: list[str]) -> list[Finding]:
    if not skipped and not notes:
        return []
    categories = sorted({c for missing in skipped.values() for c in missing})
    return [
        Finding(
            rule_id="data-unavailable",
            indicator="warning",
            facts={
                "data": ", ".join(DATA_NAMES.get(c, c) for c in categories) or "none",
                "skipped": ", ".join(sorted(skipped)) or "none",
                "notes": notes,
            },
            variant="fetch" if skipped else "notes",
        )
    ]


def evaluate_orders(
    hook: Hook,
    record: PatientRecord,
    orders: list[DraftOrder],
    now: datetime,
    params: Params,
    notes: list[str] | None = None,
    unidentified: Sequence[str] = (),
) -> list[Finding]:
    """Cards for order-select / order-sign: only for selected T-DM1 orders and its look-alikes.

    `unidentified`: selected orders whose drug could not be told, because the Medication they name
    could not be read (the fetch failed, or nobody sent it) or names no drug (no code, no text).
    Such an order may be T-DM1: silence would pass for "checked, nothing wrong", so a
    data-unavailable card says so.
    """
    targets = [o for o in orders if o.selected and o.is_lookalike]
    unknown_drug = (
        [
            f"The drug of {', '.join(unidentified)} could not be identified: the Medication it names could "
            "not be read, or carries no code. If it is T-DM1, trastuzumab or T-DXd, no check was applied to it."
        ]
        if unidentified
        else []
    )
    if not targets:
        return _data_unavailable({}, unknown_drug)
    findings: list[tuple[int, Finding]] = []
    skipped: dict[str, set[str]] = {}
    notes = [*(notes or []), *unknown_drug]
    for index, order in enumerate(targets):
        ctx = order_context(hook, record, order, orders, now, params, notes)
        for rule in _order_rules(order.family):
            findings += [(index, finding) for finding in _run(rule, ctx, False, skipped)]
    return _unique(findings) + _data_unavailable(skipped, list(dict.fromkeys(notes)))


def evaluate_patient_view(
    record: PatientRecord, now: datetime, params: Params, notes: list[str] | None = None
) -> list[Finding]:
    """Cards for patient-view: only for patients with T-DM1 on record."""
    if not record.events(TDM1):
        blind = MEDICATION_HISTORY - record.available
        # Without the medication history we cannot tell whether the patient is on T-DM1: say so.
        return _data_unavailable({"treatment-summary": set(blind)}, list(notes or [])) if blind else []
    current = tdm1_course(record, now, params.knowledge)
    cycle_days = params.knowledge.value("dosing.schedule")["cycle_days"]
    next_due = current.next_due(timedelta(days=cycle_days)) if current else None
    due_soon = bool(current and current.active and (next_due is None or next_due - now <= params.lab_window))
    ctx = RuleContext(
        hook="patient-view",
        record=record,
        now=now,
        params=params,
        dose_time=max(next_due, now) if next_due else now,
        notes=list(notes or []),
    )
    findings: list[Finding] = []
    skipped: dict[str, set[str]] = {}
    for rule in RULES:
        if rule.on_patient_view and (due_soon or not rule.only_when_due):
            findings += _run(rule, ctx, True, skipped)
    return _unique(findings) + _data_unavailable(skipped, list(dict.fromkeys(ctx.notes)))
