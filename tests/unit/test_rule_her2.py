"""her2-status: HER2-positive evidence required; a negative latest result is critical."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.clinical.record import ALL_CATEGORIES, OBSERVATIONS
from service.clinical.rules.her2 import RULE
from tests import fhir_builders as fb
from tests.unit.label_a_helpers import all_rules, draft, evaluate, ids

HER2_IHC = ("85319-2", "HER2 [Presence] in Breast cancer specimen by Immune stain")
HER2_FISH = ("85318-4", "ERBB2 gene duplication [Presence] in Breast cancer specimen by FISH")


def her2_test(
    answer: str | None,
    when: datetime,
    *,
    code: tuple[str, str] = HER2_IHC,
    text: str | None = None,
    dated: bool = True,
    rid: str | None = None,
) -> dict[str, Any]:
    qualifiers = {"positive": ("10828004", "Positive"), "negative": ("260385009", "Negative")}
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid or fb.new_id(),
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": fb.LOINC, "code": code[0], "display": code[1]}], "text": code[1]},
        "subject": {"reference": "Patient/pat-1"},
        "issued": fb.iso(when),
    }
    if dated:
        resource["effectiveDateTime"] = fb.iso(when)
    if answer:
        snomed, display = qualifiers[answer]
        resource["valueCodeableConcept"] = {
            "coding": [{"system": fb.SNOMED, "code": snomed, "display": display}]
        }
    if text:
        resource["valueString"] = text
    return resource


def patient(*extra: dict[str, Any], her2_condition: bool = False) -> list[dict[str, Any]]:
    """Metastatic breast cancer coded without HER2 status unless asked."""
    cancer = (
        fb.breast_cancer(onset=datetime(2023, 5, 2, tzinfo=UTC))
        if her2_condition
        else fb.condition("254837009", "Malignant neoplasm of breast", onset=datetime(2023, 5, 2, tzinfo=UTC))
    )
    return [cancer, fb.liver_metastases(onset=datetime(2025, 3, 14, tzinfo=UTC)), *extra]


def one(findings):
    assert len(findings) == 1, findings
    return findings[0]


def test_her2_positive_condition_is_enough() -> None:
    assert evaluate(RULE, draft(), patient(her2_condition=True)) == []


def test_positive_tissue_test_is_enough() -> None:
    assert evaluate(RULE, draft(), patient(her2_test("positive", fb.ago(days=300)))) == []


def test_no_evidence_warns() -> None:
    finding = one(evaluate(RULE, draft(), patient()))
    assert (finding.indicator, finding.variant) == ("warning", "no-evidence")
    assert finding.sources == ("label.her2-selection",)


def test_negative_latest_result_is_critical_even_after_an_older_positive() -> None:
    history = patient(
        her2_test("positive", datetime(2023, 5, 10, tzinfo=UTC)),
        her2_test("negative", fb.ago(days=30), code=HER2_FISH, rid="rebiopsy"),
        her2_condition=True,
    )
    finding = one(evaluate(RULE, draft(), history))
    assert (finding.indicator, finding.variant) == ("critical", "negative")
    assert finding.facts["evidence"].startswith("Observation/rebiopsy")


def test_positive_latest_result_after_an_older_negative_is_silent() -> None:
    history = patient(
        her2_test("negative", datetime(2023, 5, 10, tzinfo=UTC)),
        her2_test("positive", fb.ago(days=30)),
    )
    assert evaluate(RULE, draft(), history) == []


def test_negative_text_result_is_critical() -> None:
    history = patient(her2_test(None, fb.ago(days=30), text="Negative (IHC 1+)"))
    assert one(evaluate(RULE, draft(), history)).indicator == "critical"


def test_equivocal_result_is_no_evidence() -> None:
    history = patient(her2_test(None, fb.ago(days=30), text="Equivocal (IHC 2+)"))
    assert one(evaluate(RULE, draft(), history)).variant == "no-evidence"


def test_ish_settles_an_equivocal_ihc() -> None:
    not_amplified = patient(her2_test(None, fb.ago(days=30), text="IHC 2+, ISH not amplified"))
    assert one(evaluate(RULE, draft(), not_amplified)).variant == "negative"
    amplified = patient(her2_test(None, fb.ago(days=30), text="IHC 2+, ISH amplified (ratio 2.4)"))
    assert evaluate(RULE, draft(), amplified) == []


@pytest.mark.parametrize(
    ("text", "variant"),
    [
        # ASCO/CAP: an ISH result settles an equivocal IHC 2+, whether said positive or amplified.
        ("IHC 2+ (equivocal); ISH positive, ratio 2.4", None),
        ("IHC 2+, FISH amplified (HER2/CEP17 2.4)", None),
        ("IHC 2+; ISH not amplified", "negative"),
        ("IHC 2+, ISH negative", "negative"),
        ("IHC 2+, negative for amplification", "negative"),
        ("IHC 2+, ISH pending", "no-evidence"),
        ("IHC 3+", None),
        ("IHC 1+", "negative"),
        ("IHC 0", "negative"),
        ("IHC 0 (null)", "negative"),
        ("HER2-low", "negative"),  # HER2-low is HER2-negative: no T-DM1 indication
        # A negated result never reads as positive: no evidence rather than a guess.
        ("not positive", "no-evidence"),
        ("HER2 is not positive", "no-evidence"),
        ("ISH not positive", "no-evidence"),
    ],
)
def test_her2_text_results_read_as_asco_cap(text: str, variant: str | None) -> None:
    findings = evaluate(RULE, draft(), patient(her2_test(None, fb.ago(days=30), text=text)))
    assert [f.variant for f in findings] == ([variant] if variant else []), text


def test_ish_in_the_concept_beside_ihc_in_the_string() -> None:
    test = her2_test(None, fb.ago(days=30), text="ISH positive")
    test["valueCodeableConcept"] = {"text": "IHC 2+ (equivocal)"}
    assert evaluate(RULE, draft(), patient(test)) == []


def test_serum_her2_does_not_count_as_evidence() -> None:
    for code in ("32996-1", "42914-2", "51981-9"):
        serum = her2_test("positive", fb.ago(days=30), code=(code, "HER2 extracellular domain in Serum"))
        finding = one(evaluate(RULE, draft(), patient(serum)))
        assert finding.variant == "no-evidence", code


def test_negative_serum_her2_does_not_override_tissue_positivity() -> None:
    serum = her2_test("negative", fb.ago(days=5), code=("32996-1", "HER2 Ag [Units/volume] in Serum"))
    assert evaluate(RULE, draft(), patient(serum, her2_test("positive", fb.ago(days=300)))) == []


def test_result_with_only_issued_date_counts() -> None:
    history = patient(her2_test("negative", fb.ago(days=30), dated=False))
    assert one(evaluate(RULE, draft(), history)).variant == "negative"


def test_her2_negative_condition_is_critical() -> None:
    negative = fb.condition(
        "431396003", "HER2-negative carcinoma of breast", onset=datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert one(evaluate(RULE, draft(), patient(negative))).indicator == "critical"


def test_latest_her2_condition_decides() -> None:
    old_negative = fb.condition(
        "431396003", "HER2-negative carcinoma of breast", onset=datetime(2022, 1, 1, tzinfo=UTC)
    )
    assert evaluate(RULE, draft(), patient(old_negative, her2_condition=True)) == []  # positive dx 2023
    new_negative = fb.condition(
        "431396003", "HER2-negative carcinoma of breast", onset=datetime(2025, 3, 1, tzinfo=UTC)
    )
    assert one(evaluate(RULE, draft(), patient(new_negative, her2_condition=True))).variant == "negative"


def test_tissue_result_outranks_a_condition_code() -> None:
    history = patient(her2_test("negative", fb.ago(days=30)), her2_condition=True)
    assert one(evaluate(RULE, draft(), history)).variant == "negative"


def test_entered_in_error_result_is_ignored() -> None:
    wrong = her2_test("negative", fb.ago(days=30))
    wrong["status"] = "entered-in-error"
    assert evaluate(RULE, draft(), patient(wrong, her2_condition=True)) == []


def test_not_for_lookalike_orders() -> None:
    assert evaluate(RULE, draft("trastuzumab", dose=6), patient()) == []


def test_without_observations_the_rule_is_skipped_and_said() -> None:
    findings = all_rules([draft()], patient(), available=ALL_CATEGORIES - {OBSERVATIONS})
    assert "her2-status" not in ids(findings)
    unavailable = [f for f in findings if f.rule_id == "data-unavailable"]
    assert unavailable and "her2-status" in unavailable[0].facts["skipped"]
