"""lvef-monitoring's "repeat" variant: the label's "continue, repeat LVEF within 3 weeks" rows.

KADCYLA USPI §2.2 Table 4 (MBC, mbc.lvef): LVEF 40% to 45% with a fall < 10 points from baseline:
continue treatment, repeat LVEF within 3 weeks. EBC table (ebc.lvef, unverified): 45% to < 50% likewise.
Without this, the 90-day interval let that repeat slip by two months with no card at all.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.app import params_from
from service.clinical.knowledge import KnowledgeError
from service.clinical.rules import label_tables, lvef_decline, lvef_monitoring
from service.settings import Settings
from tests import fhir_builders as fb
from tests.unit.label_a_helpers import render
from tests.unit.label_b_helpers import context, early, metastatic, unknown
from tests.unit.rule_helpers import on_order, on_patient_view, only


def lvef_at(value: float, age: timedelta, **kwargs) -> dict:
    return fb.observation("lvef", value, fb.NOW - age, **kwargs)


def lvef(value: float, days_ago: float, **kwargs) -> dict:
    return lvef_at(value, timedelta(days=days_ago), **kwargs)


def first_dose(days_ago: float = 100) -> dict:
    return fb.administration("tdm1", fb.ago(days=days_ago))


def repeat_findings(history: list[dict], **kwargs) -> list:
    return [f for f in lvef_monitoring.evaluate(context(history, **kwargs)) if f.variant == "repeat"]


@pytest.mark.parametrize(
    ("age", "fires"),
    [(timedelta(days=21), False), (timedelta(days=21, seconds=1), True), (timedelta(days=60), True)],
)
def test_mbc_continue_row_asks_for_a_repeat_within_21_days(age: timedelta, fires: bool) -> None:
    # Baseline 50 %, now 42 %: a fall of 8 points, "continue, repeat LVEF within 3 weeks".
    history = metastatic(lvef(50, 120), first_dose(), lvef_at(42, age))
    findings = repeat_findings(history)
    assert bool(findings) is fires
    if fires:
        (finding,) = findings
        assert finding.indicator == "warning"
        assert finding.facts["lvef"] == "42"
        assert finding.facts["repeat_days"] == 21
        assert "repeat LVEF within 3 weeks" in finding.facts["instruction"]
        assert finding.sources == ("monitoring.lvef", "mbc.lvef")
        (suggestion,) = finding.suggestions
        assert suggestion.actions[0].resource["code"]["coding"][0]["code"] == "8806-2"


@pytest.mark.parametrize(("value", "fires"), [(45, True), (45.1, False), (40, True), (39.9, False)])
def test_mbc_band_edges(value: float, fires: bool) -> None:
    # 45.1 is "> 45 %, continue" with no repeat; 39.9 holds (lvef-decline's card says repeat).
    history = metastatic(lvef(value + 5, 120), first_dose(), lvef(value, 30))
    assert bool(repeat_findings(history)) is fires


@pytest.mark.parametrize(("baseline", "fires"), [(51.9, True), (52, False)])
def test_a_fall_of_10_holds_instead(baseline: float, fires: bool) -> None:
    # 42 % after 52 % is a fall of 10: the hold row applies, lvef-decline carries the repeat.
    history = metastatic(lvef(baseline, 120), first_dose(), lvef(42, 30))
    assert bool(repeat_findings(history)) is fires
    held = lvef_decline.evaluate(context(history))
    assert bool(held) is not fires


def test_no_repeat_card_when_a_hold_row_applies() -> None:
    history = metastatic(lvef(60, 120), first_dose(), lvef(35, 30))
    assert repeat_findings(history) == []
    assert lvef_decline.evaluate(context(history))[0].variant == "hold"


def test_a_newer_lvef_is_the_repeat() -> None:
    history = metastatic(lvef(50, 120), first_dose(), lvef(42, 40), lvef(55, 10))
    assert repeat_findings(history) == []


def test_a_newer_unreadable_lvef_is_not_the_repeat_and_is_named() -> None:
    history = metastatic(lvef(50, 120), first_dose(), lvef(42, 40), lvef(0.55, 10, unit="1"))
    (finding,) = repeat_findings(history)
    assert "could not be read" in finding.facts["unreadable"]


def test_before_the_first_dose_no_repeat_is_asked() -> None:
    # The table modifies a course under way; a borderline LVEF before it is not this rule's row.
    assert repeat_findings(metastatic(lvef(42, 30))) == []


def test_lvef_on_the_first_dose_day_counts_as_baseline() -> None:
    assert repeat_findings(metastatic(first_dose(30), lvef(42, 30))) == []


def test_without_a_baseline_the_band_still_asks_for_the_repeat() -> None:
    # 43 % as the only LVEF on T-DM1: hold or continue depends on the fall; both rows repeat.
    (finding,) = repeat_findings(metastatic(first_dose(100), lvef(43, 30)))
    assert "fall from the baseline" in finding.facts["instruction"]


@pytest.mark.parametrize(("value", "fires"), [(47, True), (50, False), (44.9, False)])
def test_ebc_band(value: float, fires: bool) -> None:
    history = early(lvef(value + 5, 120), first_dose(), lvef(value, 30))
    findings = repeat_findings(history)
    assert bool(findings) is fires
    if fires:
        assert findings[0].sources == ("monitoring.lvef", "ebc.lvef")


def test_unknown_setting_takes_the_ebc_repeat() -> None:
    # MBC: 47 % is > 45 %, continue, no repeat; EBC: 45 % to < 50 %, fall < 10, repeat.
    (finding,) = repeat_findings(unknown(lvef(50, 120), first_dose(), lvef(47, 30)))
    assert finding.sources == ("monitoring.lvef", "ebc.lvef")


def test_an_echo_in_the_draft_orders_silences_it() -> None:
    history = metastatic(lvef(50, 120), first_dose(), lvef(42, 30))
    (finding,) = repeat_findings(history)
    echo = finding.suggestions[0].actions[0].resource
    drafts = [fb.medication_request(rid="tdm1-draft-1"), echo]
    assert repeat_findings(history, drafts=drafts) == []


def test_a_dose_ahead_is_measured_at_its_date() -> None:
    # LVEF 15 days ago: within 21 days today, but not at a dose 10 days ahead.
    history = metastatic(lvef(50, 120), first_dose(), lvef(42, 15))
    assert repeat_findings(history) == []
    ahead = fb.medication_request(rid="tdm1-draft-1")
    ahead["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
        "start": fb.iso(fb.NOW + timedelta(days=10))
    }
    (finding,) = repeat_findings(history, drafts=[ahead])
    assert finding.facts["dose_on"].startswith(" on ")


def test_card_renders_whole_within_the_summary_limit() -> None:
    history = metastatic(lvef(50, 120), first_dose(), lvef(42.5, 30))
    ahead = fb.medication_request(rid="tdm1-draft-1")
    ahead["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
        "start": fb.iso(fb.NOW + timedelta(days=10))
    }
    card = render(only(on_order(ahead, history), "lvef-monitoring"))
    assert len(card["summary"]) <= 140 and not card["summary"].endswith("…")
    assert "42.5%" in card["summary"] and "21 days" in card["summary"]
    assert "repeat LVEF within 3 weeks" in card["detail"]
    assert card["source"]["topic"]["code"] == "lvef-monitoring"


def test_repeat_interval_is_read_from_the_table() -> None:
    params = params_from(Settings(dev=True))
    table = label_tables.table(params.knowledge, "mbc.lvef")
    rows = [band.row for band, _ in table.rows if band.row.get("fall_below") == 10]
    assert rows and rows[0]["repeat_within_days"] == 21


def test_a_malformed_repeat_interval_is_refused() -> None:
    params = params_from(Settings(dev=True))
    entry = params.knowledge.entry("mbc.lvef")
    broken = type(entry)(
        **{**entry.__dict__, "value": [{"lvef_below": 40, "action": "hold", "repeat_within_days": "3 weeks"}]}
    )
    with pytest.raises(KnowledgeError):
        _ = label_tables.Table(broken).rows


@pytest.mark.parametrize(("days_ago", "due"), [(19, False), (25, True)])
def test_treatment_summary_lists_the_repeat_when_due(days_ago: float, due: bool) -> None:
    # Last dose 20 days ago: the next is due tomorrow; a repeat 21 days after the LVEF falls before
    # it only for the older LVEF.
    history = metastatic(lvef(50, 120), first_dose(41), first_dose(20), lvef(42, days_ago))
    for kind in ("platelets", "alt", "ast", "bilirubin"):
        history.append(
            fb.observation(
                kind, {"platelets": 200, "alt": 20, "ast": 20, "bilirubin": 0.5}[kind], fb.ago(days=1)
            )
        )
    finding = only(on_patient_view(history), "treatment-summary")
    assert ("repeat LVEF" in finding.facts["due"]) is due
    assert ("mbc.lvef" in finding.sources) is due
