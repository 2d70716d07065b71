"""hepatotoxicity: KADCYLA USPI §2.2 Tables 2-3 (MBC), §5.1 (Hy's law, NRH), EBC table (unverified).

ULNs from the builders: ALT 40 U/L, AST 40 U/L, total bilirubin 1.2 mg/dL.
"""

from __future__ import annotations

import pytest

from service.clinical.record import ALL_CATEGORIES, CONDITIONS, notes_on
from service.clinical.rules.hepatotoxicity import RULE, evaluate
from tests import fhir_builders as fb
from tests.unit.label_b_helpers import context, early, metastatic, unknown
from tests.unit.rule_helpers import on_order, on_patient_view, only, rule_ids

JUST_ABOVE = 1.0002  # well above float noise, far below any lab's reporting precision


def labs(**values: float) -> list[dict]:
    return fb.fresh_labs(**values)


def outcome(history: list[dict]) -> tuple[str | None, tuple[str, ...]]:
    findings = evaluate(context(history))
    if not findings:
        return None, ()
    (finding,) = findings
    assert finding.indicator == "critical"
    return finding.variant, finding.sources


@pytest.mark.parametrize(
    ("kind", "times", "expected"),
    [
        ("alt", 2.5, None),
        ("alt", 2.5 * JUST_ABOVE, None),  # Grade 2 in MBC: treat at the same dose, no card
        ("alt", 5, None),
        ("alt", 5 * JUST_ABOVE, "hold"),
        ("alt", 20, "hold"),
        ("alt", 20 * JUST_ABOVE, "discontinue"),
        ("ast", 5, None),
        ("ast", 5 * JUST_ABOVE, "hold"),
        ("ast", 20, "hold"),
        ("ast", 20 * JUST_ABOVE, "discontinue"),
        ("bilirubin", 1.5, None),
        ("bilirubin", 1.5 * JUST_ABOVE, "hold"),
        ("bilirubin", 3, "hold"),
        ("bilirubin", 3 * JUST_ABOVE, "hold"),
        ("bilirubin", 10, "hold"),
        ("bilirubin", 10 * JUST_ABOVE, "discontinue"),
    ],
)
def test_mbc_table_boundaries(kind: str, times: float, expected: str | None) -> None:
    variant, sources = outcome(metastatic(*labs(**{kind: fb.ULN[kind] * times})))
    assert variant == expected
    if expected:
        assert sources == ("mbc.bilirubin" if kind == "bilirubin" else "mbc.transaminases",)


@pytest.mark.parametrize(("times", "reduce"), [(3, False), (3 * JUST_ABOVE, True)])
def test_mbc_bilirubin_resume_dose_changes_above_3_uln(times: float, reduce: bool) -> None:
    (finding,) = evaluate(context(metastatic(*labs(bilirubin=fb.ULN["bilirubin"] * times))))
    (reason,) = finding.facts["reasons"]
    assert ("reduce one dose level" in reason) is reduce
    assert ("same dose" in reason) is not reduce


def test_mbc_transaminase_hold_resumes_one_level_lower() -> None:
    (finding,) = evaluate(context(metastatic(*labs(alt=6 * 40))))
    (reason,) = finding.facts["reasons"]
    assert "until AST/ALT ≤ 5 × ULN" in reason and "reduce one dose level" in reason
    assert finding.facts["headline"] == "ALT 6.0 × ULN"


@pytest.mark.parametrize(
    ("kind", "times", "expected", "reduce"),
    [
        ("alt", 3, None, None),
        ("alt", 3 * JUST_ABOVE, "hold", True),
        ("alt", 20, "hold", True),
        ("alt", 20 * JUST_ABOVE, "discontinue", None),
        ("ast", 3, None, None),
        ("ast", 3 * JUST_ABOVE, "hold", False),
        ("ast", 5, "hold", False),
        ("ast", 5 * JUST_ABOVE, "hold", True),
        ("ast", 20 * JUST_ABOVE, "discontinue", None),
        ("bilirubin", 1, None, None),
        ("bilirubin", 1 * JUST_ABOVE, "hold", True),
        ("bilirubin", 2, "hold", True),
        ("bilirubin", 2 * JUST_ABOVE, "discontinue", None),
    ],
)
def test_ebc_table_boundaries(kind: str, times: float, expected: str | None, reduce: bool | None) -> None:
    findings = evaluate(context(early(*labs(**{kind: fb.ULN[kind] * times}))))
    if expected is None:
        assert findings == []
        return
    (finding,) = findings
    assert finding.variant == expected
    assert finding.sources[0] == f"ebc.{kind}"
    if reduce is not None:
        assert ("reduce one dose level" in finding.facts["reasons"][0]) is reduce


def test_unknown_setting_takes_the_stricter_table() -> None:
    # 4 × ULN ALT: MBC says same dose, EBC says hold; an unknown setting must not get the laxer answer.
    (finding,) = evaluate(context(unknown(*labs(alt=4 * 40))))
    assert finding.variant == "hold" and finding.sources == ("ebc.alt",)
    assert "stricter" in finding.facts["setting"]


@pytest.mark.parametrize(
    ("transaminase", "bilirubin", "hys"),
    [
        (3, 2, False),
        (3 * JUST_ABOVE, 2, False),
        (3, 2 * JUST_ABOVE, False),
        (3 * JUST_ABOVE, 2 * JUST_ABOVE, True),
    ],
)
@pytest.mark.parametrize("kind", ["alt", "ast"])
def test_hys_law_both_sides(transaminase: float, bilirubin: float, hys: bool, kind: str) -> None:
    history = metastatic(*labs(**{kind: 40 * transaminase, "bilirubin": 1.2 * bilirubin}))
    (finding,) = evaluate(context(history))  # bilirubin 2 × ULN is a Grade 2 hold in MBC anyway
    assert (finding.variant == "discontinue") is hys
    assert ("any.hys-law" in finding.sources) is hys
    assert ("Hy's-law pattern" in finding.facts["headline"]) is hys


def test_hys_law_is_listed_first_with_the_other_reasons() -> None:
    (finding,) = evaluate(context(metastatic(*labs(alt=7 * 40, bilirubin=2.5 * 1.2))))
    assert finding.variant == "discontinue"
    assert finding.facts["reasons"][0].endswith("permanently discontinue T-DM1")
    assert len(finding.facts["reasons"]) == 3


def test_missing_uln_is_not_graded_and_said() -> None:
    alt = fb.observation("alt", 2000, fb.ago(days=1), uln=None)
    ctx = context(metastatic(alt, *[o for o in labs() if o["code"]["coding"][0]["code"] != "1742-6"]))
    assert evaluate(ctx) == []
    assert any("no reference range" in note and "ALT 2,000 U/L" in note for note in ctx.notes)


def test_missing_uln_reaches_the_clinician_as_data_unavailable() -> None:
    alt = fb.observation("alt", 2000, fb.ago(days=1), uln=None)
    history = metastatic(alt, *[o for o in labs() if o["code"]["coding"][0]["code"] != "1742-6"])
    findings = on_order(fb.medication_request(), history)
    assert "hepatotoxicity" not in rule_ids(findings)
    note = only(findings, "data-unavailable")
    assert note.indicator == "warning" and any("ULN" in n for n in note.facts["notes"])


def test_uln_in_another_unit_is_converted() -> None:
    bili = fb.observation("bilirubin", 35, fb.ago(days=1), unit="umol/L", uln=20.5)  # 1.71 × ULN
    others = [o for o in labs() if o["code"]["coding"][0]["code"] != "1975-2"]
    variant, _ = outcome(metastatic(bili, *others))
    assert variant == "hold"


def _liver_test(kind: str, value: float, unit: str, uln: float, uln_unit: str) -> dict:
    observation = fb.observation(kind, value, fb.ago(days=1), unit=unit)
    observation["referenceRange"] = [
        {"high": {"value": uln, "unit": uln_unit, "system": fb.UCUM, "code": uln_unit}}
    ]
    return observation


def _but(kind: str, observation: dict) -> list[dict]:
    """Normal labs, with `observation` in place of the fresh one of its kind."""
    return [o for o in labs() if o["code"]["coding"][0]["code"] != fb.LABS[kind][0]] + [observation]


@pytest.mark.parametrize(
    ("kind", "value", "unit", "uln", "uln_unit", "expected"),
    [
        # ALT and its ULN in different units: ULN 0.5 ukat/L = 30 U/L; 2.5 ukat/L = 150 U/L.
        ("alt", 150, "U/L", 0.5, "ukat/L", None),  # exactly 5 x ULN
        ("alt", 150 * JUST_ABOVE, "U/L", 0.5, "ukat/L", "hold"),
        ("alt", 2.5, "ukat/L", 30, "U/L", None),  # exactly 5 x ULN
        ("alt", 2.5 * JUST_ABOVE, "ukat/L", 30, "U/L", "hold"),
        ("alt", 5.0, "ukat/L", 40, "U/L", "hold"),  # 300 U/L = 7.5 x ULN, once "0.125 x ULN"
        ("alt", 10, "ukat/L", 30, "U/L", "hold"),  # exactly 20 x ULN
        ("alt", 10 * JUST_ABOVE, "ukat/L", 30, "U/L", "discontinue"),
        ("ast", 100, "U/L", 0.58, "ukat/L", None),  # 2.9 x ULN, once "172 x ULN: discontinue"
        ("ast", 2500, "nkat/L", 30, "U/L", None),  # exactly 5 x ULN
        ("ast", 2500 * JUST_ABOVE, "nkat/L", 30, "U/L", "hold"),
        # bilirubin: ULN 20.52 umol/L = 1.2 mg/dL
        ("bilirubin", 12, "mg/dL", 20.52, "umol/L", "hold"),  # exactly 10 x ULN
        ("bilirubin", 12 * JUST_ABOVE, "mg/dL", 20.52, "umol/L", "discontinue"),
    ],
)
def test_boundaries_with_value_and_uln_in_different_units(
    kind: str, value: float, unit: str, uln: float, uln_unit: str, expected: str | None
) -> None:
    variant, _ = outcome(metastatic(*_but(kind, _liver_test(kind, value, unit, uln, uln_unit))))
    assert variant == expected


def test_uln_in_an_unconvertible_unit_is_not_graded_and_said() -> None:
    alt = _liver_test("alt", 2000, "U/L", 0.58, "mg/dL")
    ctx = context(metastatic(*_but("alt", alt)))
    assert evaluate(ctx) == []
    (note,) = [n for n in ctx.notes if "ALT" in n]
    assert "ALT 2,000 U/L" in note and "0.58 'mg/dL'" in note and "cannot be converted to U/L" in note
    assert "cannot be graded" in note


def test_uln_in_an_unconvertible_unit_reaches_the_clinician_as_data_unavailable() -> None:
    alt = _liver_test("alt", 2000, "U/L", 0.58, "mg/dL")
    findings = on_order(fb.medication_request(), metastatic(*_but("alt", alt)))
    assert "hepatotoxicity" not in rule_ids(findings)
    assert "liver-tests-missing" not in rule_ids(findings)  # the ALT was drawn: it is the ULN that fails
    note = only(findings, "data-unavailable")
    assert any("'mg/dL'" in n and "cannot be graded" in n for n in note.facts["notes"])


def test_unreadable_unit_is_not_graded() -> None:
    alt = fb.observation("alt", 900, fb.ago(days=1), unit="mmol/L")
    others = [o for o in labs() if o["code"]["coding"][0]["code"] != "1742-6"]
    assert evaluate(context(metastatic(alt, *others))) == []


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error"])
def test_non_final_results_are_ignored(status: str) -> None:
    bad = fb.observation("alt", 30 * 40, fb.ago(hours=2), status=status)
    assert evaluate(context(metastatic(*labs(), bad))) == []


def test_a_final_alt_is_graded_and_a_newer_preliminary_one_is_named() -> None:
    final = fb.observation("alt", 10 * 40, fb.ago(days=2))  # a hold row
    others = [lab for lab in labs() if lab["code"]["coding"][0]["code"] != "1742-6"]
    newer = fb.observation("alt", 25 * 40, fb.ago(hours=2), status="preliminary")
    history = metastatic(final, *others, newer)
    assert outcome(history)[0] == "hold"  # the final 10 x ULN, not the preliminary 25 x ULN
    notes = notes_on(context(history).record)
    assert notes == [
        "The newest ALT (2026-11-25) could not be read (preliminary, not final: 1000 U/L (ULN 40 U/L) "
        "on 2026-11-25); the checks read the older one of 2026-11-23 (400 U/L). Check the newer result "
        "before the dose."
    ]


# Given 43 days ago, before every older result below: a held-over result counts only when drawn
# after the last T-DM1 dose (before it, the dose given since acted on it; before any T-DM1 the
# label's rows do not apply).
PRIOR_DOSE = fb.administration("tdm1", fb.ago(days=43))


def test_results_beyond_the_hold_lookback_are_not_graded() -> None:
    # Older than policy.hold-lookback (42 days, unverified): liver-tests-missing's. ALT 10 x ULN is a
    # hold row, not a permanent criterion (those are met on T-DM1 whenever, see below).
    beyond = fb.observation("alt", 10 * 40, fb.ago(days=42, hours=1))
    assert evaluate(context(metastatic(PRIOR_DOSE, beyond))) == []
    assert evaluate(context(metastatic(PRIOR_DOSE, fb.observation("alt", 10 * 40, fb.ago(days=42)))))


# A hold lasts until a result shows recovery: with no result of a test in the lab window, its
# newest readable older result still acts on the dose (the bug: only the window was graded).
HEPATIC_PANEL_DRAFT = fb.draft_lab_order("24325-3", "hepatic-draft")


def fresh_except(*kinds: str) -> list[dict]:
    """Normal labs from yesterday, without the given kinds."""
    codes = {fb.LABS[k][0] for k in kinds}
    return [o for o in labs() if o["code"]["coding"][0]["code"] not in codes]


def old(kind: str, times: float, days: float = 4, **kwargs) -> dict:
    return fb.observation(kind, fb.ULN[kind] * times, fb.ago(days=days), **kwargs)


@pytest.mark.parametrize("panel_drafted", [False, True])
def test_old_alt_at_10_uln_with_nothing_newer_still_holds(panel_drafted: bool) -> None:
    drafts = [fb.medication_request(rid="tdm1-draft"), *([HEPATIC_PANEL_DRAFT] if panel_drafted else [])]
    (finding,) = evaluate(
        context(metastatic(PRIOR_DOSE, *fresh_except("alt"), old("alt", 10)), drafts=drafts)
    )
    assert finding.indicator == "critical" and finding.variant == "hold"
    assert finding.facts["headline"] == "ALT 10.0 × ULN on 2026-11-21, none newer"
    (reason,) = finding.facts["reasons"]
    assert "from 2026-11-21 (4 days before the dose)" in reason
    assert "no newer ALT shows recovery" in reason
    assert "until a new ALT shows AST/ALT ≤ 5 × ULN" in reason  # the row's own recovery level
    assert "42 days" in finding.facts["lookback"] and "unverified" in finding.facts["lookback"]
    assert finding.sources == ("mbc.transaminases", "policy.hold-lookback")


@pytest.mark.parametrize("panel_drafted", [False, True])
def test_old_alt_holds_through_the_engine_whatever_is_drafted(panel_drafted: bool) -> None:
    drafts = [fb.medication_request(), *([HEPATIC_PANEL_DRAFT] if panel_drafted else [])]
    ids = rule_ids(on_order(drafts, metastatic(PRIOR_DOSE, *fresh_except("alt"), old("alt", 10))))
    assert "hepatotoxicity" in ids
    assert ("liver-tests-missing" in ids) is not panel_drafted


@pytest.mark.parametrize(
    ("kind", "times", "expected"),
    [
        ("alt", 5, None),
        ("alt", 5 * JUST_ABOVE, "hold"),
        ("alt", 20 * JUST_ABOVE, "discontinue"),
        ("ast", 5 * JUST_ABOVE, "hold"),
        ("bilirubin", 1.5, None),
        ("bilirubin", 1.5 * JUST_ABOVE, "hold"),
        ("bilirubin", 10 * JUST_ABOVE, "discontinue"),
    ],
)
def test_old_result_mbc_boundaries(kind: str, times: float, expected: str | None) -> None:
    variant, sources = outcome(metastatic(PRIOR_DOSE, *fresh_except(kind), old(kind, times)))
    assert variant == expected
    if expected:
        assert "policy.hold-lookback" in sources


def test_old_discontinue_level_on_tdm1_is_said_once() -> None:
    history = metastatic(
        fb.administration("tdm1", fb.ago(days=30)), *fresh_except("alt"), old("alt", 25, days=5)
    )
    (finding,) = evaluate(context(history))
    assert finding.variant == "discontinue"
    (reason,) = finding.facts["reasons"]  # not again as "met earlier on T-DM1"
    assert "5 days before the dose" in reason and "no newer ALT is on record" in reason


def test_old_ebc_alt_uses_the_ebc_table() -> None:
    (finding,) = evaluate(context(early(PRIOR_DOSE, *fresh_except("alt"), old("alt", 4))))
    assert finding.variant == "hold" and finding.sources == ("ebc.alt", "policy.hold-lookback")


def test_old_hys_law_pair_discontinues() -> None:
    history = metastatic(
        PRIOR_DOSE, *fresh_except("alt", "bilirubin"), old("alt", 4, days=5), old("bilirubin", 2.5, days=5)
    )
    (finding,) = evaluate(context(history))  # ALT 4 × ULN alone is "same dose" in MBC
    assert finding.variant == "discontinue" and "any.hys-law" in finding.sources
    assert "Hy's-law pattern" in finding.facts["headline"]
    assert "older than the 3-day lab window" in finding.facts["reasons"][0]


def test_old_bilirubin_pairs_for_hys_law_only_when_concomitant() -> None:
    # ALT yesterday, bilirubin 5 days ago: 4 days apart, not one pre-dose panel.
    history = metastatic(
        PRIOR_DOSE, *fresh_except("alt", "bilirubin"), *labs(alt=4 * 40)[1:2], old("bilirubin", 2.5, days=5)
    )
    (finding,) = evaluate(context(history))
    assert finding.variant == "hold" and "any.hys-law" not in finding.sources


def test_old_alt_then_a_newer_normal_alt_in_the_window_is_no_hold() -> None:
    assert evaluate(context(metastatic(PRIOR_DOSE, *fresh_except("alt"), old("alt", 10))))  # alone it holds
    # Recovered: no hold. Grade 3 since the last dose still costs a level ("then reduce one dose
    # level"), which is the resume-reduced card, not a hold.
    after = evaluate(context(metastatic(PRIOR_DOSE, *labs(), old("alt", 10))))
    assert [f.variant for f in after] == ["resume-reduced"]


def test_old_alt_then_a_newer_normal_alt_before_the_window_is_no_hold() -> None:
    history = metastatic(PRIOR_DOSE, *fresh_except("alt"), old("alt", 10, days=10), old("alt", 1, days=5))
    # Recovered: no hold. ALT Grade 3 since the last dose still costs a level, recovery in the window
    # or not ("then reduce one dose level").
    assert [f.variant for f in evaluate(context(history))] == ["resume-reduced"]
    # Bilirubin Grade 2 resumes at the same dose: nothing to say once recovered.
    history = metastatic(
        PRIOR_DOSE, *fresh_except("bilirubin"), old("bilirubin", 2, days=10), old("bilirubin", 1, days=5)
    )
    assert evaluate(context(history)) == []


def test_old_alt_in_an_unreadable_unit_is_not_fired_on() -> None:
    assert (
        evaluate(context(metastatic(PRIOR_DOSE, *fresh_except("alt"), old("alt", 10, unit="mmol/L")))) == []
    )
    assert evaluate(context(metastatic(PRIOR_DOSE, *fresh_except("alt"), old("alt", 10))))  # readable: holds


def test_old_alt_with_a_garbled_effective_date_is_not_fired_on() -> None:
    alt = old("alt", 10)
    alt["effectiveDateTime"] = "garbage"  # dated only by issued: when was it drawn?
    assert evaluate(context(metastatic(PRIOR_DOSE, *fresh_except("alt"), alt))) == []


def test_old_alt_without_uln_is_not_graded_and_left_to_the_missing_card() -> None:
    ctx = context(metastatic(PRIOR_DOSE, *fresh_except("alt"), old("alt", 10, uln=None)))
    assert evaluate(ctx) == [] and ctx.notes == []


def test_result_in_the_window_is_graded_as_before() -> None:
    (finding,) = evaluate(context(metastatic(PRIOR_DOSE, *labs(alt=10 * 40))))
    assert finding.facts["headline"] == "ALT 10.0 × ULN" and finding.facts["lookback"] == ""
    assert finding.sources == ("mbc.transaminases",)


def nrh(**kwargs) -> dict:
    return fb.condition(
        "local-123", "Nodular regenerative hyperplasia of liver", system="urn:local", **kwargs
    )


@pytest.mark.parametrize(
    ("clinical_status", "verification", "fires"),
    [
        ("active", "confirmed", True),
        ("resolved", "confirmed", True),  # a diagnosis means permanent discontinuation
        ("active", "entered-in-error", False),
        ("active", "refuted", False),
    ],
)
def test_nodular_regenerative_hyperplasia(clinical_status: str, verification: str, fires: bool) -> None:
    history = metastatic(*labs(), nrh(clinical_status=clinical_status, verification=verification))
    findings = evaluate(context(history))
    assert bool(findings) is fires
    if fires:
        assert findings[0].variant == "discontinue" and "any.nrh" in findings[0].sources


def test_problem_list_unavailable_is_said_for_nrh() -> None:
    ctx = context(metastatic(*labs()), available=ALL_CATEGORIES - {CONDITIONS})
    assert evaluate(ctx) == []
    assert any("Nodular regenerative hyperplasia check not applied" in n for n in ctx.notes)


def test_normal_labs_are_silent() -> None:
    assert evaluate(context(metastatic(*labs()))) == []


def test_suggests_removing_the_draft() -> None:
    (finding,) = evaluate(context(metastatic(*labs(alt=30 * 40))))
    assert finding.suggestions[0].actions[0].type == "delete"


def test_patient_view_only_when_due() -> None:
    assert RULE.on_patient_view and RULE.only_when_due
    due = metastatic(fb.administration("tdm1", fb.ago(days=20)), *labs(alt=30 * 40))
    assert "hepatotoxicity" in rule_ids(on_patient_view(due))
    not_due = metastatic(fb.administration("tdm1", fb.ago(days=5)), *labs(alt=30 * 40))
    assert "hepatotoxicity" not in rule_ids(on_patient_view(not_due))


def on_tdm1(setting, *extra: dict) -> list[dict]:
    return setting(fb.administration("tdm1", fb.ago(days=30)), *labs(), *extra)


@pytest.mark.parametrize(
    ("kind", "times", "setting", "variant"),
    [
        ("alt", 20 * JUST_ABOVE, metastatic, "discontinue"),
        ("alt", 20, metastatic, "resume-reduced"),  # a Grade 3 hold since the last dose: one level lower
        ("alt", 5, metastatic, None),
        ("bilirubin", 10 * JUST_ABOVE, metastatic, "discontinue"),
        ("bilirubin", 3, metastatic, None),  # MBC Grade 2 bilirubin resumes at the same dose
        ("bilirubin", 3 * JUST_ABOVE, metastatic, "resume-reduced"),
        ("bilirubin", 2 * JUST_ABOVE, early, "discontinue"),  # EBC: > 2 × ULN at any time
        ("bilirubin", 2, early, "resume-reduced"),
    ],
)
def test_levels_met_since_the_last_dose_outlive_recovery(
    kind: str, times: float, setting, variant: str | None
) -> None:
    earlier = fb.observation(kind, fb.ULN[kind] * times, fb.ago(days=10))
    findings = evaluate(context(on_tdm1(setting, earlier)))
    assert (findings[0].variant if findings else None) == variant
    if variant == "discontinue":
        assert "permanent criterion" in findings[0].facts["reasons"][0]
    if variant == "resume-reduced":
        assert "this order is not below the last dose (3.6 mg/kg on" in findings[0].facts["reasons"][0]
        assert "dosing.reduction-ladder" in findings[0].sources


def test_reduced_order_after_a_grade3_hold_is_silent() -> None:
    earlier = fb.observation("alt", 10 * 40, fb.ago(days=10))
    drafts = [fb.medication_request(rid="tdm1-draft", dose=3.0)]
    assert evaluate(context(on_tdm1(metastatic, earlier), drafts=drafts)) == []


def test_unreadable_dose_after_a_grade3_hold_is_said() -> None:
    earlier = fb.observation("alt", 10 * 40, fb.ago(days=10))
    ctx = context(
        on_tdm1(metastatic, earlier), drafts=[fb.medication_request(rid="tdm1-draft", dose=250, unit="mg")]
    )
    assert evaluate(ctx) == []
    assert any("one dose level lower" in note for note in ctx.notes)


def test_still_high_after_a_grade3_hold_lists_both() -> None:
    earlier = fb.observation("alt", 10 * 40, fb.ago(days=10))
    history = on_tdm1(metastatic, earlier, fb.observation("ast", 6 * 40, fb.ago(hours=5)))
    (finding,) = evaluate(context(history))
    assert finding.variant == "hold" and len(finding.facts["reasons"]) == 2


def test_permanent_level_before_the_first_dose_is_not_this_rule() -> None:
    before = fb.observation("alt", 25 * 40, fb.ago(days=40))
    assert evaluate(context(on_tdm1(metastatic, before))) == []


def test_no_tdm1_given_means_no_look_back() -> None:
    earlier = fb.observation("alt", 25 * 40, fb.ago(days=10))
    assert evaluate(context(metastatic(*labs(), earlier))) == []


@pytest.mark.parametrize(("days_apart", "fires"), [(3, True), (3.5, False)])
def test_earlier_hys_law_pair_must_be_concomitant(days_apart: float, fires: bool) -> None:
    alt = fb.observation("alt", 4 * 40, fb.ago(days=10))
    bilirubin = fb.observation("bilirubin", 2.5 * 1.2, fb.ago(days=10 + days_apart))
    findings = evaluate(context(on_tdm1(metastatic, alt, bilirubin)))
    assert bool(findings) is fires
    if fires:
        assert "any.hys-law" in findings[0].sources and "Hy's-law pattern on" in findings[0].facts["headline"]


def test_resume_reduced_card_offers_no_delete() -> None:
    earlier = fb.observation("alt", 10 * 40, fb.ago(days=10))
    (finding,) = evaluate(context(on_tdm1(metastatic, earlier)))
    assert finding.variant == "resume-reduced" and finding.suggestions == ()


def test_old_result_before_the_last_dose_was_acted_on() -> None:
    history = metastatic(
        *fresh_except("alt"), old("alt", 8, days=24), fb.administration("tdm1", fb.ago(days=21), dose=3.0)
    )
    assert [f for f in evaluate(context(history)) if f.variant == "hold"] == []


def test_old_discontinue_level_before_any_tdm1_is_not_a_discontinuation() -> None:
    """ALT 25 x ULN a month before a first T-DM1 order: not 'permanently discontinue' a drug never
    given; liver-tests-missing asks for a result and shows this one."""
    history = metastatic(*fresh_except("alt"), old("alt", 25, days=30))
    assert evaluate(context(history)) == []
    assert "liver-tests-missing" in rule_ids(on_order(fb.medication_request(), history))


@pytest.mark.parametrize("linked", [True, False], ids=["lymphoma-focused", "unlinked"])
def test_another_cancers_stage_iv_keeps_the_ebc_bilirubin_hold(linked: bool) -> None:
    # KATHERINE patient, Hodgkin lymphoma stage IV in 2003: bilirubin 1.2 x ULN holds T-DM1 in EBC
    # (an MBC reading would let it through: its table holds only above 1.5 x ULN).
    lymphoma = fb.hodgkin_lymphoma(stage_iv=True)
    stage = fb.staging(
        "clinical-stage",
        fb.stage_value(fb.AJCC, "4", "Stage IV"),
        fb.ago(days=8000),
        focus=lymphoma if linked else None,
    )
    history = fb.katherine_history(lymphoma, stage, bilirubin=1.2 * 1.2 * JUST_ABOVE)
    finding = only(on_order(fb.medication_request(count=14), history), "hepatotoxicity")
    assert finding.indicator == "critical"
    assert finding.facts["setting"] == "early breast cancer (EBC table, unverified)"


@pytest.mark.parametrize("days", [2, 5], ids=["in-the-window", "before-the-window"])
def test_discontinue_level_behind_a_newer_result_in_the_window_still_discontinues(days: float) -> None:
    """ALT 22 x ULN on T-DM1, rechecked at 18 x ULN yesterday: > 20 x ULN is a permanent criterion
    whether the first result was drawn before the lab window or inside it (it was lost there)."""
    history = on_tdm1(metastatic, old("alt", 22, days=days), fb.observation("alt", 18 * 40, fb.ago(hours=12)))
    (finding,) = evaluate(context(history))
    assert finding.variant == "discontinue"
    assert finding.facts["headline"].startswith("ALT 22.0 × ULN on")
    assert "permanent criterion" in finding.facts["reasons"][0]


@pytest.mark.parametrize("days", [2.5, 5], ids=["in-the-window", "before-the-window"])
def test_hys_law_pattern_behind_newer_results_in_the_window_still_discontinues(days: float) -> None:
    """ALT 3.5 x ULN with bilirubin 2.2 x ULN, then ALT 2.75 x and bilirubin 1.7 x ULN yesterday:
    the Hy's-law discontinuation stands (in the window it was lost, only the bilirubin hold fired)."""
    history = on_tdm1(
        metastatic,
        old("alt", 3.5, days=days),
        old("bilirubin", 2.6 / 1.2, days=days),
        fb.observation("alt", 110, fb.ago(hours=12)),
        fb.observation("bilirubin", 2.0, fb.ago(hours=12)),
    )
    (finding,) = evaluate(context(history))
    assert finding.variant == "discontinue"
    assert "any.hys-law" in finding.sources
    assert finding.facts["headline"].startswith("Hy's-law pattern on")


def test_hys_law_in_the_newest_results_is_said_once() -> None:
    history = on_tdm1(
        metastatic,
        old("alt", 3.5, days=2),
        old("bilirubin", 2.5, days=2),
        fb.observation("alt", 25, fb.ago(hours=12)),
        fb.observation("ast", 160, fb.ago(hours=12)),
        fb.observation("bilirubin", 3.0, fb.ago(hours=12)),
    )
    (finding,) = evaluate(context(history))
    assert finding.variant == "discontinue"
    # Each Hy's-law line pairs a transaminase "with total bilirubin"; the earlier pair is not listed.
    assert sum(" with total bilirubin " in r for r in finding.facts["reasons"]) == 1


@pytest.mark.parametrize(
    ("kind", "value", "uln", "headline"),
    [
        ("bilirubin", 1.7, 1.1, "total bilirubin 1.55 × ULN"),
        ("alt", 176, 35, "ALT 5.03 × ULN"),
        ("alt", 801, 40, "ALT 20.03 × ULN"),
        ("alt", 240, 40, "ALT 6.0 × ULN"),
        # 5.0025 × ULN is held (> 5): to the nearest hundredth it read "5.00"
        ("alt", 200.1, 40, "ALT 5.01 × ULN"),
        ("bilirubin", 1.504, 1.0, "total bilirubin 1.51 × ULN"),
    ],
)
def test_headline_never_rounds_a_held_result_down_to_the_table_level(
    kind: str, value: float, uln: float, headline: str
) -> None:
    """Bilirubin 1.7 mg/dL, ULN 1.1, is held (> 1.5 × ULN): the summary said "1.5 × ULN"; ALT 801,
    ULN 40, is discontinued (> 20 × ULN): it said "20.0 × ULN"."""
    history = metastatic(*fresh_except(kind), fb.observation(kind, value, fb.ago(days=1), uln=uln))
    (finding,) = evaluate(context(history))
    assert finding.facts["headline"] == headline


def test_reference_range_given_only_as_text_is_said_so_and_not_graded() -> None:
    """A lab that prints its range as text ("0-40 U/L") and sends no referenceRange.high: the note
    said the result 'has no reference range', which the clinician, seeing the range, knows is untrue."""
    alt = fb.observation("alt", 900, fb.ago(days=1))
    alt["referenceRange"] = [{"text": "0-40 U/L"}]
    ctx = context(metastatic(*fresh_except("alt"), alt))
    assert evaluate(ctx) == []
    (note,) = ctx.notes
    assert "given only as text ('0-40 U/L'), with no numeric ULN" in note and "cannot be graded" in note


@pytest.mark.parametrize(
    ("kind", "value", "uln", "times"),
    [("alt", 200.1, 40, "5.01"), ("bilirubin", 1.504, 1.0, "1.51"), ("alt", 240, 40, "6.00")],
)
def test_reason_line_states_the_multiple_as_the_headline_does(
    kind: str, value: float, uln: float, times: str
) -> None:
    """ALT 200.1 U/L, ULN 40 (5.0025 × ULN) is held: the summary said "5.01 × ULN" and the reason
    beside it "= 5.00 × ULN", the level the label holds only above."""
    history = metastatic(*fresh_except(kind), fb.observation(kind, value, fb.ago(days=1), uln=uln))
    (finding,) = evaluate(context(history))
    (reason,) = finding.facts["reasons"]
    assert f"= {times} × ULN (ULN " in reason
