"""thrombocytopenia-hold: the platelet count before a T-DM1 dose is below the label's hold level.

Sources: KADCYLA USPI §2.2 Table 5 (MBC): Grade 3 (25,000 to < 50,000/mm3) do not administer until
≤ Grade 1 (≥ 75,000/mm3), then the same dose; Grade 4 (< 25,000/mm3) the same, then reduce one dose
level (knowledge entry mbc.thrombocytopenia, confirmed). The MBC table is silent on Grade 2
(50,000 to < 75,000/mm3); the service holds there too (mbc.thrombocytopenia-grade2, unverified
service policy, because the label resumes only at ≥ 75,000/mm3). Current USPI EBC table: Grade 2-3
hold, Grade 4 hold then reduce (ebc.thrombocytopenia, unverified recollection).

When  a T-DM1 dose is ordered (or, on patient-view, the next dose is due within the lab window),
 and  the latest valid platelet count in the lab window before the dose (final/amended/corrected,
      unit normalised to /mm3) falls in a hold row of the table for the record's setting,
  or  there is none in the window and the newest valid count, drawn before the window but within
      policy.hold-lookback of the dose (unverified service policy), falls in a hold row:
      the label resumes only once a count shows recovery, and nothing newer shows it (a CBC in the
      draft orders is not a result); the card says the count's date and age,
Then  critical: do not give the dose until platelets ≥ the row's recovery level; below the
      Grade 4 level also reduce one dose level on resumption. Suggest removing the draft order.
If a count since the last dose was in a "then reduce one dose level" row (Grade 4), the card says
resume one level lower; once recovered, an order not below the last dose given still fires
(critical, "resume-reduced"); when either dose cannot be read in mg/kg, a note says so.
Exactly 75,000/mm3 is ≤ Grade 1: no card. No count in the window is also platelets-missing's
business (it asks for a new count); counts in units, or with an effective date, we cannot read are
never graded (platelets-missing reports them): the newest readable count is, and the card names a
newer count it could not read.
Setting unknown: both tables, the more severe row wins (see label_tables).
"""

from __future__ import annotations

from service.clinical.findings import Finding, RuleContext
from service.clinical.record import OBSERVATIONS, Result
from service.clinical.rules import label_tables as tables
from service.clinical.rules.base import Rule

RULE_ID = "thrombocytopenia-hold"
TABLES = {
    "metastatic": ("mbc.thrombocytopenia", "mbc.thrombocytopenia-grade2"),
    "early": ("ebc.thrombocytopenia",),
}


def _worst(ctx: RuleContext, count: float) -> list[tables.Band]:
    return tables.grading_for(ctx, TABLES).worst({"platelets": count})


def _grade(ctx: RuleContext, result: Result) -> tables.Band | None:
    chosen = _worst(ctx, round(result.value or 0, 3))
    return chosen[0] if chosen else None


def evaluate(ctx: RuleContext) -> list[Finding]:
    _since, until = tables.lab_window(ctx)
    # None in the window: the newest older count still holds the dose if it is low (acting_result).
    result, held_over = tables.acting_result(ctx, "platelets")
    if result is None or result.value is None:
        return []
    count = round(result.value, 3)
    chosen = _worst(ctx, count)
    # An older count at no hold level clears nothing (platelets-missing asks for a new one), but a
    # "then reduce one dose level" count since the last dose still costs this dose its level.
    current = chosen[0] if chosen else None
    # The current count is often the newest since the last dose as well: its grade is known.
    earlier = tables.reduce_event_since_last_dose(
        ctx, "platelets", lambda r: current if r is result else _grade(ctx, r)
    )
    if earlier is not None and earlier[0] is result:
        earlier = None  # the current count speaks for itself
    if not chosen:
        return _resume_reduced(ctx, earlier) if earlier else []
    band = chosen[0]
    reduce = band.reduces_level or earlier is not None
    newer_unreadable = [
        r for r in ctx.record.unreadable_in("platelets", result.when, until) if r.when > result.when
    ]
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="critical",
            variant="reduce" if reduce else "hold",
            facts={
                "platelets": tables.shown(result),
                "date": tables.day(result.when),
                "grade": _grade_text(band),
                "until": str(band.row.get("until", "")),
                "instruction": band.instruction(),
                "setting": tables.SETTING_NAMES[ctx.record.setting],
                "earlier": _earlier_text(earlier),
                "held_over": _held_over_text(ctx, result, band) if held_over else "",
                "none_newer": (
                    # Beside "a newer count could not be read", "none newer" contradicted the card.
                    f" ({(ctx.at - result.when).days} days before the dose, "
                    f"{'newer unreadable' if newer_unreadable else 'none newer'})"
                    if held_over
                    else ""
                ),
                "unreadable": (
                    f" A newer count ({tables.day(newer_unreadable[0].when)}) could not be read: "
                    f"{newer_unreadable[0].problem}."
                    if newer_unreadable
                    else ""
                ),
            },
            order_ref=ctx.order.reference or None if ctx.order else None,
            suggestions=tables.remove_draft(ctx, "remove-draft", "Remove the T-DM1 draft order (dose held)"),
            sources=tables.cite(
                [*chosen, *([earlier[1]] if earlier else [])], *([tables.HOLD_LOOKBACK] if held_over else [])
            ),
        )
    ]


def _held_over_text(ctx: RuleContext, result: Result, band: tables.Band) -> str:
    """ " This count is from …: do not give T-DM1 until …" for a count older than the window."""
    text = tables.held_over_text(ctx, result, band, "platelet count")
    return f" {text[0].upper()}{text[1:]}. {tables.lookback_text(ctx)}"


def _grade_text(band: tables.Band) -> str:
    """ " (Grade 3)" when the table row names its grade (the EBC rows do not)."""
    return f" (Grade {band.row['grade']})" if band.row.get("grade") else ""


def _earlier_text(earlier: tuple[Result, tables.Band] | None) -> str:
    if earlier is None:
        return ""
    result, band = earlier
    return (
        f" Since the last T-DM1 dose the count was {tables.shown(result)}/mm3 on "
        f"{tables.day(result.when)}{_grade_text(band)}: {band.instruction()}."
    )


def _resume_reduced(ctx: RuleContext, earlier: tuple[Result, tables.Band]) -> list[Finding]:
    """Recovered, but a dose-level-costing count since the last dose: the order must be lower."""
    if ctx.order is None:
        return []  # patient-view: no dose to compare
    reduced, last_dose = tables.reduced_since_last_dose(ctx)
    result, band = earlier
    if reduced is None:
        ctx.notes.append(
            f"Platelets {tables.shown(result)}/mm3 on {tables.day(result.when)} since the last "
            "T-DM1 dose require resuming one dose level lower; the ordered or last dose could not be read "
            "in mg/kg, so check the dose level by hand."
        )
        return []
    if reduced:
        return []
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="critical",
            variant="resume-reduced",
            facts={
                "platelets": tables.shown(result),
                "date": tables.day(result.when),
                "grade": _grade_text(band),
                "last_dose": last_dose,
                "instruction": band.instruction(),
                "setting": tables.SETTING_NAMES[ctx.record.setting],
            },
            order_ref=ctx.order.reference or None,
            sources=tables.cite([band], "dosing.reduction-ladder"),
        )
    ]


RULE = Rule(
    rule_id=RULE_ID,
    needs=frozenset({OBSERVATIONS}),
    evaluate=evaluate,
    on_patient_view=True,
    only_when_due=True,
)
