"""Dose arithmetic shared by dose-check and product-mixup: mg/kg from the order, ladder levels,
look-alike levels, and the corrected order a card may suggest.

Sources: KADCYLA USPI §2.1-2.2 (3.6 mg/kg maximum, 3.6 → 3.0 → 2.4 mg/kg ladder, no re-escalation);
ENHERTU USPI §2 and the trastuzumab USPI for the look-alike levels (knowledge `dosing.*`).

Both rules read the same numbers through these functions, so the decision "this T-DM1 dose is a
look-alike product's dose" (product-mixup) and "this T-DM1 dose is off the ladder" (dose-check)
can never disagree about a dose.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.clinical.findings import Action, RuleContext
from service.clinical.knowledge import Knowledge
from service.clinical.record import (
    OBSERVATIONS,
    Dose,
    PatientRecord,
    Result,
    TherapyEvent,
    quantity_dose,
    range_dose,
    request_dose,
    unread_newer,
)
from service.clinical.resources import as_dict, as_list, as_str
from service.clinical.suggestions import InvalidSuggestion, validated
from service.clinical.terminology import TDM1, TDXD, TRASTUZUMAB

LADDER = "dosing.reduction-ladder"  # the knowledge entry of the T-DM1 dose levels
# Float noise: 3.6 × 1.05 is 3.7800000000000002; a dose of exactly 3.78 is within tolerance.
_EPSILON = 1e-9
# Orders in mg are rounded to whole milligrams: vials are 100/160 mg at 20 mg/mL.
_MG_DECIMALS = 0
_DOSE_IN_TEXT = re.compile(r"(\d+(?:[.,]\d+)?)\s*mg(\s*/\s*kg)?", re.IGNORECASE)
_PARENTHESISED_DOSE = re.compile(r"\s*\(\s*" + _DOSE_IN_TEXT.pattern + r"\s*\)", re.IGNORECASE)

PRODUCT_NAMES = {
    TDM1: "T-DM1 (Kadcyla)",
    TDXD: "T-DXd (Enhertu)",
    TRASTUZUMAB: "trastuzumab",
}
# The clinical drug (SCD) used when a card drafts an order for the product the dose belongs to.
PRODUCT_RXNORM = {
    TDM1: ("1658084", "ado-trastuzumab emtansine 100 MG Injection"),
    TDXD: ("2267576", "fam-trastuzumab deruxtecan-nxki 100 MG Injection"),
    TRASTUZUMAB: ("1922509", "trastuzumab 150 MG Injection"),
}


def within(value: float, level: float, tolerance: float) -> bool:
    return abs(value - level) <= level * tolerance + _EPSILON


def ladder(knowledge: Knowledge) -> tuple[float, ...]:
    """T-DM1 levels, highest first (sorted once per Knowledge: every past dose is placed on it)."""
    return knowledge.derived(("sorted", LADDER), lambda: _sorted_ladder(knowledge))


def _sorted_ladder(knowledge: Knowledge) -> tuple[float, ...]:
    return tuple(sorted(knowledge.value(LADDER)["levels_mg_per_kg"], reverse=True))


def maximum(knowledge: Knowledge) -> float:
    return float(knowledge.value("dosing.maximum")["mg_per_kg"])


def ladder_level(value: float, knowledge: Knowledge, tolerance: float) -> float | None:
    """The ladder level this dose is (within tolerance), else None; of two, the nearer (the first
    in ladder order when both are as near)."""
    nearest = None
    for level in ladder(knowledge):
        if within(value, level, tolerance) and (nearest is None or abs(value - level) < abs(value - nearest)):
            nearest = level
    return nearest


def allowed_level(
    value: float, ceiling: float | None, knowledge: Knowledge, tolerance: float
) -> float | None:
    """The nearest ladder level not above the ordered dose nor above the patient's current level."""
    candidates = [
        level
        for level in ladder(knowledge)
        if (level <= value or within(value, level, tolerance)) and (ceiling is None or level <= ceiling)
    ]
    return max(candidates) if candidates else None


@dataclass(frozen=True)
class LookalikeMatch:
    family: str
    level: float

    @property
    def product(self) -> str:
        return PRODUCT_NAMES[self.family]


def lookalike_matches(
    value: float, family: str, knowledge: Knowledge, tolerance: float
) -> tuple[LookalikeMatch, ...]:
    """Other products' levels this dose matches, nearest first; none when it is the product's own.

    A dose within tolerance of one of its own product's levels is that product's dose, even where
    the tolerance bands overlap (T-DM1 3.0 and T-DXd 3.2 overlap between 3.04 and 3.15 mg/kg).
    """
    levels: dict[str, list[float]] = knowledge.value("dosing.lookalike-levels")
    if any(within(value, level, tolerance) for level in levels.get(family, ())):
        return ()
    # T-DM1 is the product this service guards: it is compared with both look-alikes; a T-DXd or
    # trastuzumab order is compared with T-DM1 only (their mutual confusions are out of scope).
    others = [f for f in levels if f != family] if family == TDM1 else [TDM1]
    matches = [
        LookalikeMatch(other, float(level))
        for other in others
        for level in levels[other]
        if within(value, level, tolerance)
    ]
    return tuple(sorted(matches, key=lambda m: abs(value - m.level) / m.level))


@dataclass(frozen=True)
class OrderedDose:
    """The ordered dose in mg/kg, or why it cannot be known."""

    dose: Dose | None
    mg_per_kg: float | None
    weight: Result | None  # the weight the mg dose was divided by (mg orders only)
    latest_weight: Result | None  # newest readable weight at all, for the card text
    # "" | "no-dose" | "no-weight-data" | "weight-missing" | "weight-stale" | "weight-unreadable"
    problem: str
    unreadable_weight: Result | None = None  # the newest weight, when it cannot be read
    # Read from the mg/kg the order also states (Epic: calculated mg, then ordered mg/kg) because its
    # mg amount, the one given, could not be put in mg/kg: that mg reading, with its weight problem.
    unverified_mg: OrderedDose | None = None


def weight_for(
    record: PatientRecord, at: datetime, stale_after: timedelta
) -> tuple[Result | None, Result | None]:
    """(fresh weight, newest weight): fresh means measured no more than `stale_after` before the dose."""
    newest = record.latest("weight", until=at)
    if newest is None or newest.when < at - stale_after:
        return None, newest
    return newest, newest


def unreadable_newest_weight(record: PatientRecord, at: datetime) -> Result | None:
    """The newest weight up to the dose, when its value or unit cannot be read; else None.

    record.latest() passes over it to an older readable weight, and an older weight must not stand
    in for it: yesterday's 110 in a unit we cannot read may be 20 kg less than last month's 70 kg.
    A weight whose effective date cannot be read is left out: it cannot be placed as the newest,
    and the data-unavailable note (record.notes_on) names it already. So is an Observation that
    records no value (dataAbsentReason: not performed, ...): nobody weighed the patient that day, so
    there is no newer weight than the older readable one, which stands. Nor is one weighed when a
    readable weight was (a preliminary and a final Observation of one weighing): that one stands.
    """
    unread, _readable = unread_newer(r for r in record.results_of("weight") if r.when <= at)
    return unread[0] if unread else None


def ordered_dose(ctx: RuleContext) -> OrderedDose:
    """The draft order's dose, once per context: product-mixup and dose-check both read it."""
    return ctx.memo("ordered-dose", lambda: _ordered_dose(ctx))


def _ordered_dose(ctx: RuleContext) -> OrderedDose:
    order = ctx.order
    dose = order.dose if order else None
    if dose is None:
        return OrderedDose(None, None, None, None, "no-dose")
    if dose.unit == "mg/kg":
        return OrderedDose(dose, dose.value, None, None, "")
    in_mg = _in_mg(ctx, dose)
    if in_mg.problem and order is not None and order.per_kg_dose is not None:
        # The order states its dose in mg/kg too (Epic: calculated mg, then ordered mg/kg): that is
        # checkable without a weight, and a T-DXd 5.4 mg/kg must not hide behind a stale weight.
        return OrderedDose(order.per_kg_dose, order.per_kg_dose.value, None, None, "", unverified_mg=in_mg)
    return in_mg


def _in_mg(ctx: RuleContext, dose: Dose) -> OrderedDose:
    if OBSERVATIONS not in ctx.record.available:
        return OrderedDose(dose, None, None, None, "no-weight-data")
    fresh, newest = weight_for(ctx.record, ctx.at, ctx.params.weight_stale)
    unreadable = unreadable_newest_weight(ctx.record, ctx.at)
    if unreadable is not None:
        return OrderedDose(dose, None, None, newest, "weight-unreadable", unreadable)
    # record.build never gives a readable weight of 0 kg or less (it is unreadable there, and named
    # above); checked again where it is divided by, since a 500 is no answer at all.
    if fresh is None or fresh.value is None or fresh.value <= 0:
        return OrderedDose(dose, None, None, newest, "weight-stale" if newest else "weight-missing")
    return OrderedDose(dose, dose.value / fresh.value, fresh, newest, "")


def event_mg_per_kg(event: TherapyEvent, record: PatientRecord, stale_after: timedelta) -> float | None:
    """A past dose in mg/kg; an mg dose is divided by the weight recorded around that dose."""
    if event.dose is None or event.start is None:
        return None
    if event.dose.unit == "mg/kg":
        return event.dose.value
    # The weight of the day counts even if charted a little after the infusion started.
    weight = record.latest("weight", since=event.start - stale_after, until=event.start + timedelta(days=1))
    return event.dose.value / weight.value if weight and weight.value and weight.value > 0 else None


def describe(dose: Dose) -> str:
    return f"{dose.value:g} {dose.unit}"


def dose_text(ordered: OrderedDose) -> str:
    """The ordered dose as the card states it: mg/kg as is, mg with its mg/kg and the weight used."""
    if ordered.dose is None:
        return ""
    if ordered.dose.unit == "mg/kg" or ordered.mg_per_kg is None or ordered.weight is None:
        return describe(ordered.dose)
    weight = ordered.weight
    return (
        f"{describe(ordered.dose)} = {round(ordered.mg_per_kg, 2):g} mg/kg "
        f"for {weight.value:g} kg (weighed {weight.when.date().isoformat()})"
    )


def level_in_order_unit(level: float, ordered: OrderedDose) -> tuple[float, str]:
    """The level as the order states doses: mg/kg as is; mg as level × the weight used."""
    if ordered.dose is not None and ordered.dose.unit == "mg" and ordered.weight and ordered.weight.value:
        return round(level * ordered.weight.value, _MG_DECIMALS), "mg"
    return level, "mg/kg"


def shown(value: float, unit: str) -> str:
    """As clinicians write doses: 3.0 mg/kg (one decimal), 252 mg (whole milligrams)."""
    return f"{value:.1f} mg/kg" if unit == "mg/kg" else f"{value:.{_MG_DECIMALS}f} {unit}"


def update_description(value: float, unit: str, level: float) -> str:
    per_kg = "" if unit == "mg/kg" else f" ({level:.1f} mg/kg)"
    return f"Same T-DM1 order at {shown(value, unit)}{per_kg}"


def with_dose(
    resource: dict[str, Any], value: float, unit: str, *, also: dict[str, float] | None = None
) -> dict[str, Any]:
    """A copy of the order stating `value` `unit` as its dose, text to match.

    EHRs state one dose several ways in one instruction: Epic sends doseAndRate entries typed
    `calculated` (mg), `admin-amount` (mL) and `ordered` (mg/kg), in that order. Each entry whose
    doseQuantity reads in `unit`, or in a unit given in `also` (unit → value; e.g. the mg amount
    beside an mg/kg level), is set to that value; an entry stating the dose in any other unit
    (a volume, an mg amount with no weight to compute it) is derived from the old dose, so its
    doseQuantity is dropped rather than left to contradict the new one. With no entry in those
    units, the first doseQuantity is rewritten in `unit`. The unit coding of an entry is kept when
    it is the unit we write; otherwise UCUM is written. An entry stating a doseRange instead is
    read as a doseQuantity at its low bound first, so the range never survives beside (or, on a
    product drafted from the order, instead of) the new dose. Dosage text that states one of the
    old doses is rewritten so the order cannot say two different doses.
    """
    updated = copy.deepcopy(resource)
    amounts = {**(also or {}), unit: value}
    for instruction in as_list(updated.get("dosageInstruction")):
        instruction = as_dict(instruction)
        entries = [as_dict(e) for e in as_list(instruction.get("doseAndRate"))]
        old_texts: list[tuple[float, str]] = []
        for entry in entries:
            dose_range = as_dict(entry.get("doseRange"))
            if as_dict(dose_range.get("low")) and not as_dict(entry.get("doseQuantity")):
                # A range is restated as one doseQuantity, set or dropped below like any other: a
                # range from a dose to the same dose was read as that dose (record.range_dose), and
                # a true range states the old doses too (tdxd-preferred drafted T-DXd with the
                # T-DM1 range 3.6 to 5.4 mg/kg as its only dose). Its high bound is an old dose the
                # text may mention.
                del entry["doseRange"]
                entry["doseQuantity"] = dict(as_dict(dose_range.get("low")))
                high = quantity_dose(dose_range.get("high"))
                if high is not None and range_dose(dose_range) is None:
                    old_texts.append((high.value, high.unit))
        stated = [e for e in entries if as_dict(e.get("doseQuantity"))]
        if not stated:
            continue
        read = {id(e): quantity_dose(e["doseQuantity"]) for e in stated}
        targets = {id(e) for e in stated if (d := read[id(e)]) is not None and d.unit in amounts}
        if not targets:
            targets, amounts = {id(stated[0])}, {unit: value}  # as the order wrote it, in our unit
        for entry in stated:
            dose = read[id(entry)]
            if dose is not None:
                old_texts.append((dose.value, dose.unit))
            if id(entry) in targets:
                _set_quantity(entry["doseQuantity"], *_amount_for(dose, amounts, unit))
            else:
                del entry["doseQuantity"]
        kept = [e for e in entries if set(e) - {"type"}]
        if kept:
            instruction["doseAndRate"] = kept
        for text_element in ("text", "patientInstruction"):
            text = as_str(instruction.get(text_element))
            if text:
                instruction[text_element] = _rewritten_text(text, old_texts, amounts, (value, unit))
        return updated
    return updated


def _amount_for(dose: Dose | None, amounts: dict[str, float], unit: str) -> tuple[float, str]:
    if dose is not None and dose.unit in amounts:
        return amounts[dose.unit], dose.unit
    return amounts[unit], unit


def _set_quantity(quantity: dict[str, Any], value: float, unit: str) -> None:
    if (as_str(quantity.get("code")) or as_str(quantity.get("unit")) or "").lower() != unit:
        quantity.update({"unit": unit, "system": "http://unitsofmeasure.org", "code": unit})
    quantity["value"] = int(value) if float(value).is_integer() else value


def _rewritten_text(
    text: str, old: list[tuple[float, str]], amounts: dict[str, float], primary: tuple[float, str]
) -> str:
    """Every mention of one of the order's old doses, in the new amount of its unit; one in a unit
    with no new amount is dropped when in parentheses ("3.6 mg/kg (252 mg)"), else the new dose.
    With no such mention, the first dose mention, as the new dose. Other mentions ("use 100 mg
    vials") are left alone."""

    def mention(match: re.Match[str]) -> tuple[float, str] | None:
        digits = match.group(1).replace(",", ".")
        number, stated_unit = float(digits), "mg/kg" if match.group(2) else "mg"
        # As the text rounds it: Epic's calculated 337.44 mg is "337 mg" in the text.
        half = 0.5 * 10 ** -len(digits.partition(".")[2])
        return next(((v, u) for v, u in old if u == stated_unit and abs(v - number) <= half + _EPSILON), None)

    def replace(match: re.Match[str]) -> str:
        found = mention(match)
        if found is None:
            return match.group(0)
        return shown(amounts[found[1]], found[1]) if found[1] in amounts else shown(*primary)

    def drop(match: re.Match[str]) -> str:
        found = mention(match)
        return "" if found is not None and found[1] not in amounts else match.group(0)

    if any(mention(m) for m in _DOSE_IN_TEXT.finditer(text)):
        return _DOSE_IN_TEXT.sub(replace, _PARENTHESISED_DOSE.sub(drop, text))
    return _DOSE_IN_TEXT.sub(shown(*primary), text, count=1)


def offered_update(original: dict[str, Any], updated: dict[str, Any]) -> dict[str, Any] | None:
    """The corrected order if it may be offered, else None.

    We validate the corrected order with the R4B model. Drafts from real EHRs often carry vendor
    extensions or elements a strict model rejects; if the EHR's own draft fails validation too,
    the failure is not ours (we changed one decimal and perhaps a text), so the update is still
    offered: refusing it would leave the clinician with a card and no fix. If the original passes
    and our copy fails, our change broke it and nothing is offered.
    """
    try:
        return validated(updated)
    except InvalidSuggestion:
        try:
            validated(original)
        except InvalidSuggestion:
            return updated
        return None


def dose_update(order_resource: dict[str, Any], level: float, ordered: OrderedDose) -> Action | None:
    """The draft set to `level` mg/kg, in the unit it was ordered in, as an update action; None when
    the corrected order may not be offered (see offered_update)."""
    value, unit = level_in_order_unit(level, ordered)
    # The same level in the other unit the order may state it in (Epic's calculated mg beside the
    # ordered mg/kg), when the weight is known; without one an mg amount cannot be recomputed.
    weight = ordered.weight.value if ordered.weight and ordered.weight.value else None
    also = {"mg/kg": level} | ({"mg": float(round(level * weight, _MG_DECIMALS))} if weight else {})
    updated = offered_update(order_resource, with_dose(order_resource, value, unit, also=also))
    if updated is None:
        return None
    return Action(type="update", description=update_description(value, unit, level), resource=updated)


def new_order_like(
    draft: dict[str, Any], family: str, patient_reference: str, new_id: str, dose: float, unit: str
) -> dict[str, Any] | None:
    """A new draft order for another product, keeping the draft's schedule and route."""
    code, name = PRODUCT_RXNORM[family]
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": new_id,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": name}
            ],
            "text": name,
        },
        "subject": draft.get("subject") or {"reference": patient_reference},
    }
    instructions = as_list(draft.get("dosageInstruction"))
    resource["dosageInstruction"] = [copy.deepcopy(as_dict(instructions[0])) if instructions else {}]
    resource = with_dose(resource, dose, unit)
    if request_dose(resource) is None:
        # A draft with no dose of its own (order-select, before one is entered) gave with_dose no
        # entry to set: the new order stated no dose under an action naming one.
        quantity: dict[str, Any] = {}
        _set_quantity(quantity, dose, unit)
        instruction = resource["dosageInstruction"][0]
        instruction["doseAndRate"] = [*as_list(instruction.get("doseAndRate")), {"doseQuantity": quantity}]
    try:
        return validated(resource)
    except InvalidSuggestion:
        return None
