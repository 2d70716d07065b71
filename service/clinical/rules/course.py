"""Facts about the T-DM1 course and the line of therapy, shared by several rules."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from service.clinical.knowledge import Knowledge
from service.clinical.record import PatientRecord, TherapyEvent
from service.clinical.terminology import TDM1, Terminology

Placement = Literal["advanced", "early", "unknown"]
# The statuses by which an order or statement says the course stopped, per TherapyEvent.kind, read
# as FHIR R4 defines them. MedicationRequest `stopped`: "actions implied by the prescription are to
# be permanently halted, before all of them occurred", a real stop. MedicationRequest `completed`:
# "all actions that are implied by the prescription have occurred": its doses were given, and no
# more than that. EHRs that write one request per infusion mark each `completed` once it is given, so
# the newest order of an ongoing course is a completed one. MedicationStatement `completed` is "the
# medication is no longer being taken": a stop, like its `stopped`.
STOPPING_STATUSES = {
    "request": frozenset({"stopped"}),
    "statement": frozenset({"stopped", "completed"}),
}


def add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def early_recurrence(early: list[TherapyEvent], since: datetime | None, months: int) -> bool | None:
    """ASCO 2022 Rec 5.0: did the metastatic recurrence come during (neo)adjuvant HER2-directed
    therapy, or within `months` of its end? Such a recurrence follows the second-line
    recommendations. None when the record cannot tell (no end or start date, no recurrence date).

    Therapy still taken (TherapyEvent.still_taken) counts as during, whatever its start: it did not
    end at its start date.
    """
    if any(e.still_taken for e in early):
        return True
    if since is None or not any(e.last_date for e in early):
        return None
    return bool(recurrence_window_therapy(early, since, months))


def recurrence_window_therapy(early: list[TherapyEvent], since: datetime, months: int) -> list[TherapyEvent]:
    """The (neo)adjuvant therapy that makes a recurrence at `since` early (early_recurrence): still
    taken, or last recorded no more than `months` before it."""
    return [
        e
        for e in early
        if e.still_taken or (e.last_date is not None and add_months(e.last_date, months) >= since)
    ]


def placement(event: TherapyEvent, record: PatientRecord, terminology: Terminology) -> Placement:
    """Was this therapy given for advanced disease or as (neo)adjuvant treatment?

    mCODE treatmentIntent decides when present (palliative vs curative/adjuvant/neoadjuvant);
    otherwise the date against the first metastatic diagnosis; otherwise it cannot be told.
    """
    if event.intents:  # most therapy carries no intent: skip the look-ups (asked for every event)
        if event.intents & terminology.qualifiers["intent_palliative"]:
            return "advanced"
        if event.intents & terminology.qualifiers["intent_curative"]:
            return "early"
    if record.metastatic_since and event.start:
        return "advanced" if event.start >= record.metastatic_since else "early"
    return "unknown"


def her2_events(record: PatientRecord, terminology: Terminology) -> tuple[TherapyEvent, ...]:
    # The directed families once, not is_her2_directed (a scan of the families) for each of the
    # hundreds of events of a long history. Same test: a family listed as HER2-directed.
    directed = {d.family for d in terminology.drugs if d.her2_directed}
    return tuple(e for e in record.therapy if e.family in directed)


def unadministered_stops(events: tuple[TherapyEvent, ...]) -> tuple[TherapyEvent, ...]:
    """The MedicationRequests `stopped` with no administration of their drug on record from their
    start (to their end, if any): no evidence that the drug was received.

    FHIR R4 MedicationRequest `stopped` is "permanently halted, before all of them occurred": it
    says neither that a dose was given nor that none was, so the administrations decide. A stopped
    order with an administration under it is real prior therapy; so is a `completed` or `active`
    order, a MedicationStatement, or an administration (each an event of its own). `cancelled` and
    entered-in-error orders never reach the record (record.EXCLUDED_REQUEST_STATUSES). Only a record
    that documents HER2-directed administrations at all can show one missing. Dates are
    compared by day (authoredOn is often a date alone). An order with no start, or a drug with an
    undated administration, cannot be matched: the order counts, as it did.
    """
    given: dict[str, list[TherapyEvent]] = {}
    for event in events:
        if event.kind == "administration":
            given.setdefault(event.family, []).append(event)
    if not given:
        # No HER2-directed administration on record at all: this record documents orders, not
        # doses (an EHR that exposes no MAR, therapy given elsewhere). A missing administration
        # then says nothing, and dropping the stopped orders would read the usual second line (THP
        # stopped at progression) as no therapy: a first-line warning on nearly every T-DM1 order.
        return ()
    unadministered = []
    for order in events:
        if order.kind != "request" or order.status != "stopped" or order.start is None:
            continue
        start, end = order.start.date(), order.end.date() if order.end else None
        if not any(
            dose.start is None or (dose.start.date() >= start and (end is None or dose.start.date() <= end))
            for dose in given.get(order.family, ())
        ):
            unadministered.append(order)
    return tuple(unadministered)


def _one_infusion(order: TherapyEvent, cycle: timedelta) -> bool:
    return bool(
        order.kind == "request"
        and order.status != "stopped"
        and order.start
        and order.end
        and order.end - order.start < cycle
    )


@dataclass(frozen=True)
class Course:
    """The most recent T-DM1 course as the record shows it."""

    events: tuple[TherapyEvent, ...]
    doses: tuple[TherapyEvent, ...]
    start: datetime | None
    last_dose: TherapyEvent | None
    stopped_at: datetime | None
    stop_event: TherapyEvent | None
    # False when the stopping order gives no readable end: stopped_at is then only the earliest the
    # stop can have been (its last dose), and a card must not present it as the recorded stop date.
    stop_dated: bool = True
    # Early breast cancer: the label's fixed course (14 cycles) has been given, so the course is
    # over at its last dose whatever the orders say (per-infusion orders are each `completed`).
    fixed_course_given: bool = False
    # The start of the first request begun after the last dose: no dose has been given under it
    # yet, so it plans the next one (a course resumed after a toxicity hold).
    planned: datetime | None = None

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    def next_due(self, cycle: timedelta) -> datetime | None:
        """One cycle after the last dose, or `planned` (the first order begun after it) when that is
        later: a dose held for toxicity and re-ordered for a later date is due then, not 'overdue'
        since the old cycle."""
        if self.last_dose and self.last_dose.start:
            due = self.last_dose.start + cycle
            return self.planned if self.planned and self.planned > due else due
        return None


def tdm1_course(record: PatientRecord, now: datetime, knowledge: Knowledge) -> Course | None:
    """The most recent T-DM1 course at `now`. From `knowledge`: the early-breast-cancer course length
    (dosing.duration-early), since in the early setting a course with that many doses given is over
    at its last dose; and the dosing interval (dosing.schedule), since an order (not stopped) whose
    period is shorter than one cycle is one infusion's order, and its end is no end of the course."""
    fixed_cycles: int = knowledge.value("dosing.duration-early")["fixed_cycles"]
    cycle = timedelta(days=knowledge.value("dosing.schedule")["cycle_days"])
    events = record.events(TDM1)
    if not events:
        return None
    doses = tuple(sorted(record.doses_given(TDM1), key=lambda e: e.start))  # type: ignore[arg-type, return-value]
    last_dose = doses[-1] if doses else None
    starts = [e.start for e in events if e.start]
    stop_event, stopped_at, stop_dated = None, None, True
    orders = [e for e in events if e.kind in ("request", "statement") and e.start]
    latest_order = max(orders, key=lambda e: e.start) if orders else None  # type: ignore[arg-type, return-value]
    # The newest order (by its start: boundsPeriod.start, else authoredOn) speaks for the course: a
    # dose change or the next per-infusion order is a new request authored after the one it follows,
    # so an older order's status (a standing order stopped when a reduced dose replaced it) says
    # nothing about the course once a newer one exists.
    #   - Newest stopping with no end (a request `stopped`, a statement stopped or completed): the
    #     course stopped, no earlier than its last dose (undated, see below).
    #   - Newest stopping or past its end, with an end: stopped at that end, unless a dose after it.
    #   - Newest a request `completed` with no end (a per-infusion order given), or active, on hold,
    #     unknown with no past end: nothing says the course stopped; it goes on, and the treatment
    #     summary says when the next dose is due or that it is overdue.
    if latest_order:
        ended = latest_order.end and latest_order.end <= now
        if ended and _one_infusion(latest_order, cycle):
            # Per-infusion orders often carry boundsPeriod start = end = the infusion day: the
            # newest of an ongoing course is then always "past its end" (a false stop, 10 days
            # after the last dose of a course that goes on).
            ended = False
        stops = latest_order.status in STOPPING_STATUSES[latest_order.kind]
        if stops and latest_order.end is None:
            # A standing order set to stopped keeps its authored date and gains no end: FHIR R4 has
            # no element for when it was stopped. Its status is the order as it is now, and it is
            # the newest order, so every dose given after its date was given under it, before the
            # stop: the course stopped no earlier than its last dose. A dose after the order's own
            # doses would need a newer order to be given under, and that order is then the newest
            # one (above). Dating the stop at the authored date would put those doses after it and
            # read the course as ongoing ("next dose overdue"), hiding a metastatic course stopped
            # with nothing to explain it.
            stop_event, stop_dated = latest_order, False
            stopped_at = latest_order.start
            if last_dose and last_dose.start and stopped_at and last_dose.start > stopped_at:
                stopped_at = last_dose.start
        elif stops or ended:
            stop_event = latest_order
            stopped_at = latest_order.end or latest_order.start
    if stopped_at and last_dose and last_dose.start and last_dose.start > stopped_at:
        stop_event, stopped_at = None, None  # a dose after the recorded stop: the course went on
    fixed_course_given = bool(record.setting == "early" and last_dose and len(doses) >= fixed_cycles)
    if fixed_course_given and stopped_at is None and last_dose is not None:
        # Otherwise a finished adjuvant course of per-infusion orders reads as ongoing: "next dose
        # overdue", labs due, and a later T-DXd order taken for a swap in the middle of a course.
        stopped_at, stop_dated = last_dose.start, False
    # The first order begun after the last dose plans the next one (no dose given under it yet). The
    # earliest, not the newest: a treatment plan may release the next cycles' orders ahead, and the
    # furthest of them is not when the next dose is due (that read an overdue cycle as due in weeks).
    planned = None
    if last_dose and last_dose.start:
        last_start = last_dose.start
        planned = min(
            (
                e.start
                for e in orders
                if e.kind == "request"
                and e.start
                and e.start > last_start
                and e.status not in STOPPING_STATUSES["request"]
            ),
            default=None,
        )
    return Course(
        events=events,
        doses=doses,
        start=min(starts) if starts else None,
        last_dose=last_dose,
        stopped_at=stopped_at,
        stop_event=stop_event,
        stop_dated=stop_dated,
        fixed_course_given=fixed_course_given,
        planned=planned,
    )
