"""fixed-duration-stop: KADCYLA USPI §2.1 (MBC until progression; EBC 14 cycles)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests import fhir_builders as fb
from tests.unit.rule_helpers import on_order, on_patient_view, only, rule_ids


def metastatic(**kwargs: bool) -> list[dict]:
    return fb.metastatic_history(**kwargs)


@pytest.mark.parametrize(
    "shape",
    ["count", "countMax", "boundsDuration", "boundsRange", "boundsPeriod.end", "text", "note"],
)
def test_every_planned_end_is_seen(shape: str) -> None:
    draft = fb.medication_request()
    repeat = draft["dosageInstruction"][0]["timing"]["repeat"]
    if shape == "count":
        repeat["count"] = 6
    elif shape == "countMax":
        repeat["countMax"] = 8
    elif shape == "boundsDuration":
        repeat["boundsDuration"] = {"value": 18, "unit": "wk", "system": fb.UCUM, "code": "wk"}
    elif shape == "boundsRange":
        repeat["boundsRange"] = {"low": {"value": 4, "code": "mo"}, "high": {"value": 6, "code": "mo"}}
    elif shape == "boundsPeriod.end":
        repeat["boundsPeriod"] = {"start": "2026-11-25", "end": "2027-03-31"}
    elif shape == "text":
        draft["dosageInstruction"][0]["text"] = "3.6 mg/kg IV q21 days x 6 cycles"
    else:
        draft["note"] = [{"text": "Plan: T-DM1 for 8 cycles then reassess"}]
    finding = only(on_order(draft, metastatic()), "fixed-duration-stop")
    assert finding.indicator == "warning"
    (suggestion,) = finding.suggestions
    (action,) = suggestion.actions
    assert action.type == "update" and action.resource["id"] == draft["id"]
    # the suggested order carries no end any more, so accepting it cannot fire the card again
    assert "fixed-duration-stop" not in rule_ids(on_order(action.resource, metastatic()))


@pytest.mark.parametrize("written", ["2027-13-45", "not a date", "0001-01-01", 20270331])
def test_an_end_that_cannot_be_read_is_still_a_planned_end(written: object) -> None:
    draft = fb.medication_request()
    draft["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
        "start": "2026-11-25",
        "end": written,
    }
    finding = only(on_order(draft, metastatic()), "fixed-duration-stop")
    assert finding.facts["planned_end"] == f'an end date that cannot be read ("{written}")'
    (action,) = finding.suggestions[0].actions
    assert "end" not in action.resource["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]


@pytest.mark.parametrize("written", ["9999-12-31", "9999-12-31T23:59:59Z", "9000-01-01"])
def test_a_far_future_end_is_no_end(written: str) -> None:
    draft = fb.medication_request()
    draft["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
        "start": "2026-11-25",
        "end": written,
    }
    assert "fixed-duration-stop" not in rule_ids(on_order(draft, metastatic()))


@pytest.mark.parametrize(
    "shape",
    [
        "count 1",
        "countMax 1",
        "boundsPeriod of its infusion day",
        "boundsPeriod within the cycle",
        "boundsDuration 1 d",
        "end and no start, authored that day",
        "text x 1 dose",
    ],
)
def test_one_infusions_order_is_no_planned_end(shape: str) -> None:
    """A treatment plan releases T-DM1 cycle by cycle: each order is for one infusion, and its end is
    that infusion's, as course.tdm1_course reads such an order on record."""
    draft = fb.medication_request()
    instruction = draft["dosageInstruction"][0]
    repeat = instruction["timing"]["repeat"]
    if shape == "count 1":
        repeat["count"] = 1
    elif shape == "countMax 1":
        repeat["countMax"] = 1
    elif shape == "boundsPeriod of its infusion day":
        repeat["boundsPeriod"] = {"start": "2026-11-26T09:00:00Z", "end": "2026-11-26T09:00:00Z"}
    elif shape == "boundsPeriod within the cycle":
        repeat["boundsPeriod"] = {"start": "2026-11-26", "end": "2026-12-16"}
    elif shape == "boundsDuration 1 d":
        repeat["boundsDuration"] = {"value": 1, "unit": "day", "system": fb.UCUM, "code": "d"}
    elif shape == "end and no start, authored that day":
        repeat["boundsPeriod"] = {"end": fb.iso(fb.NOW)}
    else:
        instruction["text"] = "3.6 mg/kg IV x 1 dose (cycle 4)"
    assert "fixed-duration-stop" not in rule_ids(on_order(draft, metastatic()))


@pytest.mark.parametrize("shape", ["count 2", "boundsPeriod of one cycle", "count 1 and x 6 cycles"])
def test_an_end_past_one_infusion_is_a_planned_end(shape: str) -> None:
    draft = fb.medication_request()
    instruction = draft["dosageInstruction"][0]
    repeat = instruction["timing"]["repeat"]
    if shape == "count 2":
        repeat["count"] = 2
    elif shape == "boundsPeriod of one cycle":  # day 1 and day 22: two infusions
        repeat["boundsPeriod"] = {"start": "2026-11-26", "end": "2026-12-17"}
    else:
        repeat["count"] = 1
        instruction["text"] = "3.6 mg/kg IV q21 days x 6 cycles"
    finding = only(on_order(draft, metastatic()), "fixed-duration-stop")
    if shape == "count 1 and x 6 cycles":
        assert finding.facts["planned_end"] == '"x 6 cycles" in the text'


def test_open_ended_order_is_silent() -> None:
    assert "fixed-duration-stop" not in rule_ids(on_order(fb.medication_request(), metastatic()))


def test_adjuvant_14_cycle_course_in_early_breast_cancer_is_silent() -> None:
    history = [fb.breast_cancer(), *fb.fresh_labs(), fb.observation("weight", 70.0, fb.ago(days=2))]
    assert "fixed-duration-stop" not in rule_ids(on_order(fb.medication_request(count=14), history))


def stopped_course(*extra: dict, reason: str | None = None) -> list[dict]:
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    doses = [fb.administration("tdm1", start + timedelta(days=21 * i)) for i in range(6)]
    order = fb.medication_request(status="stopped", authored=start)
    order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
        "start": fb.iso(start),
        "end": fb.iso(start + timedelta(days=21 * 6)),
    }
    if reason:
        order["statusReason"] = {"coding": [{"system": fb.SNOMED, "code": reason}]}
    return [*metastatic(), order, *doses, *extra]


def test_patient_view_flags_a_course_stopped_without_reason() -> None:
    finding = only(on_patient_view(stopped_course()), "fixed-duration-stop")
    assert finding.variant == "course-stopped"
    assert finding.facts["cycles"] == 6


@pytest.mark.parametrize("reason", ["266721009", "407563006", "105480006"])
def test_documented_stop_reason_silences(reason: str) -> None:
    assert "fixed-duration-stop" not in rule_ids(on_patient_view(stopped_course(reason=reason)))


def test_progression_after_start_silences() -> None:
    progression = {
        "resourceType": "Observation",
        "id": "ds-1",
        "status": "final",
        "code": {"coding": [{"system": fb.LOINC, "code": "97509-4"}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2026-06-20",
        "valueCodeableConcept": {"coding": [{"system": fb.SNOMED, "code": "271299001"}]},
    }
    assert "fixed-duration-stop" not in rule_ids(on_patient_view(stopped_course(progression)))


def test_next_her2_therapy_silences() -> None:
    tdxd = fb.administration("tdxd", datetime(2026, 8, 10, tzinfo=UTC), dose=5.4)
    assert "fixed-duration-stop" not in rule_ids(on_patient_view(stopped_course(tdxd)))


def test_adjuvant_course_before_metastases_is_not_judged() -> None:
    start = datetime(2023, 9, 1, tzinfo=UTC)
    adjuvant = fb.medication_request(status="completed", authored=start, count=14)
    doses = [fb.administration("tdm1", start + timedelta(days=21 * i)) for i in range(14)]
    findings = on_patient_view([*metastatic(), adjuvant, *doses])
    assert "fixed-duration-stop" not in rule_ids(findings)


def standing_order_course(status: str, *extra: dict, end: object = None) -> list[dict]:
    """Six doses from 2026-03-02 (last 2026-06-15) under one standing order authored on the first
    day, later set to `status`: as EHRs write it, with no boundsPeriod.end unless `end` is given."""
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    doses = [fb.administration("tdm1", start + timedelta(days=21 * i)) for i in range(6)]
    order = fb.medication_request(status=status, authored=start)
    if end is not None:
        order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
            "start": fb.iso(start),
            "end": end,
        }
    return [*metastatic(), order, *doses, *extra]


def test_a_course_stopped_without_an_end_date_is_judged_as_stopped() -> None:
    # The order keeps its authored date; the doses after it were given under it, before the stop.
    finding = only(on_patient_view(standing_order_course("stopped")), "fixed-duration-stop")
    assert finding.variant == "course-stopped"
    assert finding.facts == {"cycles": 6, "stopped": "no stop date recorded, last dose 2026-06-15"}


def test_a_completed_standing_order_without_an_end_date_is_no_stop() -> None:
    # MedicationRequest `completed` says the doses it implied were given, not that the course
    # stopped: the course reads as ongoing, and the summary says the next dose is overdue.
    findings = on_patient_view(standing_order_course("completed"))
    assert "fixed-duration-stop" not in rule_ids(findings)
    assert only(findings, "treatment-summary").facts["status"] == "next dose overdue since 2026-07-06"


def test_a_statement_completed_without_an_end_date_is_a_stop() -> None:
    # MedicationStatement `completed` is "no longer being taken": the course stopped.
    statement = fb.statement("tdm1", datetime(2026, 3, 2, 9, tzinfo=UTC), status="completed")
    history = [h for h in standing_order_course("completed") if h["resourceType"] != "MedicationRequest"]
    finding = only(on_patient_view([*history, statement]), "fixed-duration-stop")
    assert finding.facts["stopped"] == "no stop date recorded, last dose 2026-06-15"


def per_infusion_course(*extra: dict, last_status: str = "completed") -> list[dict]:
    """Three cycles 21 days apart, the last 10 days ago (2026-11-15), each given under its own
    MedicationRequest authored the day before and marked `completed` once given (the last one
    `last_status`), no end date: how EHRs that write one order per infusion record a course."""
    history = [*metastatic()]
    for cycle in range(3):
        given = fb.ago(days=10 + 21 * (2 - cycle))
        status = last_status if cycle == 2 else "completed"
        history += [
            fb.medication_request(status=status, authored=given - timedelta(days=1)),
            fb.administration("tdm1", given),
        ]
    return [*history, *extra]


def test_per_infusion_completed_orders_are_an_ongoing_course() -> None:
    findings = on_patient_view(per_infusion_course())
    assert "fixed-duration-stop" not in rule_ids(findings)
    summary = only(findings, "treatment-summary")
    assert summary.facts["cycles"] == 3
    assert summary.facts["status"] == "next due 2026-12-06"
    # labs from yesterday are outside the window before the 2026-12-06 dose; the LVEF is recent
    assert summary.facts["due"] == "platelet count, ALT, AST and total bilirubin"


def test_trastuzumab_during_per_infusion_completed_orders_is_a_swap() -> None:
    draft = fb.medication_request("trastuzumab", dose=6)
    finding = only(on_order(draft, per_infusion_course()), "product-mixup")
    assert (finding.indicator, finding.variant) == ("critical", "swap-in-course")


def test_the_newest_per_infusion_order_stopped_is_a_stop() -> None:
    # `stopped` on the newest order: halted before all it implied was done, with nothing after it.
    finding = only(on_patient_view(per_infusion_course(last_status="stopped")), "fixed-duration-stop")
    assert finding.facts == {"cycles": 3, "stopped": "no stop date recorded, last dose 2026-11-15"}


@pytest.mark.parametrize("replacement", ["active", "completed"])
def test_a_stopped_standing_order_replaced_by_a_reduced_dose_goes_on(replacement: str) -> None:
    # The 3.6 mg/kg standing order is stopped when a 3.0 mg/kg one replaces it (a dose reduction);
    # doses go on under the new order up to 10 days ago.
    first = fb.medication_request(status="stopped", authored=fb.ago(days=10 + 21 * 5))
    reduced = fb.medication_request(status=replacement, dose=3.0, authored=fb.ago(days=10 + 21 * 2, hours=1))
    doses = [
        fb.administration("tdm1", fb.ago(days=10 + 21 * i), dose=3.6 if i > 2 else 3.0) for i in range(6)
    ]
    history = [*metastatic(), first, reduced, *doses]
    findings = on_patient_view(history)
    assert "fixed-duration-stop" not in rule_ids(findings)
    assert only(findings, "treatment-summary").facts["status"] == "next due 2026-12-06"
    swap = only(on_order(fb.medication_request("trastuzumab", dose=6), history), "product-mixup")
    assert swap.variant == "swap-in-course"


@pytest.mark.parametrize("reason", ["266721009", "407563006", "105480006"])
def test_a_stopped_order_without_an_end_and_with_a_stop_reason_is_silent(reason: str) -> None:
    # progression, toxicity, patient choice (termination_reason in terminology.yaml)
    history = standing_order_course("stopped")
    order = next(h for h in history if h["resourceType"] == "MedicationRequest")
    order["statusReason"] = {"coding": [{"system": fb.SNOMED, "code": reason}]}
    findings = on_patient_view(history)
    assert "fixed-duration-stop" not in rule_ids(findings)
    assert only(findings, "treatment-summary").facts["status"] == "stopped, no stop date recorded"


def early_breast_cancer() -> list[dict]:
    return [fb.breast_cancer(), *fb.fresh_labs(), fb.observation("weight", 70.0, fb.ago(days=2))]


@pytest.mark.parametrize("status", ["completed", "stopped"])
def test_early_breast_cancer_per_infusion_or_stopped_orders_are_never_judged(status: str) -> None:
    # Early breast cancer: the 14-cycle course is legitimate, whichever way its orders end.
    start = datetime(2025, 11, 3, 9, tzinfo=UTC)  # the 14th cycle on 2026-08-03
    history = early_breast_cancer()
    for cycle in range(14):
        given = start + timedelta(days=21 * cycle)
        order_status = status if cycle == 13 else "completed"
        history += [
            fb.medication_request(status=order_status, authored=given - timedelta(days=1)),
            fb.administration("tdm1", given),
        ]
    findings = on_patient_view(history)
    assert "fixed-duration-stop" not in rule_ids(findings)
    summary = only(findings, "treatment-summary")
    assert summary.facts["cycles"] == 14 and summary.facts["setting"] == "early (adjuvant)"


@pytest.mark.parametrize("end", ["not a date", "9999-12-31"])
def test_a_stopped_order_whose_end_cannot_be_read_is_stopped_at_its_last_dose(end: str) -> None:
    finding = only(on_patient_view(standing_order_course("stopped", end=end)), "fixed-duration-stop")
    assert finding.facts["stopped"] == "no stop date recorded, last dose 2026-06-15"


def test_a_course_stopped_without_an_end_date_after_progression_is_silent() -> None:
    progression = {
        "resourceType": "Observation",
        "id": "ds-2",
        "status": "final",
        "code": {"coding": [{"system": fb.LOINC, "code": "97509-4", "display": "Cancer disease status"}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2026-06-30",
        "valueCodeableConcept": {
            "coding": [{"system": fb.SNOMED, "code": "271299001", "display": "Patient's condition worsened"}]
        },
    }
    findings = on_patient_view(standing_order_course("stopped", progression))
    assert "fixed-duration-stop" not in rule_ids(findings)


def continuing_course(*extra: dict) -> list[dict]:
    """An active standing order from 120 days ago, no end, doses every 21 days up to a week ago."""
    order = fb.medication_request(status="active", authored=fb.ago(days=120))
    doses = [fb.administration("tdm1", fb.ago(days=7 + 21 * i)) for i in range(5)]
    return [*metastatic(), order, *doses, *extra]


def test_an_active_standing_order_with_doses_continuing_is_not_a_stop() -> None:
    findings = on_patient_view(continuing_course())
    assert "fixed-duration-stop" not in rule_ids(findings)
    assert only(findings, "treatment-summary").facts["status"] == "next due 2026-12-09"


def test_an_entered_in_error_stopped_order_is_still_ignored() -> None:
    # Entered in error after the standing order: it is no order at all, so it stops nothing.
    mistaken = fb.medication_request(status="entered-in-error", authored=fb.ago(days=3))
    findings = on_patient_view(continuing_course(mistaken))
    assert "fixed-duration-stop" not in rule_ids(findings)
    assert only(findings, "treatment-summary").facts["status"] == "next due 2026-12-09"


@pytest.mark.parametrize("name", ["mcode-procedure-intent", "mcode-treatment-intent"])
def test_palliative_intent_places_a_stopped_course_with_an_undated_metastasis(name: str) -> None:
    # The metastasis has no onset date: only the intent says the course was for advanced disease.
    palliative = {
        "url": f"http://hl7.org/fhir/us/mcode/StructureDefinition/{name}",
        "valueCodeableConcept": {
            "coding": [{"system": fb.SNOMED, "code": "363676003", "display": "Palliative - procedure intent"}]
        },
    }
    course = [r for r in stopped_course() if r["resourceType"] != "Condition"]
    for resource in course:
        if resource["resourceType"].startswith("Medication") and "Kadcyla" in str(resource):
            resource["extension"] = [palliative]
    history = [fb.breast_cancer(), fb.liver_metastases(), *course]
    finding = only(on_patient_view(history), "fixed-duration-stop")
    assert finding.facts["stopped"] == "2026-07-06"


def staged_history(value: dict) -> list[dict]:
    cancer = fb.breast_cancer()
    stage = fb.staging("pathological-stage", value, fb.ago(days=30), focus=cancer)
    return [cancer, stage, fb.observation("weight", 70.0, fb.ago(days=2)), *fb.fresh_labs()]


def test_a_14_cycle_order_in_stage_iv_disease_has_a_planned_end() -> None:
    stage_iv = fb.stage_value(fb.SNOMED, "1222837003", "American Joint Committee on Cancer stage IV")
    finding = only(on_order(fb.medication_request(count=14), staged_history(stage_iv)), "fixed-duration-stop")
    assert finding.facts["planned_end"]


def test_a_14_cycle_order_in_stage_iii_disease_is_the_adjuvant_course() -> None:
    stage_iii = fb.stage_value(fb.SNOMED, "1222801008", "American Joint Committee on Cancer stage III")
    findings = on_order(fb.medication_request(count=14), staged_history(stage_iii))
    assert "fixed-duration-stop" not in rule_ids(findings)


# The KATHERINE course beside another cancer's stage IV: the planned end of the adjuvant course must
# stay (advising to remove it would turn 14 cycles of adjuvant therapy into open-ended treatment).
STAGE_IV = fb.stage_value(fb.AJCC, "4", "Stage IV")


def lymphoma_staged_by_observation() -> list[dict]:
    lymphoma = fb.hodgkin_lymphoma()
    return [
        lymphoma,
        fb.staging("clinical-stage", STAGE_IV, datetime(2003, 3, 1, tzinfo=UTC), focus=lymphoma),
    ]


@pytest.mark.parametrize(
    "other_cancer",
    [[fb.hodgkin_lymphoma(stage_iv=True)], lymphoma_staged_by_observation()],
    ids=["condition-stage-summary", "focused-observation"],
)
def test_the_adjuvant_14_cycles_stay_beside_another_cancers_stage_iv(other_cancer: list[dict]) -> None:
    findings = on_order(fb.medication_request(count=14), fb.katherine_history(*other_cancer))
    assert "fixed-duration-stop" not in rule_ids(findings)


def test_the_breast_cancers_own_stage_iv_makes_a_14_cycle_order_a_planned_end() -> None:
    history = fb.katherine_history()
    stage = fb.staging("pathological-stage", STAGE_IV, fb.ago(days=30), focus=history[0])
    finding = only(on_order(fb.medication_request(count=14), [*history, stage]), "fixed-duration-stop")
    assert finding.facts["planned_end"]


def test_an_unlinked_stage_iv_leaves_the_adjuvant_course_alone() -> None:
    # It may be the lymphoma's or the breast cancer's: not used (the data-unavailable card says so).
    stage = fb.staging("clinical-stage", STAGE_IV, fb.ago(days=30))
    findings = on_order(fb.medication_request(count=14), fb.katherine_history(fb.hodgkin_lymphoma(), stage))
    assert "fixed-duration-stop" not in rule_ids(findings)


def test_per_infusion_orders_dated_to_their_infusion_day_are_an_ongoing_course() -> None:
    """Each order's boundsPeriod is its infusion day (start = end): the newest is always past its
    end, which is no end of the course."""
    history = [*metastatic()]
    for cycle in range(3):
        given = fb.ago(days=10 + 21 * (2 - cycle))
        order = fb.medication_request(status="completed", authored=given)
        order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
            "start": fb.iso(given),
            "end": fb.iso(given),
        }
        history += [order, fb.administration("tdm1", given)]
    findings = on_patient_view(history)
    assert "fixed-duration-stop" not in rule_ids(findings)
    assert only(findings, "treatment-summary").facts["status"] == "next due 2026-12-06"


def test_a_standing_order_past_its_end_still_stops_the_course() -> None:
    """Spanning the whole course, its end is the course's end."""
    finding = only(
        on_patient_view(standing_order_course("completed", end="2026-06-20")), "fixed-duration-stop"
    )
    assert finding.facts["stopped"] == "2026-06-20"


@pytest.mark.parametrize(
    "shape", ["count 1, 5 repeats allowed", "end before the start", "end before authored"]
)
def test_what_only_looks_like_one_infusion_is_still_a_planned_end(shape: str) -> None:
    """count 1 with dispenseRequest.numberOfRepeatsAllowed 5 is six infusions, and an end before
    the order's start (a mistyped year) is no infusion at all: both fired before one-infusion
    orders were set aside, and must still."""
    draft = fb.medication_request()
    repeat = draft["dosageInstruction"][0]["timing"]["repeat"]
    if shape == "count 1, 5 repeats allowed":
        repeat["count"] = 1
        draft["dispenseRequest"] = {"numberOfRepeatsAllowed": 5}
    elif shape == "end before the start":
        repeat["boundsPeriod"] = {"start": "2026-11-26", "end": "2026-05-26"}
    else:
        repeat["boundsPeriod"] = {"end": "2026-05-25"}
    finding = only(on_order(draft, metastatic()), "fixed-duration-stop")
    if shape == "count 1, 5 repeats allowed":
        assert "dispensed up to 6 times" in finding.facts["planned_end"]
