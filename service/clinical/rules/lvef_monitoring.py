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
When  a T-DM1 dose is ordered,
 and  the latest LVEF, taken on T-DM1, is in a row of the label's table that continues treatment and
      asks for a repeat LVEF (`repeat_within_days`, 21: MBC Table 4 40% to 45% with a fall < 10
      points; EBC 45% to < 50% likewise), or in the band where only a baseline would decide
      between that row and a hold row (which asks for the same repeat),
 and  the dose falls more than those days after it, with no newer LVEF,
Then  warn that the repeat is overdue (variant "repeat"), with the same echocardiogram suggestion.
      At a hold row lvef-decline's card carries the repeat instruction, and this one stays silent.
Not on patient-view: the treatment summary already lists an LVEF that is due.
"""

from __future__ import annotations

from service.clinical.findings import Action, Finding, RuleContext, Suggestion
from service.clinical.orders import ordered_lab_codes
from service.clinical.record import OBSERVATIONS, Result
from service.clinical.rules import derived, lvef_decline
from service.clinical.rules import label_tables as tables
from service.clinical.rules.base import Rule
from service.clinical.suggestions import imaging_order

RULE_ID = "lvef-monitoring"
PANEL = "lvef"


def _already_ordered(ctx: RuleContext) -> bool:
    spec = ctx.params.terminology.lab_panels[PANEL]
    return bool(ordered_lab_codes(list(ctx.draft_orders)) & {spec["loinc"], *spec["also"]})


def evaluate(ctx: RuleContext) -> list[Finding]:
    if _already_ordered(ctx):
        return []
    since = ctx.at - ctx.params.lvef_interval
    if ctx.record.latest("lvef", since=since, until=ctx.now) is not None:
        repeat = lvef_decline.repeat_due(ctx)
        return _repeat_overdue(ctx, repeat) if repeat is not None and repeat.by < ctx.at else []
    last = ctx.record.latest("lvef", until=ctx.now)
    unreadable = ctx.record.unreadable_in("lvef", since, ctx.now)
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
                "unreadable": _unreadable_text(unreadable),
            },
            order_ref=ctx.order.reference or None if ctx.order else None,
            suggestions=_order_echo(ctx, "LVEF before and during T-DM1 (KADCYLA Boxed Warning)"),
            sources=("monitoring.lvef",),
        )
    ]


def _repeat_overdue(ctx: RuleContext, repeat: lvef_decline.RepeatDue) -> list[Finding]:
    """The repeat LVEF the label's table asked for is due before the dose, and none was taken."""
    unreadable = ctx.record.unreadable_in("lvef", repeat.lvef.when, ctx.now)
    lvef = repeat.lvef
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="warning",
            variant="repeat",
            facts={
                "lvef": tables.shown(lvef),
                "date": tables.day(lvef.when),
                "repeat_days": repeat.days,
                "due": tables.day(repeat.by),
                "dose_on": tables.dose_on(ctx),
                "instruction": "; ".join(dict.fromkeys(band.instruction() for band in repeat.bands))
                if repeat.decided
                else "the row depends on the fall from the baseline LVEF (before the first T-DM1 dose), "
                "and none is on record; the rows it could be all ask for this repeat",
                "unreadable": _unreadable_text(unreadable),
                "setting": tables.SETTING_NAMES[ctx.record.setting],
            },
            order_ref=ctx.order.reference or None if ctx.order else None,
            suggestions=_order_echo(
                ctx, "Repeat LVEF asked for by KADCYLA USPI §2.2 (left ventricular dysfunction)"
            ),
            sources=("monitoring.lvef", *tables.cite(repeat.bands)),
        )
    ]


def _unreadable_text(unreadable: tuple[Result, ...]) -> str:
    if not unreadable:
        return ""
    return f" ({len(unreadable)} LVEF result(s) could not be read: {unreadable[0].problem})"


def _order_echo(ctx: RuleContext, reason: str) -> tuple[Suggestion, ...]:
    spec = ctx.params.terminology.lab_panels[PANEL]
    echo = imaging_order(f"Patient/{ctx.record.patient_id}", spec["loinc"], spec["display"], reason)
    return (
        Suggestion(
            key="order-echo",
            actions=(Action(type="create", description="Order an echocardiogram (LVEF)", resource=echo),),
            recommended=True,
        ),
    )


RULE = Rule(rule_id=RULE_ID, needs=frozenset({OBSERVATIONS}), evaluate=evaluate)
