"""fixed-duration-stop: T-DM1 in metastatic disease treated like fixed-cycle chemotherapy.

Source: KADCYLA USPI §2.1: in metastatic breast cancer, treat until disease progression or
unmanageable toxicity; only the early-breast-cancer (adjuvant, KATHERINE) course is a fixed
14 cycles.

On order-select and order-sign:
When  a T-DM1 order for a patient with metastatic disease carries a planned end
      (timing.repeat.count/countMax, boundsDuration, boundsRange, boundsPeriod.end, "× N cycles"),
      other than one that allows a single infusion (a count of 1, an end less than one cycle after
      the order's start: the per-cycle order of a treatment plan),
Then  warn and suggest the same order without the end.
On patient-view:
When  the metastatic T-DM1 course was stopped (course.tdm1_course: the newest order stopped or past
      its end; a request `completed` without an end is a per-infusion order given, no stop), with
      no progression, toxicity or documented stop reason since the course began, and no other
      HER2-directed therapy since,
Then  warn that T-DM1 may have been stopped after a fixed number of cycles.
Never in early breast cancer.
"""

from __future__ import annotations

from service.clinical.findings import Action, Finding, RuleContext, Suggestion
from service.clinical.orders import without_planned_end
from service.clinical.record import CONDITIONS, MEDICATION_HISTORY, OBSERVATIONS
from service.clinical.rules import course, derived
from service.clinical.rules.base import Rule
from service.clinical.terminology import TDM1

RULE_ID = "fixed-duration-stop"
SOURCES = ("dosing.duration-metastatic", "dosing.duration-early")
TOXICITY_CONDITIONS = ("interstitial_lung_disease", "heart_failure", "nodular_regenerative_hyperplasia")


def evaluate(ctx: RuleContext) -> list[Finding]:
    if ctx.record.setting != "metastatic":
        return []
    return _order_has_end(ctx) if ctx.order is not None else _course_stopped(ctx)


def _order_has_end(ctx: RuleContext) -> list[Finding]:
    order = ctx.order
    assert order is not None
    # One infusion's order (count 1, or an end within one cycle of its start) is how a treatment
    # plan releases each cycle; its end is that infusion's, not the course's (as course.tdm1_course
    # reads such an order on record).
    ends = [end for end in order.planned_ends if not end.one_infusion(ctx.cycle)]
    if not ends:
        return []
    suggestions: tuple[Suggestion, ...] = ()
    if order.reference:
        suggestions = (
            Suggestion(
                key="remove-end",
                actions=(
                    Action(
                        type="update",
                        description="Same T-DM1 order, continuing until progression or unacceptable toxicity",
                        resource=without_planned_end(order.resource),
                    ),
                ),
                recommended=True,
            ),
        )
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="warning",
            facts={"planned_end": "; ".join(end.description for end in ends)},
            order_ref=order.reference or None,
            suggestions=suggestions,
            sources=SOURCES,
        )
    ]


def _course_stopped(ctx: RuleContext) -> list[Finding]:
    record, terminology = ctx.record, ctx.params.terminology
    current = derived.current_course(ctx)
    if current is None or current.active or current.start is None or current.stopped_at is None:
        return []
    course_events = [e for e in current.events if e.start and e.start >= current.start]
    if any(course.placement(e, record, terminology) != "advanced" for e in course_events):
        return []  # an adjuvant course, or one that cannot be placed: not this rule's business
    if any(when >= current.start for when in record.progression):
        return []
    if any(e.status_reasons & terminology.qualifiers["termination_reason"] for e in current.events):
        return []
    for condition in record.conditions:
        if (
            condition.onset
            and condition.onset >= current.start
            and any(
                terminology.in_condition_set(name, condition.codes, condition.text)
                for name in TOXICITY_CONDITIONS
            )
        ):
            return []
    if any(e.family != TDM1 and e.start and e.start >= current.stopped_at for e in derived.her2_therapy(ctx)):
        return []
    return [
        Finding(
            rule_id=RULE_ID,
            indicator="warning",
            variant="course-stopped",
            facts={"cycles": len(current.doses), "stopped": stopped_text(current)},
            sources=SOURCES,
        )
    ]


def stopped_text(current: course.Course) -> str:
    """When the course stopped, as far as the record says: an order stopped without an end gives
    only the earliest the stop can have been (its last dose), which is not a recorded stop date."""
    assert current.stopped_at is not None
    when = current.stopped_at.date().isoformat()
    return when if current.stop_dated else f"no stop date recorded, last dose {when}"


RULE = Rule(
    rule_id=RULE_ID,
    needs=frozenset({CONDITIONS}) | MEDICATION_HISTORY,
    evaluate=evaluate,
    on_patient_view=True,
    # Progression lives in Observations; without them a stopped course cannot be judged.
    patient_view_needs=frozenset({CONDITIONS, OBSERVATIONS}) | MEDICATION_HISTORY,
)
