"""record.notes_on: a newest result that cannot be read, behind an older readable one the rules
read instead, is said in the data-unavailable card (never passed over in silence)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.clinical import record, terminology
from tests import fhir_builders as fb


def _notes(*extra: dict) -> list[str]:
    history = [*fb.metastatic_history(), *extra]  # normal labs a day old, weight, LVEF
    return record.notes_on(record.build("pat-1", history, terminology.default()))


@pytest.mark.parametrize(
    ("kind", "value", "name"),
    [("platelets", 30.0, "platelet count"), ("alt", 400.0, "ALT"), ("bilirubin", 5.0, "total bilirubin")],
)
def test_a_newer_unreadable_result_behind_a_readable_one_is_said(kind: str, value: float, name: str) -> None:
    newer = fb.observation(kind, value, fb.ago(hours=3), unit="furlongs")
    [note] = [n for n in _notes(newer) if n.startswith("The newest")]
    assert note.startswith(f"The newest {name} (2026-11-25) could not be read (unit 'furlongs'")
    assert "the checks read the older one of 2026-11-24" in note


@pytest.mark.parametrize(
    ("kind", "value", "name", "shown"),
    [
        ("platelets", 40.0, "platelet count", "40,000/mm3"),
        ("bilirubin", 5.0, "total bilirubin", "5 mg/dL (ULN 1.2 mg/dL)"),
    ],
)
def test_a_newer_preliminary_result_behind_a_final_one_is_said(
    kind: str, value: float, name: str, shown: str
) -> None:
    newer = fb.observation(kind, value, fb.ago(hours=3), status="preliminary")
    [note] = [n for n in _notes(newer) if n.startswith("The newest")]
    assert note.startswith(
        f"The newest {name} (2026-11-25) could not be read (preliminary, not final: {shown} on 2026-11-25)"
    )
    assert "the checks read the older one of 2026-11-24" in note


def test_a_preliminary_result_of_the_same_sample_as_the_final_one_is_not_said() -> None:
    """A lab sending the preliminary and the final result of one sample as two Observations: both
    drawn at once, so the preliminary one is no newer result, in whichever order they come."""
    history = [r for r in fb.metastatic_history() if "777-3" not in str(r.get("code"))]
    final = fb.observation("platelets", 210, fb.ago(hours=3))
    preliminary = fb.observation("platelets", 190, fb.ago(hours=3), status="preliminary")
    for results in ([preliminary, final], [final, preliminary]):
        notes = record.notes_on(record.build("pat-1", [*history, *results], terminology.default()))
        assert not [n for n in notes if n.startswith("The newest")]


def test_the_value_the_checks_read_is_shown() -> None:
    newer = fb.observation("platelets", 30.0, fb.ago(hours=3), unit="furlongs")
    assert any("(210,000/mm3)" in n for n in _notes(newer))


def test_two_unreadable_newer_results_are_counted() -> None:
    newer = [fb.observation("alt", 400.0, fb.ago(hours=h), unit="furlongs") for h in (3, 6)]
    [note] = [n for n in _notes(*newer) if n.startswith("The newest")]
    assert "nor 1 more after the one used" in note


def test_an_older_unreadable_result_is_not_said() -> None:
    older = fb.observation("platelets", 30.0, fb.ago(days=5), unit="furlongs")
    assert not [n for n in _notes(older) if n.startswith("The newest")]


def test_readable_results_only_give_no_note() -> None:
    assert _notes() == []


def test_only_unreadable_results_are_left_to_the_missing_lab_card() -> None:
    history = [r for r in fb.metastatic_history() if r["resourceType"] != "Observation"]
    history.append(fb.observation("platelets", 30.0, fb.ago(hours=3), unit="furlongs"))
    notes = record.notes_on(record.build("pat-1", history, terminology.default()))
    assert not [n for n in notes if n.startswith("The newest")]


def test_an_unreadable_newest_weight_is_left_to_dose_check() -> None:
    newer = fb.observation("weight", 110.0, fb.ago(hours=3), unit="pounds")
    assert not [n for n in _notes(newer) if n.startswith("The newest")]


def test_a_misdated_newest_result_is_said_once_as_misdated() -> None:
    """Its own note says it (effective date unreadable, with its value): not twice."""
    misdated = fb.platelet_count(40, effective="garbage", issued=fb.ago(hours=3))
    notes = _notes(misdated)
    assert [n for n in notes if "effective date that could not be read" in n]
    assert not [n for n in notes if n.startswith("The newest")]


# --- a stage IV / M1 linked to no condition: not used for the setting, and said -------------------

STAGE_IV = fb.stage_value(fb.AJCC, "4", "Stage IV")


def _stage_notes(history: list[dict]) -> list[str]:
    notes = record.notes_on(record.build("pat-1", history, terminology.default()))
    return [n for n in notes if "stage IV / M1" in n]


def test_an_unlinked_stage_iv_in_early_breast_cancer_is_said_with_its_date() -> None:
    stage = fb.staging("clinical-stage", STAGE_IV, fb.ago(days=30))
    [note] = _stage_notes(fb.katherine_history(fb.hodgkin_lymphoma(), stage))
    assert note.startswith("1 stage IV / M1 result(s) (stage group IV on 2026-10-26) linked to no condition")
    assert "were not used to decide the setting" in note
    assert "the checks read the setting as early breast cancer" in note


def test_unlinked_stages_without_a_date_are_said_too() -> None:
    stages = [
        fb.staging("clinical-m", fb.stage_value(fb.AJCC, "cM1", "cM1"), None),
        fb.staging("pathological-stage", STAGE_IV, fb.ago(days=400)),
    ]
    [note] = _stage_notes(fb.katherine_history(*stages))
    assert note.startswith("2 stage IV / M1 result(s) (stage group IV on 2025-10-21, M1 on an unknown date)")


def test_another_cancers_stage_iv_is_not_said() -> None:
    lymphoma = fb.hodgkin_lymphoma(stage_iv=True)
    stage = fb.staging("clinical-stage", STAGE_IV, fb.ago(days=8000), focus=lymphoma)
    assert _stage_notes(fb.katherine_history(lymphoma, stage)) == []


def test_the_breast_cancers_own_stage_iv_is_not_said() -> None:
    history = fb.katherine_history()
    stage = fb.staging("clinical-stage", STAGE_IV, fb.ago(days=30), focus=history[0])
    assert _stage_notes([*history, stage]) == []


def test_an_unlinked_stage_iv_is_said_in_metastatic_disease_only_where_it_would_date_it_earlier() -> None:
    # metastatic_history: liver metastases since 2025-03-14. A later or undated stage IV changes
    # nothing; an earlier one would have moved the metastatic date (and with it the lines of therapy).
    later = fb.staging("clinical-stage", STAGE_IV, fb.ago(days=30))
    undated = fb.staging("clinical-stage", STAGE_IV, None)
    assert [n for n in _notes(later, undated) if "stage IV / M1" in n] == []
    earlier = fb.staging("clinical-stage", STAGE_IV, datetime(2024, 12, 2, tzinfo=UTC))
    [note] = [n for n in _notes(later, earlier) if "stage IV / M1" in n]
    assert "(stage group IV on 2024-12-02)" in note and "read the setting as metastatic" in note


@pytest.mark.parametrize("kind", ["platelets", "alt", "lvef"])
def test_a_newer_result_recorded_as_not_measured_is_not_said(kind: str) -> None:
    # Nothing was measured: the older readable result is the newest there is.
    assert _notes(fb.absent_observation(kind, fb.ago(hours=3))) == []


def test_a_not_measured_result_with_an_unreadable_date_is_not_said() -> None:
    absent = fb.absent_observation("platelets", fb.ago(hours=3))
    absent["effectiveDateTime"] = "someday"
    assert _notes(absent) == []


def test_a_withheld_newer_result_is_said() -> None:
    [note] = _notes(fb.absent_observation("platelets", fb.ago(hours=3), "masked"))
    assert note.startswith("The newest platelet count (2026-11-25) could not be read (no numeric value")
