"""tdxd-preferred: second-line T-DM1 where the guideline prefers trastuzumab deruxtecan.

Sources: ASCO 2022 guideline update (Giordano et al., JCO 2022) Rec 2.1: after progression on
first-line HER2-targeted therapy, in a patient who has not received T-DXd, recommend T-DXd second
line; DESTINY-Breast03 (Cortés et al., NEJM 2022;386:1143-54): 12-month PFS 75.8% vs 34.1% with
T-DM1, HR 0.28. Rec 5.0: recurrence ≤ 12 months after trastuzumab-based (neo)adjuvant therapy
follows the second-line recommendations. Rec 3.0: third line or later, no regimen preferred.
ENHERTU USPI Boxed Warning: interstitial lung disease/pneumonitis. Knowledge:
guideline.tdxd-second-line, guideline.third-line, guideline.tdxd-ild, policy.line-of-therapy.

When  a T-DM1 order is selected or signed for metastatic disease, T-DM1 not yet given for it,
 and  exactly one prior line of HER2-directed therapy for advanced disease is on record, counting
      a recurrence ≤ 12 months after (neo)adjuvant HER2-directed therapy (adjuvant T-DM1 included)
      as that line,
 and  no T-DXd received anywhere in the record (an order stopped with no administration under it
      is none: FHIR `stopped` says not whether a dose was given; a note names it), and no ILD or
      pneumonitis on the problem list (any status),
Then  info: T-DXd is preferred second line; suggest it (5.4 mg/kg) instead of T-DM1.

Decisions (why it stays silent):
- First line (no prior line): first-line-use already warns; a second card would contradict it.
- Third line or later (≥ 2 prior lines): ASCO Rec 3.0 prefers no regimen, T-DM1 is a listed option.
  Lines are derived (mCODE has no line element): HER2-directed drugs for advanced disease, T-DM1 and
  T-DXd aside, grouped into one line while they start within `policy.line-of-therapy` days of the
  line's start; a new drug later than that, or any drug started after a recorded progression,
  opens a new line. Chemotherapy alone is not counted (Rec 2.1 is about HER2-targeted therapy).
- ILD/pneumonitis on record, active or resolved: T-DXd's boxed warning is ILD, so T-DXd is not the
  obvious preference and the clinician has the documented reason already.
- T-DM1 already given for advanced disease: the choice was made when the line began; repeating an
  advisory every cycle adds nothing, and no trial supports switching mid-line without progression.
- Therapy that cannot be placed before or after the metastatic diagnosis, T-DM1 included (adjuvant
  T-DM1 counts toward the early recurrence): the line cannot be told; a note says so rather than guess.
"""

from __future__ import annotations

from datetime import timedelta

from service.clinical.findings import Action, Finding, RuleContext, Suggestion
from service.clinical.record import CONDITIONS, MEDICATION_HISTORY, TherapyEvent
from service.clinical.rules import course, derived, dosing
from service.clinical.rules.base import Rule
from service.clinical.rules.product_mixup import ongoing_tdm1
from service.clinical.suggestions import new_id
from service.clinical.terminology import TDM1, TDXD

RULE_ID = "tdxd-preferred"
SOURCES = ("guideline.tdxd-second-line", "guideline.third-line", "policy.line-of-therapy")


def count_lines(events: list[TherapyEvent], progression: tuple, same_regimen: timedelta) -> int:
    """Lines of HER2-directed therapy for advanced disease, from dated events (see docstring)."""
    dated = sorted((e for e in events if e.start), key=lambda e: e.start)  # type: ignore[arg-type, return-value]
    lines, line_start, families = 0, None, set()
    for event in dated:
        assert event.start is not None
        progressed = line_start is not None and any(line_start < p <= event.start for p in progression)
        new_drug = (
            line_start is not None
            and event.family not in families
            and event.start - line_start > same_regimen
        )
        if line_start is None or progressed or new_drug:
            lines, line_start, families = lines + 1, event.start, set()
        families.add(event.family)
    # Undated therapy placed in advanced disease by its intent is at least one line.
    return max(lines, 1 if any(e.start is None for e in events) else 0)


def evaluate(ctx: RuleContext) -> list[Finding]:
    order = ctx.order
    record, terminology, knowledge = ctx.record, ctx.params.terminology, ctx.params.knowledge
    if order is None or order.family != TDM1 or record.setting != "metastatic":
        return []
    placed = derived.placed_her2_events(ctx)  # an order stopped with no administration left out
    if any(e.family == TDXD for e, _where in placed):
        return []
    if derived.has_condition(ctx, "interstitial_lung_disease", active_only=False):
        return []
    if any(e.family == TDM1 and e.is_dose_given and where == "advanced" for e, where in placed):
        return []
    others = [(e, where) for e, where in placed if e.family not in (TDM1, TDXD)]
    # T-DM1 too: adjuvant T-DM1 counts toward the early-recurrence test below, so an unplaced one
    # may be the (neo)adjuvant therapy that changes the count (first-line-use says the same).
    if any(where == "unknown" for _e, where in placed):
        ctx.notes.append(
            "Second-line (T-DXd preferred) check not applied: HER2-directed therapy on record has no date "
            "or intent that places it before or after the metastatic diagnosis."
        )
        return []
    same_regimen = timedelta(days=knowledge.value("policy.line-of-therapy")["same_regimen_days"])
    advanced = [e for e, where in others if where == "advanced"]
    lines = count_lines(advanced, record.progression, same_regimen)
    # Adjuvant T-DM1 (KATHERINE) is trastuzumab-based (neo)adjuvant therapy too (ASCO Rec 5.0), as
    # first-line-use counts it: a recurrence months after it is second line, where T-DXd is preferred.
    # ASCO Rec 5.0: (neo)adjuvant therapy still taken, or ended <= 12 months, at the recurrence;
    # never without a recurrence date. The card names that therapy, not a course long ended.
    window = knowledge.value("guideline.adjuvant-recurrence-window")["months"]
    since = record.metastatic_since
    early = [e for e, where in placed if where == "early"]
    recent = course.recurrence_window_therapy(early, since, window) if since is not None else []
    early_recurrence = bool(recent)
    prior = lines + (1 if early_recurrence else 0)
    if prior != 1:
        return []
    facts = {
        "prior": (
            "(neo)adjuvant HER2-directed therapy ("
            + ", ".join(sorted({terminology.display(e.family) for e in recent}))
            + f") ending ≤ {window} months before recurrence"
            if early_recurrence
            else ", ".join(sorted({terminology.display(e.family) for e in advanced}))
        ),
        "evidence": knowledge.value("guideline.tdxd-second-line")["evidence"],
        "tdxd_dose": f"{knowledge.value('dosing.tdxd-breast-start')['mg_per_kg']:.1f}",
    }
    sources = (*SOURCES, "guideline.adjuvant-recurrence-window") if early_recurrence else SOURCES
    note = derived.unadministered_note(ctx, "Second-line (T-DXd preferred) check")
    if note:
        ctx.notes.append(note)
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="info",
            variant="after-early" if early_recurrence else "default",
            facts=facts,
            order_ref=order.reference or None,
            suggestions=_suggestions(ctx),
            sources=(*sources, "guideline.tdxd-ild", "dosing.tdxd-breast-start"),
        )
    ]


def _suggestions(ctx: RuleContext) -> tuple[Suggestion, ...]:
    order = ctx.order
    if order is None or not order.reference or ongoing_tdm1(ctx) is not None:
        return ()  # with T-DM1 under way, a T-DXd draft would raise product-mixup's swap card
    dose = float(ctx.params.knowledge.value("dosing.tdxd-breast-start")["mg_per_kg"])
    resource = dosing.new_order_like(
        order.resource, TDXD, f"Patient/{ctx.record.patient_id}", new_id(), dose, "mg/kg"
    )
    if resource is None:
        return ()
    return (
        Suggestion(
            key="switch-to-tdxd",
            actions=(
                Action(
                    type="delete", description="Remove the T-DM1 draft order", resource_id=order.reference
                ),
                Action(
                    type="create",
                    description=f"Draft T-DXd (Enhertu) {dose:.1f} mg/kg every 3 weeks",
                    resource=resource,
                ),
            ),
        ),
    )


RULE = Rule(rule_id=RULE_ID, needs=frozenset({CONDITIONS}) | MEDICATION_HISTORY, evaluate=evaluate)
