"""Results reported as a bound (valueQuantity.comparator): read on the worse side, never silently.

record.BOUND_WORSE_WHEN: a bound on the safe side (bilirubin "<0.2 mg/dL", platelets ">150") is graded
at the bound; a strict bound on the unsafe side (LVEF "<40 %", platelets "<75 10*3/uL", ALT ">200")
just beyond it, readable, and said in the data-unavailable card, since the actual value may be in a
more severe row; an LVEF bound is said either way (a ">70 %" baseline understates the fall). A bounded
weight, and any "ad" or unknown comparator, is unreadable. Each test runs the rules as the hook does:
notes from record.notes_on reach the data-unavailable card.
"""

from __future__ import annotations

from typing import Any

import pytest

from service.clinical import engine, record, terminology
from service.clinical.findings import Finding
from service.clinical.rules import label_tables as tables
from tests import fhir_builders as fb
from tests.unit.label_a_helpers import metastatic as metastatic_with_weight
from tests.unit.label_a_helpers import render
from tests.unit.label_b_helpers import metastatic
from tests.unit.rule_helpers import PARAMS, orders_of


def bounded(kind: str, value: float, comparator: str | None, days: float = 1, **kwargs: Any) -> dict:
    resource = fb.observation(kind, value, fb.ago(days=days), **kwargs)
    if comparator is not None:
        resource["valueQuantity"]["comparator"] = comparator
    return resource


def labs_except(loinc: str) -> list[dict]:
    """Fresh pre-dose labs without the one of this LOINC code, which the test sends as a bound."""
    return [r for r in fb.fresh_labs() if loinc not in str(r["code"])]


def run(history: list[dict], draft: dict | None = None) -> tuple[list[Finding], list[str]]:
    """(findings, data-unavailable notes) of an order-sign call, as service/api/hooks.py makes them."""
    built = record.build("pat-1", history, terminology.default())
    drafts = [draft or fb.medication_request()]
    findings = engine.evaluate_orders(
        "order-sign",
        built,
        orders_of(drafts, built.medications),
        fb.NOW,
        PARAMS,
        notes=record.notes_on(built),
    )
    for finding in findings:
        render(finding)  # every fact the card needs is there
    notes = [n for f in findings if f.rule_id == "data-unavailable" for n in f.facts["notes"]]
    return findings, notes


def finding(findings: list[Finding], rule_id: str) -> Finding | None:
    matching = [f for f in findings if f.rule_id == rule_id]
    assert len(matching) <= 1
    return matching[0] if matching else None


def bound_notes(notes: list[str]) -> list[str]:
    return [n for n in notes if "reported as a bound" in n]


def on_tdm1(*extra: dict) -> list[dict]:
    """Metastatic, on T-DM1 since 100 days ago, fresh normal labs unless overridden by `extra`."""
    return metastatic(
        fb.administration("tdm1", fb.ago(days=100)), fb.observation("weight", 70, fb.ago(days=2)), *extra
    )


# --- LVEF -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("comparator", "holds"), [("<", True), (None, False)])
def test_lvef_below_40_is_below_40_exact_40_is_not(comparator: str | None, holds: bool) -> None:
    # The repro: baseline 48 %, newest "<40 %" was read as 40 %, a fall of 8: continue.
    history = on_tdm1(*fb.fresh_labs(), bounded("lvef", 48, None, days=120), bounded("lvef", 40, comparator))
    findings, notes = run(history)
    lvef = finding(findings, "lvef-decline")
    assert (lvef is not None and lvef.variant == "hold") is holds
    if holds:
        assert lvef is not None
        assert lvef.facts["lvef"] == "<40"  # the bound as reported
        assert lvef.facts["fall"] == "at least 8 points"
        assert "LVEF <40% on 2026-11-24" in render(lvef)["summary"]
        [note] = bound_notes(notes)
        assert note.startswith("LVEF reported as a bound (<40 %) on 2026-11-24: graded as just below 40 %")
        assert "the actual value may be lower" in note
    else:
        assert bound_notes(notes) == []


def test_lvef_up_to_45_is_the_bound_itself_and_said() -> None:
    # "<=45" with a fall of 10 from 55: the 40-45 % band with a fall of 10 points holds.
    history = on_tdm1(*fb.fresh_labs(), bounded("lvef", 55, None, days=120), bounded("lvef", 45, "<="))
    findings, notes = run(history)
    lvef = finding(findings, "lvef-decline")
    assert lvef is not None and lvef.variant == "hold"
    [note] = bound_notes(notes)
    assert "graded as 45 %; the actual value may be lower" in note


def test_lvef_above_70_as_baseline_is_graded_at_70_and_said() -> None:
    # Baseline ">70" (read 70), newest 62: a fall of at least 8, not graded as a hold, but the
    # actual baseline may be higher and the fall 10 or more: said.
    history = on_tdm1(*fb.fresh_labs(), bounded("lvef", 70, ">", days=120), bounded("lvef", 62, None))
    built = record.build("pat-1", history, terminology.default())
    baseline = built.results_of("lvef")[-1]
    assert (record.reported(baseline), baseline.comparator, baseline.readable) == (70.0, ">", True)
    assert baseline.value is not None and 70 < baseline.value < 70.001  # just above, as reported
    findings, notes = run(history)
    assert finding(findings, "lvef-decline") is None
    [note] = bound_notes(notes)
    assert note.startswith("LVEF reported as a bound (>70 %) on 2026-07-28: graded as 70 %")
    assert "a fall from it, as the baseline, may be larger than graded" in note


def test_an_older_bound_no_rule_reads_is_not_said() -> None:
    # Before T-DM1 began and not the baseline (a newer LVEF before the first dose is): no note.
    history = on_tdm1(
        *fb.fresh_labs(),
        bounded("lvef", 70, ">", days=400),
        bounded("lvef", 60, None, days=120),
        bounded("lvef", 58, None),
    )
    assert bound_notes(run(history)[1]) == []


# --- platelets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("comparator", "holds"), [("<", True), (None, False)])
def test_platelets_below_75_hold_exact_75_does_not(comparator: str | None, holds: bool) -> None:
    labs = labs_except("777-3")
    history = on_tdm1(*labs, bounded("platelets", 75, comparator))
    findings, notes = run(history)
    hold = finding(findings, "thrombocytopenia-hold")
    assert (hold is not None) is holds
    if hold is not None:
        assert hold.variant == "hold" and hold.facts["platelets"] == "<75,000"
        assert "platelets <75,000/mm3" in render(hold)["summary"]
        [note] = bound_notes(notes)
        assert note.startswith("Platelet count reported as a bound (<75,000/mm3)")
        assert "graded as just below 75,000/mm3" in note


def test_platelets_below_20_still_hold_with_a_note() -> None:
    # Certainly Grade 4 (< 25,000): the hold fires; the note says the count may be lower still.
    labs = labs_except("777-3")
    findings, notes = run(on_tdm1(*labs, bounded("platelets", 20, "<")))
    hold = finding(findings, "thrombocytopenia-hold")
    assert hold is not None and hold.variant == "reduce"
    [note] = bound_notes(notes)
    assert "(<20,000/mm3)" in note and "the actual value may be lower" in note


@pytest.mark.parametrize("comparator", [">", ">="])
def test_platelets_above_150_are_readable_at_the_bound_without_a_note(comparator: str) -> None:
    labs = labs_except("777-3")
    history = on_tdm1(*labs, bounded("platelets", 150, comparator))
    (result,) = record.build("pat-1", history, terminology.default()).results_of("platelets")
    assert (record.reported(result), result.readable) == (150_000.0, True)
    findings, notes = run(history)
    assert finding(findings, "thrombocytopenia-hold") is None
    assert finding(findings, "platelets-missing") is None
    assert bound_notes(notes) == []


# --- liver tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("comparator", "holds"), [(">", True), (None, False)])
def test_alt_above_200_is_above_5_uln_exact_200_is_not(comparator: str | None, holds: bool) -> None:
    labs = labs_except("1742-6")
    findings, notes = run(on_tdm1(*labs, bounded("alt", 200, comparator)))  # ULN 40: 5 x ULN
    liver = finding(findings, "hepatotoxicity")
    assert (liver is not None and liver.variant == "hold") is holds
    assert len(bound_notes(notes)) == (1 if holds else 0)
    if liver is not None:
        assert any(reason.startswith("ALT >200 U/L") for reason in liver.facts["reasons"])


def test_alt_above_1000_discontinues_with_a_note() -> None:
    labs = labs_except("1742-6")
    findings, notes = run(on_tdm1(*labs, bounded("alt", 1000, ">")))
    liver = finding(findings, "hepatotoxicity")
    assert liver is not None and liver.variant == "discontinue"
    [note] = bound_notes(notes)
    assert note.startswith("ALT reported as a bound (>1000 U/L)")
    assert "graded as just above 1000 U/L; the actual value may be higher" in note


@pytest.mark.parametrize("comparator", ["<", "<="])
def test_bilirubin_below_detection_is_readable_with_no_missing_card_and_no_note(comparator: str) -> None:
    labs = labs_except("1975-2")
    history = on_tdm1(*labs, bounded("bilirubin", 0.2, comparator))
    (result,) = record.build("pat-1", history, terminology.default()).results_of("bilirubin")
    assert (record.reported(result), result.readable, result.comparator) == (0.2, True, comparator)
    findings, notes = run(history)
    assert finding(findings, "liver-tests-missing") is None
    assert finding(findings, "hepatotoxicity") is None
    assert bound_notes(notes) == [] and not [n for n in notes if "bilirubin" in n]


# --- unreadable bounds ------------------------------------------------------------------------------


def test_a_bounded_weight_is_unreadable_and_named_on_dose_check_for_an_mg_order() -> None:
    weight = bounded("weight", 70, "<")
    history = metastatic_with_weight(*fb.fresh_labs(), weight, weight=70, weight_days=25)
    (newest, _older) = record.build("pat-1", history, terminology.default()).results_of("weight")
    assert newest.value is None and newest.problem == "reported as a bound (<70 kg), not as a measured value"
    findings, _notes = run(history, fb.medication_request(dose=252, unit="mg"))
    dose = finding(findings, "dose-check")
    assert dose is not None and dose.variant == "weight-unreadable"  # not 3.6 mg/kg of last month's 70 kg
    assert "reported as a bound (<70 kg)" in dose.facts["unreadable_weight"]


@pytest.mark.parametrize("kind", ["platelets", "alt", "ast", "bilirubin", "lvef", "weight"])
@pytest.mark.parametrize("comparator", ["ad", "~", "≈", 5])
def test_ad_or_an_unknown_comparator_is_unreadable(kind: str, comparator: Any) -> None:
    history = [bounded(kind, 50, comparator)]
    (result,) = record.build("pat-1", history, terminology.default()).results_of(kind)
    assert result.value is None and not result.readable and result.measured
    if comparator == "ad":
        assert result.problem == "reported with comparator 'ad' (sufficient to achieve), not as a value"
    else:
        assert "not recognised" in result.problem


def test_an_ad_platelet_count_behind_a_readable_one_is_named() -> None:
    # The existing machinery: the newest count that cannot be read is said, not passed over.
    history = on_tdm1(*fb.fresh_labs(when=fb.ago(days=2)), bounded("platelets", 80, "ad", days=0.5))
    _findings, notes = run(history)
    assert any(n.startswith("The newest platelet count") and "comparator 'ad'" in n for n in notes), notes


def test_below_zero_is_no_measurement_of_any_kind() -> None:
    (result,) = record.build("pat-1", [bounded("platelets", 0, "<")], terminology.default()).results_of(
        "platelets"
    )
    assert result.value is None and result.problem == "reported as below 0, which no platelet count is"


def test_the_nudge_is_too_small_to_show() -> None:
    built = record.build(
        "pat-1",
        [bounded("lvef", 40, "<"), bounded("platelets", 75, "<"), bounded("alt", 200, ">")],
        terminology.default(),
    )
    lvef, platelets, alt = (built.results_of(k)[0] for k in ("lvef", "platelets", "alt"))
    assert lvef.value is not None and 39.99 < lvef.value < 40
    assert platelets.value is not None and 74_999 < platelets.value < 75_000
    assert alt.value is not None and 200 < alt.value < 200.01
    assert [tables.shown(r) for r in (lvef, platelets, alt)] == ["<40", "<75,000", ">200"]


# --- review: strict bounds on the safe side, the fall between bounds, the bound as shown ------------


def test_lvef_above_45_is_above_45_not_in_the_40_to_45_hold_row() -> None:
    # ">45 %" read as 45 % fell in "40% to <= 45% with a fall >= 10": a hold for an LVEF above 45 %.
    history = on_tdm1(*fb.fresh_labs(), bounded("lvef", 60, None, days=120), bounded("lvef", 45, ">"))
    findings, _notes = run(history)
    assert finding(findings, "lvef-decline") is None
    # Not strict: 45 % is in the row, and holds.
    history = on_tdm1(*fb.fresh_labs(), bounded("lvef", 60, None, days=120), bounded("lvef", 45, ">="))
    lvef = finding(run(history)[0], "lvef-decline")
    assert lvef is not None and lvef.variant == "hold" and lvef.facts["fall"] == "at most 15 points"


@pytest.mark.parametrize(("comparator", "holds"), [("<", False), ("<=", True), (None, True)])
def test_a_fall_from_a_baseline_below_55_is_under_10_points(comparator: str | None, holds: bool) -> None:
    # Baseline "<55 %", LVEF 45 %: a fall of less than 10 points (continue); the nudged baseline
    # 54.99994 rounded back to a fall of 10.0 and held, the card saying "at most 10 points".
    history = on_tdm1(*fb.fresh_labs(), bounded("lvef", 55, comparator, days=120), bounded("lvef", 45, None))
    lvef = finding(run(history)[0], "lvef-decline")
    assert (lvef is not None and lvef.variant == "hold") is holds
    if lvef is not None:
        assert lvef.facts["fall"] == ("at most 10 points" if comparator else "10 points")


@pytest.mark.parametrize(
    ("kind", "value", "comparator", "shown"),
    [
        ("lvef", 60, "<", "<60"),
        ("alt", 60, ">", ">60"),
        ("bilirubin", 5.5, ">", ">5.5"),
        ("lvef", 55, ">", ">55"),
    ],
)
def test_the_bound_is_shown_as_reported_not_as_graded(
    kind: str, value: float, comparator: str, shown: str
) -> None:
    # Six significant digits showed the nudge of a bound of 50 or more: "<59.9999 %", ">60.0001 U/L".
    (result,) = record.build("pat-1", [bounded(kind, value, comparator)], terminology.default()).results_of(
        kind
    )
    assert tables.shown(result) == shown
    note = record.bound_note(result)
    assert f"({shown} " in note and "9999" not in note and "0001" not in note


def test_an_lvef_below_its_bound_is_said_both_as_a_value_and_as_a_baseline() -> None:
    """A lower LVEF is worse as the current value, but a lower baseline means a smaller fall."""
    from service.clinical.record import Result, bound_note

    note = bound_note(Result("lvef", fb.NOW, "Observation/e1", 44.99996, "%", comparator="<"))
    assert "in a more severe row" in note and "as the baseline, a fall from it may be smaller" in note
    platelets = bound_note(Result("platelets", fb.NOW, "Observation/p1", 49_999.95, "/mm3", comparator="<"))
    assert "more severe row" in platelets and "baseline" not in platelets
