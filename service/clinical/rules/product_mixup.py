"""product-mixup: T-DM1, T-DXd and trastuzumab confused with one another.

Sources: KADCYLA USPI §2.1: "Do not substitute KADCYLA for or with trastuzumab."; ENHERTU USPI §2:
do not substitute ENHERTU for or with trastuzumab or ado-trastuzumab emtansine. Levels: KADCYLA
USPI §2 (3.6 / 3.0 / 2.4 mg/kg), ENHERTU USPI §2 (5.4 / 4.4 / 3.2 mg/kg breast, 6.4 mg/kg gastric),
trastuzumab USPI (8 then 6 mg/kg q3w, 4 then 2 mg/kg weekly). Knowledge: dosing.do-not-substitute,
dosing.lookalike-levels, policy.ongoing-course.

When  a T-DM1 order's dose (mg/kg, or mg over a body weight ≤ `weight_stale` old) is within
      `dose_tolerance` of a T-DXd or trastuzumab level and of no T-DM1 level,
Then  critical: suggest the same T-DM1 order at the allowed T-DM1 level, or the product the dose
      belongs to, or removing the draft.
When  a T-DXd or trastuzumab order's dose is within tolerance of a T-DM1 level and of none of its
      own product's levels,
Then  critical: suggest T-DM1 at that dose instead, or removing the draft.
When  a T-DXd or trastuzumab order is placed while the record shows an ongoing T-DM1 course (not
      stopped, no progression or toxicity recorded since it began, a dose given or an active order
      within `policy.ongoing-course` cycles),
Then  critical: a product swap in mid-course; suggest removing the draft.

Decisions:
- Tolerance bands overlap (T-DM1 3.0 vs T-DXd 3.2 between 3.04 and 3.15 mg/kg; trastuzumab 6 vs
  T-DXd 6.4 between 6.08 and 6.3): a dose inside its own product's band is that product's dose;
  a T-DM1 dose in two look-alike bands names both, nearest first.
- T-DXd vs trastuzumab confusions are out of scope: this service guards T-DM1.
- The dose-level finding wins over the swap finding for the same order (one card per rule per
  order); it is the more specific message.
- For a T-DM1 order, dose-check stays silent on a look-alike level (this card covers it) and
  already warns when an mg dose has no fresh weight; for a T-DXd or trastuzumab order in mg without
  a fresh weight, the dose comparison is not possible and a note says so.
"""

from __future__ import annotations

from datetime import datetime

from service.clinical.findings import Action, Finding, RuleContext, Suggestion
from service.clinical.record import CONDITIONS, MEDICATION_HISTORY, OBSERVATIONS
from service.clinical.rules import derived, dosing
from service.clinical.rules.base import Rule
from service.clinical.rules.dose import documented_level
from service.clinical.suggestions import new_id
from service.clinical.terminology import LOOKALIKES, TDM1

RULE_ID = "product-mixup"
SOURCES = ("dosing.do-not-substitute", "dosing.lookalike-levels")
ACTIVE_STATUSES = frozenset({"active", "on-hold"})
TOXICITY_CONDITIONS = ("interstitial_lung_disease", "heart_failure", "nodular_regenerative_hyperplasia")


def evaluate(ctx: RuleContext) -> list[Finding]:
    order = ctx.order
    if order is None or order.family not in LOOKALIKES:
        return []
    product = dosing.PRODUCT_NAMES[order.family]
    ordered = dosing.ordered_dose(ctx)
    if ordered.mg_per_kg is not None:
        matches = dosing.lookalike_matches(
            ordered.mg_per_kg, order.family, ctx.params.knowledge, ctx.params.dose_tolerance
        )
        if matches:
            return [_dose_finding(ctx, ordered, matches)]
    elif order.family != TDM1 and ordered.problem != "no-dose":
        ctx.notes.append(
            f"Product mix-up check on the {product} dose not applied: {_no_weight(ctx, ordered)}."
        )
    if order.family == TDM1:
        return []
    needed = MEDICATION_HISTORY | {CONDITIONS, OBSERVATIONS}
    if not ctx.record.available >= needed:
        ctx.notes.append(
            f"Product swap check not applied to the {product} order: the medication history, problem list "
            "or disease status could not be read."
        )
        return []
    last = ongoing_tdm1(ctx)
    if last is None:
        return []
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="critical",
            variant="swap-in-course",
            facts={
                "product": product,
                "last_tdm1": last.date().isoformat(),
                "statement": ctx.params.knowledge.value("dosing.do-not-substitute")["statement"],
            },
            order_ref=order.reference or None,
            suggestions=_remove(ctx),
            sources=(*SOURCES, "policy.ongoing-course"),
        )
    ]


def _no_weight(ctx: RuleContext, ordered: dosing.OrderedDose) -> str:
    """Why an mg dose could not be put in mg/kg, as the note says it."""
    if ordered.problem == "weight-unreadable" and ordered.unreadable_weight is not None:
        newest = ordered.unreadable_weight
        return (
            f"the dose is in mg and the newest body weight ({newest.when.date().isoformat()}) could not be "
            f"read ({newest.problem}); an older weight is not used in its place"
        )
    if ordered.problem == "no-weight-data":
        return "the dose is in mg and the patient's observations could not be read"
    return f"the dose is in mg and no body weight was recorded in the {ctx.params.weight_stale.days} days before it"


def ongoing_tdm1(ctx: RuleContext) -> datetime | None:
    """The last T-DM1 activity if the record shows a T-DM1 course still going on, else None."""
    record, terminology = ctx.record, ctx.params.terminology
    current = derived.current_course(ctx)
    if current is None or not current.active or current.start is None:
        return None
    start = current.start
    if any(when >= start for when in record.progression):
        return None  # a switch after progression is the next line, not a mix-up
    if any(e.status_reasons & terminology.qualifiers["termination_reason"] for e in current.events):
        return None
    for condition in record.conditions:
        if (
            condition.onset
            and condition.onset >= start
            and any(
                terminology.in_condition_set(n, condition.codes, condition.text) for n in TOXICITY_CONDITIONS
            )
        ):
            return None
    window = ctx.cycle * ctx.params.knowledge.value("policy.ongoing-course")["cycles_since_last_dose"]
    moments = []
    if current.last_dose and current.last_dose.start and ctx.now - current.last_dose.start <= window:
        moments.append(current.last_dose.start)
    # An active order or statement is the record saying, explicitly, that the course goes on.
    moments += [
        e.start
        for e in current.events
        if e.kind in ("request", "statement")
        and e.status in ACTIVE_STATUSES
        and e.start
        and e.start <= ctx.now
    ]
    return max(moments) if moments else None


def _dose_finding(
    ctx: RuleContext, ordered: dosing.OrderedDose, matches: tuple[dosing.LookalikeMatch, ...]
) -> Finding:
    order = ctx.order
    assert order is not None and ordered.mg_per_kg is not None and ordered.dose is not None
    family = order.family or ""
    value = ordered.mg_per_kg
    facts = {
        "product": dosing.PRODUCT_NAMES[family],
        "ordered": dosing.describe(ordered.dose),
        "mg_per_kg": f"{round(value, 2):g}",
        "matches": " or ".join(f"{m.product} {m.level:g} mg/kg" for m in matches),
        "tdm1_levels": " / ".join(f"{level:.1f}" for level in dosing.ladder(ctx.params.knowledge)),
        "maximum": f"{dosing.maximum(ctx.params.knowledge):.1f}",
        "statement": ctx.params.knowledge.value("dosing.do-not-substitute")["statement"],
        "dose_text": dosing.dose_text(ordered),
    }
    if family == TDM1:
        variant = "tdm1-at-lookalike-dose"
        suggestions = _tdm1_suggestions(ctx, ordered, matches[0])
    else:
        variant = "lookalike-at-tdm1-dose"
        suggestions = _replace(ctx, ordered, TDM1) + _remove(ctx)
    return Finding(
        rule_id=RULE_ID,
        indicator="critical",
        variant=variant,
        facts=facts,
        order_ref=order.reference or None,
        suggestions=suggestions,
        sources=(*SOURCES, "dosing.maximum") if family == TDM1 else SOURCES,
    )


def _tdm1_suggestions(
    ctx: RuleContext, ordered: dosing.OrderedDose, best: dosing.LookalikeMatch
) -> tuple[Suggestion, ...]:
    order = ctx.order
    assert order is not None and ordered.mg_per_kg is not None
    if not order.reference:
        return ()
    suggestions: list[Suggestion] = []
    documented, _event, _unconverted = documented_level(ctx)
    target = dosing.allowed_level(
        ordered.mg_per_kg, documented, ctx.params.knowledge, ctx.params.dose_tolerance
    )
    update = dosing.dose_update(order.resource, target, ordered) if target is not None else None
    if update is not None:
        suggestions.append(Suggestion(key="set-tdm1-dose", actions=(update,)))
    # In an ongoing T-DM1 course the dose, not the product, is the likely error; offering the
    # look-alike product would also trip this rule's swap check when accepted (an alert loop).
    replace = () if _ongoing_if_known(ctx) else _replace(ctx, ordered, best.family)
    return (*suggestions, *replace, *_remove(ctx))


def _ongoing_if_known(ctx: RuleContext) -> bool:
    """True when an ongoing T-DM1 course is on record, or when the record cannot tell."""
    if not ctx.record.available >= MEDICATION_HISTORY | {CONDITIONS, OBSERVATIONS}:
        return True
    return ongoing_tdm1(ctx) is not None


def _replace(ctx: RuleContext, ordered: dosing.OrderedDose, family: str) -> tuple[Suggestion, ...]:
    """Delete the draft and draft the product the dose belongs to, same dose and schedule."""
    order = ctx.order
    assert order is not None and ordered.dose is not None
    if not order.reference:
        return ()
    resource = dosing.new_order_like(
        order.resource,
        family,
        f"Patient/{ctx.record.patient_id}",
        new_id(),
        ordered.dose.value,
        ordered.dose.unit,
    )
    if resource is None:
        return ()
    name = dosing.PRODUCT_NAMES[family]
    return (
        Suggestion(
            key=f"replace-with-{family}",
            actions=(
                Action(
                    type="delete",
                    description=f"Remove this {dosing.PRODUCT_NAMES[order.family or '']} draft",
                    resource_id=order.reference,
                ),
                Action(
                    type="create",
                    description=f"Draft {name} at {dosing.describe(ordered.dose)}",
                    resource=resource,
                ),
            ),
        ),
    )


def _remove(ctx: RuleContext) -> tuple[Suggestion, ...]:
    order = ctx.order
    if order is None or not order.reference:
        return ()
    product = dosing.PRODUCT_NAMES.get(order.family or "", "this")
    return (
        Suggestion(
            key="remove-order",
            actions=(
                Action(
                    type="delete",
                    description=f"Remove the {product} draft order",
                    resource_id=order.reference,
                ),
            ),
        ),
    )


# Needs are checked inside: the dose comparison works on an mg/kg order with no data at all.
RULE = Rule(rule_id=RULE_ID, needs=frozenset(), evaluate=evaluate, families=LOOKALIKES)
