"""Reading the label's hold / modify tables (knowledge/label.yaml) for the rules that act on them.

A table is a knowledge entry whose value is a list of rows. A row's criteria are the keys below; a
row applies when every criterion holds. The numbers are only ever read from the entry, never
restated in code. Rows whose criteria need a measure we do not have (e.g. the fall from baseline
LVEF) are reported as undecided, so the rule can say "cannot be graded" instead of guessing.

The table follows the record's setting: metastatic → mbc.*, early → ebc.* (status unverified, which
the card says). When the setting is unknown we deliberately apply BOTH tables and keep the more
severe action, row by row: the EBC table is at least as strict everywhere (bilirubin, LVEF,
transaminases), so an unknown setting never gets the laxer MBC answer.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, NamedTuple

from service.clinical.findings import Action, RuleContext, Suggestion
from service.clinical.knowledge import Entry, Knowledge, KnowledgeError
from service.clinical.record import MEDICATION_HISTORY, Result, reported
from service.clinical.rules import derived, dosing

# criterion key → (measure it reads, comparison of measure against the row's number)
CRITERIA: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "above_uln": ("times_uln", operator.gt),
    "up_to_uln": ("times_uln", operator.le),
    "platelets_below_per_mm3": ("platelets", operator.lt),
    "platelets_from_per_mm3": ("platelets", operator.ge),
    "lvef_below": ("lvef", operator.lt),
    "lvef_from": ("lvef", operator.ge),
    "lvef_up_to": ("lvef", operator.le),
    "lvef_below_upper": ("lvef", operator.lt),
    "lvef_above": ("lvef", operator.gt),
    "fall_at_least": ("fall", operator.ge),
    "fall_below": ("fall", operator.lt),
}
# How far back a hold-level result with nothing newer still holds the dose (see acting_result).
HOLD_LOOKBACK = "policy.hold-lookback"
ACTION_RANK = {"continue": 0, "hold": 1, "discontinue": 3}
SETTING_NAMES = {
    "metastatic": "metastatic (MBC table)",
    "early": "early breast cancer (EBC table, unverified)",
    "unknown": "not recorded: the stricter of the MBC and EBC tables is applied",
}
# Ratios to ULN are rounded before comparison: 1.8 / 1.2 is 1.5000000000000002 in binary floating
# point, and exactly 1.5 × ULN must not count as "above 1.5 × ULN". Labs report far fewer digits.
RATIO_DIGITS = 6


@dataclass(frozen=True)
class Band:
    entry: Entry
    row: Mapping[str, Any]

    # A Band is made once per table row (see Table) and asked for its action on every graded result.
    @cached_property
    def action(self) -> str:
        return str(self.row.get("action", "continue"))

    @cached_property
    def severity(self) -> int:
        rank = ACTION_RANK.get(self.action, 0)
        # A hold that also costs a dose level on resumption is worse than a plain hold.
        return rank + (1 if rank == 1 and self.reduces_level else 0)

    @cached_property
    def reduces_level(self) -> bool:
        """Resumption is "reduce one dose level" (the row's own wording)."""
        return "reduce" in str(self.row.get("resume", ""))

    def instruction(self) -> str:
        """The label's wording for the action, from the row itself."""
        if self.action == "discontinue":
            return "permanently discontinue T-DM1"
        parts = ["hold T-DM1" if self.action == "hold" else "continue"]
        if self.row.get("until"):
            parts.append(f"until {self.row['until']}")
        text = " ".join(parts)
        if self.row.get("resume"):
            text += f", then {self.row['resume']}"
        if self.row.get("then"):
            text += f"; {self.row['then']}"
        return text


class Criterion(NamedTuple):
    measure: str  # the measure it reads (times_uln, platelets, lvef, fall)
    compare: Callable[[float, float], bool]  # measure against limit
    limit: float  # the row's number, from the entry


@dataclass(frozen=True)
class Table:
    """A table entry with its numeric rows read once: each row's Band and criteria.

    Made once per Knowledge (see table()), so grading a result only compares numbers. The rows are
    read on first use, so a malformed table fails where a result is graded against it.
    """

    entry: Entry

    @cached_property
    def rows(self) -> tuple[tuple[Band, tuple[Criterion, ...]], ...]:
        if not isinstance(self.entry.value, list):
            raise KnowledgeError(f"{self.entry.id}: a table must be a list of rows")
        rows = []
        for row in self.entry.value:
            criteria = _criteria(row, self.entry.id)
            repeat = row.get("repeat_within_days")
            if repeat is not None and (
                isinstance(repeat, bool) or not isinstance(repeat, int) or repeat <= 0
            ):
                raise KnowledgeError(
                    f"{self.entry.id}: repeat_within_days must be a whole number of days, not {repeat!r}"
                )
            if criteria:  # rows like symptomatic_heart_failure are not numeric bands
                rows.append((Band(self.entry, row), criteria))
        return tuple(rows)


def ratio(result: Result) -> float | None:
    value = result.times_uln
    return None if value is None else round(value, RATIO_DIGITS)


def _criteria(row: Mapping[str, Any], entry_id: str) -> tuple[Criterion, ...]:
    found = []
    for key, limit in row.items():
        if key in CRITERIA:
            measure, compare = CRITERIA[key]
            if not isinstance(limit, int | float):
                raise KnowledgeError(f"{entry_id}: {key} must be a number, not {limit!r}")
            found.append(Criterion(measure, compare, float(limit)))
    return tuple(found)


def table(knowledge: Knowledge, entry_id: str) -> Table:
    """The table entry `entry_id` of this Knowledge, read once per Knowledge."""
    entry = knowledge.entry(entry_id)
    return knowledge.derived(("label-table", entry_id), lambda: Table(entry))


def bands(table: Table, measures: Mapping[str, float | None]) -> tuple[list[Band], list[Band]]:
    """(rows that apply, rows that might apply but need a measure we lack)."""
    applies, undecided = [], []
    for band, criteria in table.rows:
        complete = True  # every measure the row reads is known
        for measure, compare, limit in criteria:
            value = measures.get(measure)
            if value is None:
                complete = False
            elif not compare(value, limit):
                break  # a known measure outside the row
        else:
            (applies if complete else undecided).append(band)
    return applies, undecided


def table_ids(ctx: RuleContext, by_setting: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """The table entry ids for the record's setting; both settings' tables when it is unknown."""
    ids = by_setting.get(ctx.record.setting)
    if ids is not None:
        return tuple(ids)
    return tuple(entry_id for setting_ids in by_setting.values() for entry_id in setting_ids)


def tables_for(ctx: RuleContext, by_setting: Mapping[str, Iterable[str]]) -> list[Table]:
    """The table(s) for the record's setting; both settings' tables when it is unknown."""
    return [table(ctx.params.knowledge, entry_id) for entry_id in table_ids(ctx, by_setting)]


def worst(found: Iterable[Band]) -> list[Band]:
    """The most severe applicable rows (several when tables agree; all are cited)."""
    found = [b for b in found if b.severity > 0]
    if not found:
        return []
    top = max(b.severity for b in found)
    return [b for b in found if b.severity == top]


@dataclass(frozen=True)
class Grading:
    """The hold and discontinue rows of some tables, most severe first, for grading one result.

    worst(measures) equals worst(bands(...)[0]) over the same tables, in the same order: in this
    order the first row that applies has the top severity, and rows of equal severity keep the
    tables' order (the sort is stable), so scanning stops at the first less severe row. The rows are
    read on first use, so a missing or malformed table fails where a result is graded.
    """

    knowledge: Knowledge
    ids: tuple[str, ...]

    @cached_property
    def rows(self) -> tuple[tuple[int, Band, tuple[Criterion, ...]], ...]:
        rows = [
            (band.severity, band, criteria)
            for entry_id in self.ids
            for band, criteria in table(self.knowledge, entry_id).rows
            if band.severity > 0
        ]
        rows.sort(key=lambda row: -row[0])
        return tuple(rows)

    def worst(self, measures: Mapping[str, float | None], at_least: int = 1) -> list[Band]:
        """The most severe rows that apply, if they are at least `at_least` severe."""
        found: list[Band] = []
        top = at_least
        for severity, band, criteria in self.rows:
            if severity < top:
                break
            for measure, compare, limit in criteria:
                value = measures.get(measure)
                if value is None or not compare(value, limit):
                    break
            else:  # every criterion holds
                found.append(band)
                top = severity
        return found


def grading_for(ctx: RuleContext, by_setting: Mapping[str, Iterable[str]]) -> Grading:
    """The Grading over the table(s) for the record's setting, made once per Knowledge and tables."""
    knowledge, ids = ctx.params.knowledge, table_ids(ctx, by_setting)
    return knowledge.derived(("label-grading", ids), lambda: Grading(knowledge, ids))


def lab_window(ctx: RuleContext) -> tuple[datetime, datetime]:
    """The pre-dose window: lab_window before the dose, and nothing later than now."""
    return ctx.at - ctx.params.lab_window, ctx.now


def acting_result(ctx: RuleContext, kind: str) -> tuple[Result | None, bool]:
    """(the result a hold rule grades for this dose, whether it is held over): the latest in the lab
    window; with none there, the newest readable one older than it, if drawn on T-DM1 since its
    last dose and within the hold look-back before this one (policy.hold-lookback).

    The label holds the dose "until" a result shows recovery: a hold-level result that nothing newer
    contradicts has not been shown to have recovered, however fresh the window must be for a
    result to clear the dose (a lab in the draft orders is not a result). Unreadable results (value,
    unit or date) are passed over, as in the window: the newest readable one speaks.
    """
    result = derived.latest_in_lab_window(ctx, kind)
    if result is not None:
        return result, False
    held = ctx.memo(("held-over", kind), lambda: _held_over(ctx, kind))
    return held, held is not None


def _held_over(ctx: RuleContext, kind: str) -> Result | None:
    """The newest readable result older than the lab window, which has none (acting_result)."""
    # Only a result on T-DM1 and since its last dose: one drawn before the last dose was acted on
    # (the dose was given after it, and a "then reduce one dose level" row would cost a second level
    # for one event), and before any T-DM1 at all the label's rows do not apply (toxicity on T-DM1;
    # a pre-treatment count from other chemotherapy is the missing-lab card's, which shows it).
    # Many records carry T-DM1 only as orders or statements, no administrations: then "on T-DM1"
    # is after the first of them began, and there is no last dose to be after.
    since = derived.last_tdm1_dose_start(ctx) or derived.first_tdm1_date(ctx)
    if since is None:
        return None
    newest = ctx.record.latest(kind, until=ctx.now)  # none in the window, so older than it
    if newest is None or newest.when <= since or newest.when < ctx.at - lookback(ctx):
        return None
    return newest


def lookback(ctx: RuleContext) -> timedelta:
    return timedelta(days=ctx.params.knowledge.value(HOLD_LOOKBACK)["days"])


def held_over_text(ctx: RuleContext, result: Result, band: Band, name: str) -> str:
    """Why an older result still acts on this dose: its age, that nothing newer shows recovery, and
    the row's recovery level (from the table, not restated here)."""
    said = (
        f"this {name} is from {day(result.when)} ({(ctx.at - result.when).days} days before the dose), "
        f"older than the {ctx.params.lab_window.days}-day lab window"
    )
    if band.action == "discontinue":
        return f"{said}; no newer {name} is on record"
    recovery = band.row.get("until") or "recovery"
    return (
        f"{said}, and no newer {name} shows recovery: do not give T-DM1 until a new {name} shows {recovery}"
    )


def lookback_text(ctx: RuleContext) -> str:
    """The look-back bound as the card states it, with the entry's status."""
    entry = ctx.params.knowledge.entry(HOLD_LOOKBACK)
    return (
        f"A result older than the lab window still holds the dose only if drawn within "
        f"{entry.value['days']} days before it (service policy, status {entry.status})."
    )


def dose_on(ctx: RuleContext) -> str:
    """The dose date as a card appends it (' on 2026-12-05') when the dose lies ahead of now: a draft
    with a later start, or the next dose due on patient-view. Its window is then not the last days
    before today, and a card saying "none in the last 3 days" beside yesterday's result would
    contradict itself."""
    return f" on {day(ctx.at)}" if ctx.at > ctx.now else ""


def times_text(times: float) -> str:
    """A multiple of ULN as a summary shows it: one decimal when that is exact, else two, rounded up.
    One decimal read a held bilirubin of 1.545 × ULN (1.7 mg/dL, ULN 1.1) as "1.5 × ULN", the very
    level the label holds only above; two decimals rounded to nearest would still show 5.0025 × ULN
    as "5.00". Rounded up, a value above a table level never reads as the level itself (the levels
    have at most one decimal). The 1e-6 keeps a float just past an exact value (3.0000000000000004)
    from reading 3.01."""
    if round(times, 1) == times:
        return f"{times:.1f}"
    return times_two_decimals(times)


def times_two_decimals(times: float) -> str:
    """A multiple of ULN with two decimals, rounded up as times_text does: the reason lines beside a
    summary must not read 5.0025 × ULN as "5.00" while the summary says "5.01"."""
    return f"{math.ceil(times * 100 - 1e-6) / 100:.2f}"


def day(moment: datetime) -> str:
    return moment.date().isoformat()


def number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def shown(result: Result) -> str:
    """A result's value as the cards show it: number(), after the comparator of a result reported as
    a bound ("<40", ">1,000"), the bound as reported (record.reported), not the value graded past it."""
    return f"{result.comparator}{number(reported(result) or 0)}"


def remove_draft(ctx: RuleContext, key: str, description: str) -> tuple[Suggestion, ...]:
    """Delete the draft T-DM1 order (orders only: patient-view has no draft to remove)."""
    if ctx.order is None or not ctx.order.reference:
        return ()
    return (
        Suggestion(
            key=key,
            actions=(Action(type="delete", description=description, resource_id=ctx.order.reference),),
            recommended=True,
        ),
    )


def cite(found: Iterable[Band], *extra: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys([b.entry.id for b in found] + list(extra)))


def reduce_event_since_last_dose(
    ctx: RuleContext, kind: str, grade: Callable[[Result], Band | None]
) -> tuple[Result, Band] | None:
    """The newest result since the last T-DM1 dose in a hold row whose resumption costs a dose level.

    The label's "do not administer until recovery, then reduce one dose level" outlives the
    recovery: the next dose after such an event must be one level lower.
    """
    if not ctx.record.available >= MEDICATION_HISTORY:
        ctx.notes.append(
            "Results since the last T-DM1 dose were not checked against the label's 'then reduce one "
            "dose level' rows: the medication history could not be read."
        )
        return None
    last = derived.last_tdm1_dose_start(ctx)
    if last is None:
        return None
    for result in ctx.record.results_of(kind):  # newest first
        if result.when <= last:
            break
        if result.when > ctx.now or not result.readable:
            continue
        band = grade(result)
        if band is not None and band.action == "hold" and band.reduces_level:
            return result, band
    return None


def reduced_since_last_dose(ctx: RuleContext) -> tuple[bool | None, str]:
    """(is the ordered dose below the last dose given, text of the last dose); None when unknowable."""
    doses = sorted((e for e in derived.tdm1_doses(ctx) if e.start), key=lambda e: e.start or ctx.now)
    if not doses or ctx.order is None:
        return None, ""
    last = doses[-1]
    last_level = dosing.event_mg_per_kg(last, ctx.record, ctx.params.weight_stale)
    ordered = dosing.ordered_dose(ctx)
    last_text = f"{last_level:g} mg/kg on {day(last.start)}" if last_level and last.start else ""
    if last_level is None or ordered.mg_per_kg is None:
        return None, last_text
    # Within the dose tolerance of the last level, or above it, is not a reduction.
    return ordered.mg_per_kg < last_level * (1 - ctx.params.dose_tolerance), last_text
