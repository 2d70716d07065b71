"""pulmonary-toxicity: KADCYLA USPI §2.2 and §5.4 (ILD or pneumonitis: permanently discontinue)."""

from __future__ import annotations

import pytest

from service.clinical.record import ALL_CATEGORIES, CONDITIONS
from service.clinical.rules.pulmonary import RULE, evaluate
from tests import fhir_builders as fb
from tests.unit.label_b_helpers import ORDER_ID, context, early, metastatic, unknown
from tests.unit.rule_helpers import on_order, on_patient_view, only, rule_ids


@pytest.mark.parametrize(
    ("code", "display", "system"),
    [
        ("233703007", "Interstitial lung disease", fb.SNOMED),
        ("205237003", "Pneumonitis", fb.SNOMED),
        ("J84.10", "Pulmonary fibrosis, unspecified", fb.ICD10),
        ("J70.2", "Acute drug-induced interstitial lung disorders", fb.ICD10),
        ("local-9", "Radiation pneumonitis", "urn:local"),
    ],
)
@pytest.mark.parametrize("setting", [metastatic, early, unknown])
def test_ild_or_pneumonitis_discontinues(code: str, display: str, system: str, setting) -> None:
    (finding,) = evaluate(context(setting(fb.condition(code, display, system=system))))
    assert finding.indicator == "critical"
    assert finding.sources == ("any.pulmonary",)
    assert finding.order_ref == f"MedicationRequest/{ORDER_ID}"
    assert display in finding.facts["condition"]


def test_suggests_deleting_the_draft() -> None:
    (finding,) = evaluate(context(metastatic(fb.condition("233703007", "Interstitial lung disease"))))
    (suggestion,) = finding.suggestions
    (action,) = suggestion.actions
    assert suggestion.recommended
    assert action.type == "delete" and action.resource_id == f"MedicationRequest/{ORDER_ID}"


def test_resolved_pneumonitis_still_fires() -> None:
    history = metastatic(fb.condition("205237003", "Pneumonitis", clinical_status="resolved"))
    (finding,) = evaluate(context(history))
    assert "resolved or inactive" in finding.facts["condition"]


@pytest.mark.parametrize("verification", ["entered-in-error", "refuted"])
def test_entered_in_error_or_refuted_is_ignored(verification: str) -> None:
    history = metastatic(fb.condition("233703007", "Interstitial lung disease", verification=verification))
    assert evaluate(context(history)) == []


def test_other_lung_problems_are_silent() -> None:
    history = metastatic(
        fb.condition("94391008", "Secondary malignant neoplasm of lung"),
        fb.condition("195967001", "Asthma"),
    )
    assert evaluate(context(history)) == []


def test_display_text_is_not_repeated() -> None:
    (finding,) = evaluate(context(metastatic(fb.condition("233703007", "Interstitial lung disease"))))
    assert finding.facts["condition"].startswith("Interstitial lung disease (active")
    assert "disease Interstitial" not in finding.facts["condition"]


def test_problem_list_unavailable_skips_with_data_unavailable() -> None:
    findings = on_order(
        fb.medication_request(), metastatic(*fb.fresh_labs()), available=ALL_CATEGORIES - {CONDITIONS}
    )
    assert "pulmonary-toxicity" not in rule_ids(findings)
    assert "pulmonary-toxicity" in only(findings, "data-unavailable").facts["skipped"]


def test_no_card_for_unrelated_orders() -> None:
    history = metastatic(fb.condition("233703007", "Interstitial lung disease"))
    assert on_order(fb.medication_request("pertuzumab"), history) == []


def test_patient_view_only_when_due() -> None:
    assert RULE.on_patient_view and RULE.only_when_due
    ild = fb.condition("233703007", "Interstitial lung disease")
    due = metastatic(ild, fb.administration("tdm1", fb.ago(days=20)))
    findings = on_patient_view(due)
    finding = only(findings, "pulmonary-toxicity")
    assert finding.suggestions == () and finding.order_ref is None
    not_due = metastatic(ild, fb.administration("tdm1", fb.ago(days=5)))
    assert "pulmonary-toxicity" not in rule_ids(on_patient_view(not_due))
