"""PatientRecord: setting, HER2, therapy timeline, labs and their units, what gets ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.clinical import terminology
from service.clinical.record import Dose, build
from tests import fhir_builders as fb

TERMS = terminology.default()


def record_of(resources: list[dict]) -> object:
    return build("pat-1", resources, TERMS)


def test_metastatic_condition_sets_setting_and_date() -> None:
    record = record_of([fb.breast_cancer(), fb.liver_metastases(onset=datetime(2025, 3, 14, tzinfo=UTC))])
    assert record.setting == "metastatic"
    assert record.metastatic_since == datetime(2025, 3, 14, tzinfo=UTC)


def test_icd10_metastasis_code_counts() -> None:
    bone = fb.condition("C79.51", "Secondary malignant neoplasm of bone", system=fb.ICD10)
    assert record_of([fb.breast_cancer(), bone]).setting == "metastatic"


def test_breast_cancer_alone_is_early() -> None:
    assert record_of([fb.breast_cancer()]).setting == "early"


def test_refuted_metastasis_is_ignored() -> None:
    refuted = fb.liver_metastases(verification="refuted")
    entered_in_error = fb.liver_metastases(verification="entered-in-error")
    assert record_of([fb.breast_cancer(), refuted, entered_in_error]).setting == "early"


def test_nothing_known_is_unknown() -> None:
    assert record_of([]).setting == "unknown"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"coding": [{"system": fb.SNOMED, "code": "10828004", "display": "Positive"}]}, "positive"),
        ({"coding": [{"system": fb.LOINC, "code": "LA6577-6", "display": "Negative"}]}, "negative"),
        ({"text": "3+"}, "positive"),
        ({"text": "Not amplified"}, "negative"),
        ({"text": "Equivocal (2+)"}, "unknown"),
    ],
)
def test_her2_tissue_result(value: dict, expected: str) -> None:
    her2 = {
        "resourceType": "Observation",
        "id": "her2-1",
        "status": "final",
        "code": {
            "coding": [{"system": fb.LOINC, "code": "48676-1", "display": "HER2 [Interpretation] in Tissue"}]
        },
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2023-05-10",
        "valueCodeableConcept": value,
    }
    assert record_of([her2]).her2 == expected


def test_her2_condition_code_is_evidence() -> None:
    assert record_of([fb.breast_cancer()]).her2 == "positive"


@pytest.mark.parametrize(
    ("value", "unit", "per_mm3"),
    [
        (75, "10*3/uL", 75_000),
        (75, "10*9/L", 75_000),
        (75_000, "/mm3", 75_000),
        (74_999, "/uL", 74_999),
        (150, "K/uL", 150_000),
        (150_000, "10*6/L", 150_000),  # 10*6/L is one cell per uL, not a thousandth of one
        (74_999, "10*6/L", 74_999),
    ],
)
def test_platelet_units_normalised_to_per_mm3(value: float, unit: str, per_mm3: float) -> None:
    record = record_of([fb.observation("platelets", value, fb.ago(days=1), unit=unit)])
    assert record.latest("platelets").value == pytest.approx(per_mm3)


@pytest.mark.parametrize(
    ("quantity", "problem"),
    [
        ({"value": 110, "unit": "pounds"}, "unit 'pounds' not recognised"),
        ({"unit": "kg", "code": "kg"}, "no numeric value"),  # not "unit 'kg' not recognised"
        ({"value": "70", "unit": "kg"}, "no numeric value"),
        ({"value": 70}, "no unit"),
    ],
)
def test_unreadable_weight_says_what_is_wrong(quantity: dict, problem: str) -> None:
    weight = fb.observation("weight", 70, fb.ago(days=1))
    weight["valueQuantity"] = quantity
    (result,) = record_of([weight]).results_of("weight")
    assert (result.readable, result.problem) == (False, problem)


@pytest.mark.parametrize("kind", ["weight", "platelets", "alt", "lvef"])
def test_no_value_with_a_data_absent_reason_is_no_measurement(kind: str) -> None:
    record = record_of([fb.absent_observation(kind, fb.ago(days=1), "not-performed")])
    (result,) = record.results_of(kind)
    assert (result.measured, result.readable, result.absent_reason) == (False, False, "not-performed")
    assert result.problem == "not measured (data absent: not-performed)"
    # neither a value nor a measurement that could not be read
    assert record.latest(kind) is None
    assert record.unreadable_in(kind, fb.ago(days=3), fb.NOW) == ()


@pytest.mark.parametrize(
    ("reason", "named"),
    [
        ({"coding": [{"code": "asked-declined"}]}, "asked-declined"),  # no system: the HL7 code
        ({"coding": [{"system": "urn:local", "code": "NP"}]}, "NP"),
        ({"text": "patient in wheelchair"}, "patient in wheelchair"),
        ({"coding": []}, "no reason given"),
    ],
)
def test_the_data_absent_reason_is_named_as_given(reason: dict, named: str) -> None:
    weight = fb.absent_observation("weight", fb.ago(days=1))
    weight["dataAbsentReason"] = reason
    (result,) = record_of([weight]).results_of("weight")
    assert (result.measured, result.absent_reason) == (False, named)


@pytest.mark.parametrize("reason", ["masked", "as-text", "not-a-number", "positive-infinity"])
def test_a_value_withheld_or_not_a_number_is_a_measurement_that_cannot_be_read(reason: str) -> None:
    record = record_of([fb.absent_observation("platelets", fb.ago(days=1), reason)])
    (result,) = record.unreadable_in("platelets", fb.ago(days=3), fb.NOW)
    assert (result.measured, result.problem) == (True, f"no numeric value (data absent: {reason})")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"valueQuantity": {"value": 70, "unit": "kg", "code": "kg"}}, ""),  # obs-6 broken: the value is read
        ({"valueQuantity": {"value": "70", "unit": "kg"}}, "no numeric value"),
        ({"valueString": "70 kg"}, "no numeric value"),
        ({"dataAbsentReason": "not-performed"}, "no numeric value"),  # not a CodeableConcept
    ],
)
def test_a_data_absent_reason_beside_a_value_or_unreadable_stays_a_measurement(
    changes: dict, problem: str
) -> None:
    weight = {**fb.absent_observation("weight", fb.ago(days=1)), **changes}
    (result,) = record_of([weight]).results_of("weight")
    assert (result.measured, result.problem) == (True, problem)


@pytest.mark.parametrize(
    ("kind", "value", "unit", "problem"),
    [
        ("weight", 0, "kg", "0 kg is not a body weight"),
        ("weight", -70, "kg", "-70 kg is not a body weight"),
        ("weight", -154.32, "[lb_av]", "-69.9984 kg is not a body weight"),
        ("weight", 0, "g", "0 kg is not a body weight"),
        ("platelets", -5, "10*3/uL", "-5,000/mm3 is not a platelet count"),
        ("lvef", -5, "%", "-5 % is not an LVEF (0 to 100 %)"),
        ("lvef", 100.5, "%", "100.5 % is not an LVEF (0 to 100 %)"),
        ("lvef", 550, "%", "550 % is not an LVEF (0 to 100 %)"),
        ("alt", -3, "U/L", "-3 U/L is below 0"),
        ("bilirubin", -1.71, "umol/L", "-0.1 mg/dL is below 0"),
    ],
)
def test_a_value_no_measurement_can_have_is_unreadable_and_not_kept(
    kind: str, value: float, unit: str, problem: str
) -> None:
    record = record_of([fb.observation(kind, value, fb.ago(days=1), unit=unit)])
    (result,) = record.results_of(kind)
    assert (result.readable, result.value, result.problem) == (False, None, problem)
    assert record.latest(kind) is None
    assert record.unreadable_in(kind, fb.ago(days=3), fb.NOW) == (result,)


@pytest.mark.parametrize(
    ("kind", "value", "unit"),
    [
        ("platelets", 0, "10*3/uL"),
        ("lvef", 0, "%"),
        ("lvef", 100, "%"),
        ("alt", 0, "U/L"),
        ("weight", 0.5, "kg"),
    ],
)
def test_the_edges_of_what_can_be_measured_are_read(kind: str, value: float, unit: str) -> None:
    (result,) = record_of([fb.observation(kind, value, fb.ago(days=1), unit=unit)]).results_of(kind)
    assert result.readable


@pytest.mark.parametrize("high", [0, -40])
def test_a_uln_of_zero_or_less_is_named_and_never_divided_by(high: float) -> None:
    (result,) = record_of([fb.observation("alt", 200, fb.ago(days=1), uln=high)]).results_of("alt")
    assert (result.readable, result.uln, result.times_uln) == (True, None, None)
    assert result.uln_problem == f"its ULN (referenceRange.high {high:g} 'U/L') is not above 0"


def test_a_uln_of_zero_before_a_usable_one_is_passed_over() -> None:
    alt = fb.observation("alt", 80, fb.ago(days=1))
    alt["referenceRange"] = [{"high": {"value": 0, "code": "U/L"}}, {"high": {"value": 40, "code": "U/L"}}]
    (result,) = record_of([alt]).results_of("alt")
    assert (result.uln, result.uln_problem, result.times_uln) == (40, "", 2.0)


def test_a_dose_in_mg_is_never_divided_by_a_weight_of_zero_or_less() -> None:
    assert [Dose(252, "mg").mg_per_kg(w) for w in (0, -70, None, 70)] == [None, None, None, 3.6]


def test_unknown_platelet_unit_is_unreadable_not_guessed() -> None:
    record = record_of([fb.observation("platelets", 150, fb.ago(days=1), unit="cells/hpf")])
    assert record.latest("platelets") is None
    (bad,) = record.unreadable_in("platelets", fb.ago(days=3), fb.NOW)
    assert "not recognised" in bad.problem


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "registered"])
def test_withdrawn_and_pending_results_are_ignored(status: str) -> None:
    # registered: "no result yet available" (FHIR R4), nothing to name.
    record = record_of([fb.observation("platelets", 200, fb.ago(days=1), status=status)])
    assert record.results_of("platelets") == ()


def test_a_result_of_unknown_status_is_kept_unreadable_and_named() -> None:
    """unknown: the source "does not know which of the status values applies" (FHIR R4), final
    among them. Dropped, a platelet count of 40,000 left a card saying none was on record."""
    record = record_of([fb.observation("platelets", 40, fb.ago(days=1), status="unknown")])
    (result,) = record.results_of("platelets")
    assert not result.readable and result.measured
    assert result.problem == "status unknown: 40,000/mm3 on 2026-11-24"
    assert record.latest("platelets") is None


@pytest.mark.parametrize(
    ("kind", "value", "unit", "named"),
    [
        ("platelets", 40, "10*3/uL", "40,000/mm3"),
        ("alt", 1000, "U/L", "1000 U/L (ULN 40 U/L)"),
        ("weight", 62, "kg", "62 kg"),
        ("lvef", 38, "%", "38 %"),
    ],
)
def test_a_preliminary_result_is_kept_unreadable_with_its_value_and_date(
    kind: str, value: float, unit: str, named: str
) -> None:
    """Dropped, it left a card saying there was no result: kept, never graded, and named."""
    record = record_of([fb.observation(kind, value, fb.ago(days=1), unit=unit, status="preliminary")])
    (result,) = record.results_of(kind)
    assert not result.readable and result.measured and result.placed
    assert result.problem == f"preliminary, not final: {named} on 2026-11-24"
    assert record.latest(kind) is None
    assert record.unreadable_in(kind, fb.ago(days=3), fb.NOW) == (result,)


def test_a_preliminary_result_that_cannot_be_read_says_both() -> None:
    lab = fb.observation("platelets", 40, fb.ago(days=1), unit="cells/hpf", status="preliminary")
    (result,) = record_of([lab]).results_of("platelets")
    assert result.problem == "preliminary, not final; unit 'cells/hpf' not recognised"


def test_a_preliminary_result_recording_no_value_is_still_no_measurement() -> None:
    absent = fb.absent_observation("platelets", fb.ago(days=1), status="preliminary")
    record = record_of([absent])
    (result,) = record.results_of("platelets")
    assert (result.measured, result.absent_reason) == (False, "not-performed")
    assert record.unreadable_in("platelets", fb.ago(days=3), fb.NOW) == ()


def test_only_a_preliminary_lab_is_kept_not_a_preliminary_her2_result() -> None:
    """HER2 (and disease status, stage) is read from final results only, as before."""
    her2 = fb.observation("platelets", 0, fb.ago(days=1), status="preliminary")
    del her2["valueQuantity"]
    her2["code"] = {"coding": [{"system": fb.LOINC, "code": "48676-1"}]}
    her2["valueCodeableConcept"] = {"text": "3+"}
    lab = fb.observation("platelets", 40, fb.ago(days=1), status="preliminary")
    record = record_of([her2, lab])
    assert record.her2 == "unknown"
    assert [r.resource_id for r in record.results_of("platelets")] == [f"Observation/{lab['id']}"]
    her2["status"] = "final"
    assert record_of([her2]).her2 == "positive"


def test_liver_test_ratio_uses_reference_range_high() -> None:
    record = record_of([fb.observation("alt", 200, fb.ago(days=1))])
    assert record.latest("alt").times_uln == pytest.approx(5.0)


def test_missing_reference_range_leaves_uln_unknown() -> None:
    record = record_of([fb.observation("alt", 200, fb.ago(days=1), uln=None)])
    assert record.latest("alt").uln is None
    assert record.latest("alt").times_uln is None


def test_bilirubin_in_umol_per_l_compares_in_one_unit() -> None:
    record = record_of([fb.observation("bilirubin", 41, fb.ago(days=1), unit="umol/L", uln=20.5)])
    assert record.latest("bilirubin").times_uln == pytest.approx(2.0)


def _with_uln(observation: dict, value: float, unit: str | None) -> dict:
    """The observation with one referenceRange.high, in `unit` (None: no unit at all)."""
    high: dict = {"value": value}
    if unit is not None:
        high.update(unit=unit, system=fb.UCUM, code=unit)
    observation["referenceRange"] = [{"high": high}]
    return observation


@pytest.mark.parametrize(
    ("value", "unit", "uln", "uln_unit", "in_u_per_l", "times"),
    [
        (5.0, "ukat/L", 40, "U/L", 300.0, 7.5),  # 1 ukat/L = 60 U/L
        (100, "U/L", 0.5, "ukat/L", 100.0, 100 / 30),
        (2500, "nkat/L", 30, "[IU]/L", 150.0, 5.0),  # 1 nkat/L = 0.06 U/L
        (150, "IU/L", 30, "U/L", 150.0, 5.0),
        (5.0, "ukat/L", 0.5, None, 300.0, 10.0),  # a ULN with no unit is in the value's unit
    ],
)
def test_liver_enzyme_and_its_uln_are_divided_in_one_unit(
    value: float, unit: str, uln: float, uln_unit: str | None, in_u_per_l: float, times: float
) -> None:
    alt = _with_uln(fb.observation("alt", value, fb.ago(days=1), unit=unit), uln, uln_unit)
    result = record_of([alt]).latest("alt")
    assert (result.value, result.unit) == (pytest.approx(in_u_per_l), "U/L")
    assert result.times_uln == pytest.approx(times)
    assert result.uln_problem == ""


def test_bilirubin_uln_in_mg_per_dl_against_a_value_in_umol_per_l() -> None:
    bilirubin = _with_uln(fb.observation("bilirubin", 34.2, fb.ago(days=1), unit="umol/L"), 1.0, "mg/dL")
    assert record_of([bilirubin]).latest("bilirubin").times_uln == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("kind", "value", "unit", "uln", "uln_unit", "named"),
    [
        ("alt", 100, "U/L", 0.58, "mg/dL", "0.58 'mg/dL'"),
        ("ast", 100, "U/L", 40, "umol/L", "40 'umol/L'"),
        ("bilirubin", 2.0, "mg/dL", 40, "U/L", "40 'U/L'"),
    ],
)
def test_uln_in_an_unconvertible_unit_leaves_the_result_readable_but_ungradable(
    kind: str, value: float, unit: str, uln: float, uln_unit: str, named: str
) -> None:
    observation = _with_uln(fb.observation(kind, value, fb.ago(days=1), unit=unit), uln, uln_unit)
    result = record_of([observation]).latest(kind)
    assert result.readable and result.uln is None and result.times_uln is None
    assert named in result.uln_problem and "cannot be converted" in result.uln_problem


def test_a_convertible_uln_in_a_later_range_is_used() -> None:
    alt = fb.observation("alt", 150, fb.ago(days=1))
    alt["referenceRange"] = [
        {"high": {"value": 9, "unit": "furlongs"}},
        {"high": {"value": 0.5, "code": "ukat/L"}},
    ]
    result = record_of([alt]).latest("alt")
    assert (result.times_uln, result.uln_problem) == (pytest.approx(5.0), "")


def test_therapy_families_are_told_apart_despite_the_rxnorm_trap() -> None:
    history = [
        fb.administration("tdm1", fb.ago(days=21)),
        fb.administration("tdxd", fb.ago(days=100), dose=5.4),
        fb.administration("trastuzumab", fb.ago(days=300), dose=6),
    ]
    families = {event.family for event in record_of(history).therapy}
    assert families == {"tdm1", "tdxd", "trastuzumab"}


@pytest.mark.parametrize(
    "coding",
    [
        {"system": fb.RXNORM, "code": "1658087", "display": "KADCYLA 100 MG Injection"},
        {"system": "http://hl7.org/fhir/sid/ndc", "code": "50242008801"},
        {"system": "http://hl7.org/fhir/sid/ndc", "code": "50242-088-01"},
    ],
)
def test_tdm1_recognised_at_product_level(coding: dict) -> None:
    admin = fb.administration("tdm1", fb.ago(days=21))
    admin["medicationCodeableConcept"] = {"coding": [coding]}
    assert record_of([admin]).therapy[0].family == "tdm1"


def test_medication_reference_to_contained_and_referenced_medication() -> None:
    contained = fb.administration("tdm1", fb.ago(days=21))
    del contained["medicationCodeableConcept"]
    contained["contained"] = [
        {"resourceType": "Medication", "id": "m1", "code": fb.medication_concept("tdm1")}
    ]
    contained["medicationReference"] = {"reference": "#m1"}
    referenced = fb.administration("tdxd", fb.ago(days=200), dose=5.4)
    del referenced["medicationCodeableConcept"]
    referenced["medicationReference"] = {"reference": "Medication/enhertu-100"}
    medication = {"resourceType": "Medication", "id": "enhertu-100", "code": fb.medication_concept("tdxd")}
    families = sorted(e.family for e in record_of([contained, referenced, medication]).therapy)
    assert families == ["tdm1", "tdxd"]


def test_text_is_the_last_resort() -> None:
    admin = fb.administration("tdm1", fb.ago(days=21))
    admin["medicationCodeableConcept"] = {"text": "ado-trastuzumab emtansine 160 mg vial"}
    assert record_of([admin]).therapy[0].family == "tdm1"


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("Trastuzumab-anns 150 mg", "trastuzumab"),
        ("fam-trastuzumab deruxtecan-nxki 100 mg", "tdxd"),
        ("ado-trastuzumab emtansine", "tdm1"),
        ("T-DM1 3.6 mg/kg", "tdm1"),
        ("Enhertu", "tdxd"),
    ],
)
def test_text_matching_tells_the_products_apart(text: str, family: str) -> None:
    admin = fb.administration("tdm1", fb.ago(days=21))
    admin["medicationCodeableConcept"] = {"text": text}
    assert record_of([admin]).therapy[0].family == family


def test_excluded_medication_statuses() -> None:
    history = [
        fb.administration("tdm1", fb.ago(days=21), status="entered-in-error"),
        fb.administration("tdm1", fb.ago(days=42), status="not-done"),
        fb.medication_request("tdm1", status="cancelled"),
        fb.medication_request("tdm1", status="draft"),
    ]
    assert record_of(history).therapy == ()


def test_progression_from_disease_status_observation() -> None:
    status = {
        "resourceType": "Observation",
        "id": "ds-1",
        "status": "final",
        "code": {
            "coding": [{"system": fb.LOINC, "code": "97509-4", "display": "Cancer disease progression"}]
        },
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2026-06-01T10:00:00Z",
        "valueCodeableConcept": {
            "coding": [{"system": fb.SNOMED, "code": "271299001", "display": "Patient's condition worsened"}]
        },
    }
    assert record_of([status]).progression == (datetime(2026, 6, 1, 10, tzinfo=UTC),)


def test_datetime_without_seconds_or_zone_is_read() -> None:
    lab = fb.observation("platelets", 200, fb.ago(days=1))
    lab["effectiveDateTime"] = "2026-11-24T08:30"
    assert record_of([lab]).latest("platelets").when == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)


def test_resources_about_another_patient_are_dropped_and_counted() -> None:
    other_lab = fb.observation("platelets", 20, fb.ago(days=1), patient_id="someone-else")
    own_lab = fb.observation("platelets", 200, fb.ago(days=1))
    other_admin = fb.administration("tdm1", fb.ago(days=21), patient_id="someone-else")
    record = record_of([other_lab, own_lab, other_admin])
    assert record.latest("platelets").value == 200_000
    assert record.therapy == ()
    assert record.foreign_resources == 2


# --- dating a result: effective[x] is when the sample was drawn, issued when the lab released it ---


@pytest.mark.parametrize(
    ("element", "effective"),
    [
        ("effectiveDateTime", "garbage"),
        ("effectiveDateTime", "24/11/2026"),
        ("effectiveDateTime", "9999-12-31"),  # past the calendar the record reads
        ("effectivePeriod", {"start": "not-a-date"}),
        ("effectivePeriod", {}),
        ("effectiveTiming", {"event": ["2026-11-24T07:00:00Z"]}),  # a Timing is never read as a date
    ],
)
def test_unreadable_effective_date_is_dated_by_issued_and_never_read(element: str, effective: object) -> None:
    lab = fb.platelet_count(150, element=element, effective=effective, issued=fb.ago(days=1))
    record = record_of([lab])
    assert record.latest("platelets") is None
    (kept,) = record.unreadable_in("platelets", fb.ago(days=3), fb.NOW)
    assert kept.when == fb.ago(days=1) and kept.value == 150_000 and not kept.readable
    assert kept.problem == "effective date unreadable; issued 2026-11-24"


def test_unreadable_effective_date_keeps_the_value_problem_too() -> None:
    lab = fb.platelet_count(150, effective="garbage", issued=fb.ago(days=1))
    lab["valueQuantity"] = {"value": 150, "unit": "cells/hpf"}
    (kept,) = record_of([lab]).results_of("platelets")
    assert kept.problem == "unit 'cells/hpf' not recognised; effective date unreadable; issued 2026-11-24"


def test_without_effective_date_issued_dates_a_readable_result() -> None:
    lab = fb.platelet_count(150, effective=None, issued=fb.ago(days=1))
    latest = record_of([lab]).latest("platelets")
    assert latest is not None and latest.readable
    assert latest.when == fb.ago(days=1) and latest.value == 150_000


def test_readable_effective_date_wins_over_issued() -> None:
    lab = fb.platelet_count(150, effective=fb.ago(days=5), issued=fb.ago(days=1))
    latest = record_of([lab]).latest("platelets")
    assert latest is not None and latest.when == fb.ago(days=5) and latest.problem == ""


@pytest.mark.parametrize(
    ("effective", "issued"),
    [("garbage", None), (None, None), ("garbage", "also garbage"), (None, "2026-11-24T25:00:00Z")],
)
def test_result_with_no_readable_date_is_dropped_and_counted(effective: object, issued: object) -> None:
    undated = fb.platelet_count(150, effective=effective, issued=issued)
    alt = fb.observation("alt", 30, fb.ago(days=1))
    del alt["effectiveDateTime"], alt["issued"]
    dated = fb.platelet_count(210, effective=fb.ago(days=1), issued=fb.ago(days=1))
    record = record_of([undated, alt, dated])
    assert [r.value for r in record.results_of("platelets")] == [210_000]
    assert record.results_of("alt") == ()
    assert record.undated_results == {"platelets": 1, "alt": 1}


def test_dated_results_leave_nothing_counted() -> None:
    assert record_of(fb.fresh_labs()).undated_results == {}


def test_excluded_keys_are_left_out_as_if_never_sent() -> None:
    # The draft order of the call, returned by the server too: an order being written, not history.
    draft = fb.medication_request("tdm1", rid="draft-1", status="active")  # a re-signed order
    given = fb.administration("tdm1", fb.ago(days=21))
    history = [
        draft,
        given,
        {**fb.medication_request("tdm1", rid="other"), "subject": {"reference": "Patient/x"}},
    ]
    record = build("pat-1", history, TERMS, excluding={"MedicationRequest/draft-1"})
    assert [e.resource_id for e in record.therapy] == [given["resourceType"] + "/" + given["id"]]
    assert record.foreign_resources == 1
    kept = build("pat-1", history, TERMS)
    assert "MedicationRequest/draft-1" in {e.resource_id for e in kept.therapy}


MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"


@pytest.mark.parametrize(
    "url",
    [
        MCODE + "mcode-procedure-intent",  # mCODE STU2-STU4 (tdm1.md §4b)
        MCODE + "mcode-treatment-intent",  # mCODE STU1
    ],
)
@pytest.mark.parametrize(("code", "display"), [("363676003", "Palliative"), ("373808002", "Curative")])
def test_mcode_treatment_intent_is_read_under_either_url(url: str, code: str, display: str) -> None:
    dose = fb.administration("tdm1", datetime(2026, 3, 2, 9, tzinfo=UTC))
    dose["extension"] = [
        {
            "url": url,
            "valueCodeableConcept": {
                "coding": [{"system": fb.SNOMED, "code": code, "display": f"{display} - procedure intent"}]
            },
        }
    ]
    (event,) = record_of([dose]).therapy
    assert event.intents == frozenset({code})


def test_curative_intent_under_the_stu4_url_makes_the_setting_early() -> None:
    order = fb.medication_request(status="active")
    order["extension"] = [
        {
            "url": MCODE + "mcode-procedure-intent",
            "valueCodeableConcept": {
                "coding": [
                    {"system": fb.SNOMED, "code": "373808002", "display": "Curative - procedure intent"}
                ]
            },
        }
    ]
    assert record_of([order]).setting == "early"
    assert record_of([fb.medication_request(status="active")]).setting == "unknown"


def test_other_extensions_are_no_intent() -> None:
    dose = fb.administration("tdm1", datetime(2026, 3, 2, 9, tzinfo=UTC))
    dose["extension"] = [
        {
            "url": MCODE + "mcode-normalization-basis",
            "valueCodeableConcept": {"coding": [{"system": fb.SNOMED, "code": "363804004"}]},
        }
    ]
    (event,) = record_of([dose]).therapy
    assert event.intents == frozenset()


# --- stage group IV / M1 as metastatic evidence (codes.md, Conditions) ------------------------------

STAGED = datetime(2026, 10, 26, 9, tzinfo=UTC)


def staged_breast(kind: str, value: object, when: datetime | None = STAGED, **kwargs: Any) -> list[dict]:
    """A breast cancer and a stage Observation whose focus is that breast cancer (mCODE)."""
    cancer = fb.breast_cancer()
    return [cancer, fb.staging(kind, value, when, focus=cancer, **kwargs)]


STAGE_IV = [
    fb.stage_value(fb.AJCC, "4", "Stage IV"),
    fb.stage_value(fb.AJCC, "IV", "IV"),
    fb.stage_value(fb.SNOMED, "1222837003", "American Joint Committee on Cancer stage IV (qualifier value)"),
    fb.stage_value(fb.SNOMED, "258228008", "Stage 4 (qualifier value)"),
    {"text": "Stage IV"},
    {"text": "stage 4"},
    "IV",
]
NOT_STAGE_IV = [
    fb.stage_value(fb.AJCC, "3A", "Stage IIIA"),
    fb.stage_value(
        fb.SNOMED, "1222806003", "American Joint Committee on Cancer stage IIIC (qualifier value)"
    ),
    {"text": "Stage IIIC"},
    {"text": "IVA"},  # not a breast stage; in other cancers IVA is not always M1
    # coded IIIC: the code decides, whatever was typed beside it
    {**fb.stage_value(fb.SNOMED, "1222806003", "AJCC stage IIIC"), "text": "Stage IV"},
    "III",
]


@pytest.mark.parametrize("kind", ["clinical-stage", "pathological-stage"])
@pytest.mark.parametrize("value", STAGE_IV)
def test_stage_group_iv_is_metastatic_dated_by_its_effective_date(kind: str, value: object) -> None:
    record = record_of(staged_breast(kind, value))
    assert record.setting == "metastatic"
    assert record.metastatic_since == STAGED


@pytest.mark.parametrize("kind", ["clinical-stage", "pathological-stage"])
@pytest.mark.parametrize("value", NOT_STAGE_IV)
def test_stage_group_below_iv_is_not_metastatic(kind: str, value: object) -> None:
    record = record_of(staged_breast(kind, value))
    assert record.setting == "early"
    assert record.metastatic_since is None


@pytest.mark.parametrize(
    ("kind", "value", "metastatic"),
    [
        (
            "clinical-m",
            fb.stage_value(fb.SNOMED, "1229903009", "American Joint Committee on Cancer cM1"),
            True,
        ),
        (
            "pathological-m",
            fb.stage_value(fb.SNOMED, "1229916009", "American Joint Committee on Cancer pM1"),
            True,
        ),
        ("clinical-m", fb.stage_value(fb.AJCC, "cM1", "cM1"), True),
        ("clinical-m", {"text": "M1"}, True),
        (
            "clinical-m",
            fb.stage_value(fb.SNOMED, "1229901006", "American Joint Committee on Cancer cM0"),
            False,
        ),
        ("clinical-m", fb.stage_value(fb.AJCC, "cM0", "cM0"), False),
        ("clinical-m", {"text": "cM0(i+)"}, False),  # tumour cells in blood or marrow: M0 in AJCC 8
        ("clinical-m", {"text": "M0"}, False),
        # an M1 value under a stage-group code is not stage IV: each code is read for its own value
        (
            "clinical-stage",
            fb.stage_value(fb.SNOMED, "1229903009", "American Joint Committee on Cancer cM1"),
            False,
        ),
    ],
)
def test_m1_is_metastatic_and_m0_is_not(kind: str, value: dict, metastatic: bool) -> None:
    record = record_of(staged_breast(kind, value))
    assert (record.setting, record.metastatic_since) == (
        ("metastatic", STAGED) if metastatic else ("early", None)
    )


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error", "cancelled", "registered"])
def test_stage_iv_that_is_not_final_is_ignored(status: str) -> None:
    history = staged_breast("clinical-stage", fb.stage_value(fb.AJCC, "4", "Stage IV"), status=status)
    assert record_of(history).setting == "early"


def test_stage_iv_without_a_value_is_no_evidence() -> None:
    cancer, stage = staged_breast("clinical-stage", {})
    del stage["valueCodeableConcept"]
    stage["dataAbsentReason"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"}]
    }
    assert record_of([cancer, stage]).setting == "early"


def test_undated_stage_iv_is_metastatic_but_gives_no_date() -> None:
    record = record_of(staged_breast("clinical-stage", fb.stage_value(fb.AJCC, "4", "IV"), None))
    assert (record.setting, record.metastatic_since) == ("metastatic", None)


def test_the_earliest_metastatic_evidence_dates_the_disease() -> None:
    liver = fb.liver_metastases(onset=datetime(2026, 11, 2, tzinfo=UTC))
    staged = staged_breast("clinical-m", fb.stage_value(fb.AJCC, "cM1", "cM1"))
    assert record_of([*staged, liver]).metastatic_since == STAGED
    earlier = fb.liver_metastases(onset=datetime(2025, 3, 14, tzinfo=UTC))
    assert record_of([*staged, earlier]).metastatic_since == datetime(2025, 3, 14, tzinfo=UTC)


def primary_cancer(onset: datetime, summary: dict) -> dict:
    """mCODE PrimaryCancerCondition with its stage summary (and the staging it rests on)."""
    condition = fb.breast_cancer(onset=onset)
    condition["stage"] = [
        {
            "summary": summary,
            "assessment": [{"reference": "Observation/tnm-clinical-stage-group"}],
            "type": {"coding": [{"system": fb.SNOMED, "code": "897275008"}]},
        }
    ]
    return condition


def test_condition_stage_summary_iv_is_metastatic_but_not_dated_by_the_diagnosis() -> None:
    # Diagnosed 2023, restaged IV later: the onset is no date for the metastases, else the adjuvant
    # therapy in between would read as therapy for metastatic disease.
    summary = fb.stage_value(
        fb.SNOMED, "1222837003", "American Joint Committee on Cancer stage IV (qualifier value)"
    )
    record = record_of([primary_cancer(datetime(2023, 5, 2, tzinfo=UTC), summary)])
    assert (record.setting, record.metastatic_since) == ("metastatic", None)


def test_condition_stage_summary_below_iv_is_not_metastatic() -> None:
    summary = fb.stage_value(
        fb.SNOMED, "1222806003", "American Joint Committee on Cancer stage IIIC (qualifier value)"
    )
    assert record_of([primary_cancer(datetime(2023, 5, 2, tzinfo=UTC), summary)]).setting == "early"


def test_stage_iv_on_a_refuted_condition_is_ignored() -> None:
    condition = primary_cancer(datetime(2023, 5, 2, tzinfo=UTC), {"text": "Stage IV"})
    condition["verificationStatus"]["coding"][0]["code"] = "refuted"
    assert record_of([condition]).setting == "unknown"


# --- which cancer a stage stages -------------------------------------------------------------------
#
# A stage IV is metastatic *breast* cancer only when it stages the breast cancer. A KATHERINE
# patient whose Hodgkin lymphoma was stage IV in 2003 was read as metastatic: the EBC tables gave
# way to the laxer MBC ones and her 14-cycle adjuvant order drew fixed-duration-stop.

STAGE_IV_VALUE = fb.stage_value(fb.AJCC, "4", "Stage IV")


def test_another_cancers_condition_stage_iv_leaves_the_breast_cancer_early() -> None:
    record = record_of([fb.breast_cancer(), fb.hodgkin_lymphoma(stage_iv=True)])
    assert (record.setting, record.metastatic_since, record.unlinked_stages) == ("early", None, ())


@pytest.mark.parametrize(
    "reference",
    ["Condition/{id}", "https://ehr.example.org/fhir/Condition/{id}", "Condition/{id}/_history/3"],
)
@pytest.mark.parametrize("kind", ["clinical-stage", "pathological-stage", "clinical-m", "pathological-m"])
def test_another_cancers_focused_stage_iv_leaves_the_breast_cancer_early(kind: str, reference: str) -> None:
    lymphoma = fb.hodgkin_lymphoma()
    value = STAGE_IV_VALUE if kind.endswith("stage") else fb.stage_value(fb.AJCC, "cM1", "cM1")
    stage = fb.staging(
        kind, value, datetime(2003, 3, 1, tzinfo=UTC), focus=reference.format(id=lymphoma["id"])
    )
    record = record_of([fb.breast_cancer(), lymphoma, stage])
    # Not unlinked either: it is the lymphoma's stage, nothing the clinician needs to be told.
    assert (record.setting, record.metastatic_since, record.unlinked_stages) == ("early", None, ())


@pytest.mark.parametrize(
    "reference",
    [
        "Condition/{id}",
        "https://ehr.example.org/fhir/Condition/{id}",
        "Condition/{id}/_history/2",
        " Condition/{id} ",
    ],
)
def test_breast_cancers_focused_stage_iv_is_metastatic(reference: str) -> None:
    cancer = fb.breast_cancer()
    stage = fb.staging("clinical-stage", STAGE_IV_VALUE, STAGED, focus=reference.format(id=cancer["id"]))
    record = record_of([cancer, fb.hodgkin_lymphoma(), stage])
    assert (record.setting, record.metastatic_since) == ("metastatic", STAGED)


def test_a_stage_iv_focused_on_a_contained_breast_cancer_is_metastatic() -> None:
    stage = fb.staging("pathological-stage", STAGE_IV_VALUE, STAGED, focus="#primary")
    stage["contained"] = [{**fb.breast_cancer(), "id": "primary"}]
    assert record_of([fb.breast_cancer(), stage]).setting == "metastatic"
    stage["contained"] = [{**fb.hodgkin_lymphoma(), "id": "primary"}]
    assert record_of([fb.breast_cancer(), stage]).setting == "early"


def test_a_breast_cancer_treated_years_ago_and_restaged_iv_is_metastatic() -> None:
    # A recurrence staged against the original primary, resolved since its adjuvant therapy.
    cancer = fb.breast_cancer(onset=datetime(2016, 4, 1, tzinfo=UTC), clinical_status="resolved")
    stage = fb.staging("clinical-stage", STAGE_IV_VALUE, STAGED, focus=cancer)
    assert (record_of([cancer, stage]).setting, record_of([cancer, stage]).metastatic_since) == (
        "metastatic",
        STAGED,
    )


def test_a_stage_cited_by_a_conditions_stage_assessment_stages_that_condition() -> None:
    stage = fb.staging("clinical-stage", STAGE_IV_VALUE, STAGED)
    cited = {
        "summary": {"text": "see assessment"},
        "assessment": [{"reference": f"Observation/{stage['id']}"}],
    }
    breast = {**fb.breast_cancer(), "stage": [cited]}
    record = record_of([breast, stage])
    assert (record.setting, record.metastatic_since) == ("metastatic", STAGED)
    lymphoma = {**fb.hodgkin_lymphoma(), "stage": [cited]}
    record = record_of([fb.breast_cancer(), lymphoma, stage])
    assert (record.setting, record.unlinked_stages) == ("early", ())


def test_an_m1_stages_the_cancer_of_the_stage_group_listing_it() -> None:
    # mCODE: the T, N and M categories are hasMember of the stage group, whose focus is the cancer.
    m1 = fb.staging("clinical-m", fb.stage_value(fb.AJCC, "cM1", "cM1"), STAGED)
    for cancer, setting in ((fb.breast_cancer(), "metastatic"), (fb.hodgkin_lymphoma(), "early")):
        group = fb.staging("clinical-stage", fb.stage_value(fb.AJCC, "3C", "IIIC"), STAGED, focus=cancer)
        group["hasMember"] = [{"reference": f"Observation/{m1['id']}"}]
        record = record_of([fb.breast_cancer(), cancer, group, m1])
        assert (record.setting, record.unlinked_stages) == (setting, ())


def test_a_stage_iv_linked_to_both_is_the_breast_cancers() -> None:
    cancer, lymphoma = fb.breast_cancer(), fb.hodgkin_lymphoma()
    stage = fb.staging("clinical-stage", STAGE_IV_VALUE, STAGED, focus=lymphoma)
    stage["focus"].append({"reference": f"Condition/{cancer['id']}"})
    assert record_of([cancer, lymphoma, stage]).setting == "metastatic"


@pytest.mark.parametrize(
    "focus",
    [
        None,  # no focus at all, as many EHRs send it
        "Condition/not-on-record",
        "BodyStructure/tumour-1",
        "#missing",
        "urn:uuid:3a1f0b8e-5a4e-4a9b-9f7e-0c2d51b1e6d4",
    ],
)
def test_an_unlinked_stage_iv_is_not_used_but_kept(focus: str | None) -> None:
    stage = fb.staging("clinical-stage", STAGE_IV_VALUE, STAGED, focus=focus)
    record = record_of([fb.breast_cancer(), stage])
    assert (record.setting, record.metastatic_since) == ("early", None)
    assert record.unlinked_stages == (("stage group IV", STAGED),)


def test_a_stage_iv_focused_on_a_refuted_breast_cancer_is_unlinked() -> None:
    refuted = fb.breast_cancer(verification="refuted")
    stage = fb.staging("pathological-m", fb.stage_value(fb.AJCC, "pM1", "pM1"), None, focus=refuted)
    record = record_of([fb.breast_cancer(), refuted, stage])
    assert (record.setting, record.unlinked_stages) == ("early", (("M1", None),))


def test_unlinked_stages_are_oldest_first_undated_last() -> None:
    stages = [
        fb.staging("clinical-m", fb.stage_value(fb.AJCC, "cM1", "cM1"), None),
        fb.staging("clinical-stage", STAGE_IV_VALUE, STAGED),
        fb.staging("pathological-stage", STAGE_IV_VALUE, datetime(2025, 1, 7, tzinfo=UTC)),
        fb.staging("pathological-stage", fb.stage_value(fb.AJCC, "3A", "IIIA"), STAGED),  # not IV
    ]
    assert record_of([fb.breast_cancer(), *stages]).unlinked_stages == (
        ("stage group IV", datetime(2025, 1, 7, tzinfo=UTC)),
        ("stage group IV", STAGED),
        ("M1", None),
    )
