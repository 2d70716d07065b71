"""Writes the label-check scenarios (dose-check, product-mixup, her2-status, tdxd-preferred) in
fhir_fixtures/requests from tests/fhir_builders (run once, commit the JSON).

    .venv/bin/python fhir_fixtures/generate_label_checks_a.py

Each scenario is a CDS Hooks request with complete prefetch (requests/<name>.json) and its
expectations (requests/<name>.meta.json: exactly the rule ids the response must contain).
Ids are deterministic so regenerating gives the same files.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fhir_fixtures.scenario_io import deterministic_ids, write
from tests import fhir_builders as fb


def order(hook: str, drafts: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[str, Any]:
    return fb.hook_request(hook, drafts=drafts, history=history)


def is_weight(resource: dict[str, Any]) -> bool:
    return resource["resourceType"] == "Observation" and resource["code"]["coding"][0]["code"] == "29463-7"


def lab_result(code: str, display: str, when: datetime, value: dict[str, Any]) -> dict[str, Any]:
    """A final laboratory Observation with the given value[x] (for HER2 results)."""
    return {
        "resourceType": "Observation",
        "id": fb.new_id(),
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": fb.LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": fb.iso(when),
        "issued": fb.iso(when),
        **value,
    }


def on_tdm1(
    doses: tuple[float, ...] = (3.6, 3.6), unit: str = "mg/kg", *, weight: bool = True
) -> list[dict[str, Any]]:
    """Second-line T-DM1 under way after first-line THP: baseline LVEF, doses every 21 days, fresh labs."""
    history = fb.metastatic_history()
    if not weight:
        history = [r for r in history if not is_weight(r)]
    first = 21 * len(doses)
    history.append(fb.observation("lvef", 62.0, fb.ago(days=first + 7)))
    for index, dose in enumerate(doses):
        history.append(fb.administration("tdm1", fb.ago(days=first - 21 * index), dose=dose, unit=unit))
    return history


def main() -> None:
    deterministic_ids("quiet-2l")
    write(
        "second-line-tdm1-quiet",
        "Appropriate second-line T-DM1: only the T-DXd advisory",
        "Progressed after first-line THP for liver metastases; T-DM1 3.6 mg/kg for 70 kg, labs normal yesterday, "
        "LVEF 60% 40 days ago, HER2-positive: only tdxd-preferred (info).",
        order("order-sign", [fb.medication_request(rid="kadcyla-2l")], fb.metastatic_history()),
        ["tdxd-preferred"],
    )

    deterministic_ids("early-rec")
    history = [
        *fb.metastatic_history(prior_her2=False),
        fb.statement("trastuzumab", datetime(2023, 6, 1, tzinfo=UTC), datetime(2024, 9, 1, tzinfo=UTC)),
        fb.statement("pertuzumab", datetime(2023, 6, 1, tzinfo=UTC), datetime(2024, 9, 1, tzinfo=UTC)),
    ]
    write(
        "tdxd-preferred-early-recurrence",
        "T-DM1 for recurrence 6 months after adjuvant HER2 therapy",
        "Adjuvant trastuzumab + pertuzumab ended September 2024, liver metastases March 2025 (≤ 12 months: "
        "second line per ASCO Rec 5.0); T-DM1 selected without prior T-DXd.",
        order("order-select", [fb.medication_request(rid="kadcyla-rec")], history),
        ["tdxd-preferred"],
    )

    deterministic_ids("third-line")
    history = [
        *fb.metastatic_history(),
        fb.statement("tdxd", datetime(2026, 8, 20, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),
    ]
    write(
        "third-line-tdm1-after-tdxd",
        "Third-line T-DM1 after T-DXd: no card",
        "THP first line, then T-DXd second line until progression; T-DM1 3.6 mg/kg third line is appropriate.",
        order("order-sign", [fb.medication_request(rid="kadcyla-3l")], history),
        [],
    )

    deterministic_ids("reescalation")
    write(
        "dose-reescalation-after-reduction",
        "T-DM1 re-escalated after a dose reduction",
        "Reduced from 3.6 to 3.0 mg/kg after a transaminase rise two cycles ago; cycle 4 is ordered at 3.6 mg/kg again.",
        order("order-sign", [fb.medication_request(rid="kadcyla-c4")], on_tdm1((3.6, 3.0, 3.0))),
        ["dose-check"],
    )

    deterministic_ids("above-max")
    write(
        "dose-above-maximum-mg",
        "T-DM1 336 mg for 70 kg (4.8 mg/kg)",
        "Cycle 3 ordered in mg: 336 mg for a 70 kg patient is 4.8 mg/kg, above the 3.6 mg/kg maximum.",
        order(
            "order-sign",
            [fb.medication_request(dose=336, unit="mg", rid="kadcyla-mg")],
            on_tdm1((252, 252), unit="mg"),
        ),
        ["dose-check"],
    )

    deterministic_ids("weight-stale")
    history = [*on_tdm1(weight=False), fb.observation("weight", 74.0, fb.ago(days=45))]
    write(
        "dose-weight-stale",
        "T-DM1 in mg with a 45-day-old weight",
        "Cycle 3 ordered as 266 mg; the last body weight (74 kg) is 45 days old, so the mg/kg dose cannot be verified.",
        order("order-sign", [fb.medication_request(dose=266, unit="mg", rid="kadcyla-stale")], history),
        ["dose-check"],
    )

    deterministic_ids("tdm1-54")
    write(
        "mixup-tdm1-at-tdxd-dose",
        "T-DM1 ordered at 5.4 mg/kg (the T-DXd dose)",
        "Cycle 3 of T-DM1 entered as 5.4 mg/kg, the trastuzumab deruxtecan dose.",
        order("order-sign", [fb.medication_request(dose=5.4, rid="kadcyla-54")], on_tdm1()),
        ["product-mixup"],
    )

    deterministic_ids("tdxd-36")
    write(
        "mixup-tdxd-at-tdm1-dose",
        "T-DXd ordered at 3.6 mg/kg (the T-DM1 dose)",
        "Second line after THP: Enhertu is selected at 3.6 mg/kg, the Kadcyla dose.",
        order(
            "order-select",
            [fb.medication_request("tdxd", dose=3.6, rid="enhertu-36")],
            fb.metastatic_history(),
        ),
        ["product-mixup"],
    )

    deterministic_ids("swap")
    write(
        "mixup-trastuzumab-during-tdm1",
        "Trastuzumab ordered in the middle of a T-DM1 course",
        "T-DM1 given 21 days ago with no progression or toxicity recorded; trastuzumab 6 mg/kg is ordered instead.",
        order("order-sign", [fb.medication_request("trastuzumab", dose=6, rid="herceptin-6")], on_tdm1()),
        ["product-mixup"],
    )

    deterministic_ids("her2-neg")
    rebiopsy = lab_result(
        "85319-2",
        "HER2 [Presence] in Breast cancer specimen by Immune stain",
        fb.ago(days=20),
        {
            "valueCodeableConcept": {
                "coding": [{"system": fb.SNOMED, "code": "260385009", "display": "Negative"}],
                "text": "Negative (IHC 0)",
            }
        },
    )
    write(
        "her2-negative-rebiopsy",
        "HER2-negative on re-biopsy during T-DM1",
        "Liver re-biopsy 20 days ago: HER2 IHC 0 (negative); cycle 3 of T-DM1 is ordered.",
        order("order-sign", [fb.medication_request(rid="kadcyla-her2neg")], [*on_tdm1(), rebiopsy]),
        ["her2-status"],
    )

    deterministic_ids("her2-none")
    history = [
        r
        for r in fb.metastatic_history()
        if not (r["resourceType"] == "Condition" and r["code"]["coding"][0]["code"] == "427685000")
    ]
    history.append(
        fb.condition("254837009", "Malignant neoplasm of breast", onset=datetime(2023, 5, 2, tzinfo=UTC))
    )
    serum = lab_result(
        "32996-1",
        "HER2 Ag [Mass/volume] in Serum",
        fb.ago(days=10),
        {
            "valueQuantity": {"value": 28.0, "unit": "ng/mL", "system": fb.UCUM, "code": "ng/mL"},
            "referenceRange": [
                {"high": {"value": 15.0, "unit": "ng/mL", "system": fb.UCUM, "code": "ng/mL"}}
            ],
            "interpretation": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                            "code": "H",
                            "display": "High",
                        }
                    ]
                }
            ],
        },
    )
    history.append(serum)
    write(
        "her2-no-tissue-evidence",
        "No tissue HER2 result, only a serum HER2 level",
        "Breast cancer coded without HER2 status and only a raised serum HER2 (not tumour status); second-line T-DM1.",
        order("order-sign", [fb.medication_request(rid="kadcyla-noher2")], history),
        ["her2-status", "tdxd-preferred"],
    )


if __name__ == "__main__":
    main()
