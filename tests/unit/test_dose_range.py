"""Orders that state the dose as a doseRange (FHIR Dosage.doseAndRate.doseRange) instead of doseQuantity.

Before, such an order was "no structured dose": a T-DM1 order for 5.4 mg/kg, T-DXd's dose, written
as the range 5.4 to 5.4 mg/kg got a data-unavailable note instead of product-mixup's critical card.
A range from a dose to the same dose is that dose; a true range is never graded, and the note says so.
"""

from __future__ import annotations

import copy
from typing import Any

from service.clinical.rules.dose import RULE
from service.clinical.rules.product_mixup import RULE as MIXUP
from service.clinical.rules.tdxd_preferred import RULE as TDXD_PREFERRED
from tests import fhir_builders as fb
from tests.unit.label_a_helpers import all_rules, draft, evaluate, metastatic


def as_range(order: dict[str, Any], low: float, high: float, unit: str = "mg/kg") -> dict[str, Any]:
    ranged = copy.deepcopy(order)
    entry = ranged["dosageInstruction"][0]["doseAndRate"][0]
    quantity = entry.pop("doseQuantity")
    entry["doseRange"] = {
        "low": {**quantity, "value": low, "unit": unit, "code": unit},
        "high": {**quantity, "value": high, "unit": unit, "code": unit},
    }
    return ranged


def notes_of(findings) -> list[str]:
    return [note for f in findings if f.rule_id == "data-unavailable" for note in f.facts["notes"]]


def test_a_one_dose_range_at_tdxd_dose_is_a_product_mixup() -> None:
    (finding,) = evaluate(MIXUP, as_range(draft(), 5.4, 5.4), metastatic())
    assert finding.indicator == "critical"
    assert finding.facts["mg_per_kg"] == "5.4"


def test_a_one_dose_range_above_the_maximum_is_critical_and_the_fix_replaces_the_range() -> None:
    (finding,) = evaluate(RULE, as_range(draft(), 3.79, 3.79), metastatic())
    assert (finding.indicator, finding.variant) == ("critical", "above-maximum")
    update = next(a for s in finding.suggestions for a in s.actions if a.type == "update")
    (entry,) = update.resource["dosageInstruction"][0]["doseAndRate"]
    assert "doseRange" not in entry  # the old 3.79 must not survive beside the corrected dose
    assert (entry["doseQuantity"]["value"], entry["doseQuantity"]["code"]) == (3.6, "mg/kg")


def test_a_one_dose_range_on_a_level_is_silent() -> None:
    findings = all_rules([as_range(draft(), 3.6, 3.6)], metastatic())
    assert not {"dose-check", "product-mixup"} & {f.rule_id for f in findings}
    assert notes_of(findings) == []


def test_a_true_range_is_not_graded_and_is_named() -> None:
    findings = all_rules([as_range(draft(), 3.6, 5.4)], metastatic())
    assert not {"dose-check", "product-mixup"} & {f.rule_id for f in findings}
    (note,) = [n for n in notes_of(findings) if n.startswith("Dose check")]
    assert "dose range (3.6 to 5.4 mg/kg)" in note


def test_a_range_with_unreadable_bounds_is_named() -> None:
    order = as_range(draft(), 3.6, 3.6)
    order["dosageInstruction"][0]["doseAndRate"][0]["doseRange"]["high"]["code"] = "mL"
    order["dosageInstruction"][0]["doseAndRate"][0]["doseRange"]["high"]["unit"] = "mL"
    (note,) = [n for n in notes_of(all_rules([order], metastatic())) if n.startswith("Dose check")]
    assert "bounds not readable" in note


def test_a_one_dose_range_in_history_documents_a_reduced_level() -> None:
    # A completed order at 3.0 mg/kg (written as a range) after a reduction: 3.6 now re-escalates.
    past = as_range(fb.medication_request(status="completed", dose=3.0, authored=fb.ago(days=21)), 3.0, 3.0)
    (finding,) = evaluate(RULE, draft(dose=3.6), metastatic(past))
    assert finding.variant == "re-escalation"


def test_a_tdxd_drafted_from_a_true_range_states_only_its_own_dose() -> None:
    """tdxd-preferred drafts T-DXd from the T-DM1 draft's dosage: with_dose rewrote doseQuantity
    only, so a T-DM1 range (3.6 to 5.4 mg/kg) rode along as the T-DXd order's only dose, and the
    text kept "3.6 mg/kg", under an action saying "Draft T-DXd 5.4 mg/kg"."""
    (finding,) = evaluate(TDXD_PREFERRED, as_range(draft(), 3.6, 5.4), metastatic())
    (create,) = [a for s in finding.suggestions for a in s.actions if a.type == "create"]
    instruction = create.resource["dosageInstruction"][0]
    (entry,) = instruction["doseAndRate"]
    assert "doseRange" not in entry
    assert (entry["doseQuantity"]["value"], entry["doseQuantity"]["code"]) == (5.4, "mg/kg")
    assert instruction["text"] == "5.4 mg/kg IV every 21 days"


def test_the_corrected_order_drops_a_true_range_beside_the_dose_it_corrects() -> None:
    """Epic's calculated mg as doseQuantity, the ordered mg/kg as a range: the mg amount is graded
    (265 mg for 70 kg is above 3.6 mg/kg), and the fix must not leave the range standing beside it."""
    order = draft(dose=265, unit="mg")
    entries = order["dosageInstruction"][0]["doseAndRate"]
    entries.append(as_range(draft(), 3.6, 5.4)["dosageInstruction"][0]["doseAndRate"][0])
    (finding,) = evaluate(RULE, order, metastatic(weight=70))
    assert finding.variant == "above-maximum"
    update = next(a for s in finding.suggestions for a in s.actions if a.type == "update")
    stated = update.resource["dosageInstruction"][0]["doseAndRate"]
    assert not [e for e in stated if "doseRange" in e]
    assert sorted((e["doseQuantity"]["value"], e["doseQuantity"]["code"]) for e in stated) == [
        (3.6, "mg/kg"),
        (252, "mg"),
    ]
