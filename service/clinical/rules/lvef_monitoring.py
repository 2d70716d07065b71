"""lvef-monitoring: no recent LVEF before a T-DM1 dose.

Sources: KADCYLA USPI Boxed Warning (cardiac toxicity): evaluate left ventricular function in all
patients prior to and during treatment; §5.2: at regular intervals, e.g. every 3 months
(monitoring.lvef; the interval wording is from a secondary source).

When  a T-DM1 dose is ordered,
 and  no valid LVEF (LOINC 10230-1, 8806-2, 18043-0, 8812-0, 8811-2, in %) lies within
      `lvef_interval` (default 90 days, TDM1_CDS_LVEF_INTERVAL_DAYS) before the dose,
Then  warn, as "before the first dose" when no T-DM1 dose has been given yet, else as "overdue",
      and suggest an echocardiogram (ServiceRequest, LOINC 8806-2). An LVEF assessment already
      among the draft orders suppresses the card, so accepting the suggestion cannot re-fire it.
Not on patient-view: the treatment summary already lists an LVEF that is due.
"""

from __future__ import annotations

from service.clinical.findings import Action, Finding, RuleContext, Suggestion
from service.clinical.orders import ordered_lab_codes
from service.clinical.record import OBSERVATIONS
from service.clinical.rules import derived
from service.clinical.rules import label_tables as tables
from service.clinical.rules.base import Rule
from service.clinical.suggestions import imaging_order

RULE_ID = "lvef-monitoring"
PANEL = "lvef"


def _already_ordered(ctx: RuleContext) -> bool:
    spec = ctx.params.terminology.lab_panels[PANEL]
    return bool(ordered_lab_codes(list(ctx.draft_orders)) & {spec["loinc"], *spec["also"]})


def evaluate(ctx: RuleContext) -> list[Finding]:
    since = ctx.at - ctx.params.lvef_interval
    if ctx.record.latest("lvef", since=since, until=ctx.now) is not None or _already_ordered(ctx):
        return []
    last = ctx.record.latest("lvef", until=ctx.now)
    unreadable = ctx.record.unreadable_in("lvef", since, ctx.now)
    spec = ctx.params.terminology.lab_panels[PANEL]
    echo = imaging_order(
        f"Patient/{ctx.record.patient_id}",
        spec["loinc"],
        spec["display"],
        "LVEF before and during T-DM1 (KADCYLA Boxed Warning)",
    )
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="warning",
            variant="interval" if derived.tdm1_doses(ctx) else "before-first-dose",
            facts={
                "interval_days": ctx.params.lvef_interval.days,
                "dose_on": tables.dose_on(ctx),
                "last": f"{tables.shown(last)}% on {tables.day(last.when)}"
                if last and last.value is not None
                else "none on record",
                "unreadable": f" ({len(unreadable)} LVEF result(s) could not be read: {unreadable[0].problem})"
                if unreadable
                else "",
            },
            order_ref=ctx.order.reference or None if ctx.order else None,
            suggestions=(
                Suggestion(
                    key="order-echo",
                    actions=(
                        Action(type="create", description="Order an echocardiogram (LVEF)", resource=echo),
                    ),
                    recommended=True,
                ),
            ),
            sources=("monitoring.lvef",),
        )
    ]


RULE = Rule(rule_id=RULE_ID, needs=frozenset({OBSERVATIONS}), evaluate=evaluate)
