"""Draft orders from the hook context: which product, what dose, what planned end.

Tolerant of what real clients send: a draftOrders Bundle without Bundle.type, orders without
intent, re-signed orders whose status is not draft, medicationReference to a contained or
prefetched Medication, or to one sent beside the orders in draftOrders (the hook edge adds those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.clinical.record import Dose, medication_family, request_dose, request_per_kg_dose
from service.clinical.resources import (
    as_dict,
    as_list,
    as_number,
    as_str,
    bundle_resources,
    codings,
    open_ended,
    parse_datetime,
    period_bounds,
    resource_key,
)
from service.clinical.terminology import LOOKALIKES, Terminology
from service.clinical.units import unit_key

MEDICATION_ORDER_TYPES = frozenset({"MedicationRequest", "MedicationOrder"})
# "x 6 cycles", "× 6 cycles", "for 6 cycles", "6 cycles", "6 doses"
_CYCLES_TEXT = re.compile(
    r"(?:[x×]\s*|for\s+)?(\d{1,3})\s*(?:cycles?|courses?|doses?|infusions?)\b", re.IGNORECASE
)


# boundsDuration units (UCUM) that convert to a fixed length of time; a month or a year is longer
# than any cycle, so it is never one infusion's order and need not be converted.
_DURATION_UNITS = {
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "wk": timedelta(weeks=1),
}


@dataclass(frozen=True)
class PlannedEnd:
    """Why an order has an end: the element path and a human description.

    `doses` (a count of doses) or `span` (from the order's start to its end), when the end says
    one, so a rule can tell one infusion's order from a course with a planned end.
    """

    path: str
    description: str
    doses: float | None = None
    span: timedelta | None = None

    def one_infusion(self, cycle: timedelta) -> bool:
        """An end that allows one dose only: a count of at most one, or less than one cycle from
        the order's start. EHRs that order T-DM1 cycle by cycle (a treatment plan releasing each
        cycle's order) write it this way; it ends that infusion, not the course."""
        if self.doses is not None:
            return self.doses <= 1
        # An end before the start is no infusion at all: a mistyped end, still a planned end.
        return self.span is not None and timedelta(0) <= self.span < cycle


@dataclass(frozen=True)
class DraftOrder:
    resource: dict[str, Any]
    reference: str  # "MedicationRequest/abc"; empty if the order carries no id
    family: str | None
    dose: Dose | None
    planned_ends: tuple[PlannedEnd, ...]
    start: datetime | None
    selected: bool
    # The dose the order states in mg/kg when `dose` (its first) is in mg: read when the mg amount
    # cannot be put in mg/kg (no fresh weight).
    per_kg_dose: Dose | None = None

    @property
    def resource_type(self) -> str:
        return str(self.resource.get("resourceType", ""))

    @property
    def is_lookalike(self) -> bool:
        return self.family in LOOKALIKES


def _duration(quantity: dict[str, Any]) -> timedelta | None:
    value, unit = as_number(quantity.get("value")), _DURATION_UNITS.get(unit_key(quantity))
    return value * unit if value is not None and unit is not None else None


def planned_ends(resource: dict[str, Any]) -> tuple[PlannedEnd, ...]:
    ends: list[PlannedEnd] = []
    authored = parse_datetime(resource.get("authoredOn"))
    # Dispenses allowed after the first: count 1 with 5 repeats allowed is six infusions.
    repeats = as_number(as_dict(resource.get("dispenseRequest")).get("numberOfRepeatsAllowed")) or 0
    per_dispense = 1 + max(repeats, 0)
    for index, instruction in enumerate(as_list(resource.get("dosageInstruction"))):
        instruction = as_dict(instruction)
        repeat = as_dict(as_dict(instruction.get("timing")).get("repeat"))
        base = f"dosageInstruction[{index}].timing.repeat"
        for element in ("count", "countMax"):
            count = as_number(repeat.get(element))
            if count is not None:
                described = f"{element} = {count:g} doses"
                if repeats > 0:
                    described += f", dispensed up to {per_dispense:g} times (numberOfRepeatsAllowed)"
                ends.append(PlannedEnd(f"{base}.{element}", described, doses=count * per_dispense))
        if as_dict(repeat.get("boundsDuration")):
            duration = as_dict(repeat["boundsDuration"])
            ends.append(
                PlannedEnd(
                    f"{base}.boundsDuration",
                    f"bounded to {duration.get('value')} {duration.get('unit') or duration.get('code') or ''}".strip(),
                    span=_duration(duration),
                )
            )
        if as_dict(repeat.get("boundsRange")):
            ends.append(PlannedEnd(f"{base}.boundsRange", "bounded by a range"))
        start, end = period_bounds(repeat.get("boundsPeriod"))
        written_end = as_dict(repeat.get("boundsPeriod")).get("end")
        if end:
            # From the order's start as the course reads it (record._request_period): boundsPeriod
            # start, else authoredOn.
            begins = start or authored
            ends.append(
                PlannedEnd(
                    f"{base}.boundsPeriod.end",
                    f"ends {end.date().isoformat()}",
                    span=end - begins if begins else None,
                )
            )
        elif written_end is not None and not open_ended(written_end):
            # An end was written but cannot be read: still a planned end, and the card says so
            # rather than staying silent on it. 9999-12-31 and the like mean "no end" (open_ended).
            shown = str(written_end)[:40]
            ends.append(
                PlannedEnd(f"{base}.boundsPeriod.end", f'an end date that cannot be read ("{shown}")')
            )
        for text_element in ("text", "patientInstruction"):
            match = _CYCLES_TEXT.search(as_str(instruction.get(text_element)) or "")
            if match:
                ends.append(
                    PlannedEnd(
                        f"dosageInstruction[{index}].{text_element}",
                        f'"{match.group(0)}" in the text',
                        doses=float(match.group(1)),
                    )
                )
    for index, note in enumerate(as_list(resource.get("note"))):
        match = _CYCLES_TEXT.search(as_str(as_dict(note).get("text")) or "")
        if match:
            ends.append(
                PlannedEnd(
                    f"note[{index}].text", f'"{match.group(0)}" in the note', doses=float(match.group(1))
                )
            )
    return tuple(ends)


def without_planned_end(resource: dict[str, Any]) -> dict[str, Any]:
    """The same order, continuing until progression or toxicity: structured ends removed.

    Free-text cycle counts are removed from dosage text too; a note that carries one is dropped.
    """
    updated = dict(resource)
    instructions = []
    for instruction in as_list(resource.get("dosageInstruction")):
        instruction = dict(as_dict(instruction))
        timing = dict(as_dict(instruction.get("timing")))
        repeat = dict(as_dict(timing.get("repeat")))
        for element in ("count", "countMax", "boundsDuration", "boundsRange"):
            repeat.pop(element, None)
        if "boundsPeriod" in repeat:
            period = {k: v for k, v in as_dict(repeat["boundsPeriod"]).items() if k != "end"}
            if period:
                repeat["boundsPeriod"] = period
            else:
                repeat.pop("boundsPeriod")
        if repeat:
            timing["repeat"] = repeat
        else:
            timing.pop("repeat", None)
        if timing:
            instruction["timing"] = timing
        else:
            instruction.pop("timing", None)  # the end was all it held: keeping it would keep the end
        for text_element in ("text", "patientInstruction"):
            text = as_str(instruction.get(text_element))
            if text and _CYCLES_TEXT.search(text):
                cleaned = _CYCLES_TEXT.sub("until progression or unacceptable toxicity", text)
                instruction[text_element] = cleaned
        instructions.append(instruction)
    if instructions:
        updated["dosageInstruction"] = instructions
    notes = [
        n
        for n in as_list(resource.get("note"))
        if not _CYCLES_TEXT.search(as_str(as_dict(n).get("text")) or "")
    ]
    if notes:
        updated["note"] = notes
    else:
        updated.pop("note", None)
    return updated


def order_start(resource: dict[str, Any]) -> datetime | None:
    for instruction in as_list(resource.get("dosageInstruction")):
        repeat = as_dict(as_dict(as_dict(instruction).get("timing")).get("repeat"))
        start, _end = period_bounds(repeat.get("boundsPeriod"))
        if start:
            return start
    return parse_datetime(resource.get("authoredOn"))


def parse_draft_orders(
    draft_orders: Any,
    selections: list[str] | None,
    terminology: Terminology,
    medications: dict[str, dict[str, Any]],
) -> list[DraftOrder]:
    selected = set(selections or [])
    orders = []
    for resource in bundle_resources(draft_orders):
        key = resource_key(resource) or ""
        family = None
        dose = per_kg = None
        ends: tuple[PlannedEnd, ...] = ()
        if resource.get("resourceType") in MEDICATION_ORDER_TYPES:
            family = medication_family(resource, terminology, medications)
            dose = request_dose(resource)
            per_kg = request_per_kg_dose(resource) if dose is not None and dose.unit == "mg" else None
            ends = planned_ends(resource)
        orders.append(
            DraftOrder(
                resource=resource,
                reference=key,
                family=family,
                dose=dose,
                planned_ends=ends,
                start=order_start(resource),
                selected=not selected or key in selected,
                per_kg_dose=per_kg,
            )
        )
    return orders


def ordered_lab_codes(orders: list[DraftOrder]) -> set[str]:
    """LOINC codes of lab orders already in the session: a suggested lab there must not re-fire."""
    codes: set[str] = set()
    for order in orders:
        if order.resource_type == "ServiceRequest" and order.resource.get("status") != "revoked":
            codes |= {code for _system, code in codings(order.resource.get("code"))}
    return codes
