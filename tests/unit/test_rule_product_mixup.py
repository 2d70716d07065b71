"""product-mixup: T-DM1 at a T-DXd or trastuzumab dose, the reverse, and a swap in mid-course."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.clinical.record import ALL_CATEGORIES, MEDICATION_ADMINISTRATIONS
from service.clinical.rules.product_mixup import RULE
from tests import fhir_builders as fb
from tests.unit.label_a_helpers import ORDER_ID, all_rules, context, draft, evaluate, ids, metastatic
from tests.unit.rule_helpers import on_order

DRAFT_REF = f"MedicationRequest/{ORDER_ID}"


def one(findings):
    assert len(findings) == 1, findings
    return findings[0]


def on_tdm1(*extra, last_dose_days: float = 14):
    """A metastatic patient in an ongoing T-DM1 course (second line, after THP)."""
    return metastatic(
        fb.administration("tdm1", fb.ago(days=last_dose_days + 21), dose=3.6),
        fb.administration("tdm1", fb.ago(days=last_dose_days), dose=3.6),
        *extra,
    )


@pytest.mark.parametrize(
    ("dose", "match"),
    [
        (5.4, "T-DXd (Enhertu) 5.4"),
        (4.4, "T-DXd (Enhertu) 4.4"),
        (3.2, "T-DXd (Enhertu) 3.2"),
        (6.4, "T-DXd (Enhertu) 6.4"),
        (8, "trastuzumab 8"),
        (6, "trastuzumab 6"),
        (4, "trastuzumab 4"),
        (2, "trastuzumab 2"),
    ],
)
def test_tdm1_at_each_lookalike_level_is_critical(dose: float, match: str) -> None:
    finding = one(evaluate(RULE, draft(dose=dose), metastatic()))
    assert (finding.indicator, finding.variant) == ("critical", "tdm1-at-lookalike-dose")
    assert finding.facts["matches"].startswith(match)
    assert "dosing.do-not-substitute" in finding.sources


@pytest.mark.parametrize("dose", [3.6, 3.0, 2.4, 3.15, 3.78, 2.28])
def test_tdm1_at_its_own_levels_is_silent(dose: float) -> None:
    assert evaluate(RULE, draft(dose=dose), metastatic()) == []


def test_tdm1_band_overlapping_tdxd_second_reduction_belongs_to_tdm1() -> None:
    """3.0 ± 5 % (≤ 3.15) and 3.2 ± 5 % (≥ 3.04) overlap: inside T-DM1's own band it is T-DM1's dose."""
    assert evaluate(RULE, draft(dose=3.1), metastatic()) == []
    assert one(evaluate(RULE, draft(dose=3.16), metastatic())).facts["matches"] == "T-DXd (Enhertu) 3.2 mg/kg"


def test_between_trastuzumab_6_and_tdxd_6_4_names_both_nearest_first() -> None:
    assert one(evaluate(RULE, draft(dose=6.2), metastatic())).facts["matches"] == (
        "T-DXd (Enhertu) 6.4 mg/kg or trastuzumab 6 mg/kg"
    )
    assert one(evaluate(RULE, draft(dose=6.1), metastatic())).facts["matches"] == (
        "trastuzumab 6 mg/kg or T-DXd (Enhertu) 6.4 mg/kg"
    )
    assert one(evaluate(RULE, draft(dose=5.9), metastatic())).facts["matches"] == "trastuzumab 6 mg/kg"
    assert one(evaluate(RULE, draft(dose=6.5), metastatic())).facts["matches"] == "T-DXd (Enhertu) 6.4 mg/kg"


def test_tolerance_edges_of_a_lookalike_level() -> None:
    assert one(evaluate(RULE, draft(dose=5.13), metastatic()))  # 5.4 × 0.95
    assert evaluate(RULE, draft(dose=5.12), metastatic()) == []  # dose-check's card, not this one


def test_tdm1_mg_order_is_converted_with_the_weight() -> None:
    finding = one(evaluate(RULE, draft(dose=378, unit="mg"), metastatic(weight=70)))  # 5.4 mg/kg
    assert finding.facts["mg_per_kg"] == "5.4"
    assert finding.facts["dose_text"].startswith("378 mg = 5.4 mg/kg for 70 kg")


def test_tdm1_suggestions_correct_the_dose_or_the_product_or_remove() -> None:
    finding = one(evaluate(RULE, draft(dose=5.4), metastatic()))
    by_key = {s.key: s for s in finding.suggestions}
    assert list(by_key) == ["set-tdm1-dose", "replace-with-tdxd", "remove-order"]
    update = one(list(by_key["set-tdm1-dose"].actions))
    assert update.type == "update" and update.resource["id"] == ORDER_ID
    assert update.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 3.6
    delete, create = by_key["replace-with-tdxd"].actions
    assert (delete.type, delete.resource_id) == ("delete", DRAFT_REF)
    assert create.type == "create"
    assert create.resource["medicationCodeableConcept"]["coding"][0]["code"] == "2267576"
    assert create.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 5.4
    assert create.resource["id"] != ORDER_ID
    assert one(list(by_key["remove-order"].actions)).resource_id == DRAFT_REF


def test_in_an_ongoing_course_the_lookalike_product_is_not_offered() -> None:
    """The dose is the likely error there, and a T-DXd draft would trip the swap check (alert loop)."""
    finding = one(evaluate(RULE, draft(dose=5.4), on_tdm1()))
    assert [s.key for s in finding.suggestions] == ["set-tdm1-dose", "remove-order"]


def test_tdm1_correction_respects_a_documented_reduction() -> None:
    history = metastatic(fb.administration("tdm1", fb.ago(days=21), dose=3.0))
    finding = one(evaluate(RULE, draft(dose=5.4), history))
    update = one(list(finding.suggestions[0].actions))
    assert update.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 3


@pytest.mark.parametrize("drug", ["tdxd", "trastuzumab"])
@pytest.mark.parametrize("dose", [3.6, 3.0, 2.4])
def test_lookalike_at_a_tdm1_level_is_critical(drug: str, dose: float) -> None:
    finding = one(evaluate(RULE, draft(drug, dose=dose), metastatic()))
    assert (finding.indicator, finding.variant) == ("critical", "lookalike-at-tdm1-dose")
    assert finding.facts["matches"] == f"T-DM1 (Kadcyla) {dose:g} mg/kg"
    replace = finding.suggestions[0]
    assert replace.key == "replace-with-tdm1"
    assert replace.actions[1].resource["medicationCodeableConcept"]["coding"][0]["code"] == "1658084"


@pytest.mark.parametrize(("drug", "dose"), [("tdxd", 5.4), ("tdxd", 4.4), ("tdxd", 3.2), ("tdxd", 6.4)])
def test_tdxd_at_its_own_levels_is_silent(drug: str, dose: float) -> None:
    assert evaluate(RULE, draft(drug, dose=dose), metastatic()) == []


@pytest.mark.parametrize("dose", [8, 6, 4, 2])
def test_trastuzumab_at_its_own_levels_is_silent(dose: float) -> None:
    assert evaluate(RULE, draft("trastuzumab", dose=dose), metastatic()) == []


def test_tdxd_band_edge_against_tdm1_3_0() -> None:
    assert evaluate(RULE, draft("tdxd", dose=3.05), metastatic()) == []  # within 3.2 ± 5 %
    assert one(evaluate(RULE, draft("tdxd", dose=3.03), metastatic())).facts["matches"].startswith("T-DM1")


def test_trastuzumab_band_edge_against_tdm1_2_4() -> None:
    assert evaluate(RULE, draft("trastuzumab", dose=2.1), metastatic()) == []
    assert one(evaluate(RULE, draft("trastuzumab", dose=2.28), metastatic()))


def test_lookalike_mg_order_without_a_fresh_weight_is_said() -> None:
    ctx = context(draft("tdxd", dose=378, unit="mg"), metastatic(weight_days=45))
    assert RULE.evaluate(ctx) == []
    assert any("dose is in mg and no body weight" in note for note in ctx.notes)


def test_lookalike_mg_order_behind_an_unreadable_newest_weight_says_so() -> None:
    """Not "no body weight was recorded": one was, yesterday, in a unit that cannot be read, and
    last month's readable weight is not used in its place."""
    unreadable = fb.observation("weight", 110.0, fb.ago(days=1), unit="pounds")
    ctx = context(draft("tdxd", dose=378, unit="mg"), [*metastatic(weight_days=25), unreadable])
    assert RULE.evaluate(ctx) == []
    [note] = [n for n in ctx.notes if "mix-up check" in n]
    assert "the newest body weight (2026-11-24) could not be read" in note
    assert "pounds" in note
    assert "no body weight was recorded" not in note


def test_a_weight_recorded_as_not_measured_does_not_hide_a_tdxd_dose() -> None:
    # 378 mg is 5.4 mg/kg for the 70 kg of 5 days ago; yesterday's weight was not taken.
    history = [*metastatic(weight_days=5), fb.absent_observation("weight", fb.ago(days=1))]
    finding = one(evaluate(RULE, draft(dose=378, unit="mg"), history))
    assert finding.indicator == "critical" and finding.facts["matches"].startswith("T-DXd")


def test_tdm1_mg_order_without_weight_leaves_the_saying_to_dose_check() -> None:
    ctx = context(draft(dose=378, unit="mg"), metastatic(weight=None))
    assert RULE.evaluate(ctx) == [] and ctx.notes == []


@pytest.mark.parametrize("drug", ["tdxd", "trastuzumab"])
def test_lookalike_during_an_ongoing_tdm1_course_is_a_swap(drug: str) -> None:
    dose = 5.4 if drug == "tdxd" else 6
    finding = one(evaluate(RULE, draft(drug, dose=dose), on_tdm1()))
    assert (finding.indicator, finding.variant) == ("critical", "swap-in-course")
    assert finding.facts["last_tdm1"] == fb.ago(days=14).date().isoformat()
    assert one(list(one(list(finding.suggestions)).actions)).resource_id == DRAFT_REF


def test_swap_window_is_two_cycles_from_the_last_dose() -> None:
    assert one(evaluate(RULE, draft("tdxd", dose=5.4), on_tdm1(last_dose_days=42)))
    assert evaluate(RULE, draft("tdxd", dose=5.4), on_tdm1(last_dose_days=43)) == []


def test_an_active_tdm1_order_keeps_the_course_ongoing() -> None:
    standing = fb.medication_request("tdm1", status="active", authored=fb.ago(days=120), rid="standing")
    history = on_tdm1(standing, last_dose_days=60)
    assert one(evaluate(RULE, draft("tdxd", dose=5.4), history)).variant == "swap-in-course"


def test_switch_after_recorded_progression_is_not_a_mixup() -> None:
    progression = {
        "resourceType": "Observation",
        "id": "progression-1",
        "status": "final",
        "code": {"coding": [{"system": fb.LOINC, "code": "97509-4"}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": fb.iso(fb.ago(days=5)),
        "valueCodeableConcept": {"coding": [{"system": fb.SNOMED, "code": "271299001"}]},
    }
    assert evaluate(RULE, draft("tdxd", dose=5.4), on_tdm1(progression)) == []


def test_stopped_tdm1_course_is_not_ongoing() -> None:
    stopped = fb.medication_request("tdm1", status="stopped", authored=fb.ago(days=5), rid="stopped")
    assert one(evaluate(RULE, draft("tdxd", dose=5.4), on_tdm1(last_dose_days=30)))
    assert evaluate(RULE, draft("tdxd", dose=5.4), on_tdm1(stopped, last_dose_days=30)) == []


def test_toxicity_recorded_during_the_course_explains_a_switch() -> None:
    pneumonitis = fb.condition("205237003", "Pneumonitis", onset=fb.ago(days=7))
    assert evaluate(RULE, draft("trastuzumab", dose=6), on_tdm1(pneumonitis)) == []


def test_no_tdm1_history_is_no_swap() -> None:
    assert evaluate(RULE, draft("tdxd", dose=5.4), metastatic()) == []


def test_swap_check_without_medication_history_is_said() -> None:
    ctx = context(draft("tdxd", dose=5.4), on_tdm1(), available=ALL_CATEGORIES - {MEDICATION_ADMINISTRATIONS})
    assert RULE.evaluate(ctx) == []
    assert any("swap check not applied" in note for note in ctx.notes)


def test_dose_mixup_wins_over_swap_for_the_same_order() -> None:
    finding = one(evaluate(RULE, draft("trastuzumab", dose=3.6), on_tdm1()))
    assert finding.variant == "lookalike-at-tdm1-dose"


def test_unrelated_orders_get_no_card() -> None:
    pertuzumab = fb.medication_request("pertuzumab", dose=3.6, rid="p-1")
    assert all_rules([pertuzumab], on_tdm1()) == []


def test_through_the_engine_only_product_mixup_for_a_tdxd_at_tdm1_dose() -> None:
    history = metastatic(*fb.fresh_labs(), fb.observation("lvef", 60.0, fb.ago(days=40)))
    assert ids(all_rules([draft("tdxd", dose=3.6)], history)) == ["product-mixup"]


def test_accepting_replace_with_tdm1_gives_a_silent_order() -> None:
    finding = one(evaluate(RULE, draft("tdxd", dose=3.6), metastatic()))
    created = finding.suggestions[0].actions[1].resource
    assert evaluate(RULE, created, metastatic()) == []


def test_adjuvant_history_only_is_not_an_ongoing_course() -> None:
    adjuvant = fb.administration("tdm1", datetime(2024, 2, 1, tzinfo=UTC), dose=3.6)
    assert evaluate(RULE, draft("tdxd", dose=5.4), metastatic(adjuvant)) == []


def test_two_drafts_without_ids_each_get_their_own_card() -> None:
    """One card per rule id per order: two T-DM1 drafts sent without ids (5.4 and 4.4 mg/kg) are two
    orders. Keyed on the order reference alone, the second draft's mix-up card was dropped."""
    drafts = [fb.medication_request("tdm1", dose=dose) for dose in (5.4, 4.4)]
    for d in drafts:
        del d["id"]
    findings = [f for f in on_order(drafts, metastatic()) if f.rule_id == "product-mixup"]
    assert sorted(f.facts["matches"] for f in findings) == [
        "T-DXd (Enhertu) 4.4 mg/kg",
        "T-DXd (Enhertu) 5.4 mg/kg",
    ]


def test_the_same_draft_sent_twice_still_gets_one_card() -> None:
    draft_order = fb.medication_request("tdm1", dose=5.4, rid="twice")
    findings = [
        f for f in on_order([draft_order, dict(draft_order)], metastatic()) if f.rule_id == "product-mixup"
    ]
    assert len(findings) == 1
