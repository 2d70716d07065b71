"""pulmonary-toxicity: interstitial lung disease or pneumonitis recorded, T-DM1 about to be given.

Sources: KADCYLA USPI §2.2 and §5.4: permanently discontinue T-DM1 in patients diagnosed with
interstitial lung disease (ILD) or pneumonitis (any.pulmonary, confirmed). The current label also
discontinues for radiation pneumonitis Grade ≥ 3, or Grade 2 not responding to treatment
(secondary source); a problem-list entry carries no grade, so any pneumonitis fires and a
low-grade radiation pneumonitis is an override reason.

When  a T-DM1 dose is ordered (or, on patient-view, the next dose is due within the lab window),
 and  a Condition in the interstitial_lung_disease set (SNOMED 233703007, 205237003; ICD-10-CM J84,
      J70; or the words "interstitial lung disease" / "pneumonitis") is on the problem list,
      active or resolved (the label's action is permanent), not entered-in-error or refuted,
Then  critical: permanently discontinue T-DM1; suggest deleting the draft order.
The code list is unverified (codes.md: "3P / ?"); the card cites the label, the codes are data.
"""

from __future__ import annotations

from service.clinical.findings import Finding, RuleContext
from service.clinical.record import CONDITIONS
from service.clinical.rules import derived
from service.clinical.rules import label_tables as tables
from service.clinical.rules.base import Rule

RULE_ID = "pulmonary-toxicity"
CONDITION_SET = "interstitial_lung_disease"


def _name(text: str) -> str:
    """Condition text is the concept's text plus each coding display, often the same words twice."""
    words = text.split()
    for size in range(1, len(words) + 1):
        if len(words) % size == 0 and words == words[:size] * (len(words) // size):
            return " ".join(words[:size])
    return text


def evaluate(ctx: RuleContext) -> list[Finding]:
    matches = derived.conditions_in(ctx, CONDITION_SET)
    if not matches:
        return []
    described = [
        f"{_name(c.text) or ', '.join(code for _s, code in c.codes)} ({'active' if c.active else 'resolved or inactive'}"
        + (f", since {tables.day(c.onset)})" if c.onset else ")")
        for c in matches
    ]
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="critical",
            facts={"condition": described[0], "conditions": described},
            order_ref=ctx.order.reference or None if ctx.order else None,
            suggestions=tables.remove_draft(ctx, "remove-draft", "Remove the T-DM1 draft order"),
            sources=("any.pulmonary",),
        )
    ]


RULE = Rule(
    rule_id=RULE_ID,
    needs=frozenset({CONDITIONS}),
    evaluate=evaluate,
    on_patient_view=True,
    only_when_due=True,
)
