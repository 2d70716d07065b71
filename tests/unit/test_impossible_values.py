"""Values no measurement can have (a 0 kg weight, a negative platelet count, an LVEF above 100 %, a
ULN of 0) through the whole engine: each is unreadable and named, never divided by or graded."""

from __future__ import annotations

from typing import Any

import pytest

from service.clinical import record, terminology
from tests import fhir_builders as fb
from tests.unit.rule_helpers import on_order, on_patient_view, only, rule_ids


def history_with(kind: str, *results: dict[str, Any]) -> list[dict[str, Any]]:
    """metastatic_history with its own result of `kind` replaced by `results`."""
    code = fb.LABS[kind][0]
    kept = [
        r
        for r in fb.metastatic_history()
        if not (r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == code)
    ]
    return [*kept, *results]


def test_a_weight_of_zero_names_the_weight_on_every_hook() -> None:
    history = history_with("weight", fb.observation("weight", 0, fb.ago(days=1)))
    finding = only(on_order(fb.medication_request(dose=252, unit="mg"), history), "dose-check")
    assert "0 kg is not a body weight" in finding.facts["unreadable_weight"]
    doses = [fb.administration("tdm1", fb.ago(days=10 + 21 * i), dose=252, unit="mg") for i in range(2)]
    assert "treatment-summary" in rule_ids(on_patient_view([*history, *doses]))


def test_a_negative_platelet_count_is_no_grade_4() -> None:
    history = history_with("platelets", fb.observation("platelets", -5, fb.ago(days=1)))
    findings = on_order(fb.medication_request(), history)
    assert "thrombocytopenia-hold" not in rule_ids(findings)
    missing = only(findings, "platelets-missing")
    assert "-5,000/mm3 is not a platelet count" in missing.facts["unreadable"]


@pytest.mark.parametrize("lvef", [550, -5])
def test_an_impossible_lvef_is_no_lvef(lvef: float) -> None:
    history = history_with("lvef", fb.observation("lvef", lvef, fb.ago(days=3)))
    findings = on_order(fb.medication_request(), history)
    assert "lvef-decline" not in rule_ids(findings)
    assert "lvef-monitoring" in rule_ids(findings)


def test_an_impossible_newest_lvef_behind_a_readable_one_is_said() -> None:
    history = [*fb.metastatic_history(), fb.observation("lvef", 550, fb.ago(days=3))]
    [note] = record.notes_on(record.build("pat-1", history, terminology.default()))
    assert note.startswith(
        "The newest LVEF (2026-11-22) could not be read (550 % is not an LVEF (0 to 100 %))"
    )


@pytest.mark.parametrize("high", [0, -40])
def test_a_liver_test_with_a_uln_of_zero_or_less_is_not_graded(high: float) -> None:
    history = history_with("alt", fb.observation("alt", 200, fb.ago(days=1), uln=high))
    findings = on_order(fb.medication_request(), history)
    assert "hepatotoxicity" not in rule_ids(findings)
    assert "is not above 0" in str(only(findings, "data-unavailable").facts)
