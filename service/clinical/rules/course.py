"""Facts about the T-DM1 course and the line of therapy, shared by several rules."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from service.clinical.findings import RuleContext
from service.clinical.record import PatientRecord, TherapyEvent
from service.clinical.terminology import TDM1, Terminology

Placement = Literal["advanced", "early", "unknown"]
STOPPED_STATUSES = frozenset({"stopped", "completed"})


def add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def placement(event: TherapyEvent, record: PatientRecord, terminology: Terminology) -> Placement:
    """Was this therapy given for advanced disease or as (neo)adjuvant treatment?

    mCODE treatmentIntent decides when present (palliative vs curative/adjuvant/neoadjuvant);
    otherwise the date against the first metastatic diagnosis; otherwise it cannot be told.
    """
    if event.intents & terminology.qualifiers["intent_palliative"]:
        return "advanced"
    if event.intents & terminology.qualifiers["intent_curative"]:
        return "early"
    if record.metastatic_since and event.start:
        return "advanced" if event.start >= record.metastatic_since else "early"
    return "unknown"


def her2_events(record: PatientRecord, terminology: Terminology) -> tuple[TherapyEvent, ...]:
    # Asked once per drug family, not once per event: a long history has hundreds of events, and
    # is_her2_directed scans the families each time. A family not in the terminology is not directed.
    directed = {d.family for d in terminology.drugs if terminology.is_her2_directed(d.family)}
    return tuple(e for e in record.therapy if e.family in directed)


@dataclass(frozen=True)
class Course:
    """The most recent T-DM1 course as the record shows it."""

    events: tuple[TherapyEvent, ...]
    doses: tuple[TherapyEvent, ...]
    start: datetime | None
    last_dose: TherapyEvent | None
    stopped_at: datetime | None
    stop_event: TherapyEvent | None

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    def next_due(self, cycle: timedelta) -> datetime | None:
        if self.last_dose and self.last_dose.start:
            return self.last_dose.start + cycle
        return None


def tdm1_course(record: PatientRecord, now: datetime) -> Course | None:
    events = record.events(TDM1)
    if not events:
        return None
    doses = tuple(sorted(record.doses_given(TDM1), key=lambda e: e.start))  # type: ignore[arg-type, return-value]
    last_dose = doses[-1] if doses else None
    starts = [e.start for e in events if e.start]
    stop_event, stopped_at = None, None
    orders = [e for e in events if e.kind in ("request", "statement") and e.start]
    latest_order = max(orders, key=lambda e: e.start) if orders else None  # type: ignore[arg-type, return-value]
    if latest_order:
        ended = latest_order.end and latest_order.end <= now
        if latest_order.status in STOPPED_STATUSES or ended:
            stop_event = latest_order
            stopped_at = latest_order.end or latest_order.start
    if stopped_at and last_dose and last_dose.start and last_dose.start > stopped_at:
        stop_event, stopped_at = None, None  # a dose after the recorded stop: the course went on
    return Course(
        events=events,
        doses=doses,
        start=min(starts) if starts else None,
        last_dose=last_dose,
        stopped_at=stopped_at,
        stop_event=stop_event,
    )


# --- the same facts once per rule context ---------------------------------------------------------
# Several rules ask for them, and the engine runs every rule on one context: a long history is then
# walked once per fact instead of once per rule (or per lab test, or per past dose).


def tdm1_doses(ctx: RuleContext) -> tuple[TherapyEvent, ...]:
    """The T-DM1 doses given, as record.doses_given."""
    return ctx.memo("tdm1-doses", lambda: ctx.record.doses_given(TDM1))


def tdm1_events(ctx: RuleContext) -> tuple[TherapyEvent, ...]:
    """Every T-DM1 event on record, as record.events."""
    return ctx.memo("tdm1-events", lambda: ctx.record.events(TDM1))


def first_tdm1_date(ctx: RuleContext) -> datetime | None:
    """The first T-DM1 dose or order, as record.first_tdm1_date."""
    return ctx.memo("first-tdm1-date", ctx.record.first_tdm1_date)


def last_tdm1_dose_start(ctx: RuleContext) -> datetime | None:
    """When the last T-DM1 dose given started; None before any."""
    return ctx.memo(
        "last-tdm1-dose-start", lambda: max((e.start for e in tdm1_doses(ctx) if e.start), default=None)
    )


def current_course(ctx: RuleContext) -> Course | None:
    """tdm1_course at the context's now."""
    return ctx.memo("tdm1-course", lambda: tdm1_course(ctx.record, ctx.now))


def placed_her2_events(ctx: RuleContext) -> tuple[tuple[TherapyEvent, Placement], ...]:
    """Every HER2-directed therapy event with its placement (advanced, early or unknown)."""
    record, terminology = ctx.record, ctx.params.terminology
    return ctx.memo(
        "placed-her2-events",
        lambda: tuple((e, placement(e, record, terminology)) for e in her2_events(record, terminology)),
    )
