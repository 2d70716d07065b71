"""treatment-summary: where a patient on T-DM1 stands, when the chart is opened (patient-view).

Source: KADCYLA USPI §2.1 (every 3 weeks; a missed dose is given as soon as possible and the
schedule adjusted to keep 3 weeks between doses), Boxed Warning (labs before each dose, LVEF
before and during treatment).

When  the chart of a patient with T-DM1 on record is opened,
Then  show cycles given, the last dose, when the next is due, and which pre-dose checks are due,
      among them the repeat LVEF the label's table asks for after a borderline LVEF
      (lvef_decline.repeat_due: "repeat LVEF within 3 weeks", USPI §2.2 Table 4 / EBC table).
"""

from __future__ import annotations

from service.clinical.findings import Finding, RuleContext
from service.clinical.record import LIVER_TESTS, MEDICATION_HISTORY, OBSERVATIONS
from service.clinical.rules import course, derived, lvef_decline
from service.clinical.rules import label_tables as tables
from service.clinical.rules.base import Rule

RULE_ID = "treatment-summary"


def _dose_text(event: course.TherapyEvent | None) -> str:
    if event is None or event.dose is None:
        return ""
    return f" at {event.dose.value:g} {event.dose.unit}"


def evaluate(ctx: RuleContext) -> list[Finding]:
    current = derived.current_course(ctx)
    if current is None:
        return []
    last = current.last_dose
    next_due = current.next_due(ctx.cycle)
    due: list[str] = []
    # The card's summary line names the checks in short ("platelets, liver tests, LVEF"): with the
    # full names, a course overdue with all three due ran past the 140 characters a summary may have.
    due_short: list[str] = []
    repeat_sources: tuple[str, ...] = ()
    if current.active:
        check_at = max(next_due, ctx.now) if next_due else ctx.now
        since = check_at - ctx.params.lab_window
        if ctx.record.latest("platelets", since=since, until=ctx.now) is None:
            due.append("platelet count")
            due_short.append("platelets")
        # Only the liver tests that are missing: "ALT, AST and total bilirubin" beside a fresh ALT
        # and AST sent the clinician to order tests already done.
        liver = [
            name
            for k, name in LIVER_TESTS.items()
            if ctx.record.latest(k, since=since, until=ctx.now) is None
        ]
        if liver:
            due.append(liver[0] if len(liver) == 1 else f"{', '.join(liver[:-1])} and {liver[-1]}")
            due_short.append("liver tests" if len(liver) > 1 else liver[0])
        if ctx.record.latest("lvef", since=check_at - ctx.params.lvef_interval, until=ctx.now) is None:
            due.append("LVEF (echo or MUGA)")
            due_short.append("LVEF")
        elif (repeat := lvef_decline.repeat_due(ctx)) is not None and repeat.by < check_at:
            # The label's "repeat LVEF within 3 weeks" after a borderline LVEF, not the 3-month check.
            due.append(f"repeat LVEF (echo or MUGA), due by {repeat.by.date().isoformat()}")
            due_short.append("LVEF")
            repeat_sources = tables.cite(repeat.bands)
    if not current.active and current.stopped_at:
        # The last dose is in the summary already; an order stopped without an end has no stop date.
        if current.fixed_course_given:
            status = f"course complete ({len(current.doses)} cycles, the early-breast-cancer course)"
        elif current.stop_dated:
            status = f"stopped {current.stopped_at.date().isoformat()}"
        else:
            status = "stopped, no stop date recorded"
    elif next_due is None:
        status = "no dose given yet"
    elif next_due < ctx.now:
        status = f"next dose overdue since {next_due.date().isoformat()}"
    else:
        status = f"next due {next_due.date().isoformat()}"
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="info",
            facts={
                "cycles": len(current.doses),
                "last_dose": (last.start.date().isoformat() + _dose_text(last))
                if last and last.start
                else "none",
                "status": status,
                "setting": {"metastatic": "metastatic", "early": "early (adjuvant)"}.get(
                    ctx.record.setting, "not recorded"
                ),
                "due": ", ".join(due) if due else "none",
                "due_short": ", ".join(due_short) if due_short else "none",
            },
            sources=(
                "dosing.schedule",
                "monitoring.liver-before-each-dose",
                "monitoring.lvef",
                *repeat_sources,
            ),
        )
    ]


RULE = Rule(
    rule_id=RULE_ID,
    needs=frozenset({OBSERVATIONS}) | MEDICATION_HISTORY,
    evaluate=evaluate,
    on_orders=False,
    on_patient_view=True,
)
