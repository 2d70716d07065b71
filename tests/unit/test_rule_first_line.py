"""first-line-use: ASCO 2022 Rec 1.1 and 5.0/5.1; KADCYLA USPI §1.1."""

from __future__ import annotations

from datetime import UTC, datetime

from tests import fhir_builders as fb
from tests.unit.rule_helpers import on_order, only, rule_ids

METS = datetime(2025, 3, 14, tzinfo=UTC)


def base(*extra: dict) -> list[dict]:
    return [
        fb.breast_cancer(onset=datetime(2023, 5, 2, tzinfo=UTC)),
        fb.liver_metastases(onset=METS),
        fb.observation("weight", 70.0, fb.ago(days=2)),
        *fb.fresh_labs(),
        *extra,
    ]


def test_fires_without_any_her2_therapy_for_metastatic_disease() -> None:
    finding = only(on_order(fb.medication_request(), base()), "first-line-use")
    assert finding.indicator == "warning"
    actions = finding.suggestions[0].actions
    assert actions[0].type == "delete" and actions[0].resource_id.startswith("MedicationRequest/")
    created = {
        a.resource["medicationCodeableConcept"]["coding"][0]["code"] for a in actions if a.type == "create"
    }
    assert created == {"1298944", "224905", "72962"}  # pertuzumab, trastuzumab, docetaxel


def test_silent_after_first_line_therapy_for_metastatic_disease() -> None:
    thp = fb.statement("trastuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC))
    assert "first-line-use" not in rule_ids(on_order(fb.medication_request(), base(thp)))


def test_silent_in_early_breast_cancer() -> None:
    history = [fb.breast_cancer(), *fb.fresh_labs(), fb.observation("weight", 70.0, fb.ago(days=2))]
    assert "first-line-use" not in rule_ids(on_order(fb.medication_request(), history))


def adjuvant_ending(end: datetime) -> dict:
    statement = fb.statement("trastuzumab", datetime(2023, 6, 1, tzinfo=UTC), end)
    return statement


def test_recurrence_within_12_months_of_adjuvant_trastuzumab_is_second_line() -> None:
    # ended exactly 12 months before the metastatic diagnosis: ASCO Rec 5.0 → second line, silent
    assert "first-line-use" not in rule_ids(
        on_order(fb.medication_request(), base(adjuvant_ending(datetime(2024, 3, 14, tzinfo=UTC))))
    )


def test_recurrence_more_than_12_months_after_adjuvant_is_first_line() -> None:
    # ended 12 months and 1 day before: ASCO Rec 5.1 → first-line recommendations apply
    finding = only(
        on_order(fb.medication_request(), base(adjuvant_ending(datetime(2024, 3, 13, tzinfo=UTC)))),
        "first-line-use",
    )
    assert finding.variant == "after-early"
    assert "2024-03-13" in finding.facts["prior_early"]


def test_palliative_intent_places_therapy_without_dates() -> None:
    statement = fb.statement("trastuzumab", datetime(2020, 1, 1, tzinfo=UTC))
    statement["extension"] = [
        {
            "url": "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-treatment-intent",
            "valueCodeableConcept": {
                "coding": [{"system": fb.SNOMED, "code": "363676003", "display": "Palliative"}]
            },
        }
    ]
    history = [fb.breast_cancer(), fb.liver_metastases(), statement, *fb.fresh_labs()]
    assert "first-line-use" not in rule_ids(on_order(fb.medication_request(), history))


def test_unplaceable_history_is_said_not_guessed() -> None:
    undated_mets = fb.liver_metastases()  # no onset date
    history = [
        fb.breast_cancer(),
        undated_mets,
        fb.statement("trastuzumab", datetime(2024, 1, 1, tzinfo=UTC)),
        *fb.fresh_labs(),
    ]
    findings = on_order(fb.medication_request(), history)
    assert "first-line-use" not in rule_ids(findings)
    notes = only(findings, "data-unavailable").facts["notes"]
    assert any("First-line check not applied" in n for n in notes)


def test_not_fired_for_other_drugs() -> None:
    assert on_order(fb.medication_request("pertuzumab"), base()) == []


def adjuvant_still_taken(status: str = "active", end: str | None = None) -> dict:
    """Trastuzumab started as adjuvant therapy (before the metastatic diagnosis), no end, still taken."""
    statement = fb.statement("trastuzumab", datetime(2024, 1, 1, tzinfo=UTC), status=status)
    if end is not None:
        statement["effectivePeriod"]["end"] = end
    return statement


def test_adjuvant_therapy_still_taken_at_the_recurrence_is_second_line() -> None:
    # Started 14 months before the recurrence and never ended: the recurrence came on trastuzumab
    # (ASCO Rec 5.0), not 14 months after it. The start is not its end.
    for status in ("active", "on-hold"):
        findings = on_order(fb.medication_request(), base(adjuvant_still_taken(status)))
        assert "first-line-use" not in rule_ids(findings), status
        assert only(findings, "tdxd-preferred").variant == "after-early", status


def test_a_far_future_end_means_no_end() -> None:
    # 9999-12-31 is how many systems write "no end": the same as no end at all.
    findings = on_order(fb.medication_request(), base(adjuvant_still_taken(end="9999-12-31")))
    assert "first-line-use" not in rule_ids(findings)
    assert "tdxd-preferred" in rule_ids(findings)


def test_a_completed_course_with_no_end_is_not_said_to_have_ended_at_its_start() -> None:
    findings = on_order(fb.medication_request(), base(adjuvant_still_taken(status="completed")))
    finding = only(findings, "first-line-use")
    assert finding.facts["prior_early"].endswith(", last recorded 2024-01-01")
    ended = base(adjuvant_ending(datetime(2024, 3, 13, tzinfo=UTC)))
    assert (
        only(on_order(fb.medication_request(), ended), "first-line-use")
        .facts["prior_early"]
        .endswith(", ended 2024-03-13")
    )


STAGED_IV = datetime(2026, 10, 26, 9, tzinfo=UTC)


def staged(value: dict, *extra: dict) -> list[dict]:
    """HER2-positive breast cancer with no metastasis on the problem list, clinically staged on
    2026-10-26 (21908-9, focus the breast cancer), normal labs and weight."""
    cancer = fb.breast_cancer(onset=datetime(2023, 5, 2, tzinfo=UTC))
    return [
        cancer,
        fb.staging("clinical-stage", value, STAGED_IV, focus=cancer),
        fb.observation("weight", 70.0, fb.ago(days=2)),
        *fb.fresh_labs(),
        *extra,
    ]


STAGE_IV = fb.stage_value(fb.AJCC, "4", "Stage IV")
STAGE_IIIA = fb.stage_value(fb.AJCC, "3A", "Stage IIIA")


def test_stage_iv_without_prior_her2_therapy_is_first_line() -> None:
    assert only(on_order(fb.medication_request(), staged(STAGE_IV)), "first-line-use").indicator == "warning"


def test_stage_iiia_is_not_metastatic_disease() -> None:
    assert "first-line-use" not in rule_ids(on_order(fb.medication_request(), staged(STAGE_IIIA)))


def test_stage_iv_leaves_the_adjuvant_history_adjuvant() -> None:
    # Adjuvant trastuzumab from 2023 ended more than 12 months before the stage IV date: still
    # adjuvant therapy (ASCO Rec 5.1, first-line recommendations), not a line for metastatic disease.
    adjuvant = adjuvant_ending(datetime(2024, 3, 13, tzinfo=UTC))
    finding = only(on_order(fb.medication_request(), staged(STAGE_IV, adjuvant)), "first-line-use")
    assert finding.variant == "after-early"
    # Ended within 12 months of it: second line (Rec 5.0), silent.
    recent = adjuvant_ending(datetime(2026, 1, 15, tzinfo=UTC))
    assert "first-line-use" not in rule_ids(on_order(fb.medication_request(), staged(STAGE_IV, recent)))


def test_another_cancers_stage_iv_is_not_metastatic_breast_cancer() -> None:
    # A Hodgkin lymphoma staged IV in 2003, in remission since 2004: no first line to warn about.
    lymphoma = fb.hodgkin_lymphoma(stage_iv=True)
    stage = fb.staging("clinical-stage", STAGE_IV, datetime(2003, 3, 1, tzinfo=UTC), focus=lymphoma)
    history = [
        fb.breast_cancer(onset=datetime(2025, 9, 15, tzinfo=UTC)),
        lymphoma,
        stage,
        fb.observation("weight", 70.0, fb.ago(days=2)),
        *fb.fresh_labs(),
    ]
    assert "first-line-use" not in rule_ids(on_order(fb.medication_request(), history))


def thp_orders(status: str, when: datetime = datetime(2025, 4, 1, tzinfo=UTC)) -> list[dict]:
    return [
        fb.medication_request(drug, status=status, dose=None, authored=when, rid=f"{drug}-{status}")
        for drug in ("trastuzumab", "pertuzumab", "docetaxel")
    ]


def test_thp_orders_never_given_are_no_prior_therapy() -> None:
    """FHIR `cancelled`: withdrawn before any administration; `stopped` says not whether one was
    given: in a record that documents HER2-directed administrations (here adjuvant trastuzumab), a
    stopped order with none under it is no prior therapy, and it is named."""
    for status in ("cancelled", "entered-in-error"):
        findings = on_order(fb.medication_request(), base(*thp_orders(status)))
        assert only(findings, "first-line-use").indicator == "warning", status
    adjuvant = fb.administration("trastuzumab", datetime(2023, 7, 1, tzinfo=UTC), dose=6)
    findings = on_order(fb.medication_request(), base(adjuvant, *thp_orders("stopped")))
    assert only(findings, "first-line-use").indicator == "warning"
    notes = only(findings, "data-unavailable")
    named = [n for n in notes.facts["notes"] if n.startswith("First-line check")]
    assert len(named) == 1 and "trastuzumab-stopped" in named[0] and "pertuzumab-stopped" in named[0]


def test_stopped_orders_in_a_record_of_orders_only_are_prior_therapy() -> None:
    """No HER2-directed administration on record at all (an EHR that exposes no MAR): a missing one
    says nothing, and THP stopped at progression, the usual way to a second line, is a line."""
    findings = on_order(fb.medication_request(), base(*thp_orders("stopped")))
    assert "first-line-use" not in rule_ids(findings)


def test_thp_orders_completed_active_or_stopped_after_a_dose_are_prior_therapy() -> None:
    for status in ("completed", "active"):
        assert "first-line-use" not in rule_ids(on_order(fb.medication_request(), base(*thp_orders(status))))
    given = [
        fb.administration(drug, datetime(2025, 4, 22, tzinfo=UTC), dose=dose, unit=unit)
        for drug, dose, unit in (("trastuzumab", 6, "mg/kg"), ("pertuzumab", 420, "mg"))
    ]
    findings = on_order(fb.medication_request(), base(*thp_orders("stopped"), *given))
    assert "first-line-use" not in rule_ids(findings)
    assert "data-unavailable" not in rule_ids(findings)  # nothing was left out


def test_a_dose_before_a_stopped_order_is_not_given_under_it() -> None:
    """Adjuvant trastuzumab given in 2023 does not make a 2025 order stopped before any dose a line."""
    adjuvant = fb.administration("trastuzumab", datetime(2023, 7, 1, tzinfo=UTC), dose=6)
    finding = only(
        on_order(fb.medication_request(), base(adjuvant, *thp_orders("stopped"))), "first-line-use"
    )
    assert finding.variant == "after-early"
