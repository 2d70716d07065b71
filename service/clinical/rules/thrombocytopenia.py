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
Then  critical: do not give the dose until platelets ≥ the row's recovery level; below the
      Grade 4 level also reduce one dose level on resumption. Suggest removing the draft order.
Exactly 75,000/mm3 is ≤ Grade 1: no card. No count in the window is platelets-missing's business;
counts in units we cannot read are never graded (platelets-missing reports them).
Setting unknown: both tables, the more severe row wins (see label_tables).
"""

from __future__ import annotations

from service.clinical.findings import Finding, RuleContext
from service.clinical.record import OBSERVATIONS
from service.clinical.rules import label_tables as tables
from service.clinical.rules.base import Rule

RULE_ID = "thrombocytopenia-hold"
TABLES = {
    "metastatic": ("mbc.thrombocytopenia", "mbc.thrombocytopenia-grade2"),
    "early": ("ebc.thrombocytopenia",),
}


def evaluate(ctx: RuleContext) -> list[Finding]:
    since, until = tables.lab_window(ctx)
    result = ctx.record.latest("platelets", since=since, until=until)
    if result is None or result.value is None:
        return []
    count = round(result.value, 3)
    applying: list[tables.Band] = []
    for entry in tables.entries_for(ctx, TABLES):
        applying += tables.bands(entry, {"platelets": count})[0]
    chosen = tables.worst(applying)
    if not chosen:
        return []
    band = chosen[0]
    newer_unreadable = [
        r for r in ctx.record.unreadable_in("platelets", result.when, until) if r.when > result.when
    ]
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="critical",
            variant="reduce" if "reduce" in str(band.row.get("resume", "")) else "hold",
            facts={
                "platelets": tables.number(count),
                "date": tables.day(result.when),
                "grade": str(band.row.get("grade", "")),
                "until": str(band.row.get("until", "")),
                "instruction": band.instruction(),
                "setting": tables.SETTING_NAMES[ctx.record.setting],
                "unreadable": (
                    f" A newer count ({tables.day(newer_unreadable[0].when)}) could not be read: "
                    f"{newer_unreadable[0].problem}."
                    if newer_unreadable
                    else ""
                ),
            },
            order_ref=ctx.order.reference or None if ctx.order else None,
            suggestions=tables.remove_draft(ctx, "remove-draft", "Remove the T-DM1 draft order (dose held)"),
            sources=tables.cite(chosen),
        )
    ]


RULE = Rule(
    rule_id=RULE_ID,
    needs=frozenset({OBSERVATIONS}),
    evaluate=evaluate,
    on_patient_view=True,
    only_when_due=True,
)
