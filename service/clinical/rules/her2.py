"""her2-status: T-DM1 is only for HER2-positive disease.

Source: KADCYLA USPI §1 and §2.1 (patient selection): select patients for KADCYLA based on HER2
protein overexpression or gene amplification, with FDA-approved tests specific for breast cancer.
Knowledge: label.her2-selection.

When  a T-DM1 order is selected or signed
 and  the latest tissue HER2 result (IHC or ISH: LOINC 48676-1, 85319-2, 85318-4, 72383-3, 18474-7,
      31150-6, 49683-6, 74860-8) is negative, or, with no readable tissue result, the problem list
      carries HER2-negative breast cancer (SNOMED 431396003),
Then  critical: HER2-negative documented.
When  there is neither a positive tissue result nor a HER2-positive breast cancer condition
      (SNOMED 427685000),
Then  warning: no HER2-positive evidence on record.

Decisions:
- Serum HER2 (extracellular domain: LOINC 32996-1, 42914-2, 51981-9) is not a tissue test and does
  not establish tumour status: it is not in the HER2 value set, so it counts for nothing either way.
- The latest dated tissue result decides (a re-biopsy can turn negative); an equivocal result
  (IHC 2+ without ISH) is neither positive nor negative, so it leaves "no evidence".
- A result given as text is read as terminology.yaml `her2_text` says (record.her2_text_reading):
  an ISH result settles IHC 2+ ("IHC 2+ (equivocal); ISH positive" is positive, "IHC 2+; ISH not
  amplified" negative); IHC 0 and 1+, and HER2-low, are negative (HER2-low is no T-DM1
  indication); a negated phrase ("not positive") is read as nothing, so "no evidence", never positive.
- Only on order hooks: the status is checked when T-DM1 is prescribed.
"""

from __future__ import annotations

from service.clinical.findings import Finding, RuleContext
from service.clinical.record import CONDITIONS, OBSERVATIONS
from service.clinical.rules.base import Rule
from service.clinical.terminology import TDM1

RULE_ID = "her2-status"
SOURCES = ("label.her2-selection",)


def evaluate(ctx: RuleContext) -> list[Finding]:
    order = ctx.order
    if order is None or order.family != TDM1:
        return []
    record = ctx.record
    if record.her2 == "positive":
        return []
    if record.her2 == "negative":
        return [
            Finding(
                rule_id=RULE_ID,
                indicator="critical",
                variant="negative",
                facts={"evidence": record.her2_evidence or "the record"},
                order_ref=order.reference or None,
                sources=SOURCES,
            )
        ]
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="warning",
            variant="no-evidence",
            facts={},
            order_ref=order.reference or None,
            sources=SOURCES,
        )
    ]


RULE = Rule(rule_id=RULE_ID, needs=frozenset({CONDITIONS, OBSERVATIONS}), evaluate=evaluate)
