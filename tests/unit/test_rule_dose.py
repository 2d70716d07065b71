"""dose-check: label ladder 3.6 / 3.0 / 2.4 mg/kg ± 5 %, maximum, re-escalation, weight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.clinical import terminology
from service.clinical.record import ALL_CATEGORIES, MEDICATION_REQUESTS, OBSERVATIONS, build, notes_on
from service.clinical.rules.dose import RULE
from service.clinical.rules.product_mixup import RULE as MIXUP
from tests import fhir_builders as fb
from tests.unit.label_a_helpers import (
    ORDER_ID,
    all_rules,
    context,
    draft,
    evaluate,
    metastatic,
    render,
    with_params,
)


def one(findings):
    assert len(findings) == 1, findings
    return findings[0]


def update_of(finding):
    suggestion = one(list(finding.suggestions))
    action = one(list(suggestion.actions))
    assert action.type == "update"
    return action.resource


@pytest.mark.parametrize("dose", [3.6, 3.0, 2.4, 3.78, 3.42, 2.28, 3.15, 2.52])
def test_on_a_level_within_tolerance_is_silent(dose: float) -> None:
    assert evaluate(RULE, draft(dose=dose), metastatic()) == []


def test_just_above_the_maximum_band_is_critical_and_suggests_the_maximum() -> None:
    finding = one(evaluate(RULE, draft(dose=3.79), metastatic()))
    assert (finding.indicator, finding.variant) == ("critical", "above-maximum")
    assert finding.order_ref == f"MedicationRequest/{ORDER_ID}"
    resource = update_of(finding)
    assert resource["id"] == ORDER_ID
    quantity = resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert (quantity["value"], quantity["code"]) == (3.6, "mg/kg")
    assert resource["dosageInstruction"][0]["text"].startswith("3.6 mg/kg")
    assert "dosing.maximum" in finding.sources


def test_well_above_the_maximum_in_a_gap_between_lookalike_levels_is_critical() -> None:
    finding = one(evaluate(RULE, draft(dose=4.8), metastatic()))
    assert finding.indicator == "critical"


def test_tolerance_comes_from_params() -> None:
    assert evaluate(RULE, draft(dose=3.7), metastatic()) == []
    strict = with_params(dose_tolerance=0.0)
    assert one(evaluate(RULE, draft(dose=3.7), metastatic(), params=strict)).variant == "above-maximum"


@pytest.mark.parametrize(("dose", "suggested"), [(3.41, 3.0), (2.7, 2.4), (2.84, 2.4), (2.53, 2.4)])
def test_between_levels_warns_and_suggests_the_level_below(dose: float, suggested: float) -> None:
    finding = one(evaluate(RULE, draft(dose=dose), metastatic()))
    assert (finding.indicator, finding.variant) == ("warning", "between-levels")
    quantity = update_of(finding)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert quantity["value"] == suggested


def test_below_the_lowest_level_warns_and_offers_discontinuation() -> None:
    finding = one(evaluate(RULE, draft(dose=2.27), metastatic()))
    assert (finding.indicator, finding.variant) == ("warning", "below-ladder")
    action = one(list(one(list(finding.suggestions)).actions))
    assert (action.type, action.resource_id) == ("delete", f"MedicationRequest/{ORDER_ID}")


def test_mg_dose_is_divided_by_the_weight() -> None:
    assert evaluate(RULE, draft(dose=252, unit="mg"), metastatic(weight=70)) == []  # 3.6 mg/kg
    assert evaluate(RULE, draft(dose=264, unit="mg"), metastatic(weight=70)) == []  # 3.77 mg/kg
    finding = one(evaluate(RULE, draft(dose=265, unit="mg"), metastatic(weight=70)))  # 3.79 mg/kg
    assert finding.variant == "above-maximum"
    assert finding.facts["mg_per_kg"] == "3.79"
    quantity = update_of(finding)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert (quantity["value"], quantity["code"]) == (252, "mg")  # level × weight, whole mg


def test_mg_suggestion_rounds_level_times_weight() -> None:
    finding = one(evaluate(RULE, draft(dose=246, unit="mg"), metastatic(weight=72.5)))  # 3.39: between
    quantity = update_of(finding)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert quantity["value"] == 218  # 3.0 × 72.5 = 217.5 → 218


def test_weight_exactly_at_the_stale_limit_is_fresh() -> None:
    assert evaluate(RULE, draft(dose=252, unit="mg"), metastatic(weight_days=30)) == []


def test_weight_one_day_past_the_stale_limit_cannot_verify_an_mg_dose() -> None:
    finding = one(evaluate(RULE, draft(dose=252, unit="mg"), metastatic(weight_days=31)))
    assert (finding.indicator, finding.variant) == ("warning", "weight-stale")
    assert "31 days" in finding.facts["last_weight"]
    assert finding.suggestions == ()


def test_stale_limit_comes_from_params() -> None:
    params = with_params(weight_stale=timedelta(days=60))
    assert evaluate(RULE, draft(dose=252, unit="mg"), metastatic(weight_days=31), params=params) == []


def test_missing_weight_cannot_verify_an_mg_dose() -> None:
    finding = one(evaluate(RULE, draft(dose=252, unit="mg"), metastatic(weight=None)))
    assert finding.variant == "weight-missing"
    assert finding.facts["last_weight"] == "none on record"


def test_weight_is_judged_at_the_planned_dose_time() -> None:
    order = draft(dose=252, unit="mg")
    start = fb.NOW + timedelta(days=10)
    order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": fb.iso(start)}
    # 25 days old today, 35 days old on the day of the infusion.
    assert one(evaluate(RULE, order, metastatic(weight_days=25))).variant == "weight-stale"


def test_mg_per_kg_order_needs_no_weight() -> None:
    assert evaluate(RULE, draft(dose=3.6), metastatic(weight=None)) == []
    assert one(evaluate(RULE, draft(dose=3.79), metastatic(weight=None))).variant == "above-maximum"


def test_unreadable_weight_is_not_used() -> None:
    weight = fb.observation("weight", 70, fb.ago(days=1), unit="stone-ish")
    finding = one(evaluate(RULE, draft(dose=252, unit="mg"), [*metastatic(weight=None), weight]))
    # Not "no body weight on record": there is one, and the card says which and why it is unusable.
    assert finding.variant == "weight-unreadable"
    assert "2026-11-24" in finding.facts["unreadable_weight"]
    assert "'stone-ish'" in finding.facts["unreadable_weight"]
    assert finding.facts["last_weight"] == "none on record"


def _weight(value: object, days: float, unit: str | None = "kg") -> dict:
    weight = fb.observation("weight", 0, fb.ago(days=days))
    weight["valueQuantity"] = {"value": value, **({"unit": unit} if unit else {})}
    if value is None:
        del weight["valueQuantity"]["value"]
    return weight


@pytest.mark.parametrize(
    ("newest", "why"),
    [
        (_weight(110.0, 1, unit="pounds"), "unit 'pounds' not recognised"),  # not UCUM: [lb_av]
        (_weight(None, 1), "no numeric value"),
        (_weight("110", 1), "no numeric value"),
        (_weight(110.0, 1, unit=None), "no unit"),
    ],
)
def test_unreadable_newest_weight_is_not_replaced_by_an_older_one(newest: dict, why: str) -> None:
    # 252 mg is 3.6 mg/kg for last month's 70 kg; yesterday's 110 pounds (49.9 kg) makes it 5.05.
    history = [*metastatic(weight=70, weight_days=25), newest]
    order = draft(dose=252, unit="mg")
    finding = one(evaluate(RULE, order, history))
    assert (finding.indicator, finding.variant) == ("warning", "weight-unreadable")
    assert finding.facts["unreadable_weight"] == f"2026-11-24 (1 days before the dose): {why}"
    assert finding.facts["last_weight"].startswith("70 kg on 2026-10-31")
    card = render(finding)
    assert "2026-11-24" in card["summary"]
    assert f"2026-11-24 (1 days before the dose): {why}" in card["detail"]
    assert "70 kg on 2026-10-31" in card["detail"]
    assert [f.rule_id for f in all_rules([order], history) if f.rule_id.startswith("dose")] == ["dose-check"]


@pytest.mark.parametrize(
    ("value", "why"), [(0, "0 kg is not a body weight"), (-70, "-70 kg is not a body weight")]
)
def test_a_weight_of_zero_or_less_is_an_unreadable_newest_weight(value: float, why: str) -> None:
    # Was a ZeroDivisionError (HTTP 500) for 0 kg, and -3.6 mg/kg "below the lowest level" for -70.
    history = [*metastatic(weight=70, weight_days=25), _weight(value, 1)]
    finding = one(evaluate(RULE, draft(dose=252, unit="mg"), history))
    assert (finding.indicator, finding.variant) == ("warning", "weight-unreadable")
    assert finding.facts["unreadable_weight"] == f"2026-11-24 (1 days before the dose): {why}"


def test_a_past_mg_dose_weighed_at_zero_kg_is_not_converted() -> None:
    # Re-escalation reads past doses in mg/kg: a 0 kg weight of their day gives no mg/kg, not a 500.
    history = [
        *metastatic(weight=None),
        _weight(0, 22),
        fb.administration("tdm1", fb.ago(days=21), dose=150, unit="mg"),
    ]
    assert [f.rule_id for f in all_rules([draft(dose=3.6)], history) if f.rule_id == "dose-check"] == []


@pytest.mark.parametrize("reason", ["not-performed", "asked-declined", "unknown", "error"])
def test_a_weight_recorded_as_not_measured_leaves_the_older_weight_in_force(reason: str) -> None:
    # Nobody weighed the patient yesterday: 500 mg is 7.1 mg/kg for the 70 kg of 5 days ago.
    history = [*metastatic(weight=70, weight_days=5), fb.absent_observation("weight", fb.ago(days=1), reason)]
    finding = one(evaluate(RULE, draft(dose=500, unit="mg"), history))
    assert (finding.indicator, finding.variant) == ("critical", "above-maximum")
    assert finding.facts["mg_per_kg"] == "7.14"


def test_a_weight_with_a_unit_but_no_value_and_a_data_absent_reason_is_not_measured() -> None:
    absent = fb.absent_observation("weight", fb.ago(days=1))
    absent["valueQuantity"] = {"unit": "kg", "system": fb.UCUM, "code": "kg"}
    history = [*metastatic(weight=70, weight_days=5), absent]
    assert one(evaluate(RULE, draft(dose=500, unit="mg"), history)).variant == "above-maximum"


@pytest.mark.parametrize("reason", ["masked", "as-text"])
def test_a_withheld_weight_is_still_an_unreadable_newest_weight(reason: str) -> None:
    # The value exists (hidden, or in the narrative): it may differ from the older one.
    history = [*metastatic(weight=70, weight_days=5), fb.absent_observation("weight", fb.ago(days=1), reason)]
    finding = one(evaluate(RULE, draft(dose=500, unit="mg"), history))
    assert (finding.indicator, finding.variant) == ("warning", "weight-unreadable")
    assert finding.facts["unreadable_weight"].endswith(f"no numeric value (data absent: {reason})")


def test_a_preliminary_newest_weight_is_named_and_not_replaced_by_an_older_one() -> None:
    # It was dropped: 252 mg was checked as 3.6 mg/kg against the 70 kg of 5 days ago, in silence.
    preliminary = fb.observation("weight", 55, fb.ago(days=1), status="preliminary")
    history = [*metastatic(weight=70, weight_days=5), preliminary]
    finding = one(evaluate(RULE, draft(dose=252, unit="mg"), history))
    assert (finding.indicator, finding.variant) == ("warning", "weight-unreadable")
    assert finding.facts["unreadable_weight"] == (
        "2026-11-24 (1 days before the dose): preliminary, not final: 55 kg on 2026-11-24"
    )
    assert finding.facts["last_weight"].startswith("70 kg on 2026-11-20")


def test_a_preliminary_weight_of_the_same_weighing_as_a_final_one_does_not_hide_it() -> None:
    """Both recorded at once: the final 70 kg is the weight, in whichever order they come."""
    when = fb.ago(days=1)
    final = fb.observation("weight", 70, when)
    preliminary = fb.observation("weight", 55, when, status="preliminary")
    for weights in ([preliminary, final], [final, preliminary]):
        history = [*metastatic(weight=None), *weights]
        assert evaluate(RULE, draft(dose=252, unit="mg"), history) == []  # 3.6 mg/kg at 70 kg


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_a_cancelled_or_mistaken_newest_weight_is_ignored(status: str) -> None:
    mistaken = fb.observation("weight", 50, fb.ago(days=1), status=status)
    absent = fb.absent_observation("weight", fb.ago(days=1), status=status)
    history = [*metastatic(weight=70, weight_days=5), mistaken, absent]
    assert evaluate(RULE, draft(dose=252, unit="mg"), history) == []  # 3.6 mg/kg at 70 kg


@pytest.mark.parametrize(
    ("value", "unit"), [(70.0, "kg"), (70_000, "g"), (154.32, "[lb_av]"), (154.32, "lb"), (154.32, "lbs")]
)
def test_newest_weight_in_a_readable_unit_is_used(value: float, unit: str) -> None:
    history = [
        *metastatic(weight=90, weight_days=25),
        fb.observation("weight", value, fb.ago(days=1), unit=unit),
    ]
    assert evaluate(RULE, draft(dose=252, unit="mg"), history) == []  # 3.6 mg/kg at 70 kg


def test_an_older_unreadable_weight_does_not_hide_a_newer_readable_one() -> None:
    history = [*metastatic(weight=70, weight_days=1), _weight(110.0, 5, unit="pounds")]
    assert evaluate(RULE, draft(dose=252, unit="mg"), history) == []


def test_unreadable_newest_weight_does_not_matter_to_an_mg_per_kg_order() -> None:
    history = [*metastatic(weight=70, weight_days=25), _weight(110.0, 1, unit="pounds")]
    assert evaluate(RULE, draft(dose=3.6), history) == []


def test_weight_in_pounds_is_converted() -> None:
    weight = fb.observation("weight", 154.32, fb.ago(days=1), unit="[lb_av]")
    assert evaluate(RULE, draft(dose=252, unit="mg"), [*metastatic(weight=None), weight]) == []


def test_reescalation_after_a_documented_reduction_warns() -> None:
    history = metastatic(
        fb.administration("tdm1", fb.ago(days=63), dose=3.6),
        fb.administration("tdm1", fb.ago(days=42), dose=3.0),
        fb.administration("tdm1", fb.ago(days=21), dose=3.0),
    )
    finding = one(evaluate(RULE, draft(dose=3.6), history))
    assert (finding.indicator, finding.variant) == ("warning", "re-escalation")
    assert finding.facts["documented"] == "3.0"
    assert "given" in finding.facts["documented_on"]
    quantity = update_of(finding)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert quantity["value"] == 3
    assert evaluate(RULE, draft(dose=3.0), history) == []
    assert evaluate(RULE, draft(dose=2.4), history) == []


def test_above_maximum_after_a_reduction_suggests_the_reduced_level() -> None:
    history = metastatic(fb.administration("tdm1", fb.ago(days=21), dose=3.0))
    finding = one(evaluate(RULE, draft(dose=3.79), history))
    assert finding.variant == "above-maximum"
    assert "reduction to 3.0 mg/kg" in finding.facts["reduction_note"]
    quantity = update_of(finding)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert quantity["value"] == 3


def test_reescalation_is_found_from_an_earlier_order_in_mg() -> None:
    earlier = fb.medication_request(
        "tdm1", status="active", dose=210, unit="mg", authored=fb.ago(days=21), rid="earlier-order"
    )
    history = metastatic(earlier, weight_days=20)  # 210 mg / 70 kg = 3.0 mg/kg
    assert one(evaluate(RULE, draft(dose=3.6), history)).variant == "re-escalation"


def test_past_mg_dose_is_converted_with_the_weight_of_its_day() -> None:
    history = metastatic(
        fb.observation("weight", 80.0, fb.ago(days=22)),
        fb.administration("tdm1", fb.ago(days=21), dose=288, unit="mg"),  # 3.6 at 80 kg
        weight=70,
    )
    # 288 mg over today's 70 kg would be 4.1 "mg/kg"; over 80 kg it is 3.6: no reduction happened.
    assert evaluate(RULE, draft(dose=3.6), history) == []


def test_past_mg_dose_without_any_weight_is_said() -> None:
    history = metastatic(fb.administration("tdm1", fb.ago(days=400), dose=210, unit="mg"))
    ctx = context(draft(dose=3.6), history)
    assert RULE.evaluate(ctx) == []
    assert any("Re-escalation check incomplete" in note for note in ctx.notes)


def test_an_earlier_adjuvant_course_does_not_count_as_a_reduction() -> None:
    adjuvant = fb.administration("tdm1", datetime(2024, 3, 1, tzinfo=UTC), dose=3.0)
    assert evaluate(RULE, draft(dose=3.6), metastatic(adjuvant)) == []


def test_not_given_administrations_do_not_document_a_reduction() -> None:
    history = metastatic(fb.administration("tdm1", fb.ago(days=21), dose=3.0, status="not-done"))
    assert evaluate(RULE, draft(dose=3.6), history) == []


def test_missing_medication_history_is_said() -> None:
    available = ALL_CATEGORIES - {MEDICATION_REQUESTS}
    ctx = context(draft(dose=3.6), metastatic(), available=available)
    assert RULE.evaluate(ctx) == []
    assert any("Re-escalation check not applied" in note for note in ctx.notes)


def test_mg_dose_without_observations_is_said_not_guessed() -> None:
    ctx = context(draft(dose=252, unit="mg"), metastatic(), available=ALL_CATEGORIES - {OBSERVATIONS})
    assert RULE.evaluate(ctx) == []
    assert any("body weight could not be read" in note for note in ctx.notes)


def test_unreadable_dose_unit_is_said() -> None:
    ctx = context(draft(dose=12, unit="mL"), metastatic())
    assert RULE.evaluate(ctx) == []
    assert any("could not be read" in note for note in ctx.notes)


def test_order_without_dose_is_said_on_sign_only() -> None:
    signing = context(draft(dose=None), metastatic())
    assert RULE.evaluate(signing) == [] and signing.notes
    selecting = context(draft(dose=None), metastatic(), hook="order-select")
    assert RULE.evaluate(selecting) == [] and not selecting.notes


def test_lookalike_level_is_left_to_product_mixup() -> None:
    """T-DM1 at 5.4 mg/kg (T-DXd): product-mixup fires, dose-check does not (one card, not two)."""
    assert evaluate(RULE, draft(dose=5.4), metastatic()) == []
    assert one(evaluate(MIXUP, draft(dose=5.4), metastatic())).indicator == "critical"
    history = metastatic(
        fb.administration("tdm1", fb.ago(days=21), dose=3.6),
        fb.observation("lvef", 60.0, fb.ago(days=40)),
        fb.observation("lvef", 62.0, fb.ago(days=30)),
        *fb.fresh_labs(),
    )
    assert [f.rule_id for f in all_rules([draft(dose=5.4)], history)] == ["product-mixup"]


def test_not_for_lookalike_orders() -> None:
    assert evaluate(RULE, draft("tdxd", dose=4.8), metastatic()) == []


def test_update_keeps_the_draft_and_validates() -> None:
    order = draft(dose=4.8)
    order["note"] = [{"text": "cycle 3"}]
    resource = update_of(one(evaluate(RULE, order, metastatic())))
    assert resource["note"] == order["note"]
    assert resource["status"] == "draft"
    assert order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 4.8  # not mutated


def test_update_is_offered_even_when_the_ehr_draft_fails_strict_validation() -> None:
    order = draft(dose=4.8)
    order["vendorField"] = {"x": 1}  # an element the strict R4B model rejects
    resource = update_of(one(evaluate(RULE, order, metastatic())))
    assert resource["vendorField"] == {"x": 1}
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 3.6


def test_accepting_the_suggestion_silences_the_card() -> None:
    resource = update_of(one(evaluate(RULE, draft(dose=4.8), metastatic())))
    assert evaluate(RULE, resource, metastatic()) == []


def test_order_without_id_gets_a_card_but_no_suggestion() -> None:
    order = draft(dose=4.8)
    del order["id"]
    finding = one(evaluate(RULE, order, metastatic()))
    assert finding.suggestions == ()


def test_a_weight_with_an_unreadable_date_is_left_to_the_data_unavailable_note() -> None:
    # Its date cannot place it as the newest: notes_on names it, as for every kind of result.
    misdated = fb.observation("weight", 50.0, fb.ago(days=1))
    misdated["effectiveDateTime"] = "yesterday"
    history = [*metastatic(weight=70, weight_days=2), misdated]
    assert evaluate(RULE, draft(dose=252, unit="mg"), history) == []
    notes = notes_on(build("pat-1", history, terminology.default()))
    assert any("body weight result(s) with an effective date that could not be read" in n for n in notes)


EPIC_DOSE_RATE_TYPE = "http://epic.com/CodeSystem/dose-rate-type"


def epic_draft(mg_per_kg: float, dosing_weight: float = 70.0) -> dict:
    """A T-DM1 draft as Epic sends its dose: doseAndRate entries typed admin-amount (mL, at 20 mg/mL),
    calculated (mg, from Epic's dosing weight) and ordered (mg/kg), in that order, and the text to match."""
    mg = round(mg_per_kg * dosing_weight)

    def entry(code: str, value: float, unit: str) -> dict:
        return {
            "type": {
                "coding": [{"system": EPIC_DOSE_RATE_TYPE, "code": code, "display": code}],
                "text": code,
            },
            "doseQuantity": {"value": value, "unit": unit, "system": fb.UCUM, "code": unit},
        }

    order = draft(dose=mg_per_kg)
    instruction = order["dosageInstruction"][0]
    instruction["doseAndRate"] = [
        entry("admin-amount", mg / 20, "mL"),
        entry("calculated", mg, "mg"),
        entry("ordered", mg_per_kg, "mg/kg"),
    ]
    instruction["text"] = f"{mg_per_kg:g} mg/kg ({mg} mg) IV every 21 days; use 100 mg and 160 mg vials"
    return order


def doses_stated(resource: dict) -> dict[str, float]:
    return {
        e["type"]["text"]: e["doseQuantity"]["value"]
        for e in resource["dosageInstruction"][0]["doseAndRate"]
        if "doseQuantity" in e
    }


@pytest.mark.parametrize("rule", [RULE, MIXUP], ids=["dose-check", "product-mixup"])
def test_the_corrected_order_states_the_new_dose_in_every_entry_of_an_epic_draft(rule) -> None:
    """The update rewrote the first doseQuantity, Epic's admin-amount in mL, as 252 mg and left the
    ordered 5.4 mg/kg (or 4.8) and the calculated mg standing: accepting it changed nothing."""
    ordered = 5.4 if rule is MIXUP else 4.8
    finding = one(evaluate(rule, epic_draft(ordered), metastatic(weight=70)))
    suggestion = next(s for s in finding.suggestions if s.actions[0].type == "update")
    resource = suggestion.actions[0].resource
    # The volume was computed from the old dose: dropped, not left to contradict the new one.
    assert doses_stated(resource) == {"calculated": 252, "ordered": 3.6}
    assert resource["dosageInstruction"][0]["text"] == (
        "3.6 mg/kg (252 mg) IV every 21 days; use 100 mg and 160 mg vials"
    )
    # accepted, it is the order the checks accept (no alert loop)
    assert not {"dose-check", "product-mixup"} & {f.rule_id for f in all_rules([resource], metastatic())}


def test_a_product_drafted_from_an_epic_draft_states_only_its_own_dose() -> None:
    """tdxd-preferred and product-mixup draft the other product from the T-DM1 draft's dosage: the
    T-DM1 mg amount and volume must not ride along beside the new mg/kg dose."""
    from service.clinical.rules import dosing
    from service.clinical.terminology import TDXD

    resource = dosing.new_order_like(epic_draft(3.6), TDXD, "Patient/pat-1", "new-1", 5.4, "mg/kg")
    assert resource is not None
    assert doses_stated(resource) == {"ordered": 5.4}
    assert resource["dosageInstruction"][0]["text"] == (
        "5.4 mg/kg IV every 21 days; use 100 mg and 160 mg vials"
    )


@pytest.mark.parametrize("weight_days", [None, 40], ids=["no weight", "weight 40 days old"])
def test_an_mg_amount_without_a_fresh_weight_leaves_the_orders_own_mg_per_kg_dose(weight_days) -> None:
    """Epic's calculated mg comes before its ordered mg/kg: the mg amount was read, and with no
    fresh weight the T-DXd dose of 5.4 mg/kg got only 'cannot be checked', never product-mixup."""
    history = metastatic(weight=None if weight_days is None else 70, weight_days=weight_days or 2)
    findings = all_rules([epic_draft(5.4)], history)
    mixup = one([f for f in findings if f.rule_id == "product-mixup"])
    assert mixup.indicator == "critical" and mixup.facts["mg_per_kg"] == "5.4"
    assert "dose-check" not in {f.rule_id for f in findings}
    above = one(evaluate(RULE, epic_draft(4.8), history))
    assert above.variant == "above-maximum" and above.indicator == "critical"
    # no weight to recompute 252 mg from: the mg amount goes, the mg/kg level stays
    assert doses_stated(update_of(above)) == {"ordered": 3.6}


def test_a_lookalike_in_mg_without_a_weight_is_compared_by_its_own_mg_per_kg_dose() -> None:
    order = epic_draft(3.6)
    order["medicationCodeableConcept"] = fb.medication_concept("tdxd")
    finding = one(evaluate(MIXUP, order, metastatic(weight=None)))
    assert finding.variant == "lookalike-at-tdm1-dose"


def test_an_mg_only_order_without_a_fresh_weight_still_cannot_be_checked() -> None:
    finding = one(evaluate(RULE, draft(dose=252, unit="mg"), metastatic(weight=70, weight_days=40)))
    assert finding.variant == "weight-stale"


@pytest.mark.parametrize("weight_days", [None, 60], ids=["no weight", "weight 60 days old"])
def test_an_epic_mg_amount_on_a_ladder_mg_per_kg_without_a_fresh_weight_still_cannot_be_checked(
    weight_days,
) -> None:
    """3.6 mg/kg ordered, 378 mg calculated by Epic from a dosing weight of 105 kg; the patient last
    weighed 70 kg, 60 days ago (378 mg is 5.4 mg/kg for her). The mg amount is what is given: read as
    its mg/kg alone, the order passed with no card at all, where it had the weight warning."""
    history = metastatic(weight=None if weight_days is None else 70, weight_days=weight_days or 2)
    finding = one(evaluate(RULE, epic_draft(3.6, dosing_weight=105), history))
    assert finding.indicator == "warning"
    assert finding.variant == ("weight-missing" if weight_days is None else "weight-stale")
    assert finding.facts["ordered"] == "378 mg (calculated from 3.6 mg/kg)"
    assert not [f for f in all_rules([epic_draft(3.6, 105)], history) if f.rule_id == "product-mixup"]


def test_the_corrected_order_rewrites_a_dose_the_text_states_rounded() -> None:
    """Epic's calculated dose is 337.44 mg (4.8 mg/kg for 70.3 kg); its text says "(337 mg)". The
    mention matched no dose exactly and was left: the corrected order read "3.6 mg/kg (337 mg)"
    beside a doseQuantity of 252 mg, two doses in one order."""
    order = epic_draft(4.8, dosing_weight=70.3)
    entries = order["dosageInstruction"][0]["doseAndRate"]
    entries[0]["doseQuantity"]["value"], entries[1]["doseQuantity"]["value"] = 16.87, 337.44
    order["dosageInstruction"][0]["text"] = "4.8 mg/kg (337 mg) IV every 21 days; use 100 mg vials"
    resource = update_of(one(evaluate(RULE, order, metastatic(weight=70))))
    assert doses_stated(resource) == {"calculated": 252, "ordered": 3.6}
    assert resource["dosageInstruction"][0]["text"] == "3.6 mg/kg (252 mg) IV every 21 days; use 100 mg vials"
