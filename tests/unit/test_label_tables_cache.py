"""The label tables are read once per Knowledge: the cache must never answer for another Knowledge.

Also: the precompiled Grading gives exactly what grading row by row (bands, then worst) gives.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from service.clinical import knowledge
from service.clinical.findings import Params
from service.clinical.knowledge import Knowledge, KnowledgeError
from service.clinical.rules import dosing, hepatotoxicity, thrombocytopenia
from service.clinical.rules import label_tables as tables
from tests import fhir_builders as fb
from tests.unit.label_b_helpers import context, early, metastatic, unknown
from tests.unit.rule_helpers import PARAMS


def with_entry(base: Knowledge, entry_id: str, value: Any) -> Knowledge:
    """A new Knowledge that differs from `base` in one entry's value."""
    entries = dict(base.entries)
    entries[entry_id] = dataclasses.replace(entries[entry_id], value=value)
    return Knowledge(entries=entries, terminology=base.terminology)


def params_with(k: Knowledge) -> Params:
    return dataclasses.replace(PARAMS, knowledge=k)


def liver_variant(params: Params, alt_times: float) -> str | None:
    history = metastatic(*fb.fresh_labs(alt=fb.ULN["alt"] * alt_times))
    findings = hepatotoxicity.evaluate(context(history, params=params))
    return findings[0].variant if findings else None


def test_two_knowledge_objects_grade_by_their_own_tables() -> None:
    default = PARAMS.knowledge
    # The MBC transaminase table with its discontinue row at > 8 × ULN instead of > 20 × ULN.
    rows = [dict(row) for row in default.value("mbc.transaminases")]
    rows[1]["up_to_uln"], rows[2]["above_uln"] = 8, 8
    lowered = params_with(with_entry(load_fresh(), "mbc.transaminases", rows))
    # Interleaved, so that whichever Knowledge is graded first has filled its cache.
    for _ in range(2):
        assert liver_variant(PARAMS, 10) == "hold"
        assert liver_variant(lowered, 10) == "discontinue"


def test_two_knowledge_objects_hold_platelets_by_their_own_tables() -> None:
    default = PARAMS.knowledge
    rows = [dict(row) for row in default.value("mbc.thrombocytopenia-grade2")]
    rows[0]["platelets_below_per_mm3"] = 100_000
    raised = params_with(with_entry(load_fresh(), "mbc.thrombocytopenia-grade2", rows))
    history = metastatic(fb.observation("platelets", 90, fb.ago(days=1)))
    for _ in range(2):
        assert thrombocytopenia.evaluate(context(history, params=PARAMS)) == []
        assert [f.variant for f in thrombocytopenia.evaluate(context(history, params=raised))] == ["hold"]


def test_two_knowledge_objects_have_their_own_dose_ladder() -> None:
    default = PARAMS.knowledge
    ladder = dict(default.value("dosing.reduction-ladder"), levels_mg_per_kg=[3.6, 3.2, 2.8])
    other = with_entry(load_fresh(), "dosing.reduction-ladder", ladder)
    for _ in range(2):
        assert dosing.ladder(default) == (3.6, 3.0, 2.4)
        assert dosing.ladder(other) == (3.6, 3.2, 2.8)
        assert dosing.ladder_level(3.2, default, 0.05) is None
        assert dosing.ladder_level(3.2, other, 0.05) == 3.2


def test_a_failed_derivation_is_not_cached() -> None:
    k = load_fresh()
    calls = []

    def build() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise KnowledgeError("first build fails")
        return 42

    with pytest.raises(KnowledgeError):
        k.derived("key", build)
    assert k.derived("key", build) == 42
    assert k.derived("key", build) == 42
    assert len(calls) == 2


def test_a_malformed_table_fails_when_graded_every_time() -> None:
    broken = params_with(with_entry(load_fresh(), "mbc.transaminases", {"not": "a list"}))
    history = metastatic(*fb.fresh_labs(alt=fb.ULN["alt"] * 10))
    for _ in range(2):
        with pytest.raises(KnowledgeError, match="a table must be a list of rows"):
            hepatotoxicity.evaluate(context(history, params=broken))


def load_fresh() -> Knowledge:
    """A Knowledge loaded anew, so nothing derived from the default one is shared with it."""
    fresh = knowledge.load()
    assert fresh is not PARAMS.knowledge
    return fresh


def _limits(by_setting: dict[str, tuple[str, ...]]) -> set[float]:
    values = set()
    for entry_id in itertools.chain.from_iterable(by_setting.values()):
        for row in PARAMS.knowledge.value(entry_id):
            values |= {float(v) for k, v in row.items() if k in tables.CRITERIA}
    return values


def _around(limits: set[float]) -> list[float]:
    """Every limit, just below and just above it, and values between and beyond them."""
    points = sorted(limits)
    out = [0.0, points[-1] * 2]
    for limit in points:
        out += [limit, limit * (1 - 1e-9), limit * (1 + 1e-9), limit * 0.99, limit * 1.01]
    return out


GRADED = [("times_uln", table_set) for table_set in hepatotoxicity.TABLES.values()] + [
    ("platelets", thrombocytopenia.TABLES)
]


@pytest.mark.parametrize(("measure", "by_setting"), GRADED)
@pytest.mark.parametrize("setting", [metastatic, early, unknown])
def test_grading_equals_row_by_row_grading(measure: str, by_setting: dict, setting) -> None:
    ctx = context(setting())
    grading = tables.grading_for(ctx, by_setting)
    assert tables.grading_for(ctx, by_setting) is grading  # made once per Knowledge and tables
    for value in _around(_limits(by_setting)):
        measures = {measure: value}
        row_by_row: list[tables.Band] = []
        for table in tables.tables_for(ctx, by_setting):
            row_by_row += tables.bands(table, measures)[0]
        assert grading.worst(measures) == tables.worst(row_by_row), value
