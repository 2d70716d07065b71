"""hepatotoxicity: transaminases or bilirubin at a label hold / discontinue level, Hy's law, NRH.

Sources: KADCYLA USPI §2.2 Table 2 (MBC transaminases: > 2.5-5 × ULN same dose, > 5-20 × ULN hold
then reduce, > 20 × ULN discontinue; mbc.transaminases) and Table 3 (MBC bilirubin: > 1.5-3 × ULN
hold then same dose, > 3-10 × ULN hold then reduce, > 10 × ULN discontinue; mbc.bilirubin); §2.2
and §5.1: transaminases > 3 × ULN with total bilirubin > 2 × ULN, and nodular regenerative
hyperplasia, permanently discontinue (any.hys-law, any.nrh). Early breast cancer: the current
USPI EBC table (ebc.alt, ebc.ast, ebc.bilirubin), an unverified recollection the card flags.

When  a T-DM1 dose is ordered (or, on patient-view, the next dose is due within the lab window),
 and  the latest valid ALT, AST or total bilirubin in the lab window, as a multiple of its own
      ULN (Observation.referenceRange.high), falls in a hold or discontinue row of the table for
      the record's setting; or ALT or AST > 3 × ULN with total bilirubin > 2 × ULN (Hy's law);
      or nodular regenerative hyperplasia is on the problem list (active or not: a diagnosis
      means permanent discontinuation; matched on text, no verified code exists),
  or  a test has no result in the window and its newest valid result, drawn before the window but
      within policy.hold-lookback of the dose (unverified service policy), is at such a level
      (Hy's law: with its partner drawn within one lab window of it): the label holds "until"
      recovery and nothing newer shows it (a liver panel in the draft orders is not a result); the
      reason gives the result's date and age and the recovery level a new result must show,
  or  a permanent-discontinuation level (a discontinue row, or the Hy's-law pattern in results drawn
      within one lab window of each other) was met on T-DM1 (since the first dose) by an earlier
      result, before the window or in it behind a newer one: recovery since does not lift a
      permanent criterion,
Then  critical: hold the dose (with the label's recovery level and resume dose) or permanently
      discontinue; the most severe finding sets the card, every reason is listed. Suggest
      removing the draft order.
  or  since the last dose a value was in a "hold, then reduce one dose level" row and has recovered,
      but the order is not below the last dose given (both in mg/kg; else a note says so),
Then  critical, "resume-reduced": resume one dose level lower.
Transaminases > 2.5-5 × ULN in MBC ("treat at same dose level") give no card. Value and ULN are
divided in one unit (record/units convert both: ALT in ukat/L against a ULN in U/L). A result
without a ULN, or with a ULN in a unit that cannot be converted to the value's, is never graded
against a guessed ULN: it is named in a data-unavailable note (warning), so this rule's cards stay
critical, as the card contract says (an older result without a usable ULN is left to
liver-tests-missing, which shows it). Missing tests are liver-tests-missing's business.
Setting unknown: both tables, the more severe row wins.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from service.clinical.findings import Finding, RuleContext
from service.clinical.knowledge import Entry
from service.clinical.record import CONDITIONS, LIVER_TESTS, OBSERVATIONS, Result
from service.clinical.rules import derived
from service.clinical.rules import label_tables as tables
from service.clinical.rules.base import Rule

RULE_ID = "hepatotoxicity"
TABLES = {
    "alt": {"metastatic": ("mbc.transaminases",), "early": ("ebc.alt",)},
    "ast": {"metastatic": ("mbc.transaminases",), "early": ("ebc.ast",)},
    "bilirubin": {"metastatic": ("mbc.bilirubin",), "early": ("ebc.bilirubin",)},
}
HYS_LAW = "any.hys-law"
RESUME_REDUCED = 0  # below any hold: the values recovered, only the dose level is wrong
NRH = "any.nrh"


def _describe(kind: str, result: Result, times: float) -> str:
    return (
        f"{LIVER_TESTS[kind]} {tables.shown(result)} {result.unit} = {tables.times_two_decimals(times)} × ULN "
        f"(ULN {tables.number(result.uln or 0)}) on {tables.day(result.when)}"
    )


def evaluate(ctx: RuleContext) -> list[Finding]:
    latest: dict[str, tuple[Result, float]] = {}
    found: list[tables.Band] = []
    reasons: list[tuple[int, str, str]] = []  # (severity, headline, reason line)
    # Rows met since the last dose whose resumption costs a dose level: (band, headline, line).
    on_hold: list[tuple[tables.Band, str, str]] = []
    resumption: list[tuple[tables.Band, str, str]] = []
    gradings = {kind: tables.grading_for(ctx, TABLES[kind]) for kind in LIVER_TESTS}
    held: set[str] = set()  # kinds whose result is older than the window (tables.acting_result)
    acting: set[str] = set()  # those of them that hold or stop this dose
    for kind in LIVER_TESTS:
        # The label holds "until" recovery: with none in the window, the newest older result, if
        # at a hold or discontinue level, still acts on this dose.
        result, held_over = tables.acting_result(ctx, kind)
        if result is None:
            continue
        if held_over:
            held.add(kind)
        grading = gradings[kind]
        times = tables.ratio(result)
        if times is None:
            if kind not in held:  # an older result is liver-tests-missing's, which shows it
                # A ULN in a unit that cannot be converted is as good as none: said, with its unit.
                why = " has no reference range (ULN): it"
                if result.uln_problem:
                    why = f": {result.uln_problem}, so it"
                ctx.notes.append(
                    f"{LIVER_TESTS[kind]} {tables.shown(result)} {result.unit} on "
                    f"{tables.day(result.when)}{why} cannot be graded against the KADCYLA hepatotoxicity "
                    "table. Check it against the lab's ULN before the dose."
                )
            continue
        latest[kind] = (result, times)  # an older one too: with bilirubin it may be Hy's law
        current = _graded(grading, times)
        # An older result at no hold level clears nothing (liver-tests-missing asks for a new one),
        # but a "then reduce one dose level" result since the last dose still costs the level.
        if current is not None:
            found.append(current)
            line = f"{_describe(kind, result, times)}: {current.instruction()}"
            headline = f"{LIVER_TESTS[kind]} {tables.times_text(times)} × ULN"
            if kind in held:
                acting.add(kind)
                line += f"; {tables.held_over_text(ctx, result, current, LIVER_TESTS[kind])}"
                headline += f" on {tables.day(result.when)}, none newer"
            reasons.append((current.severity, headline, line))
        earlier = tables.reduce_event_since_last_dose(ctx, kind, _grader(grading, result, current))
        if earlier is not None and earlier[0] is not result:
            e_result, e_band = earlier
            e_times = tables.ratio(e_result) or 0.0
            line = f"Since the last T-DM1 dose, {_describe(kind, e_result, e_times)}: {e_band.instruction()}"
            headline = (
                f"{LIVER_TESTS[kind]} {tables.times_text(e_times)} × ULN on {tables.day(e_result.when)}"
            )
            (on_hold if current is not None else resumption).append((e_band, headline, line))
    extra_sources: list[str] = []
    for band, headline, line in on_hold:
        found.append(band)
        reasons.append((tables.ACTION_RANK["hold"], headline, line))
    if resumption:
        reduced, last_dose = tables.reduced_since_last_dose(ctx)
        if reduced is None and ctx.order is not None:
            ctx.notes.append(
                f"{resumption[0][1]} since the last T-DM1 dose requires resuming one dose level lower; the "
                "ordered or last dose could not be read in mg/kg, so check the dose level by hand."
            )
        elif reduced is False:
            extra_sources.append("dosing.reduction-ladder")
            for band, headline, line in resumption:
                found.append(band)
                reasons.append(
                    (RESUME_REDUCED, headline, f"{line}; this order is not below the last dose ({last_dose})")
                )
    hys, hys_headline, paired = _hys_law(ctx, latest, held)
    if hys:
        extra_sources.append(HYS_LAW)
        reasons.append((tables.ACTION_RANK["discontinue"], hys_headline, hys))
        acting |= held & paired
    shown = {result for result, _times in latest.values()}  # said above: not again as "earlier"
    for band, headline, line in _earlier_discontinuation(ctx, gradings, shown, bool(hys)):
        if band is None:
            extra_sources.append(HYS_LAW)
        else:
            found.append(band)
        reasons.append((tables.ACTION_RANK["discontinue"], headline, line))
    if acting:
        extra_sources.append(tables.HOLD_LOOKBACK)
    if CONDITIONS not in ctx.record.available:
        ctx.notes.append(
            "Nodular regenerative hyperplasia check not applied: the problem list could not be read."
        )
    elif derived.has_condition(ctx, "nodular_regenerative_hyperplasia", active_only=False):
        extra_sources.append(NRH)
        reasons.append(
            (
                tables.ACTION_RANK["discontinue"],
                "nodular regenerative hyperplasia",
                "Nodular regenerative hyperplasia on the problem list (matched on its name; no verified "
                "code): permanently discontinue T-DM1",
            )
        )
    if not reasons:
        return []
    reasons.sort(key=lambda r: -r[0])
    variant = _variant(reasons[0][0])
    discontinue = variant == "discontinue"
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="critical",
            variant=variant,
            facts={
                # The summary names what sets the action; the detail lists every reason.
                "headline": _headline(reasons, variant),
                "reasons": [r[2] for r in reasons],
                # Its own paragraph after the list of reasons; empty when every result is fresh.
                "lookback": f"\n\n{tables.lookback_text(ctx)}" if acting else "",
                "setting": tables.SETTING_NAMES[ctx.record.setting],
            },
            order_ref=ctx.order.reference or None if ctx.order else None,
            # A dose to lower is the prescriber's edit (dose-check offers levels); nothing to delete.
            suggestions=()
            if variant == "resume-reduced"
            else tables.remove_draft(
                ctx,
                "remove-draft",
                "Remove the T-DM1 draft order" + ("" if discontinue else " (dose held)"),
            ),
            sources=tables.cite(found, *extra_sources),
        )
    ]


def _graded(grading: tables.Grading, times: float) -> tables.Band | None:
    """The most severe row of the setting's table(s) this multiple of ULN falls in."""
    chosen = grading.worst({"times_uln": times})
    return chosen[0] if chosen else None


def _earlier_discontinuation(
    ctx: RuleContext, gradings: dict[str, tables.Grading], shown: set[Result], hys_shown: bool
) -> list[tuple[tables.Band | None, str, str]]:
    """Permanent-discontinuation levels met on T-DM1 before the newest results: a recovered value
    since does not lift them, whether it was drawn before the lab window or inside it behind a newer
    result (ALT 22 x ULN two days ago, 18 x ULN today, is still a discontinuation). (band, headline,
    line); band None for the Hy's-law pattern. Results in `shown` (the newest, already graded as
    still acting on this dose) are not listed again, nor an earlier Hy's-law pattern when the newest
    results show one (`hys_shown`)."""
    first = derived.first_tdm1_date(ctx)
    if first is None:
        return []
    graded = {kind: _graded_on_treatment(ctx, kind, first) for kind in LIVER_TESTS}
    out: list[tuple[tables.Band | None, str, str]] = []
    for kind, items in graded.items():
        found = _newest_discontinue(gradings[kind], items)
        if found is not None and found[0] not in shown:
            result, times, band = found
            out.append(
                (
                    band,
                    f"{LIVER_TESTS[kind]} {tables.times_text(times)} × ULN on {tables.day(result.when)}",
                    f"{_describe(kind, result, times)}, on T-DM1: {band.instruction()} "
                    "(a permanent criterion; later recovery does not lift it)",
                )
            )
    limits = ctx.params.knowledge.value(HYS_LAW)
    # "Concomitant": drawn within one lab window of each other, as the pre-dose panel would be.
    for bilirubin, b_times in [] if hys_shown else graded.get("bilirubin", []):
        if b_times <= limits["bilirubin_above_uln"]:
            continue
        pair = next(
            (
                (kind, result, times)
                for kind in ("alt", "ast")
                for result, times in graded.get(kind, [])
                if times > limits["transaminase_above_uln"]
                and abs(result.when - bilirubin.when) <= ctx.params.lab_window
            ),
            None,
        )
        if pair:
            kind, result, times = pair
            if {result, bilirubin} <= shown:
                break  # the newest results themselves: the Hy's-law line above says it
            out.append(
                (
                    None,
                    f"Hy's-law pattern on {tables.day(result.when)}",
                    f"{_describe(kind, result, times)} with {_describe('bilirubin', bilirubin, b_times)}, "
                    "on T-DM1: permanently discontinue T-DM1 (a permanent criterion)",
                )
            )
            break
    return out


def _graded_on_treatment(ctx: RuleContext, kind: str, first: datetime) -> list[tuple[Result, float]]:
    """(result, × ULN) of the readable results with a ULN drawn from `first` to now, newest first."""
    items = []
    for result in ctx.record.results_of(kind):  # newest first
        if result.when > ctx.now:
            continue
        if result.when < first:
            break  # before T-DM1: a long history ends here, unread
        times = tables.ratio(result) if result.readable else None
        if times is not None:
            items.append((result, times))
    return items


def _newest_discontinue(
    grading: tables.Grading, items: list[tuple[Result, float]]
) -> tuple[Result, float, tables.Band] | None:
    """The newest item in a discontinue row. Only those rows (the top severity) are graded."""
    discontinue = tables.ACTION_RANK["discontinue"]
    below: set[float] = set()  # multiples of ULN already graded below it: lab values repeat
    for result, times in items:
        if times in below:
            continue
        chosen = grading.worst({"times_uln": times}, at_least=discontinue)
        if chosen and chosen[0].action == "discontinue":
            return result, times, chosen[0]
        below.add(times)
    return None


def _variant(severity: int) -> str:
    if severity >= tables.ACTION_RANK["discontinue"]:
        return "discontinue"
    return "hold" if severity >= tables.ACTION_RANK["hold"] else "resume-reduced"


def _graded_result(grading: tables.Grading, result: Result) -> tables.Band | None:
    times = tables.ratio(result)
    return None if times is None else _graded(grading, times)


def _grader(
    grading: tables.Grading, known: Result, band: tables.Band | None
) -> Callable[[Result], tables.Band | None]:
    """_graded_result, except for `known`, already graded as `band`: the current result is often
    the newest since the last dose as well."""
    return lambda result: band if result is known else _graded_result(grading, result)


def _headline(reasons: list[tuple[int, str, str]], variant: str) -> str:
    """The first reason that sets the action, and how many more: the summary must stay < 140."""
    top = list(dict.fromkeys(r[1] for r in reasons if _variant(r[0]) == variant))
    return top[0] + (f" (+{len(top) - 1} more)" if len(top) > 1 else "")


def _hys_law(
    ctx: RuleContext, latest: dict[str, tuple[Result, float]], held: set[str]
) -> tuple[str, str, set[str]]:
    """(reason line, headline, the kinds paired), empty when the pattern is absent or cannot be
    judged. A result older than the window (in `held`) pairs only with one drawn within one lab
    window of it, as the pre-dose panel would be ("concomitant"); two in the window always pair."""
    rule: Entry = ctx.params.knowledge.entry(HYS_LAW)
    limits = rule.value
    bilirubin = latest.get("bilirubin")
    if bilirubin is None:
        return "", "", set()
    transaminases = [
        (k, latest[k])
        for k in ("alt", "ast")
        if k in latest
        and (
            not held & {k, "bilirubin"} or abs(latest[k][0].when - bilirubin[0].when) <= ctx.params.lab_window
        )
    ]
    if not transaminases:
        return "", "", set()
    kind, (result, times) = max(transaminases, key=lambda item: item[1][1])
    if times > limits["transaminase_above_uln"] and bilirubin[1] > limits["bilirubin_above_uln"]:
        headline = (
            f"{LIVER_TESTS[kind]} {tables.times_text(times)} × ULN with bilirubin "
            f"{tables.times_text(bilirubin[1])} × ULN (Hy's-law pattern)"
        )
        older = [LIVER_TESTS[k] for k in (kind, "bilirubin") if k in held]
        return (
            f"{_describe(kind, result, times)} with {_describe('bilirubin', *bilirubin)}: "
            f"transaminases > {limits['transaminase_above_uln']:g} × ULN and total bilirubin > "
            f"{limits['bilirubin_above_uln']:g} × ULN: permanently discontinue T-DM1"
            + (
                f" (the newest {' and '.join(older)} on record, older than the "
                f"{ctx.params.lab_window.days}-day lab window)"
                if older
                else ""
            ),
            headline,
            {kind, "bilirubin"},
        )
    return "", "", set()


RULE = Rule(
    rule_id=RULE_ID,
    needs=frozenset({OBSERVATIONS}),
    evaluate=evaluate,
    on_patient_view=True,
    only_when_due=True,
)
