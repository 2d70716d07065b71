"""The terminology matchers on the forms EHRs actually send: hyphenated names, the code-system URIs
seen for HCPCS, ICD-10-CM with and without its dot, and the heart-failure codes a problem list uses.

Each case here was a wrong answer before: a T-DM1 read as trastuzumab, a J9354 administration not
read at all, axillary nodes read as metastatic disease, a heart failure not seen.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.clinical import terminology
from tests import fhir_builders as fb
from tests.unit.rule_helpers import on_order, only, rule_ids

TERMS = terminology.default()
SNOMED, ICD = TERMS.systems["snomed"], TERMS.systems["icd10cm"]


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("ado-trastuzumab-emtansine", "tdm1"),
        ("Trastuzumab-emtansine 160 mg vial", "tdm1"),
        ("ado trastuzumab  emtansine", "tdm1"),
        ("ado\u2011trastuzumab emtansine", "tdm1"),  # a non-breaking hyphen, as word processors paste it
        ("T DM1 3.6 mg/kg", "tdm1"),
        ("T\u2013DM1", "tdm1"),  # en dash
        ("fam-trastuzumab-deruxtecan-nxki", "tdxd"),
        ("trastuzumab-anns (Kanjinti)", "trastuzumab"),
        ("trastuzumab", "trastuzumab"),
        ("emtansine", None),
        ("trastuzumabemtansine", None),  # still whole words: no separator, no match for T-DM1's name
    ],
)
def test_drug_names_match_across_hyphens_and_spaces(text: str, family: str | None) -> None:
    assert TERMS.drug_family([], text) == family


@pytest.mark.parametrize(
    "system",
    [
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",  # HL7 Terminology's canonical
        "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "urn:oid:2.16.840.1.113883.6.285",  # US Core 3.x
    ],
)
def test_hcpcs_j9354_is_tdm1_under_each_uri_ehrs_send(system: str) -> None:
    assert TERMS.drug_family([(system, "J9354")]) == "tdm1"


@pytest.mark.parametrize(
    ("coding", "family"),
    [
        (("urn:oid:2.16.840.1.113883.6.88", "1371041"), "tdm1"),  # RxNorm by OID
        (("urn:oid:2.16.840.1.113883.6.69", "50242-088-01"), "tdm1"),  # NDC by OID
        (("urn:oid:2.16.840.1.113883.6.88", "50242-088-01"), None),  # an NDC is no RxNorm code
        (("urn:oid:2.16.840.1.113883.6.96", "1371041"), None),  # SNOMED's OID: not RxNorm
    ],
)
def test_rxnorm_and_ndc_codes_match_under_their_oids(coding: tuple[str, str], family: str | None) -> None:
    assert TERMS.drug_family([coding]) == family


def test_j9354_under_another_system_is_not_tdm1() -> None:
    assert TERMS.drug_family([("http://www.ama-assn.org/go/cpt", "J9354")]) is None


@pytest.mark.parametrize(
    ("code", "metastatic"),
    [
        ("C77.3", False),  # axillary nodes: regional (N) in breast cancer
        ("C773", False),
        ("C77.0", False),  # supraclavicular and cervical
        ("C77.1", False),  # internal mammary and other intrathoracic
        ("C77.9", False),
        ("C77.2", True),  # intra-abdominal nodes: distant for a breast primary
        ("C77.4", True),
        ("C775", True),
        ("C78.7", True),
        ("C787", True),
        ("c79.51", True),
        ("C50.911", False),
    ],
)
def test_icd10cm_metastatic_sites(code: str, metastatic: bool) -> None:
    assert TERMS.in_condition_set("metastatic", [(ICD, code)]) is metastatic


@pytest.mark.parametrize(
    ("coding", "text"),
    [
        ((SNOMED, "42343007"), ""),
        ((SNOMED, "84114007"), ""),
        ((SNOMED, "88805009"), ""),  # what Synthea writes
        ((SNOMED, "10633002"), ""),
        ((SNOMED, "85232009"), ""),
        ((SNOMED, "703272007"), ""),
        ((ICD, "I50.22"), ""),
    ],
)
def test_heart_failure_codes(coding: tuple[str, str], text: str) -> None:
    assert TERMS.in_condition_set("heart_failure", [coding], text)


def test_other_cardiac_codes_are_not_heart_failure() -> None:
    assert not TERMS.in_condition_set("heart_failure", [(SNOMED, "49436004")], "Atrial fibrillation")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("Z82.49", "Family history of heart failure"),
        ("Z86.79", "History of heart failure"),
        ("Z91.89", "At risk for heart failure (anthracycline exposure)"),
        ("R06.00", "Dyspnea - heart failure ruled out"),
    ],
)
def test_heart_failure_in_a_condition_text_is_not_heart_failure(code: str, text: str) -> None:
    """Text is not read for heart failure: these would each 'permanently discontinue' T-DM1."""
    assert not TERMS.in_condition_set("heart_failure", [(ICD, code)], text)


def test_axillary_nodes_leave_the_adjuvant_course_adjuvant() -> None:
    nodes = fb.condition(
        "C77.3",
        "Secondary and unspecified malignant neoplasm of axilla and upper limb lymph nodes",
        system=fb.ICD10,
        onset=datetime(2026, 3, 1, tzinfo=UTC),
    )
    fourteen_cycles = fb.medication_request(count=14)
    assert on_order(fourteen_cycles, fb.katherine_history(nodes)) == []
    # The same patient with liver metastases is metastatic: the 14-cycle plan is a fixed stop there.
    metastatic = fb.katherine_history(nodes, fb.liver_metastases(onset=datetime(2026, 10, 1, tzinfo=UTC)))
    assert "fixed-duration-stop" in rule_ids(on_order(fourteen_cycles, metastatic))


def test_hyphenated_text_only_tdm1_order_gets_the_tdm1_checks_not_a_mixup() -> None:
    order = fb.medication_request(dose=3.6)
    order["medicationCodeableConcept"] = {"text": "ado-trastuzumab-emtansine"}
    history = fb.metastatic_history()
    history = [
        r for r in history if r["resourceType"] != "Observation" or r["code"]["coding"][0]["code"] != "777-3"
    ]
    history.append(fb.observation("platelets", 30.0, fb.ago(days=1)))
    findings = on_order(order, history)
    assert "product-mixup" not in rule_ids(findings)
    assert only(findings, "thrombocytopenia-hold").indicator == "critical"


def test_tdm1_given_under_the_canonical_hcpcs_uri_counts_as_a_reduction() -> None:
    """Doses coded only J9354 at 3.0 mg/kg are a T-DM1 reduction: 3.6 after them is a re-escalation."""
    history = fb.metastatic_history()
    for days in (42, 21):
        given = fb.administration("tdm1", fb.ago(days=days), dose=3.0)
        given["medicationCodeableConcept"] = {
            "coding": [{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "J9354"}]
        }
        history.append(given)
    finding = only(on_order(fb.medication_request(dose=3.6), history), "dose-check")
    assert finding.variant == "re-escalation"


def test_history_of_heart_failure_does_not_discontinue_but_heart_failure_does() -> None:
    history = [*fb.metastatic_history(), fb.administration("tdm1", fb.ago(days=21))]
    past = fb.condition("Z86.79", "History of heart failure", system=fb.ICD10, onset=fb.ago(days=400))
    assert "lvef-decline" not in rule_ids(on_order(fb.medication_request(), [*history, past]))
    chronic = fb.condition("88805009", "Chronic congestive heart failure", onset=fb.ago(days=10))
    assert (
        only(on_order(fb.medication_request(), [*history, chronic]), "lvef-decline").indicator == "critical"
    )
