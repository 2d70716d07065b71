"""tdxd-preferred: second-line T-DM1 without prior T-DXd (ASCO 2022 Rec 2.1, DESTINY-Breast03)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from service.clinical.rules.tdxd_preferred import RULE
from tests import fhir_builders as fb
from tests.unit.label_a_helpers import ORDER_ID, all_rules, context, draft, evaluate, ids, metastatic

D = datetime


def one(findings):
    assert len(findings) == 1, findings
    return findings[0]


def progression(when: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": fb.new_id(),
        "status": "final",
        "code": {
            "coding": [{"system": fb.LOINC, "code": "97509-4", "display": "Cancer disease progression"}]
        },
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": fb.iso(when),
        "valueCodeableConcept": {"coding": [{"system": fb.SNOMED, "code": "271299001"}]},
    }


def test_second_line_without_tdxd_is_info_with_the_trial_numbers() -> None:
    finding = one(evaluate(RULE, draft(), metastatic()))
    assert (finding.indicator, finding.variant) == ("info", "default")
    assert "75.8%" in finding.facts["evidence"] and "HR 0.28" in finding.facts["evidence"]
    assert "guideline.tdxd-second-line" in finding.sources
    delete, create = one(list(finding.suggestions)).actions
    assert (delete.type, delete.resource_id) == ("delete", f"MedicationRequest/{ORDER_ID}")
    assert create.resource["medicationCodeableConcept"]["coding"][0]["code"] == "2267576"
    assert create.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 5.4


def test_quiet_second_line_case_gives_only_tdxd_preferred() -> None:
    """The issue's quiet case: appropriate second-line T-DM1, fresh normal labs → only this card."""
    assert ids(all_rules([fb.medication_request()], fb.metastatic_history())) == ["tdxd-preferred"]


def test_first_line_is_left_to_first_line_use() -> None:
    assert evaluate(RULE, draft(), fb.metastatic_history(prior_her2=False)) == []
    assert "tdxd-preferred" not in ids(all_rules([draft()], fb.metastatic_history(prior_her2=False)))


def test_third_line_after_a_new_her2_drug_is_silent() -> None:
    lapatinib = fb.statement("lapatinib", D(2026, 8, 15, tzinfo=UTC), D(2026, 11, 1, tzinfo=UTC))
    assert evaluate(RULE, draft(), metastatic(lapatinib)) == []


def test_trastuzumab_restarted_after_progression_is_a_new_line() -> None:
    history = metastatic(
        progression(D(2026, 8, 1, tzinfo=UTC)),
        fb.statement("trastuzumab", D(2026, 8, 20, tzinfo=UTC), D(2026, 11, 1, tzinfo=UTC)),
    )
    assert evaluate(RULE, draft(), history) == []


def test_same_regimen_window_boundary() -> None:
    """A drug joining the line within 28 days of its start is the same line; later, a new line."""
    start = D(2025, 4, 1, tzinfo=UTC)

    def history(days: int) -> list[dict[str, Any]]:
        return [
            fb.breast_cancer(onset=D(2023, 5, 2, tzinfo=UTC)),
            fb.liver_metastases(onset=D(2025, 3, 14, tzinfo=UTC)),
            fb.statement("trastuzumab", start, D(2026, 8, 1, tzinfo=UTC)),
            fb.statement("pertuzumab", start + timedelta(days=days), D(2026, 8, 1, tzinfo=UTC)),
        ]

    assert one(evaluate(RULE, draft(), history(28)))
    assert evaluate(RULE, draft(), history(29)) == []


def test_chemotherapy_alone_does_not_open_a_line() -> None:
    paclitaxel = fb.statement("paclitaxel", D(2026, 9, 1, tzinfo=UTC), D(2026, 11, 1, tzinfo=UTC))
    assert one(evaluate(RULE, draft(), metastatic(paclitaxel)))


def test_prior_tdxd_anywhere_is_silent() -> None:
    tdxd = fb.administration("tdxd", D(2026, 2, 1, tzinfo=UTC), dose=5.4)
    assert evaluate(RULE, draft(), metastatic(tdxd)) == []


def test_a_tdxd_order_never_given_is_no_tdxd_received() -> None:
    """`cancelled` (withdrawn before any administration) and entered-in-error orders are no T-DXd;
    a `stopped` order with no administration, in a record that documents HER2-directed doses (the
    first line's trastuzumab), says not whether a dose was given: the card fires and a note names
    the order, so the clinician can check."""
    when = D(2026, 9, 1, tzinfo=UTC)
    for status in ("cancelled", "entered-in-error"):
        order = fb.medication_request("tdxd", status=status, dose=5.4, authored=when, rid=f"tdxd-{status}")
        assert one(evaluate(RULE, draft(), metastatic(order))).rule_id == "tdxd-preferred", status
    first_line_dose = fb.administration("trastuzumab", D(2025, 4, 22, tzinfo=UTC), dose=6)
    stopped = fb.medication_request("tdxd", status="stopped", dose=5.4, authored=when, rid="tdxd-stopped")
    assert one(evaluate(RULE, draft(), metastatic(first_line_dose, stopped))).rule_id == "tdxd-preferred"
    findings = all_rules([draft()], metastatic(first_line_dose, stopped, *fb.fresh_labs()))
    assert "tdxd-preferred" in ids(findings)
    notes = next(f for f in findings if f.rule_id == "data-unavailable").facts["notes"]
    assert any(n.startswith("Second-line (T-DXd preferred) check") and "tdxd-stopped" in n for n in notes)
    # A record of orders only (no HER2-directed administration at all): the stopped order is T-DXd.
    assert evaluate(RULE, draft(), metastatic(stopped)) == []


def test_a_tdxd_order_completed_active_or_stopped_after_a_dose_is_tdxd_received() -> None:
    when = D(2026, 9, 1, tzinfo=UTC)
    for status in ("completed", "active"):
        order = fb.medication_request("tdxd", status=status, dose=5.4, authored=when)
        assert evaluate(RULE, draft(), metastatic(order)) == [], status
    stopped = fb.medication_request("tdxd", status="stopped", dose=5.4, authored=when)
    given = fb.administration("tdxd", when + timedelta(hours=3), dose=5.4)
    assert evaluate(RULE, draft(), metastatic(stopped, given)) == []
    statement = fb.statement("tdxd", when, when + timedelta(days=42))
    assert evaluate(RULE, draft(), metastatic(stopped, statement)) == []


def test_ild_on_the_problem_list_even_resolved_is_silent() -> None:
    ild = fb.condition(
        "233703007", "Interstitial lung disease", onset=D(2025, 6, 1, tzinfo=UTC), clinical_status="resolved"
    )
    assert evaluate(RULE, draft(), metastatic(ild)) == []


def test_pneumonitis_by_icd10_is_silent() -> None:
    pneumonitis = fb.condition("J70.4", "Drug-induced interstitial lung disorder", system=fb.ICD10)
    assert evaluate(RULE, draft(), metastatic(pneumonitis)) == []


def test_tdm1_already_given_for_metastatic_disease_is_silent() -> None:
    given = fb.administration("tdm1", fb.ago(days=21), dose=3.6)
    assert evaluate(RULE, draft(), metastatic(given)) == []


def test_adjuvant_tdm1_does_not_count_as_started() -> None:
    adjuvant = fb.administration("tdm1", D(2024, 1, 10, tzinfo=UTC), dose=3.6)
    assert one(evaluate(RULE, draft(), metastatic(adjuvant)))


def _early_recurrence(months_after: int) -> list[dict[str, Any]]:
    adjuvant_end = D(2024, 6, 1, tzinfo=UTC)
    mets = D(2024 + (6 + months_after - 1) // 12, (6 + months_after - 1) % 12 + 1, 1, tzinfo=UTC)
    return [
        fb.breast_cancer(onset=D(2023, 5, 2, tzinfo=UTC)),
        fb.liver_metastases(onset=mets),
        fb.statement("trastuzumab", D(2023, 6, 1, tzinfo=UTC), adjuvant_end),
        fb.statement("pertuzumab", D(2023, 6, 1, tzinfo=UTC), adjuvant_end),
    ]


def test_recurrence_within_12_months_of_adjuvant_therapy_counts_as_second_line() -> None:
    finding = one(evaluate(RULE, draft(), _early_recurrence(12)))
    assert finding.variant == "after-early"
    assert "guideline.adjuvant-recurrence-window" in finding.sources


def test_recurrence_after_13_months_is_first_line() -> None:
    assert evaluate(RULE, draft(), _early_recurrence(13)) == []


def _after_adjuvant_tdm1(months_after: int) -> list[dict[str, Any]]:
    """Neoadjuvant THP ending 2023-12-01 (over 12 months before any recurrence here), then 14 cycles
    of adjuvant T-DM1 (KATHERINE) ending 2024-10-01, then liver metastases `months_after` later."""
    history = _early_recurrence(0)[:1]
    history += [
        fb.statement("trastuzumab", D(2023, 6, 1, tzinfo=UTC), D(2023, 12, 1, tzinfo=UTC)),
        fb.statement("pertuzumab", D(2023, 6, 1, tzinfo=UTC), D(2023, 12, 1, tzinfo=UTC)),
    ]
    last = D(2024, 10, 1, tzinfo=UTC)
    history += [fb.administration("tdm1", last - timedelta(days=21 * c), dose=3.6) for c in range(14)]
    mets = D(2024 + (9 + months_after) // 12, (9 + months_after) % 12 + 1, 1, tzinfo=UTC)
    history.append(fb.liver_metastases(onset=mets))
    return history


def test_recurrence_months_after_adjuvant_tdm1_is_second_line() -> None:
    """ASCO Rec 5.0 counts trastuzumab-based adjuvant therapy, T-DM1 among it (first-line-use does):
    leaving T-DM1 out made a recurrence 6 months after adjuvant T-DM1 silent on both rules."""
    finding = one(evaluate(RULE, draft(), _after_adjuvant_tdm1(6)))
    assert finding.variant == "after-early"
    assert "T-DM1" in finding.facts["prior"] or "emtansine" in finding.facts["prior"]
    assert "guideline.adjuvant-recurrence-window" in finding.sources


def test_recurrence_over_12_months_after_adjuvant_tdm1_is_first_line() -> None:
    assert evaluate(RULE, draft(), _after_adjuvant_tdm1(13)) == []
    assert "first-line-use" in ids(all_rules([draft()], _after_adjuvant_tdm1(13)))


def test_early_recurrence_plus_one_metastatic_line_is_third_line() -> None:
    history = [
        *_early_recurrence(6),
        fb.statement("lapatinib", D(2025, 1, 1, tzinfo=UTC), D(2026, 6, 1, tzinfo=UTC)),
    ]
    assert evaluate(RULE, draft(), history) == []


def test_early_breast_cancer_is_silent() -> None:
    history = [
        fb.breast_cancer(onset=D(2026, 1, 10, tzinfo=UTC)),
        fb.statement("trastuzumab", D(2026, 2, 1, tzinfo=UTC)),
    ]
    assert evaluate(RULE, draft(), history) == []


def test_therapy_that_cannot_be_placed_is_said() -> None:
    undated_mets = fb.liver_metastases()  # no onset: nothing dates the metastatic diagnosis
    history = [fb.breast_cancer(), undated_mets, fb.statement("trastuzumab", D(2025, 4, 1, tzinfo=UTC))]
    ctx = context(draft(), history)
    assert RULE.evaluate(ctx) == []
    assert any("T-DXd preferred" in note for note in ctx.notes)


def test_palliative_intent_places_undated_metastatic_therapy() -> None:
    undated_mets = fb.liver_metastases()
    trastuzumab = fb.statement("trastuzumab", D(2025, 4, 1, tzinfo=UTC), D(2026, 8, 1, tzinfo=UTC))
    trastuzumab["extension"] = [
        {
            "url": "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-treatment-intent",
            "valueCodeableConcept": {"coding": [{"system": fb.SNOMED, "code": "363676003"}]},
        }
    ]
    assert one(evaluate(RULE, draft(), [fb.breast_cancer(), undated_mets, trastuzumab]))


def test_no_tdxd_suggestion_while_a_tdm1_order_is_active() -> None:
    """Accepting a T-DXd draft there would raise product-mixup's swap card: the card stays, no fix."""
    signed = fb.medication_request("tdm1", status="active", authored=fb.ago(days=3), rid="signed-tdm1")
    finding = one(evaluate(RULE, draft(), metastatic(signed)))
    assert finding.suggestions == ()


def test_on_order_select_too() -> None:
    assert one(evaluate(RULE, draft(), metastatic(), hook="order-select"))


def test_not_for_lookalike_orders() -> None:
    assert evaluate(RULE, draft("trastuzumab", dose=6), metastatic()) == []


def test_the_tdxd_drafted_from_a_draft_without_a_dose_states_its_dose() -> None:
    """A T-DM1 draft with no dose yet (order-select, before one is entered): the action said "Draft
    T-DXd (Enhertu) 5.4 mg/kg every 3 weeks" and the T-DXd order it created had no dose at all."""
    for order in (draft(dose=None), {k: v for k, v in draft().items() if k != "dosageInstruction"}):
        finding = one(evaluate(RULE, order, metastatic(), hook="order-select"))
        (create,) = [a for s in finding.suggestions for a in s.actions if a.type == "create"]
        assert "5.4 mg/kg" in create.description
        (entry,) = create.resource["dosageInstruction"][0]["doseAndRate"]
        assert (entry["doseQuantity"]["value"], entry["doseQuantity"]["code"]) == (5.4, "mg/kg")


def test_tdm1_that_cannot_be_placed_is_said_now_that_adjuvant_tdm1_counts() -> None:
    """Adjuvant T-DM1 counts toward the early-recurrence test (b5e0230), so an undated T-DM1 on
    record may be the (neo)adjuvant therapy that makes this order third line, or T-DM1 already given
    for metastatic disease: the line cannot be told, as first-line-use says for the same record."""
    undated = fb.statement("tdm1", D(2024, 1, 1, tzinfo=UTC), D(2024, 6, 1, tzinfo=UTC))
    del undated["effectivePeriod"]
    for history in (metastatic(undated), [*_early_recurrence(6), undated]):
        ctx = context(draft(), history)
        assert RULE.evaluate(ctx) == []
        assert any(note.startswith("Second-line (T-DXd preferred) check not applied") for note in ctx.notes)


def test_the_card_names_only_the_adjuvant_therapy_within_the_window() -> None:
    """The card says "(neo)adjuvant HER2-directed therapy (...) ending <= 12 months before recurrence":
    it listed the neoadjuvant trastuzumab and pertuzumab that ended 16 months before it too."""
    prior = one(evaluate(RULE, draft(), _after_adjuvant_tdm1(6))).facts["prior"]
    assert "T-DM1" in prior
    assert "trastuzumab (Herceptin" not in prior and "pertuzumab" not in prior
