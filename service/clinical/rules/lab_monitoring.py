"""platelets-missing and liver-tests-missing: the labs that must precede every T-DM1 dose.

Sources: KADCYLA USPI Boxed Warning (hepatotoxicity): monitor serum transaminases and bilirubin
prior to initiation and prior to each dose. USPI §5.6: monitor platelet counts prior to each dose
(wording from a secondary source; status unverified in knowledge/label.yaml).

When  a T-DM1 dose is ordered (or, on patient-view, the next dose is due within the lab window),
 and  no valid platelet count / ALT / AST / total bilirubin lies in the window before the dose
      (default 3 days; final, amended or corrected results with a readable value and date:
      one dated only by issued beside an unreadable effective[x] does not count, it is named),
Then  warn, say which are missing and the last ones' values and ages, and suggest the lab order
      (CBC 58410-2, hepatic function panel 24325-3). A lab already ordered in this session
      suppresses the card, so accepting the suggestion cannot make it fire again.
"""

from __future__ import annotations

from datetime import datetime

from service.clinical.findings import Action, Finding, RuleContext, Suggestion
from service.clinical.orders import ordered_lab_codes
from service.clinical.record import LIVER_TESTS, OBSERVATIONS, PatientRecord, Result
from service.clinical.rules import derived
from service.clinical.rules import label_tables as tables
from service.clinical.rules.base import Rule
from service.clinical.suggestions import lab_order


def _window(ctx: RuleContext) -> tuple[datetime, datetime]:
    return ctx.at - ctx.params.lab_window, ctx.now


def _age(result: Result | None, now: datetime) -> str:
    """The last result's value and date: a low count days old is not the same gap as a normal one."""
    if result is None:
        return "none on record"
    days = (now - result.when).days
    return (
        f"{_value(result)} on {result.when.date().isoformat()} ({days} days ago)"
        if days
        else f"{_value(result)} on {result.when.date().isoformat()} (today)"
    )


def _last(record: PatientRecord, kind: str, since: datetime, until: datetime, now: datetime) -> str:
    """The last readable result as _age says it; with none, the newest one before the window that
    could not be read (a preliminary count), rather than "none on record" beside it. One inside the
    window is named by _unreadable_note already."""
    last = record.latest(kind, until=until)
    if last is not None:
        return _age(last, now)
    older = next((r for r in record.results_of(kind) if r.when < since and r.placed), None)
    if older is None:
        return "none on record"
    return f"none readable on record (the newest, on {older.when.date().isoformat()}, could not be read: {older.problem})"


def _value(result: Result) -> str:
    """The value as the hold cards show it: platelets in /mm3, liver tests with their × ULN."""
    if result.kind == "platelets":
        return f"{tables.shown(result)}/mm3"
    text = f"{tables.shown(result)} {result.unit}".strip()
    times = tables.ratio(result)
    return f"{text} ({tables.times_text(times)} × ULN)" if times is not None else f"{text} (no ULN)"


def _already_ordered(ctx: RuleContext, panel: str, kinds: list[str] | None = None) -> bool:
    ordered = ordered_lab_codes(list(ctx.draft_orders))
    spec = ctx.params.terminology.lab_panels[panel]
    if spec["loinc"] in ordered:
        return True
    if kinds is None:
        return bool(ordered & set(spec["also"]))
    observations = ctx.params.terminology.observations
    return all(any(code in ordered for _system, code in observations[kind]) for kind in kinds)


def _unreadable_note(record: PatientRecord, kind: str, since: datetime, until: datetime) -> str:
    bad = record.unreadable_in(kind, since, until)
    return f" ({len(bad)} result(s) in the window could not be read: {bad[0].problem})" if bad else ""


def _suggest(ctx: RuleContext, panel: str, key: str) -> tuple[Suggestion, ...]:
    spec = ctx.params.terminology.lab_panels[panel]
    resource = lab_order(
        f"Patient/{ctx.record.patient_id}", spec["loinc"], spec["display"], "Required before each T-DM1 dose"
    )
    return (
        Suggestion(
            key=key,
            actions=(Action(type="create", description=f"Order {spec['display']}", resource=resource),),
            recommended=True,
        ),
    )


def platelets(ctx: RuleContext) -> list[Finding]:
    since, until = _window(ctx)
    if derived.latest_in_lab_window(ctx, "platelets") is not None:
        return []
    if _already_ordered(ctx, "cbc"):
        return []
    return [
        Finding(
            rule_id="platelets-missing",
            indicator="warning",
            facts={
                "window_days": ctx.params.lab_window.days,
                "dose_on": tables.dose_on(ctx),
                "last": _last(ctx.record, "platelets", since, until, ctx.now),
                "unreadable": _unreadable_note(ctx.record, "platelets", since, until),
            },
            order_ref=ctx.order.reference if ctx.order else None,
            suggestions=_suggest(ctx, "cbc", "order-cbc"),
            sources=("monitoring.platelets-before-each-dose",),
        )
    ]


def liver_tests(ctx: RuleContext) -> list[Finding]:
    since, until = _window(ctx)
    missing = [kind for kind in LIVER_TESTS if derived.latest_in_lab_window(ctx, kind) is None]
    if not missing or _already_ordered(ctx, "hepatic", missing):
        return []
    last = "; ".join(f"{LIVER_TESTS[k]}: {_last(ctx.record, k, since, until, ctx.now)}" for k in missing)
    unreadable = "".join(_unreadable_note(ctx.record, k, since, until) for k in missing)
    return [
        Finding(
            rule_id="liver-tests-missing",
            indicator="warning",
            facts={
                "window_days": ctx.params.lab_window.days,
                "dose_on": tables.dose_on(ctx),
                "missing": ", ".join(LIVER_TESTS[k] for k in missing),
                "last": last,
                "unreadable": unreadable,
            },
            order_ref=ctx.order.reference if ctx.order else None,
            suggestions=_suggest(ctx, "hepatic", "order-hepatic-panel"),
            sources=("monitoring.liver-before-each-dose",),
        )
    ]


PLATELETS_RULE = Rule(
    rule_id="platelets-missing",
    needs=frozenset({OBSERVATIONS}),
    evaluate=platelets,
    on_patient_view=True,
    only_when_due=True,
)
LIVER_RULE = Rule(
    rule_id="liver-tests-missing",
    needs=frozenset({OBSERVATIONS}),
    evaluate=liver_tests,
    on_patient_view=True,
    only_when_due=True,
)
