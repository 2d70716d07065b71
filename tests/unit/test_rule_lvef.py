"""lvef-monitoring (Boxed Warning, §5.2) and lvef-decline (USPI §2.2 Table 4 MBC; EBC table unverified)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.app import params_from
from service.clinical.record import ALL_CATEGORIES, CONDITIONS, notes_on
from service.clinical.rules import lvef_decline, lvef_monitoring
from service.settings import Settings
from tests import fhir_builders as fb
from tests.unit.label_b_helpers import context, early, metastatic, unknown
from tests.unit.rule_helpers import on_order, on_patient_view, only, rule_ids


def lvef(value: float, days_ago: float, **kwargs) -> dict:
    return fb.observation("lvef", value, fb.ago(days=days_ago), **kwargs)


def first_dose(days_ago: float = 100) -> dict:
    return fb.administration("tdm1", fb.ago(days=days_ago))


# --- lvef-monitoring -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "fires"), [(timedelta(days=90), False), (timedelta(days=90, seconds=1), True)]
)
def test_interval_boundary_is_90_days(age: timedelta, fires: bool) -> None:
    history = metastatic(first_dose(), fb.observation("lvef", 60, fb.NOW - age))
    findings = lvef_monitoring.evaluate(context(history))
    assert bool(findings) is fires
    if fires:
        assert findings[0].variant == "interval" and findings[0].indicator == "warning"
        assert "60% on" in findings[0].facts["last"]


def test_no_lvef_before_the_first_dose() -> None:
    (finding,) = lvef_monitoring.evaluate(context(metastatic()))
    assert finding.variant == "before-first-dose"
    assert finding.facts["last"] == "none on record"
    assert finding.sources == ("monitoring.lvef",)


def test_suggests_a_valid_echo_service_request() -> None:
    (finding,) = lvef_monitoring.evaluate(context(metastatic()))
    (action,) = finding.suggestions[0].actions
    echo = action.resource
    assert action.type == "create" and echo["resourceType"] == "ServiceRequest"
    assert echo["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "8806-2",
        "display": "Left ventricular Ejection fraction by 2D echo",
    }
    assert echo["subject"] == {"reference": "Patient/pat-1"} and echo["status"] == "draft"


def test_accepted_echo_in_draft_orders_does_not_refire() -> None:
    (finding,) = lvef_monitoring.evaluate(context(metastatic()))
    echo = finding.suggestions[0].actions[0].resource
    drafts = [fb.medication_request(rid="tdm1-draft"), echo]
    assert lvef_monitoring.evaluate(context(metastatic(), drafts=drafts)) == []


def test_interval_is_configurable() -> None:
    params = params_from(Settings(dev=True, lvef_interval_days=30))
    history = metastatic(first_dose(), lvef(60, 40))
    assert lvef_monitoring.evaluate(context(history, params=params))
    assert not lvef_monitoring.evaluate(context(history))


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error"])
def test_non_final_lvef_does_not_count(status: str) -> None:
    assert lvef_monitoring.evaluate(context(metastatic(lvef(60, 2, status=status))))


def test_a_preliminary_lvef_does_not_count_and_is_named() -> None:
    history = metastatic(first_dose(), lvef(38, 2, status="preliminary"))
    (finding,) = lvef_monitoring.evaluate(context(history))
    assert finding.facts["unreadable"] == (
        " (1 LVEF result(s) could not be read: preliminary, not final: 38 % on 2026-11-23)"
    )


def test_unreadable_lvef_does_not_count_and_is_said() -> None:
    bad = lvef(0.6, 2, unit="1")  # a fraction, not %: not guessed
    (finding,) = lvef_monitoring.evaluate(context(metastatic(bad)))
    assert "could not be read" in finding.facts["unreadable"]


def test_lvef_dated_only_by_issued_beside_an_unreadable_effective_period_does_not_count() -> None:
    # An echo report released 2 days ago whose study date could not be read: not a recent LVEF.
    echo = lvef(60, 2)
    del echo["effectiveDateTime"]
    echo["effectivePeriod"] = {"start": "2026-11-23T25:00:00Z"}
    (finding,) = lvef_monitoring.evaluate(context(metastatic(echo)))
    assert finding.facts["unreadable"] == (
        " (1 LVEF result(s) could not be read: effective date unreadable; issued 2026-11-23)"
    )
    echo["effectivePeriod"] = {"start": fb.iso(fb.ago(days=2))}
    assert lvef_monitoring.evaluate(context(metastatic(echo))) == []


def test_monitoring_is_not_run_on_patient_view() -> None:
    assert not lvef_monitoring.RULE.on_patient_view
    assert "lvef-monitoring" not in rule_ids(on_patient_view(metastatic(first_dose(20))))


# --- lvef-decline ---------------------------------------------------------------------------


def decline(history: list[dict]) -> tuple[str | None, dict]:
    findings = lvef_decline.evaluate(context(history))
    if not findings:
        return None, {}
    (finding,) = findings
    assert finding.indicator == "critical"
    return finding.variant, finding.facts


@pytest.mark.parametrize(("value", "fires"), [(40, False), (39, True), (39.9, True)])
def test_mbc_below_40_holds_without_a_fall(value: float, fires: bool) -> None:
    variant, facts = decline(metastatic(lvef(value + 5, 120), first_dose(), lvef(value, 2)))
    assert (variant == "hold") is fires
    if fires:
        assert "repeat LVEF within 3 weeks" in facts["instruction"]


@pytest.mark.parametrize(
    ("baseline", "value", "fires"),
    [
        (55, 45, True),  # 45 is in 40-45, fall 10
        (55, 46, False),  # 46 is above 45
        (54, 45, False),  # fall 9
        (50, 40, True),  # 40 is in the band, fall 10
        (49, 40, False),  # fall 9
        (60, 46, False),  # fall 14 but LVEF > 45
    ],
)
def test_mbc_40_to_45_band_needs_a_fall_of_10(baseline: float, value: float, fires: bool) -> None:
    variant, facts = decline(metastatic(lvef(baseline, 120), first_dose(), lvef(value, 2)))
    assert (variant == "hold") is fires
    if fires:
        assert facts["fall"] == f"{baseline - value:g} points"
        assert facts["baseline"].startswith(f"{baseline:g}% on")


@pytest.mark.parametrize(
    ("baseline", "value", "fires"),
    [
        (50, 45, False),  # EBC: 45 is not < 45; fall 5
        (50, 44.9, True),  # < 45
        (59, 49, True),  # 45 to < 50, fall 10
        (58, 49, False),  # fall 9
        (60, 50, False),  # 50: continue whatever the fall
    ],
)
def test_ebc_table(baseline: float, value: float, fires: bool) -> None:
    findings = lvef_decline.evaluate(context(early(lvef(baseline, 120), first_dose(), lvef(value, 2))))
    assert bool(findings) is fires
    if fires:
        assert findings[0].sources == ("ebc.lvef",)


def test_unknown_setting_takes_the_stricter_table() -> None:
    (finding,) = lvef_decline.evaluate(context(unknown(lvef(50, 120), first_dose(), lvef(42, 2))))
    assert finding.sources == ("ebc.lvef",)  # MBC: 42 with fall 8 continues; EBC: < 45 holds


def test_baseline_is_the_last_lvef_before_the_first_dose() -> None:
    history = metastatic(lvef(70, 300), lvef(55, 120), first_dose(100), lvef(50, 50), lvef(45, 2))
    variant, facts = decline(history)
    assert variant == "hold" and facts["fall"] == "10 points"  # from 55, not 70 nor 50


def test_without_pre_treatment_lvef_the_earliest_is_baseline() -> None:
    history = metastatic(first_dose(100), lvef(56, 60), lvef(45, 2))
    variant, facts = decline(history)
    assert variant == "hold" and facts["fall"] == "11 points"


def test_single_post_treatment_lvef_in_the_fall_band_cannot_be_graded() -> None:
    ctx = context(metastatic(first_dose(100), lvef(43, 2)))
    assert lvef_decline.evaluate(ctx) == []
    assert any("cannot be graded" in note for note in ctx.notes)


def test_single_post_treatment_lvef_below_40_still_holds() -> None:
    assert decline(metastatic(first_dose(100), lvef(35, 2)))[0] == "hold"


def test_before_first_dose_the_lvef_is_its_own_baseline() -> None:
    variant, _ = decline(metastatic(lvef(60, 200), lvef(42, 2)))
    assert variant is None  # 42% not started: no fall from itself (caution population, not a hold)


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error"])
def test_non_final_lvef_is_ignored(status: str) -> None:
    assert decline(metastatic(lvef(60, 120), first_dose(), lvef(30, 2, status=status)))[0] is None


def test_a_preliminary_fall_is_not_graded_but_named_behind_the_final_lvef() -> None:
    history = metastatic(lvef(60, 120), first_dose(), lvef(58, 10), lvef(30, 2, status="preliminary"))
    ctx = context(history)
    assert lvef_decline.evaluate(ctx) == []  # 58 % read, not the preliminary 30 %
    assert notes_on(ctx.record) == [
        "The newest LVEF (2026-11-23) could not be read (preliminary, not final: 30 % on 2026-11-23); "
        "the checks read the older one of 2026-11-15 (58 %). Check the newer result before the dose."
    ]


def test_unreadable_lvef_is_not_graded() -> None:
    assert decline(metastatic(lvef(60, 120), first_dose(), lvef(0.3, 2, unit="1")))[0] is None


def heart_failure(**kwargs) -> dict:
    return fb.condition("42343007", "Congestive heart failure", **kwargs)


@pytest.mark.parametrize(("status", "fires"), [("active", True), ("resolved", False)])
def test_heart_failure_discontinues(status: str, fires: bool) -> None:
    variant, _ = decline(metastatic(lvef(60, 2), heart_failure(clinical_status=status)))
    assert (variant == "heart-failure") is fires


def test_heart_failure_icd10_code() -> None:
    hf = fb.condition("I50.22", "Chronic systolic heart failure", system=fb.ICD10)
    findings = lvef_decline.evaluate(context(early(hf)))
    assert findings[0].variant == "heart-failure" and findings[0].sources == ("ebc.lvef",)


def test_problem_list_unavailable_is_said() -> None:
    ctx = context(metastatic(lvef(60, 2)), available=ALL_CATEGORIES - {CONDITIONS})
    assert lvef_decline.evaluate(ctx) == []
    assert any("Heart failure check not applied" in n for n in ctx.notes)


def test_suggests_removing_the_draft() -> None:
    (finding,) = lvef_decline.evaluate(context(metastatic(first_dose(), lvef(30, 2))))
    assert finding.suggestions[0].actions[0].type == "delete"


def test_decline_runs_on_patient_view_only_when_due() -> None:
    assert lvef_decline.RULE.on_patient_view and lvef_decline.RULE.only_when_due
    due = metastatic(lvef(60, 120), first_dose(20), lvef(35, 2))
    assert "lvef-decline" in rule_ids(on_patient_view(due))
    not_due = metastatic(lvef(60, 120), first_dose(5), lvef(35, 2))
    assert "lvef-decline" not in rule_ids(on_patient_view(not_due))


def test_engine_fires_both_lvef_rules_independently() -> None:
    history = metastatic(*fb.fresh_labs(), lvef(60, 300), first_dose(200), lvef(35, 100))
    findings = on_order(fb.medication_request(), history)
    assert only(findings, "lvef-decline").indicator == "critical"
    assert only(findings, "lvef-monitoring").variant == "interval"


@pytest.mark.parametrize(
    ("setting", "baseline", "previous", "latest", "variant"),
    [
        (metastatic, 60, 38, 39, "confirmed"),  # < 40 confirmed on repeat
        (metastatic, 60, 41, 39, "confirmed"),  # 41 with a 19-point fall was a hold too
        (metastatic, 50, 41, 39, "hold"),  # 41 with a 9-point fall was not a hold
        (metastatic, 55, 45, 45, "confirmed"),  # not recovered to within 10 points
        (metastatic, 55, 45, 46, None),  # recovered above 45
        (early, 60, 48, 47, "confirmed"),  # EBC: 45 to < 50 with a fall >= 10, twice
        (early, 57, 48, 47, "hold"),  # previous fall 9
    ],
)
def test_hold_level_on_two_consecutive_on_treatment_lvefs_discontinues(
    setting, baseline: float, previous: float, latest: float, variant: str | None
) -> None:
    history = setting(lvef(baseline, 120), first_dose(100), lvef(previous, 25), lvef(latest, 2))
    findings = lvef_decline.evaluate(context(history))
    assert (findings[0].variant if findings else None) == variant
    if variant == "confirmed":
        assert findings[0].facts["previous"].startswith(f"{previous:g}% on")


def test_a_pre_treatment_low_lvef_does_not_confirm() -> None:
    # The LVEF before the latest is the baseline itself, taken before T-DM1: nothing to confirm.
    variant, _ = decline(metastatic(lvef(38, 120), first_dose(100), lvef(35, 2)))
    assert variant == "hold"
