"""Facts kept per rule context (rules/course.py) belong to that context's record and time only."""

from __future__ import annotations

import dataclasses

from service.clinical.rules import course
from tests import fhir_builders as fb
from tests.unit.label_b_helpers import context, metastatic


def test_each_context_keeps_the_facts_of_its_own_record() -> None:
    given = context(metastatic(fb.administration("tdm1", fb.ago(days=21))))
    naive = context(metastatic())
    for _ in range(2):  # asked twice: the second answer comes from the memo
        assert [e.start for e in course.tdm1_doses(given)] == [fb.ago(days=21)]
        assert course.last_tdm1_dose_start(given) == fb.ago(days=21)
        assert course.first_tdm1_date(given) == fb.ago(days=21)
        assert course.current_course(given) is not None
        assert course.tdm1_doses(naive) == ()
        assert course.last_tdm1_dose_start(naive) is None
        assert course.first_tdm1_date(naive) is None
        assert course.current_course(naive) is None


def test_a_copy_with_another_record_or_time_starts_afresh() -> None:
    given = context(metastatic(fb.administration("tdm1", fb.ago(days=21))))
    naive = context(metastatic())
    assert course.tdm1_doses(given)
    assert course.tdm1_doses(dataclasses.replace(given, record=naive.record)) == ()
    # A T-DM1 statement that ended 20 days ago: stopped now, still going on 30 days ago.
    ended = context(metastatic(fb.statement("tdm1", fb.ago(days=100), fb.ago(days=20), status="active")))
    now_course = course.current_course(ended)
    then_course = course.current_course(dataclasses.replace(ended, now=fb.ago(days=30)))
    assert now_course is not None and then_course is not None
    assert (now_course.active, then_course.active) == (False, True)


def test_placed_her2_events_follow_the_record() -> None:
    advanced = context(metastatic(fb.statement("trastuzumab", fb.ago(days=200), fb.ago(days=100))))
    assert [where for _e, where in course.placed_her2_events(advanced)] == ["advanced"]
    assert course.placed_her2_events(context(metastatic())) == ()
