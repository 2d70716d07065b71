"""Facts kept per rule context (rules/derived.py) belong to that context's record and time only."""

from __future__ import annotations

import dataclasses

from service.clinical.rules import derived
from service.clinical.terminology import TDM1
from tests import fhir_builders as fb
from tests.unit.label_b_helpers import context, metastatic


def test_each_context_keeps_the_facts_of_its_own_record() -> None:
    given = context(metastatic(fb.administration("tdm1", fb.ago(days=21))))
    naive = context(metastatic())
    for _ in range(2):  # asked twice: the second answer comes from the memo
        assert [e.start for e in derived.tdm1_doses(given)] == [fb.ago(days=21)]
        assert derived.last_tdm1_dose_start(given) == fb.ago(days=21)
        assert derived.first_tdm1_date(given) == fb.ago(days=21)
        assert derived.current_course(given) is not None
        assert derived.tdm1_doses(naive) == ()
        assert derived.last_tdm1_dose_start(naive) is None
        assert derived.first_tdm1_date(naive) is None
        assert derived.current_course(naive) is None


def test_a_copy_with_another_record_or_time_starts_afresh() -> None:
    given = context(metastatic(fb.administration("tdm1", fb.ago(days=21))))
    naive = context(metastatic())
    assert derived.tdm1_doses(given)
    assert derived.tdm1_doses(dataclasses.replace(given, record=naive.record)) == ()
    # A T-DM1 statement that ended 20 days ago: stopped now, still going on 30 days ago.
    ended = context(metastatic(fb.statement("tdm1", fb.ago(days=100), fb.ago(days=20), status="active")))
    now_course = derived.current_course(ended)
    then_course = derived.current_course(dataclasses.replace(ended, now=fb.ago(days=30)))
    assert now_course is not None and then_course is not None
    assert (now_course.active, then_course.active) == (False, True)


def test_placed_her2_events_follow_the_record() -> None:
    advanced = context(metastatic(fb.statement("trastuzumab", fb.ago(days=200), fb.ago(days=100))))
    assert [where for _e, where in derived.placed_her2_events(advanced)] == ["advanced"]
    assert derived.placed_her2_events(context(metastatic())) == ()


def test_conditions_in_a_value_set_follow_the_record_and_the_status() -> None:
    ild = fb.condition("233703007", "Interstitial lung disease", clinical_status="resolved")
    with_ild, without = context(metastatic(ild)), context(metastatic())
    for _ in range(2):
        assert [c.text for c in derived.conditions_in(with_ild, "interstitial_lung_disease")] == [
            "Interstitial lung disease Interstitial lung disease"
        ]
        assert derived.has_condition(with_ild, "interstitial_lung_disease", active_only=False)
        assert not derived.has_condition(with_ild, "interstitial_lung_disease")  # resolved
        assert not derived.has_condition(with_ild, "heart_failure", active_only=False)
        assert derived.conditions_in(without, "interstitial_lung_disease") == ()


def test_dose_facts_are_the_records_own() -> None:
    """derived selects from the T-DM1 events once; the answers are record.doses_given and
    record.first_tdm1_date's, whatever mix of orders, doses not given and statements."""
    histories = [
        metastatic(),
        metastatic(fb.medication_request("tdm1", status="active", authored=fb.ago(days=50))),
        metastatic(
            fb.administration("tdm1", fb.ago(days=60), status="not-done"),
            fb.administration("tdm1", fb.ago(days=42), status="in-progress"),
            fb.administration("tdm1", fb.ago(days=21)),
            fb.administration("tdxd", fb.ago(days=90)),
        ),
        metastatic(
            fb.statement("tdm1", fb.ago(days=100), fb.ago(days=20)),
            fb.administration("tdm1", fb.ago(days=120), status="stopped"),
        ),
    ]
    for history in histories:
        ctx = context(history)
        assert derived.tdm1_doses(ctx) == ctx.record.doses_given(TDM1)
        assert derived.first_tdm1_date(ctx) == ctx.record.first_tdm1_date()
