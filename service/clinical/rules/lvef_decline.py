"""lvef-decline: LVEF at a label hold level, or symptomatic heart failure, before a T-DM1 dose.

Sources: KADCYLA USPI §2.2 Table 4 (MBC; mbc.lvef): symptomatic CHF discontinue; LVEF < 40% hold
(repeat within 3 weeks, discontinue if confirmed); LVEF 40% to ≤ 45% with a fall ≥ 10 points from
baseline hold; with a fall < 10 points, or LVEF > 45%, continue. Current USPI EBC table (ebc.lvef,
unverified recollection): LVEF < 45% hold; 45% to < 50% with a fall ≥ 10 points hold; symptomatic
CHF discontinue. Boxed Warning: withhold for a clinically significant decrease in LV function.

When  a T-DM1 dose is ordered (or, on patient-view, the next dose is due within the lab window),
 and  the latest valid LVEF on record (any LOINC LVEF code, in %) falls in a hold row of the table
      for the record's setting, the fall being measured from the baseline: the last LVEF before the
      first T-DM1 dose, else the earliest LVEF on record (not the latest one itself);
  or  heart failure (condition set heart_failure, active) is on the problem list: taken as
      symptomatic CHF, since a coded active heart failure is what the EHR can tell us,
Then  critical: hold, with the table's repeat-LVEF instruction; or discontinue for heart failure,
      or when the LVEF before the latest one, also taken on T-DM1, was at a hold level too (the
      repeat confirms the decline or shows no recovery: "discontinue" in both tables). Suggest
      removing the draft order.
LVEF exactly 40% (MBC) / 45% (EBC) is not "below"; a fall of exactly 10 points is "≥ 10". When the
fall decides the action but no baseline exists (T-DM1 already given, a single LVEF on record),
the LVEF is not graded: a data-unavailable note says so. No LVEF at all is lvef-monitoring's
business. Setting unknown: both tables, the more severe row wins (see label_tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from service.clinical.findings import Finding, RuleContext, Suggestion
from service.clinical.record import CONDITIONS, OBSERVATIONS, PatientRecord, Result, reported
from service.clinical.rules import derived
from service.clinical.rules import label_tables as tables
from service.clinical.rules.base import Rule

RULE_ID = "lvef-decline"
TABLES = {"metastatic": ("mbc.lvef",), "early": ("ebc.lvef",)}


def baseline(record: PatientRecord, latest: Result, first: datetime | None) -> Result | None:
    """The last LVEF before the first T-DM1 dose (`first`), else the earliest on record; never `latest`
    itself once T-DM1 has been given (a single post-treatment LVEF has no baseline to fall from)."""
    readable = [r for r in record.results_of("lvef") if r.readable and r.when <= latest.when]
    if first is None:
        return latest  # not started: today's LVEF is the baseline
    before = [r for r in readable if r.when <= first]
    if before:
        return before[0]  # newest first
    earliest = readable[-1] if readable else None
    return earliest if earliest is not None and earliest is not latest else None


def evaluate(ctx: RuleContext) -> list[Finding]:
    record = ctx.record
    lvef_tables = tables.tables_for(ctx, TABLES)
    setting = tables.SETTING_NAMES[record.setting]
    order_ref = ctx.order.reference or None if ctx.order else None
    if CONDITIONS not in record.available:
        ctx.notes.append("Heart failure check not applied: the problem list could not be read.")
    elif derived.has_condition(ctx, "heart_failure"):
        return [
            Finding(
                rule_id=RULE_ID,
                indicator="critical",
                variant="heart-failure",
                facts={"setting": setting},
                order_ref=order_ref,
                suggestions=_remove_draft(ctx),
                sources=tuple(t.entry.id for t in lvef_tables),
            )
        ]
    latest = record.latest("lvef", until=ctx.now)
    if latest is None or latest.value is None:
        return []
    first = derived.first_tdm1_date(ctx)
    base = baseline(record, latest, first)
    fall = _fall(base, latest)
    chosen, undecided = _hold_rows(lvef_tables, latest, base)
    if not chosen:
        if undecided:
            ctx.notes.append(
                f"LVEF {tables.shown(latest)}% on {tables.day(latest.when)}: the label's action depends on the "
                "fall from baseline, and no baseline LVEF (before the first T-DM1 dose) is on record. "
                "It cannot be graded: compare with the pre-treatment LVEF before the dose."
            )
        return []
    previous = _previous_on_treatment(record, latest, first)
    confirmed = previous is not None and bool(_hold_rows(lvef_tables, previous, base)[0])
    band = chosen[0]
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="critical",
            variant="confirmed" if confirmed else "hold",
            facts={
                "previous": f"{tables.shown(previous)}% on {tables.day(previous.when)}"
                if previous and confirmed
                else "",
                "lvef": tables.shown(latest),
                "date": tables.day(latest.when),
                "baseline": _baseline_text(base, latest),
                "fall": _fall_text(fall, base, latest),
                "instruction": band.instruction(),
                "setting": setting,
            },
            order_ref=order_ref,
            suggestions=_remove_draft(ctx),
            sources=tables.cite(chosen),
        )
    ]


def _remove_draft(ctx: RuleContext) -> tuple[Suggestion, ...]:
    return tables.remove_draft(ctx, "remove-draft", "Remove the T-DM1 draft order")


def _hold_rows(
    lvef_tables: list[tables.Table], result: Result, base: Result | None
) -> tuple[list[tables.Band], bool]:
    """(most severe hold rows for this LVEF, whether a hold row is undecided for lack of a baseline)."""
    applying, undecided = _rows(lvef_tables, result, base)
    return tables.worst(applying), bool(tables.worst(undecided))


def _rows(
    lvef_tables: list[tables.Table], result: Result, base: Result | None
) -> tuple[list[tables.Band], list[tables.Band]]:
    """(the rows of the tables that apply to this LVEF, those undecided for lack of a baseline)."""
    assert result.value is not None
    fall = _fall(base, result)
    if fall is not None and base is not None and _strictly_smaller(base, result):
        fall -= FALL_UNDER
    applying: list[tables.Band] = []
    undecided: list[tables.Band] = []
    for table in lvef_tables:
        found, unsure = tables.bands(table, {"lvef": result.value, "fall": fall})
        applying += found
        undecided += unsure
    return applying, undecided


@dataclass(frozen=True)
class RepeatDue:
    """A repeat LVEF the label's table asks for within `days` of `lvef` (its rows: `bands`)."""

    lvef: Result
    days: int  # the rows' repeat_within_days
    bands: tuple[tables.Band, ...]
    decided: bool  # a row applies; else the fall from a baseline would decide between rows

    @property
    def by(self) -> datetime:
        return self.lvef.when + timedelta(days=self.days)


def repeat_due(ctx: RuleContext) -> RepeatDue | None:
    """The repeat LVEF asked for by the rows of the latest on-treatment LVEF, when none holds the dose.

    Table 4 (MBC) and the EBC table "continue treatment, repeat LVEF within 3 weeks" for LVEF 40% to
    45% (EBC 45% to < 50%) with a fall under 10 points: no hold, so no lvef-decline card, and the
    3-month interval would let the repeat slip by months. A row's `repeat_within_days` gives the
    interval. The hold rows ask for the same repeat, so an LVEF in the band without a baseline (its
    row undecided between hold and continue) needs it too. When a hold row applies, lvef-decline's
    card already says "repeat", and this is None. Only for an LVEF taken after the first T-DM1 dose:
    the table modifies doses of a course under way, and before it the fall is from itself.
    """
    record = ctx.record
    latest = record.latest("lvef", until=ctx.now)
    first = derived.first_tdm1_date(ctx)
    if latest is None or latest.value is None or first is None or latest.when <= first:
        return None
    lvef_tables = tables.tables_for(ctx, TABLES)
    base = baseline(record, latest, first)
    applying, undecided = _rows(lvef_tables, latest, base)
    if tables.worst(applying):
        return None
    decided = [band for band in applying if "repeat_within_days" in band.row]
    asking = decided or [band for band in undecided if "repeat_within_days" in band.row]
    if not asking:
        return None
    days = min(band.row["repeat_within_days"] for band in asking)
    return RepeatDue(lvef=latest, days=days, bands=tuple(asking), decided=bool(decided))


def _previous_on_treatment(record: PatientRecord, latest: Result, first: datetime | None) -> Result | None:
    """The LVEF before the latest one, if taken on T-DM1 (first dose `first`): the repeat the hold
    rows ask for.

    Two consecutive on-treatment LVEFs at a hold level mean the decline is confirmed, or has not
    recovered, which both tables answer with "discontinue".
    """
    if first is None:
        return None
    earlier = [r for r in record.results_of("lvef") if r.readable and r.when < latest.when]
    return earlier[0] if earlier and earlier[0].when > first else None


# How far under the fall between the bounds as reported a fall is graded when the bounds make the
# actual fall strictly smaller (_strictly_smaller); far under the 3 decimals the fall is rounded to.
FALL_UNDER = 1e-6


def _fall(base: Result | None, result: Result) -> float | None:
    """The fall from the baseline to `result` in points, between the values as reported
    (record.reported): rounded, so that float noise (50.3 - 40.3) is not a fall under 10, which
    also rounds away the BEYOND a strict bound is graded past."""
    if base is None or base.value is None or result.value is None:
        return None
    return round((reported(base) or 0) - (reported(result) or 0), 3)


def _strictly_smaller(base: Result, result: Result) -> bool:
    """Whether the actual fall is certainly below the one between the bounds: each bound pulls it
    smaller (a baseline "<", an LVEF ">") and one is strict. A baseline "<55 %" with an LVEF of 45 %
    is a fall of less than 10 points, not the 10 that holds; bounds pulling both ways (or a fall
    larger than computed) are graded at the fall computed, as before."""
    if base is result:
        return False
    smaller = base.comparator in ("<", "<=") or result.comparator in (">", ">=")
    larger = result.comparator in ("<", "<=") or base.comparator in (">", ">=")
    return smaller and not larger and (base.comparator == "<" or result.comparator == ">")


def _fall_text(fall: float | None, base: Result | None, latest: Result) -> str:
    """The fall as the card shows it: "at least" / "at most" when a bound (record.BOUND_WORSE_WHEN)
    makes it larger or smaller than the one computed from the bound; plain when bounds pull both ways."""
    if fall is None or base is None:
        return "not known"
    if base is latest:
        return "none"
    larger = latest.comparator in ("<", "<=") or base.comparator in (">", ">=")
    smaller = latest.comparator in (">", ">=") or base.comparator in ("<", "<=")
    qualifier = "at least " if larger and not smaller else ("at most " if smaller and not larger else "")
    return f"{qualifier}{fall:g} points"


def _baseline_text(base: Result | None, latest: Result) -> str:
    if base is latest:
        return "this LVEF (T-DM1 not started yet)"
    if base is None or base.value is None:
        return "none on record before T-DM1"
    return f"{tables.shown(base)}% on {tables.day(base.when)}"


RULE = Rule(
    rule_id=RULE_ID,
    needs=frozenset({OBSERVATIONS}),
    evaluate=evaluate,
    on_patient_view=True,
    only_when_due=True,
)
