"""thrombocytopenia-hold: KADCYLA USPI §2.2 Table 5 (MBC) and the EBC table (unverified)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import cards
from service.clinical import knowledge
from service.clinical.record import ALL_CATEGORIES, MEDICATION_HISTORY
from service.clinical.rules.thrombocytopenia import RULE, evaluate
from tests import fhir_builders as fb
from tests.unit.label_a_helpers import render
from tests.unit.label_b_helpers import ORDER_ID, context, early, metastatic, unknown
from tests.unit.rule_helpers import on_order, on_patient_view, rule_ids

CARDS_DIR = Path(__file__).resolve().parents[2] / "cards"


def platelets(value: float, unit: str = "10*3/uL", **kwargs) -> dict:
    return fb.observation("platelets", value, fb.ago(days=1), unit=unit, **kwargs)


@pytest.mark.parametrize(
    ("value", "unit", "fires"),
    [
        (75, "10*3/uL", False),
        (74.999, "10*3/uL", True),
        (75000, "/mm3", False),
        (74999, "/mm3", True),
        (75000, "/uL", False),
        (74999, "/uL", True),
        (75, "10*9/L", False),
        (74.999, "10*9/L", True),
        (75000, "10*6/L", False),  # 10*6/L = 1/uL: read 1000x too low, a normal count looked critical
        (74999, "10*6/L", True),
    ],
)
@pytest.mark.parametrize("setting", [metastatic, early, unknown])
def test_hold_boundary_at_75000_in_every_unit(value: float, unit: str, fires: bool, setting) -> None:
    findings = evaluate(context(setting(platelets(value, unit))))
    assert bool(findings) is fires
    if fires:
        assert findings[0].indicator == "critical"
        assert findings[0].order_ref == f"MedicationRequest/{ORDER_ID}"


def test_mbc_grade3_cites_the_confirmed_table_and_same_dose() -> None:
    (finding,) = evaluate(context(metastatic(platelets(49.999))))
    assert finding.variant == "hold"
    assert finding.sources == ("mbc.thrombocytopenia",)
    assert finding.facts["grade"] == " (Grade 3)"
    assert "same dose" in finding.facts["instruction"]
    assert finding.facts["platelets"] == "49,999"


def test_mbc_grade2_is_held_as_unverified_service_policy() -> None:
    (finding,) = evaluate(context(metastatic(platelets(50))))
    assert finding.sources == ("mbc.thrombocytopenia-grade2",)
    assert finding.facts["grade"] == " (Grade 2)"


@pytest.mark.parametrize(("value", "variant"), [(25, "hold"), (24.999, "reduce")])
@pytest.mark.parametrize("setting", [metastatic, early])
def test_below_25000_also_reduces_one_level(value: float, variant: str, setting) -> None:
    (finding,) = evaluate(context(setting(platelets(value))))
    assert finding.variant == variant
    assert ("reduce one dose level" in finding.facts["instruction"]) is (variant == "reduce")


def test_early_setting_uses_the_unverified_ebc_table() -> None:
    (finding,) = evaluate(context(early(platelets(60))))
    assert finding.facts["grade"] == ""  # the EBC rows name no grade: none is invented
    assert finding.sources == ("ebc.thrombocytopenia",)
    assert "EBC" in finding.facts["setting"]


def test_unknown_setting_applies_both_tables() -> None:
    (finding,) = evaluate(context(unknown(platelets(60))))
    assert set(finding.sources) == {"mbc.thrombocytopenia-grade2", "ebc.thrombocytopenia"}
    assert "stricter" in finding.facts["setting"]


def test_latest_count_decides_recovered_is_silent() -> None:
    old_low = fb.observation("platelets", 40, fb.ago(days=2))
    recovered = fb.observation("platelets", 80, fb.ago(hours=3))
    assert evaluate(context(metastatic(old_low, recovered))) == []


# Given 43 days ago, before every older result below: a held-over result counts only when drawn
# after the last T-DM1 dose (before it, the dose given since acted on it; before any T-DM1 the
# label's rows do not apply).
PRIOR_DOSE = fb.administration("tdm1", fb.ago(days=43))


def test_count_beyond_the_hold_lookback_is_not_graded() -> None:
    # Older than policy.hold-lookback (42 days, unverified): left to platelets-missing.
    stale_low = fb.observation("platelets", 40, fb.ago(days=42, hours=1))
    assert evaluate(context(metastatic(PRIOR_DOSE, stale_low))) == []
    assert evaluate(context(metastatic(PRIOR_DOSE, fb.observation("platelets", 40, fb.ago(days=42)))))


# A hold lasts until a count shows recovery: the newest readable count older than the lab window,
# with nothing newer, still holds the dose (the bug: it was graded only inside the window).
CBC_DRAFT = fb.draft_lab_order("58410-2", "cbc-draft")


def old_count(value: float, days: float = 4, unit: str = "10*3/uL") -> dict:
    return fb.observation("platelets", value, fb.ago(days=days), unit=unit)


@pytest.mark.parametrize("cbc_drafted", [False, True])
def test_old_low_count_with_nothing_newer_still_holds(cbc_drafted: bool) -> None:
    drafts = [fb.medication_request(rid=ORDER_ID), *([CBC_DRAFT] if cbc_drafted else [])]
    (finding,) = evaluate(context(metastatic(PRIOR_DOSE, old_count(30)), drafts=drafts))
    assert finding.indicator == "critical" and finding.variant == "hold"
    assert finding.facts["platelets"] == "30,000" and finding.facts["date"] == "2026-11-21"
    held = finding.facts["held_over"]
    assert "from 2026-11-21 (4 days before the dose)" in held
    assert "no newer platelet count shows recovery" in held
    assert "until a new platelet count shows platelets ≥ 75,000/mm3" in held  # the row's own words
    assert "42 days" in held and "unverified" in held
    assert finding.facts["none_newer"] == " (4 days before the dose, none newer)"
    assert finding.sources == ("mbc.thrombocytopenia", "policy.hold-lookback")


@pytest.mark.parametrize("cbc_drafted", [False, True])
def test_old_low_count_holds_through_the_engine_whatever_is_drafted(cbc_drafted: bool) -> None:
    drafts = [fb.medication_request(), *([CBC_DRAFT] if cbc_drafted else [])]
    ids = rule_ids(on_order(drafts, metastatic(PRIOR_DOSE, old_count(30))))
    assert "thrombocytopenia-hold" in ids
    assert ("platelets-missing" in ids) is not cbc_drafted  # the CBC answers that card, not the hold


@pytest.mark.parametrize(
    ("value", "unit", "fires"),
    [(75000, "/mm3", False), (74999, "/mm3", True), (75, "10*3/uL", False), (74.999, "10*3/uL", True)],
)
@pytest.mark.parametrize("setting", [metastatic, early, unknown])
def test_old_count_boundary_at_75000(value: float, unit: str, fires: bool, setting) -> None:
    findings = evaluate(context(setting(PRIOR_DOSE, old_count(value, unit=unit))))
    assert bool(findings) is fires
    if fires:
        assert findings[0].indicator == "critical" and "policy.hold-lookback" in findings[0].sources


def test_old_low_count_in_early_breast_cancer_uses_the_ebc_table() -> None:
    (finding,) = evaluate(context(early(PRIOR_DOSE, old_count(60))))
    assert finding.sources == ("ebc.thrombocytopenia", "policy.hold-lookback")


def test_old_grade4_count_says_reduce() -> None:
    (finding,) = evaluate(context(metastatic(PRIOR_DOSE, old_count(20, days=10))))
    assert finding.variant == "reduce" and "reduce one dose level" in finding.facts["instruction"]


@pytest.mark.parametrize("newer_days", [1, 3])  # in the window
def test_old_low_count_then_a_newer_normal_count_is_no_hold(newer_days: float) -> None:
    assert evaluate(context(metastatic(PRIOR_DOSE, old_count(30))))  # alone it holds
    assert evaluate(context(metastatic(PRIOR_DOSE, old_count(30), old_count(80, days=newer_days)))) == []


def test_old_low_count_then_a_newer_normal_count_before_the_window_is_no_hold() -> None:
    assert evaluate(context(metastatic(PRIOR_DOSE, old_count(30, days=10), old_count(150, days=5)))) == []


def test_old_normal_count_after_an_older_low_one_is_no_hold() -> None:
    # The newest count speaks: recovered, so no hold. The Grade 4 count since the last dose still
    # costs a level ("then reduce one dose level"), whether or not the recovery is in the window.
    findings = evaluate(context(metastatic(PRIOR_DOSE, old_count(20, days=20), old_count(200, days=6))))
    assert [f.variant for f in findings] == ["resume-reduced"]
    # A Grade 3 count resumes at the same dose: nothing to say once recovered.
    assert evaluate(context(metastatic(PRIOR_DOSE, old_count(40, days=20), old_count(200, days=6)))) == []


@pytest.mark.parametrize("unit", ["10*3/mL", "bogus"])
def test_old_count_in_an_unreadable_unit_is_not_fired_on(unit: str) -> None:
    obs = old_count(30)
    obs["valueQuantity"] = {"value": 30, "unit": unit, "code": unit}
    assert evaluate(context(metastatic(PRIOR_DOSE, obs))) == []
    assert evaluate(context(metastatic(PRIOR_DOSE, old_count(30))))  # the same count, readable, holds


def test_old_count_with_a_garbled_effective_date_is_not_fired_on() -> None:
    lab = fb.platelet_count(30, effective="garbage", issued=fb.ago(days=4))
    assert evaluate(context(metastatic(PRIOR_DOSE, lab))) == []
    readable = fb.platelet_count(30, effective=fb.ago(days=4), issued=fb.ago(days=4))
    assert evaluate(context(metastatic(PRIOR_DOSE, readable)))[0].variant == "hold"


def test_newer_unreadable_count_does_not_hide_nor_clear_an_older_low_one() -> None:
    # The newest readable count holds; the newer one we cannot read is named, never used.
    newer = old_count(200, days=1)
    newer["valueQuantity"] = {"value": 200, "unit": "bogus", "code": "bogus"}
    (finding,) = evaluate(context(metastatic(PRIOR_DOSE, old_count(30), newer)))
    assert "could not be read" in finding.facts["unreadable"]


def test_count_in_the_window_is_graded_as_before() -> None:
    (finding,) = evaluate(context(metastatic(PRIOR_DOSE, platelets(40))))
    assert finding.facts["held_over"] == "" and finding.facts["none_newer"] == ""
    assert finding.sources == ("mbc.thrombocytopenia",)


def test_old_low_count_on_patient_view_when_due() -> None:
    due = metastatic(fb.administration("tdm1", fb.ago(days=20)), old_count(30, days=6))
    (finding,) = evaluate(context(due, hook="patient-view"))
    assert finding.variant == "hold" and "6 days before the dose" in finding.facts["held_over"]


@pytest.mark.parametrize("days", [4, 41])
def test_old_count_cards_render_within_the_summary_limit(days: float) -> None:
    contents = cards.load(CARDS_DIR)
    for value in (30, 20):  # hold, reduce
        (finding,) = evaluate(context(unknown(PRIOR_DOSE, old_count(value, days=days))))
        card = cards.render(finding, contents, knowledge.default())
        assert len(card["summary"]) < 140 and "none newer" in card["summary"], card["summary"]
        assert "awaiting clinical review" in card["detail"]


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error", "cancelled", "registered"])
def test_non_final_results_are_ignored(status: str) -> None:
    assert evaluate(context(metastatic(platelets(20, status=status)))) == []


def test_a_newer_preliminary_count_neither_clears_nor_replaces_a_final_low_one() -> None:
    # The final 40,000 of two days ago is graded; the preliminary 210,000 since is named, not read.
    low = fb.observation("platelets", 40, fb.ago(days=2))
    newer = fb.observation("platelets", 210, fb.ago(hours=2), status="preliminary")
    (finding,) = evaluate(context(metastatic(low, newer)))
    assert finding.variant == "hold"
    assert (finding.facts["platelets"], finding.facts["date"]) == ("40,000", "2026-11-23")
    assert finding.facts["unreadable"] == (
        " A newer count (2026-11-25) could not be read: preliminary, not final: 210,000/mm3 on 2026-11-25."
    )


def test_a_held_over_count_behind_an_unreadable_newer_one_does_not_say_none_newer() -> None:
    """The summary said "none newer" beside the detail's "a newer count ... could not be read"."""
    newer = fb.observation("platelets", 210, fb.ago(hours=2), status="preliminary")
    (finding,) = evaluate(context(metastatic(PRIOR_DOSE, old_count(30), newer)))
    assert finding.facts["none_newer"] == " (4 days before the dose, newer unreadable)"
    assert "A newer count (2026-11-25) could not be read" in finding.facts["unreadable"]
    summary = render(finding)["summary"]
    assert "newer unreadable" in summary and not summary.endswith("…")


def test_amended_result_counts() -> None:
    assert evaluate(context(metastatic(platelets(20, status="amended"))))


@pytest.mark.parametrize("unit", ["10*3/mL", "", "g/L"])
def test_unreadable_unit_is_never_graded(unit: str) -> None:
    obs = platelets(20)
    obs["valueQuantity"] = {"value": 20, **({"unit": unit, "code": unit} if unit else {})}
    assert evaluate(context(metastatic(obs))) == []


@pytest.mark.parametrize(("value", "variant"), [(40000, "hold"), (25000, "hold"), (24999, "reduce")])
def test_grade4_boundary_in_10e6_per_l(value: float, variant: str) -> None:
    (finding,) = evaluate(context(metastatic(platelets(value, "10*6/L"))))
    assert finding.variant == variant


def test_newer_unreadable_count_is_mentioned_not_used() -> None:
    low = fb.observation("platelets", 40, fb.ago(days=2))
    newer = fb.observation("platelets", 90, fb.ago(hours=2))
    newer["valueQuantity"] = {"value": 90, "unit": "bogus", "code": "bogus"}
    (finding,) = evaluate(context(metastatic(low, newer)))
    assert "could not be read" in finding.facts["unreadable"]


def test_suggests_removing_the_draft() -> None:
    (finding,) = evaluate(context(metastatic(platelets(40))))
    (action,) = finding.suggestions[0].actions
    assert action.type == "delete" and action.resource_id == f"MedicationRequest/{ORDER_ID}"


def test_patient_view_runs_only_when_a_dose_is_due() -> None:
    assert RULE.on_patient_view and RULE.only_when_due
    due = metastatic(fb.administration("tdm1", fb.ago(days=20)), platelets(40))
    assert "thrombocytopenia-hold" in rule_ids(on_patient_view(due))
    not_due = metastatic(fb.administration("tdm1", fb.ago(days=5)), platelets(40))
    assert "thrombocytopenia-hold" not in rule_ids(on_patient_view(not_due))


def test_patient_view_card_has_no_order_and_no_suggestion() -> None:
    (finding,) = evaluate(context(metastatic(platelets(40)), hook="patient-view"))
    assert finding.order_ref is None and finding.suggestions == ()


def after_dose(*labs: dict, dose: float = 3.6) -> list[dict]:
    return metastatic(fb.administration("tdm1", fb.ago(days=21), dose=dose), *labs)


@pytest.mark.parametrize(
    ("nadir", "ordered", "fires"), [(24.999, 3.6, True), (24.999, 3.0, False), (25, 3.6, False)]
)
def test_grade4_since_the_last_dose_requires_a_lower_level_after_recovery(
    nadir: float, ordered: float, fires: bool
) -> None:
    history = after_dose(fb.observation("platelets", nadir, fb.ago(days=10)), platelets(80))
    drafts = [fb.medication_request(rid=ORDER_ID, dose=ordered)]
    findings = evaluate(context(history, drafts=drafts))
    assert bool(findings) is fires
    if fires:
        (finding,) = findings
        assert finding.variant == "resume-reduced" and finding.indicator == "critical"
        assert finding.facts["last_dose"].startswith("3.6 mg/kg on")
        assert "dosing.reduction-ladder" in finding.sources


def test_grade4_before_the_last_dose_is_history() -> None:
    history = metastatic(
        fb.observation("platelets", 20, fb.ago(days=30)),
        fb.administration("tdm1", fb.ago(days=21), dose=3.0),
        platelets(80),
    )
    assert evaluate(context(history)) == []


def test_mg_order_is_compared_in_mg_per_kg() -> None:
    history = after_dose(
        fb.observation("weight", 70, fb.ago(days=1)),
        fb.observation("platelets", 20, fb.ago(days=10)),
        platelets(80),
    )
    fires = evaluate(context(history, drafts=[fb.medication_request(rid=ORDER_ID, dose=252, unit="mg")]))
    assert fires and fires[0].variant == "resume-reduced"  # 252 mg / 70 kg = 3.6 mg/kg
    reduced = evaluate(context(history, drafts=[fb.medication_request(rid=ORDER_ID, dose=210, unit="mg")]))
    assert reduced == []  # 3.0 mg/kg


def test_unreadable_dose_is_said_not_guessed() -> None:
    history = after_dose(fb.observation("platelets", 20, fb.ago(days=10)), platelets(80))
    ctx = context(history, drafts=[fb.medication_request(rid=ORDER_ID, dose=250, unit="mg")])  # no weight
    assert evaluate(ctx) == []
    assert any("one dose level lower" in note and "check the dose level" in note for note in ctx.notes)


def test_current_grade3_after_an_earlier_grade4_says_reduce() -> None:
    history = after_dose(fb.observation("platelets", 20, fb.ago(days=10)), platelets(40))
    (finding,) = evaluate(context(history))
    assert finding.variant == "reduce"
    assert "Since the last T-DM1 dose the count was 20,000/mm3" in finding.facts["earlier"]


def test_recovered_count_on_patient_view_gives_no_card() -> None:
    history = after_dose(fb.observation("platelets", 20, fb.ago(days=10)), platelets(80))
    assert evaluate(context(history, hook="patient-view")) == []


def test_without_medication_history_the_since_last_dose_check_is_said() -> None:
    history = after_dose(fb.observation("platelets", 20, fb.ago(days=10)), platelets(80))
    ctx = context(history, available=ALL_CATEGORIES - MEDICATION_HISTORY)
    assert evaluate(ctx) == []
    assert any("medication history could not be read" in note for note in ctx.notes)


def test_low_count_with_a_garbled_effective_date_is_never_graded() -> None:
    # 40,000/mm3 released yesterday: a hold if it were a pre-dose count, but when was it drawn?
    lab = fb.platelet_count(40, effective="garbage", issued=fb.ago(days=1))
    assert evaluate(context(metastatic(lab))) == []
    readable = fb.platelet_count(40, effective=fb.ago(days=1), issued=fb.ago(days=1))
    assert evaluate(context(metastatic(readable)))[0].indicator == "critical"


def test_old_low_count_before_the_last_dose_was_acted_on() -> None:
    """20,000/mm3, then a dose (already reduced) three days later: that count was dealt with when the
    dose was given, and holding now would ask for a second reduction for one event."""
    history = metastatic(old_count(20, days=24), fb.administration("tdm1", fb.ago(days=21), dose=3.0))
    assert evaluate(context(history)) == []
    # The same count after that dose still holds.
    assert evaluate(context(metastatic(fb.administration("tdm1", fb.ago(days=25)), old_count(20, days=24))))


def test_old_low_count_before_any_tdm1_is_the_missing_cards() -> None:
    """A first dose: a count from earlier chemotherapy is not a T-DM1 toxicity with a dose level to
    lose; platelets-missing asks for a count and shows this one."""
    history = metastatic(old_count(20, days=30))
    assert evaluate(context(history)) == []
    findings = on_order(fb.medication_request(), history)
    assert "thrombocytopenia-hold" not in rule_ids(findings)
    assert "platelets-missing" in rule_ids(findings)


def test_old_low_count_on_a_record_with_t_dm1_orders_only_still_holds() -> None:
    """Many prefetches carry T-DM1 as orders, no administrations: a count drawn after the standing
    order began is on T-DM1, and nothing newer shows recovery."""
    standing = fb.medication_request(status="active", authored=fb.ago(days=60))
    (finding,) = evaluate(context(metastatic(standing, old_count(20, days=5))))
    assert finding.variant == "reduce" and "policy.hold-lookback" in finding.sources
    # Drawn before the order began (within the 42-day look-back): not on T-DM1, the missing card's.
    recent = fb.medication_request(status="active", authored=fb.ago(days=20))
    assert evaluate(context(metastatic(recent, old_count(20, days=25)))) == []
    assert evaluate(context(metastatic(recent, old_count(20, days=15))))
