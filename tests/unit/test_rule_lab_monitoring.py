"""platelets-missing and liver-tests-missing: Boxed Warning; USPI §5.6 (labs before each dose)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.clinical.record import ALL_CATEGORIES, OBSERVATIONS
from tests import fhir_builders as fb
from tests.unit.label_a_helpers import render
from tests.unit.rule_helpers import on_order, on_patient_view, only, rule_ids


def history_with(*labs: dict) -> list[dict]:
    return [*fb.metastatic_history(labs=False), *labs]


def test_fresh_labs_are_silent() -> None:
    ids = rule_ids(on_order(fb.medication_request(), history_with(*fb.fresh_labs())))
    assert not ids & {"platelets-missing", "liver-tests-missing"}


def test_no_labs_fire_both_with_suggestions() -> None:
    findings = on_order(fb.medication_request(), history_with())
    platelets = only(findings, "platelets-missing")
    liver = only(findings, "liver-tests-missing")
    assert platelets.facts["last"] == "none on record"
    assert liver.facts["missing"] == "ALT, AST, total bilirubin"
    cbc = platelets.suggestions[0].actions[0].resource
    assert cbc["resourceType"] == "ServiceRequest" and cbc["code"]["coding"][0]["code"] == "58410-2"
    panel = liver.suggestions[0].actions[0].resource
    assert panel["code"]["coding"][0]["code"] == "24325-3"


@pytest.mark.parametrize(("age", "fires"), [(timedelta(days=3), False), (timedelta(days=3, seconds=1), True)])
def test_window_boundary_is_three_days(age: timedelta, fires: bool) -> None:
    labs = fb.fresh_labs(when=fb.NOW - age)
    ids = rule_ids(on_order(fb.medication_request(), history_with(*labs)))
    assert ("platelets-missing" in ids) is fires
    assert ("liver-tests-missing" in ids) is fires


def test_stale_labs_report_their_age() -> None:
    labs = fb.fresh_labs(when=fb.ago(days=10))
    finding = only(on_order(fb.medication_request(), history_with(*labs)), "platelets-missing")
    assert "10 days ago" in finding.facts["last"]


def test_only_the_missing_liver_test_is_named() -> None:
    labs = [lab for lab in fb.fresh_labs() if lab["code"]["coding"][0]["code"] != "1920-8"]  # no AST
    finding = only(on_order(fb.medication_request(), history_with(*labs)), "liver-tests-missing")
    assert finding.facts["missing"] == "AST"


@pytest.mark.parametrize("status", ["entered-in-error", "preliminary", "cancelled"])
def test_invalid_results_do_not_count(status: str) -> None:
    labs = [fb.observation("platelets", 200, fb.ago(days=1), status=status)]
    assert "platelets-missing" in rule_ids(on_order(fb.medication_request(), history_with(*labs)))


def test_only_a_preliminary_low_platelet_count_is_named_never_graded() -> None:
    """It was dropped: the card said no platelet count was found, and nothing named the 40,000."""
    preliminary = fb.observation("platelets", 40_000, fb.ago(days=1), unit="/mm3", status="preliminary")
    liver = [lab for lab in fb.fresh_labs() if lab["code"]["coding"][0]["code"] != "777-3"]
    findings = on_order(fb.medication_request(), history_with(preliminary, *liver))
    assert "thrombocytopenia-hold" not in rule_ids(findings)
    finding = only(findings, "platelets-missing")
    assert finding.facts["last"] == "none on record"
    named = "preliminary, not final: 40,000/mm3 on 2026-11-24"
    assert finding.facts["unreadable"] == f" (1 result(s) in the window could not be read: {named})"
    assert named in render(finding)["detail"]


@pytest.mark.parametrize("days_ago", [2.9, 10])
def test_an_unreadable_count_before_the_window_is_named_as_the_last(days_ago: float) -> None:
    """With no readable count at all, "Last platelet count: none on record" stood beside a
    preliminary 40,000 drawn ten days before; inside the window it is named by the note instead."""
    preliminary = fb.observation(
        "platelets", 40_000, fb.ago(days=days_ago), unit="/mm3", status="preliminary"
    )
    liver = [lab for lab in fb.fresh_labs() if lab["code"]["coding"][0]["code"] != "777-3"]
    finding = only(on_order(fb.medication_request(), history_with(preliminary, *liver)), "platelets-missing")
    if days_ago < 3:
        assert finding.facts["last"] == "none on record"
        assert "could not be read" in finding.facts["unreadable"]
    else:
        assert finding.facts["unreadable"] == ""
        assert finding.facts["last"] == (
            "none readable on record (the newest, on 2026-11-15, could not be read: "
            "preliminary, not final: 40,000/mm3 on 2026-11-15)"
        )


def test_a_preliminary_alt_at_25_times_uln_is_named_never_graded() -> None:
    alt = fb.observation("alt", 25 * 40, fb.ago(hours=6), status="preliminary")  # ULN 40 U/L
    others = [lab for lab in fb.fresh_labs() if lab["code"]["coding"][0]["code"] != "1742-6"]
    findings = on_order(fb.medication_request(), history_with(alt, *others))
    assert "hepatotoxicity" not in rule_ids(findings)
    finding = only(findings, "liver-tests-missing")
    assert finding.facts["missing"] == "ALT"
    assert finding.facts["unreadable"] == (
        " (1 result(s) in the window could not be read: "
        "preliminary, not final: 1000 U/L (ULN 40 U/L) on 2026-11-25)"
    )


def test_a_preliminary_result_in_the_window_beside_an_older_final_one() -> None:
    """The older final count is still the last one shown; the preliminary one is named."""
    older = fb.observation("platelets", 210, fb.ago(days=10))
    preliminary = fb.observation("platelets", 40, fb.ago(days=1), status="preliminary")
    finding = only(on_order(fb.medication_request(), history_with(older, preliminary)), "platelets-missing")
    assert finding.facts["last"] == "210,000/mm3 on 2026-11-15 (10 days ago)"
    assert "preliminary, not final: 40,000/mm3 on 2026-11-24" in finding.facts["unreadable"]


def test_unreadable_result_is_named_not_used() -> None:
    labs = [fb.observation("platelets", 200, fb.ago(days=1), unit="cells/hpf")]
    finding = only(on_order(fb.medication_request(), history_with(*labs)), "platelets-missing")
    assert "could not be read" in finding.facts["unreadable"]


def test_future_dose_date_moves_the_window() -> None:
    draft = fb.medication_request()
    draft["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
        "start": fb.iso(fb.NOW + timedelta(days=5))
    }
    # labs drawn yesterday will be 6 days old at the dose
    assert "platelets-missing" in rule_ids(on_order(draft, history_with(*fb.fresh_labs())))


def test_future_dose_cards_name_the_dose_date_not_the_last_days() -> None:
    """Labs drawn yesterday, dose in 5 days: the cards said "none in the last 3 days" beside
    "Last results: ... (1 days ago)". They now name the dose date the window runs up to."""
    draft = fb.medication_request()
    draft["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
        "start": fb.iso(fb.NOW + timedelta(days=5))
    }
    history = [*history_with(*fb.fresh_labs()), fb.administration("tdm1", fb.ago(days=16))]
    history = [
        r for r in history if r.get("code", {}).get("coding", [{}])[0].get("code") != fb.LABS["lvef"][0]
    ]
    history.append(fb.observation("lvef", 60.0, fb.ago(days=88)))
    findings = on_order(draft, history)
    summaries = {f.rule_id: render(f)["summary"] for f in findings}
    for rule_id in ("platelets-missing", "liver-tests-missing", "lvef-monitoring"):
        assert "on 2026-11-30" in summaries[rule_id], summaries[rule_id]
        assert "in the last" not in summaries[rule_id]
    today = {f.rule_id: render(f)["summary"] for f in on_order(fb.medication_request(), history_with())}
    assert today["liver-tests-missing"].startswith("Missing before this T-DM1 dose: ALT")


def test_suggested_lab_already_in_draft_orders_does_not_fire_again() -> None:
    first = on_order(fb.medication_request(), history_with())
    cbc = only(first, "platelets-missing").suggestions[0].actions[0].resource
    panel = only(first, "liver-tests-missing").suggestions[0].actions[0].resource
    again = on_order([fb.medication_request(), cbc, panel], history_with())
    assert not rule_ids(again) & {"platelets-missing", "liver-tests-missing"}


def test_individual_lab_orders_cover_only_what_they_order() -> None:
    alt_only = fb.draft_lab_order("1742-6", "sr-alt")
    findings = on_order([fb.medication_request(), alt_only], history_with())
    assert "liver-tests-missing" in rule_ids(findings)


def test_without_observations_the_checks_are_skipped_and_said() -> None:
    findings = on_order(fb.medication_request(), history_with(), available=ALL_CATEGORIES - {OBSERVATIONS})
    assert not rule_ids(findings) & {"platelets-missing", "liver-tests-missing"}
    unavailable = only(findings, "data-unavailable")
    assert "Observations" in unavailable.facts["data"]
    assert "platelets-missing" in unavailable.facts["skipped"]


def course(last_dose_days_ago: float, *labs: dict) -> list[dict]:
    doses = [fb.administration("tdm1", fb.ago(days=last_dose_days_ago + 21 * i)) for i in range(3)]
    order = fb.medication_request(status="active", authored=fb.ago(days=last_dose_days_ago + 42))
    return [*fb.metastatic_history(labs=False), order, *doses, *labs]


def test_patient_view_checks_labs_only_when_the_dose_is_due() -> None:
    due_in_3_days = on_patient_view(course(18))
    due_in_10_days = on_patient_view(course(11))
    assert {"platelets-missing", "liver-tests-missing"} <= rule_ids(due_in_3_days)
    assert not rule_ids(due_in_10_days) & {"platelets-missing", "liver-tests-missing"}
    assert "treatment-summary" in rule_ids(due_in_10_days)


def test_platelets_dated_only_by_issued_beside_a_garbled_effective_date_do_not_count() -> None:
    # Released yesterday, drawn who knows when: not a pre-dose count, and the card says it exists.
    lab = fb.platelet_count(150, effective="garbage", issued=fb.ago(days=1))
    finding = only(on_order(fb.medication_request(), history_with(lab)), "platelets-missing")
    assert finding.facts["unreadable"] == (
        " (1 result(s) in the window could not be read: effective date unreadable; issued 2026-11-24)"
    )
    assert finding.facts["last"] == "none on record"


def test_platelets_with_a_readable_effective_date_in_the_window_count() -> None:
    lab = fb.platelet_count(150, effective=fb.ago(days=1), issued=fb.ago(days=1) + timedelta(hours=2))
    assert "platelets-missing" not in rule_ids(on_order(fb.medication_request(), history_with(lab)))


def test_missing_card_shows_the_last_count_and_the_hold_fires_beside_it() -> None:
    # 30,000/mm3 four days ago, nothing newer: a new count is due, and the old one still holds.
    labs = [lab for lab in fb.fresh_labs() if lab["code"]["coding"][0]["code"] != "777-3"]
    findings = on_order(
        fb.medication_request(),
        history_with(
            *labs, fb.administration("tdm1", fb.ago(days=21)), fb.observation("platelets", 30, fb.ago(days=4))
        ),
    )
    assert only(findings, "platelets-missing").facts["last"] == "30,000/mm3 on 2026-11-21 (4 days ago)"
    assert only(findings, "thrombocytopenia-hold").indicator == "critical"


def test_drafted_cbc_silences_the_missing_card_not_the_hold() -> None:
    labs = [lab for lab in fb.fresh_labs() if lab["code"]["coding"][0]["code"] != "777-3"]
    history = history_with(
        *labs, fb.administration("tdm1", fb.ago(days=21)), fb.observation("platelets", 30, fb.ago(days=4))
    )
    cbc = (
        only(on_order(fb.medication_request(), history), "platelets-missing")
        .suggestions[0]
        .actions[0]
        .resource
    )
    ids = rule_ids(on_order([fb.medication_request(), cbc], history))
    assert "platelets-missing" not in ids and "thrombocytopenia-hold" in ids


def test_missing_liver_card_shows_the_last_values() -> None:
    labs = [lab for lab in fb.fresh_labs() if lab["code"]["coding"][0]["code"] != "1742-6"]
    history = history_with(*labs, fb.observation("alt", 400, fb.ago(days=4)))
    finding = only(on_order(fb.medication_request(), history), "liver-tests-missing")
    assert finding.facts["last"] == "ALT: 400 U/L (10.0 × ULN) on 2026-11-21 (4 days ago)"


def test_missing_liver_card_says_when_the_last_value_has_no_uln() -> None:
    labs = [lab for lab in fb.fresh_labs() if lab["code"]["coding"][0]["code"] != "1742-6"]
    history = history_with(*labs, fb.observation("alt", 400, fb.ago(days=4), uln=None))
    finding = only(on_order(fb.medication_request(), history), "liver-tests-missing")
    assert finding.facts["last"] == "ALT: 400 U/L (no ULN) on 2026-11-21 (4 days ago)"
