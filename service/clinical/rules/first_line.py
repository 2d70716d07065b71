"""first-line-use: T-DM1 ordered first line in metastatic HER2-positive breast cancer.

Source: ASCO 2022 guideline update (Giordano et al., JCO 2022) Rec 1.1: pertuzumab + trastuzumab +
a taxane is first line; Rec 5.0/5.1: recurrence ≤ 12 months after trastuzumab-based (neo)adjuvant
therapy follows the second-line recommendations. KADCYLA USPI §1.1: T-DM1 is for patients who
previously received trastuzumab and a taxane.

When  a T-DM1 order is signed or selected for a patient with metastatic disease,
 and  no HER2-directed therapy was given for advanced disease (an order stopped with no
      administration under it is none, and a note names it; a completed or active order, a
      statement or an administration is),
 and  no HER2-directed (neo)adjuvant therapy ended ≤ 12 months before the metastatic diagnosis,
Then  warn, suggest pertuzumab + trastuzumab + taxane instead, and cite the guideline.
If the therapy on record cannot be placed before or after the metastatic diagnosis, say so
(data-unavailable note) rather than guess.
"""

from __future__ import annotations

from service.clinical.findings import Action, Finding, RuleContext, Suggestion
from service.clinical.record import CONDITIONS, MEDICATION_HISTORY
from service.clinical.rules import course, derived
from service.clinical.rules.base import Rule
from service.clinical.suggestions import new_medication_request

RULE_ID = "first-line-use"
FIRST_LINE_RXNORM = (
    ("1298944", "pertuzumab"),
    ("224905", "trastuzumab"),
    ("72962", "docetaxel"),
)


def evaluate(ctx: RuleContext) -> list[Finding]:
    record, terminology = ctx.record, ctx.params.terminology
    if record.setting != "metastatic" or ctx.order is None:
        return []
    placed = derived.placed_her2_events(ctx)
    if any(where == "advanced" for _e, where in placed):
        return []
    if any(where == "unknown" for _e, where in placed):
        ctx.notes.append(
            "First-line check not applied: HER2-directed therapy on record has no date or intent that "
            "places it before or after the metastatic diagnosis."
        )
        return []
    window = ctx.params.knowledge.value("guideline.adjuvant-recurrence-window")["months"]
    early = [e for e, _where in placed]
    facts: dict[str, object] = {"window_months": window, "prior_early": "none recorded"}
    note = derived.unadministered_note(ctx, "First-line check")
    if early:
        since = record.metastatic_since
        recurred_early = course.early_recurrence(early, since, window)
        if recurred_early is None:
            ctx.notes.append(
                "First-line check not applied: the date of metastatic recurrence or of the end of "
                "(neo)adjuvant HER2-directed therapy is not recorded."
            )
            return []
        if recurred_early:
            return []  # ASCO Rec 5.0: recurrence on or soon after adjuvant trastuzumab is second line
        assert since is not None  # early_recurrence answers None without it
        last_end = max(e.last_date for e in early if e.last_date)
        families = sorted({terminology.display(e.family) for e in early})
        # "ended" only when an end is on record; a start-only record says when it was last seen.
        ended = any(e.end is not None and e.end == last_end for e in early)
        verb = "ended" if ended else "last recorded"
        facts["prior_early"] = f"{', '.join(families)}, {verb} {last_end.date().isoformat()}"
        facts["recurrence"] = since.date().isoformat()
    if note:
        ctx.notes.append(note)
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="warning",
            facts=facts,
            variant="after-early" if early else "default",
            order_ref=ctx.order.reference or None,
            suggestions=_suggestions(ctx),
            sources=("guideline.first-line", "guideline.adjuvant-recurrence-window", "label.indication-mbc"),
        )
    ]


def _suggestions(ctx: RuleContext) -> tuple[Suggestion, ...]:
    order = ctx.order
    if order is None:
        return ()
    patient = f"Patient/{ctx.record.patient_id}"
    actions = [
        Action(
            type="create",
            description=f"Draft a {name} order; dose per protocol",
            resource=new_medication_request(
                patient,
                code,
                name,
                note="First-line HER2-directed regimen (THP): complete the dose per protocol.",
            ),
        )
        for code, name in FIRST_LINE_RXNORM
    ]
    if order.reference:
        actions.insert(
            0, Action(type="delete", description="Remove the T-DM1 draft order", resource_id=order.reference)
        )
    return (Suggestion(key="switch-to-thp", actions=tuple(actions), recommended=True),)


RULE = Rule(rule_id=RULE_ID, needs=frozenset({CONDITIONS}) | MEDICATION_HISTORY, evaluate=evaluate)
