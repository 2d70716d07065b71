"""Facts several rules derive from the record, computed once per rule context.

The engine runs every rule on one context (per draft order, or the patient-view one) and the record
does not change meanwhile: a long history is walked once per fact instead of once per rule, lab
test or past dose. Each fact is what the record or rules/course.py function named says.
"""

from __future__ import annotations

from datetime import datetime

from service.clinical.findings import RuleContext
from service.clinical.record import ConditionFact, Result, TherapyEvent
from service.clinical.rules.course import (
    Course,
    Placement,
    her2_events,
    placement,
    tdm1_course,
    unadministered_stops,
)
from service.clinical.terminology import TDM1


def tdm1_doses(ctx: RuleContext) -> tuple[TherapyEvent, ...]:
    """The T-DM1 doses given, as record.doses_given (from the T-DM1 events already selected)."""
    return ctx.memo("tdm1-doses", lambda: tuple(e for e in tdm1_events(ctx) if e.is_dose_given and e.start))


def tdm1_events(ctx: RuleContext) -> tuple[TherapyEvent, ...]:
    """Every T-DM1 event on record, as record.events."""
    return ctx.memo("tdm1-events", lambda: ctx.record.events(TDM1))


def first_tdm1_date(ctx: RuleContext) -> datetime | None:
    """The first T-DM1 dose or order, as record.first_tdm1_date (from the T-DM1 events)."""
    return ctx.memo("first-tdm1-date", lambda: _first_start(tdm1_events(ctx)))


def _first_start(events: tuple[TherapyEvent, ...]) -> datetime | None:
    # An administration counts only as a dose given; an order or statement counts as started.
    starts = [e.start for e in events if e.start and (e.is_dose_given or e.kind != "administration")]
    return min(starts) if starts else None


def last_tdm1_dose_start(ctx: RuleContext) -> datetime | None:
    """When the last T-DM1 dose given started; None before any."""
    return ctx.memo(
        "last-tdm1-dose-start", lambda: max((e.start for e in tdm1_doses(ctx) if e.start), default=None)
    )


def current_course(ctx: RuleContext) -> Course | None:
    """tdm1_course at the context's now."""
    return ctx.memo("tdm1-course", lambda: tdm1_course(ctx.record, ctx.now, ctx.params.knowledge))


def her2_therapy(ctx: RuleContext) -> tuple[TherapyEvent, ...]:
    """Every HER2-directed therapy event on record, as course.her2_events."""
    return ctx.memo("her2-events", lambda: her2_events(ctx.record, ctx.params.terminology))


def unadministered_her2_stops(ctx: RuleContext) -> tuple[TherapyEvent, ...]:
    """HER2-directed orders stopped with no administration under them (course.unadministered_stops)."""
    return ctx.memo("unadministered-her2-stops", lambda: unadministered_stops(her2_therapy(ctx)))


def placed_her2_events(ctx: RuleContext) -> tuple[tuple[TherapyEvent, Placement], ...]:
    """Every HER2-directed therapy event received, with its placement (advanced, early or unknown):
    prior therapy. An order stopped with no administration under it is no therapy received
    (unadministered_her2_stops); a rule that fires without it says so (unadministered_note)."""
    record, terminology = ctx.record, ctx.params.terminology

    def build() -> tuple[tuple[TherapyEvent, Placement], ...]:
        left_out = {id(e) for e in unadministered_her2_stops(ctx)}
        return tuple(
            (e, placement(e, record, terminology)) for e in her2_therapy(ctx) if id(e) not in left_out
        )

    return ctx.memo("placed-her2-events", build)


def unadministered_note(ctx: RuleContext, check: str) -> str | None:
    """The note a rule adds when it fires without the stopped, never-administered orders: what was
    left out, so the clinician can check that no dose was given elsewhere (no silent guess)."""
    stops = unadministered_her2_stops(ctx)
    if not stops:
        return None
    terminology = ctx.params.terminology
    shown = ", ".join(
        f"{terminology.display(e.family)} ({e.resource_id or 'MedicationRequest'}, "
        f"{e.start.date().isoformat() if e.start else 'undated'})"
        for e in stops
    )
    return (
        f"{check}: {len(stops)} stopped HER2-directed order(s) with no administration on record "
        f"were not counted as therapy received: {shown}. If a dose was given, record the "
        "administration."
    )


def latest_in_lab_window(ctx: RuleContext, kind: str) -> Result | None:
    """The newest readable result of a kind in the pre-dose lab window (label_tables.lab_window)."""
    return ctx.memo(
        ("latest-in-lab-window", kind),
        lambda: ctx.record.latest(kind, since=ctx.at - ctx.params.lab_window, until=ctx.now),
    )


def conditions_in(ctx: RuleContext, value_set: str) -> tuple[ConditionFact, ...]:
    """The conditions on record in a condition value set, active or not, in record order."""
    terminology = ctx.params.terminology
    return ctx.memo(
        ("conditions-in", value_set),
        lambda: tuple(
            c for c in ctx.record.conditions if terminology.in_condition_set(value_set, c.codes, c.text)
        ),
    )


def has_condition(ctx: RuleContext, value_set: str, *, active_only: bool = True) -> bool:
    """As record.has_condition."""
    return any(c.active or not active_only for c in conditions_in(ctx, value_set))
