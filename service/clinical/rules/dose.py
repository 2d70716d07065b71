"""dose-check: the T-DM1 dose against the label's ladder, its maximum and the current weight.

Sources: KADCYLA USPI §2.1 ("Do not administer KADCYLA at doses greater than 3.6 mg/kg"),
§2.2 Table 1 (3.6 → 3.0 → 2.4 mg/kg; a further reduction means discontinue; "Do not re-escalate
the KADCYLA dose after a dose reduction is made"). Knowledge: dosing.maximum,
dosing.reduction-ladder, dosing.weight-basis (actual body weight: institutional policy).

When  a T-DM1 order is selected or signed with a dose in mg/kg, or in mg with a body weight
      (LOINC 29463-7) measured no more than `weight_stale` (default 30 days) before the dose,
Then  compare dose/weight with the ladder, each level ± `dose_tolerance` (default 5 %, vial rounding):
      - above 3.6 mg/kg beyond tolerance                            → critical
      - above a level documented earlier (administration or order)   → warning (re-escalation)
      - between two levels, or below 2.4 mg/kg                       → warning
      - on a level, not above the documented level                   → no card
      and suggest the same draft (update, same id) at the nearest level not above the ordered dose
      nor the documented level, in mg when the order is in mg (level × weight, whole mg).
When  the dose is in mg and the weight is missing or older than `weight_stale`, or the newest
      weight cannot be read (a unit we cannot convert, no numeric value),
Then  warn that the dose cannot be verified; an unreadable newest weight is named (date, why), and
      an older weight is not used in its place. An order that also states its dose in mg/kg (Epic:
      calculated mg, then ordered mg/kg) is checked on that mg/kg instead, and still gets this
      warning when the mg/kg is on the ladder: the mg amount, from a dosing weight we cannot check,
      is what is given.

Decisions:
- An mg/kg order is checked against the ladder without a weight: the ladder is in mg/kg, and the
  mg amount is computed at preparation with the day's weight. A weight card on every mg/kg order
  would be noise; a weight card on an mg order is the only way to verify it.
- Freshness is judged at the dose time (the order's planned start when ahead), so a weight that
  will be stale on the day of the infusion is stale now.
- A dose > 3.6 mg/kg that matches a T-DXd or trastuzumab level is left to product-mixup (critical,
  it offers the corrected T-DM1 dose too): two critical cards for one error would be noise. The
  same dosing functions decide both, so exactly one of the two cards fires.
- Re-escalation looks at T-DM1 administrations given and non-draft orders, excluding (in metastatic
  disease) an earlier adjuvant course: the label's rule applies within a course. A past mg dose is
  converted with the weight recorded around it; one that cannot be converted is said (note).
- A dose that cannot be read is said (data-unavailable note), never guessed.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from service.clinical.findings import Action, Finding, RuleContext, Suggestion
from service.clinical.record import MEDICATION_HISTORY, TherapyEvent, dose_and_rates, range_bounds
from service.clinical.resources import as_dict
from service.clinical.rules import course, derived, dosing
from service.clinical.rules.base import Rule
from service.clinical.terminology import TDM1

RULE_ID = "dose-check"
SOURCES = ("dosing.maximum", "dosing.reduction-ladder")


def _has_dose_quantity(resource: dict) -> bool:
    return any(as_dict(dr.get("doseQuantity")) for dr in dose_and_rates(resource))


def _dose_range(resource: dict) -> str:
    """The first doseRange of the order as text ("3.6 to 5.4 mg/kg"), or "" when there is none;
    one whose bounds cannot be read as mg or mg/kg is named as such."""
    for dr in dose_and_rates(resource):
        dose_range = dr.get("doseRange")
        if not as_dict(dose_range):
            continue
        bounds = range_bounds(dose_range)
        if bounds is None:
            return "bounds not readable in one unit of mg or mg/kg"
        low, high = bounds
        return f"{low.value:g} to {high.value:g} {high.unit}"
    return ""


def documented_level(ctx: RuleContext) -> tuple[float | None, TherapyEvent | None, int]:
    """(lowest ladder level on record, the event that documents it, past doses not convertible)."""
    record, terminology, now = ctx.record, ctx.params.terminology, ctx.now
    knowledge, tolerance, stale = ctx.params.knowledge, ctx.params.dose_tolerance, ctx.params.weight_stale
    metastatic = record.setting == "metastatic"
    lowest: tuple[float, TherapyEvent] | None = None
    unconverted = 0
    levels: dict[float, float | None] = {}  # a course repeats a few doses: place each value once
    for event in derived.tdm1_events(ctx):
        if event.kind == "statement" or (event.kind == "administration" and not event.is_dose_given):
            continue
        if event.start is None or event.start > now or event.dose is None:
            continue
        if metastatic and course.placement(event, record, terminology) == "early":
            continue
        value = dosing.event_mg_per_kg(event, record, stale)
        if value is None:
            unconverted += 1
            continue
        if value not in levels:
            levels[value] = dosing.ladder_level(value, knowledge, tolerance)
        level = levels[value]
        if level is not None and (lowest is None or level < lowest[0]):
            lowest = (level, event)
    return (lowest[0], lowest[1], unconverted) if lowest else (None, None, unconverted)


def evaluate(ctx: RuleContext) -> list[Finding]:
    order = ctx.order
    if order is None or order.family != TDM1:
        return []
    knowledge, tolerance = ctx.params.knowledge, ctx.params.dose_tolerance
    ordered = dosing.ordered_dose(ctx)
    if ordered.problem == "no-dose":
        dose_range = _dose_range(order.resource)
        if dose_range:
            # A range (3.6 to 5.4 mg/kg) is no one dose to grade: never graded at either bound.
            ctx.notes.append(
                f"Dose check not applied: the T-DM1 order gives a dose range ({dose_range}), not one dose: "
                "order a single dose, or check the dose given against the label's levels."
            )
        elif _has_dose_quantity(order.resource):
            ctx.notes.append(
                "Dose check not applied: the T-DM1 dose is not in mg or mg/kg and could not be read."
            )
        elif ctx.hook == "order-sign":
            ctx.notes.append(
                "Dose check not applied: the T-DM1 order carries no structured dose (doseQuantity)."
            )
        return []
    if ordered.problem == "no-weight-data":
        ctx.notes.append("Dose check not applied: the T-DM1 dose is in mg and body weight could not be read.")
        return []
    if ordered.problem in ("weight-missing", "weight-stale", "weight-unreadable"):
        return [_weight_finding(ctx, ordered)]
    value = ordered.mg_per_kg
    assert value is not None
    if dosing.lookalike_matches(value, TDM1, knowledge, tolerance):
        return []  # product-mixup's card (see module docstring)
    maximum = dosing.maximum(knowledge)
    documented, documented_event, unconverted = documented_level(ctx)
    if not ctx.record.available >= MEDICATION_HISTORY:
        ctx.notes.append("Re-escalation check not applied: the T-DM1 medication history could not be read.")
    level = dosing.ladder_level(value, knowledge, tolerance)
    if value > maximum and not dosing.within(value, maximum, tolerance):
        variant, indicator = "above-maximum", "critical"
    elif documented is not None and value > documented and not dosing.within(value, documented, tolerance):
        variant, indicator = "re-escalation", "warning"
    elif level is None:
        variant, indicator = (
            ("below-ladder" if value < min(dosing.ladder(knowledge)) else "between-levels"),
            "warning",
        )
    else:
        if ordered.unverified_mg is not None:
            # The stated mg/kg is on the ladder, but the mg amount the order gives (computed from a
            # dosing weight we cannot check) is what is infused: still the weight warning.
            return _unverified_mg(ctx, ordered)
        if unconverted:
            ctx.notes.append(
                f"Re-escalation check incomplete: {unconverted} earlier T-DM1 dose(s) in mg have no body "
                "weight recorded around them."
            )
        return []
    target = dosing.allowed_level(value, documented, knowledge, tolerance)
    facts = {
        "ordered": dosing.describe(ordered.dose) if ordered.dose else "",
        "mg_per_kg": f"{round(value, 2):g}",
        "dose_text": dosing.dose_text(ordered),
        "maximum": f"{maximum:.1f}",
        "levels": " / ".join(f"{level:.1f}" for level in dosing.ladder(knowledge)),
        "tolerance": f"{tolerance * 100:g}",
        "documented": f"{documented:.1f}" if documented is not None else "",
        "documented_on": _event_text(documented_event),
        "reduction_note": (
            f"The record documents a reduction to {documented:.1f} mg/kg ({_event_text(documented_event)}): "
            "the dose must not be re-escalated."
            if documented is not None and documented < maximum
            else ""
        ),
        "suggested": dosing.shown(*dosing.level_in_order_unit(target, ordered)) if target else "",
        "suggested_level": f"{target:.1f}" if target else "",
    }
    return [
        Finding(
            rule_id=RULE_ID,
            indicator=indicator,  # type: ignore[arg-type]
            facts=facts,
            variant=variant,
            order_ref=order.reference or None,
            suggestions=_suggestions(ctx, ordered, target),
            sources=SOURCES,
        )
    ]


def _unverified_mg(ctx: RuleContext, ordered: dosing.OrderedDose) -> list[Finding]:
    """An on-ladder mg/kg beside an mg amount that cannot be put in mg/kg: the mg order's answer."""
    in_mg = ordered.unverified_mg
    assert in_mg is not None and in_mg.dose is not None and ordered.dose is not None
    if in_mg.problem == "no-weight-data":
        ctx.notes.append("Dose check not applied: the T-DM1 dose is in mg and body weight could not be read.")
        return []
    finding = _weight_finding(ctx, in_mg)
    stated = f"{dosing.describe(in_mg.dose)} (calculated from {dosing.describe(ordered.dose)})"
    return [dataclasses.replace(finding, facts={**finding.facts, "ordered": stated})]


def _event_text(event: TherapyEvent | None) -> str:
    if event is None or event.start is None:
        return ""
    what = "given" if event.kind == "administration" else "ordered"
    dose = dosing.describe(event.dose) if event.dose else ""
    return f"{dose} {what} {event.start.date().isoformat()}"


def _weight_finding(ctx: RuleContext, ordered: dosing.OrderedDose) -> Finding:
    latest = ordered.latest_weight
    order = ctx.order
    assert order is not None and ordered.dose is not None
    stale_days = int(ctx.params.weight_stale / timedelta(days=1))
    unreadable = ordered.unreadable_weight
    return Finding(
        rule_id=RULE_ID,
        indicator="warning",
        variant=ordered.problem,
        facts={
            "ordered": dosing.describe(ordered.dose),
            "stale_days": stale_days,
            "last_weight": (
                f"{latest.value:g} kg on {latest.when.date().isoformat()} ({(ctx.at - latest.when).days} days before the dose)"
                if latest and latest.value is not None
                else "none on record"
            ),
            "levels": " / ".join(f"{level:.1f}" for level in dosing.ladder(ctx.params.knowledge)),
            # weight-unreadable: the newest weight, named so it can be found and corrected.
            "unreadable_on": unreadable.when.date().isoformat() if unreadable else "",
            "unreadable_weight": (
                f"{unreadable.when.date().isoformat()} ({(ctx.at - unreadable.when).days} days before the "
                f"dose): {unreadable.problem}"
                if unreadable
                else ""
            ),
        },
        order_ref=order.reference or None,
        sources=(*SOURCES, "dosing.weight-basis"),
    )


def _suggestions(
    ctx: RuleContext, ordered: dosing.OrderedDose, target: float | None
) -> tuple[Suggestion, ...]:
    order = ctx.order
    if order is None or not order.reference:
        return ()  # an order without an id cannot be updated or deleted
    if target is None:
        lowest = min(dosing.ladder(ctx.params.knowledge))
        return (
            Suggestion(
                key="discontinue",
                actions=(
                    Action(
                        type="delete",
                        description=(
                            f"Remove the T-DM1 order: no dose level below {lowest:.1f} mg/kg (discontinue)"
                        ),
                        resource_id=order.reference,
                    ),
                ),
            ),
        )
    update = dosing.dose_update(order.resource, target, ordered)
    if update is None:
        return ()
    return (Suggestion(key="set-dose", actions=(update,), recommended=True),)


# Needs are checked inside: an mg/kg order needs no weight, and the ladder check must not be lost
# because the medication history could not be read.
RULE = Rule(rule_id=RULE_ID, needs=frozenset(), evaluate=evaluate)
