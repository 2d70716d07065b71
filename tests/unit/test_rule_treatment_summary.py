"""treatment-summary and patient-view relevance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.clinical.record import ALL_CATEGORIES, MEDICATION_ADMINISTRATIONS
from tests import fhir_builders as fb
from tests.unit.rule_helpers import on_order, on_patient_view, only, rule_ids


def on_tdm1(last_dose_days_ago: float, cycles: int = 4, *extra: dict) -> list[dict]:
    doses = [fb.administration("tdm1", fb.ago(days=last_dose_days_ago + 21 * i)) for i in range(cycles)]
    return [*fb.metastatic_history(), *doses, *extra]


def test_summary_counts_cycles_and_next_due() -> None:
    finding = only(on_patient_view(on_tdm1(7, 4)), "treatment-summary")
    assert finding.indicator == "info"
    assert finding.facts["cycles"] == 4
    assert finding.facts["last_dose"].startswith("2026-11-18 at 3.6 mg/kg")
    assert finding.facts["status"] == "next due 2026-12-09"


def test_overdue_dose_is_said() -> None:
    finding = only(on_patient_view(on_tdm1(30)), "treatment-summary")
    assert finding.facts["status"] == "next dose overdue since 2026-11-16"


def test_due_checks_are_listed() -> None:
    history = [h for h in on_tdm1(20) if h["resourceType"] != "Observation"]  # no labs, no LVEF
    finding = only(on_patient_view(history), "treatment-summary")
    assert "platelet count" in finding.facts["due"]
    assert "ALT, AST and total bilirubin" in finding.facts["due"]
    assert "LVEF" in finding.facts["due"]


def test_only_the_missing_liver_tests_are_due() -> None:
    """A fresh ALT and total bilirubin, no AST: the card said "ALT, AST and total bilirubin" due."""
    history = [r for r in on_tdm1(20, 4, *fb.fresh_labs()) if "1920-8" not in str(r.get("code"))]  # no AST
    finding = only(on_patient_view(history), "treatment-summary")
    assert finding.facts["due"].startswith("AST") and "ALT" not in finding.facts["due"]
    assert "platelet" not in finding.facts["due"]


def test_a_preliminary_platelet_count_leaves_platelets_due_and_is_named_on_patient_view() -> None:
    preliminary = fb.observation("platelets", 40, fb.ago(days=1), status="preliminary")
    history = [r for r in on_tdm1(20) if "777-3" not in str(r.get("code"))] + [preliminary]  # no final count
    findings = on_patient_view(history)
    summary = only(findings, "treatment-summary")
    assert summary.facts["due"] == "platelet count"
    assert "thrombocytopenia-hold" not in rule_ids(findings)
    missing = only(findings, "platelets-missing")
    assert "preliminary, not final: 40,000/mm3 on 2026-11-24" in missing.facts["unreadable"]


def test_summary_with_every_check_due_on_an_overdue_course_fits_uncut() -> None:
    """All three checks due and the dose overdue: with the checks' full names the summary ran past
    140 characters and was cut ("…LVEF (echo or…"). It names them in short; the detail in full."""
    from tests.unit.label_a_helpers import render

    history = [h for h in on_tdm1(30) if h["resourceType"] != "Observation"]
    card = render(only(on_patient_view(history), "treatment-summary"))
    assert card["summary"].endswith("Due: platelets, liver tests, LVEF"), card["summary"]
    assert "ALT, AST and total bilirubin" in card["detail"] and "LVEF (echo or MUGA)" in card["detail"]


def test_no_tdm1_history_no_cards() -> None:
    assert on_patient_view(fb.metastatic_history()) == []


def test_unreadable_medication_history_is_said_not_silent() -> None:
    findings = on_patient_view(
        fb.metastatic_history(), available=ALL_CATEGORIES - {MEDICATION_ADMINISTRATIONS}
    )
    assert rule_ids(findings) == {"data-unavailable"}


def stopped_standing_order(with_end: bool) -> list[dict]:
    """Six doses from 2026-03-02 (last 2026-06-15) under one order authored that day, now stopped."""
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    order = fb.medication_request(status="stopped", authored=start)
    if with_end:
        order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
            "start": fb.iso(start),
            "end": fb.iso(start + timedelta(days=126)),
        }
    doses = [fb.administration("tdm1", start + timedelta(days=21 * i)) for i in range(6)]
    return [*fb.metastatic_history(), order, *doses]


def test_a_course_stopped_without_an_end_date_is_said_stopped_not_overdue() -> None:
    finding = only(on_patient_view(stopped_standing_order(with_end=False)), "treatment-summary")
    assert finding.facts["status"] == "stopped, no stop date recorded"
    assert finding.facts["last_dose"].startswith("2026-06-15")
    assert finding.facts["due"] == "none"


def test_a_course_stopped_with_an_end_date_is_said_stopped_on_it() -> None:
    finding = only(on_patient_view(stopped_standing_order(with_end=True)), "treatment-summary")
    assert finding.facts["status"] == "stopped 2026-07-06"


def _adjuvant_course(cycles: int, last_days_ago: int = 25) -> list[dict]:
    """A KATHERINE patient given `cycles` T-DM1 doses 21 days apart, one MedicationRequest per
    infusion, each `completed` once given (no end date), as EHRs write per-infusion orders."""
    days = [last_days_ago + 21 * i for i in range(cycles)]
    return [
        *fb.katherine_history(),
        *[fb.administration("tdm1", fb.ago(days=d)) for d in days],
        *[fb.medication_request(status="completed", authored=fb.ago(days=d)) for d in days],
    ]


def test_a_finished_14_cycle_adjuvant_course_is_complete_not_overdue() -> None:
    summary = only(on_patient_view(_adjuvant_course(14)), "treatment-summary")
    assert "course complete (14 cycles" in summary.facts["status"]
    assert summary.facts["due"] == "none"
    ongoing = only(on_patient_view(_adjuvant_course(13)), "treatment-summary")
    assert "overdue" in ongoing.facts["status"]  # 13 of 14: the course goes on


def test_tdxd_after_a_finished_adjuvant_course_is_no_swap_in_course() -> None:
    tdxd = fb.medication_request("tdxd", dose=5.4)
    assert "product-mixup" not in rule_ids(on_order(tdxd, _adjuvant_course(14)))
    assert "product-mixup" in rule_ids(on_order(tdxd, _adjuvant_course(13, last_days_ago=10)))


def _resumed_after_a_toxicity_stop(new_start: datetime | None) -> list[dict]:
    """Three doses (last 2026-10-14) under an order stopped as not tolerated, then a new order at
    the reduced level, not yet given, authored two days ago (starting `new_start` if given)."""
    stopped = fb.medication_request(status="stopped", authored=fb.ago(days=90))
    stopped["statusReason"] = [{"coding": [{"system": fb.SNOMED, "code": "407563006"}]}]
    new = fb.medication_request(status="active", authored=fb.ago(days=2), dose=3.0)
    if new_start is not None:
        new["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": fb.iso(new_start)}
    doses = [fb.administration("tdm1", fb.ago(days=d)) for d in (84, 63, 42)]
    return [*fb.metastatic_history(), *doses, stopped, new]


def test_a_course_resumed_by_a_new_order_is_due_at_its_start_not_overdue() -> None:
    """The new order plans the next dose for 2026-12-02: not 'overdue since 2026-11-04' (the old
    cycle), and the pre-dose lab cards wait until that dose is within the lab window."""

    def no_labs(days_ahead: int) -> list[dict]:
        history = _resumed_after_a_toxicity_stop(fb.NOW + timedelta(days=days_ahead))
        return [h for h in history if h["resourceType"] != "Observation"]

    findings = on_patient_view(no_labs(7))
    assert only(findings, "treatment-summary").facts["status"] == "next due 2026-12-02"
    assert not rule_ids(findings) & {"platelets-missing", "liver-tests-missing"}
    assert {"platelets-missing", "liver-tests-missing"} <= rule_ids(on_patient_view(no_labs(1)))


def test_a_new_order_without_a_start_is_overdue_from_when_it_was_written() -> None:
    finding = only(on_patient_view(_resumed_after_a_toxicity_stop(None)), "treatment-summary")
    assert finding.facts["status"] == "next dose overdue since 2026-11-23"


def test_the_next_per_infusion_order_does_not_move_the_due_date() -> None:
    """An ongoing course whose next order is written 5 days after the last dose: due one cycle on."""
    order = fb.medication_request(status="active", authored=fb.ago(days=2))
    finding = only(on_patient_view(on_tdm1(7, 4, order)), "treatment-summary")
    assert finding.facts["status"] == "next due 2026-12-09"


def test_a_plan_releasing_the_next_cycles_orders_ahead_is_due_at_the_first_of_them() -> None:
    """A treatment plan released cycles 4 to 6 as per-infusion orders (each boundsPeriod its day);
    cycle 4 (2026-11-16) was never given. The newest order's start (cycle 6, 2026-12-28) read as
    'next due 2026-12-28', hiding the overdue dose and its pre-dose lab cards."""

    def per_infusion(day: datetime) -> dict:
        order = fb.medication_request(status="active", authored=fb.ago(days=40))
        order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
            "start": fb.iso(day),
            "end": fb.iso(day),
        }
        return order

    last = fb.ago(days=30)
    plan = [per_infusion(last + timedelta(days=21 * k)) for k in (1, 2, 3)]
    doses = [fb.administration("tdm1", fb.ago(days=days)) for days in (72, 51, 30)]
    history = [*fb.metastatic_history(labs=False), *doses, *plan]
    findings = on_patient_view(history)
    assert only(findings, "treatment-summary").facts["status"] == "next dose overdue since 2026-11-16"
    assert {"platelets-missing", "liver-tests-missing"} <= rule_ids(findings)
