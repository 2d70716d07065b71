"""record.notes_on: a newest result that cannot be read, behind an older readable one the rules
read instead, is said in the data-unavailable card (never passed over in silence)."""

from __future__ import annotations

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
