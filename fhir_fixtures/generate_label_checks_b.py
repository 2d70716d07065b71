"""Writes the label-check scenarios (thrombocytopenia, liver, LVEF, lung) in fhir_fixtures/requests/
from tests/fhir_builders (run once, commit the JSON).

    .venv/bin/python fhir_fixtures/generate_label_checks_b.py

Each scenario is a CDS Hooks request with complete prefetch (requests/<name>.json), as an EHR would
send it, and its expectations (requests/<name>.meta.json). Ids are deterministic.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fhir_fixtures.scenario_io import deterministic_ids
from fhir_fixtures.scenario_io import write as write_scenario
from tests import fhir_builders as fb


def write(name: str, title: str, story: str, request: dict[str, Any], expect: list[str]) -> None:
    write_scenario(name, title, story, request, expect, ensure_ascii=False)


def day(year: int, month: int, d: int) -> datetime:
    return datetime(year, month, d, tzinfo=UTC)


def on_tdm1_metastatic(*, lvef_days_ago: float = 40, labs: bool = True) -> list[dict[str, Any]]:
    """Liver metastases since 2025-03; THP first line, T-DXd second line, T-DM1 third line since
    2026-09 (so the guideline checks are satisfied); fresh normal labs unless told otherwise."""
    history: list[dict[str, Any]] = [
        fb.breast_cancer(onset=day(2023, 5, 2)),
        fb.liver_metastases(onset=day(2025, 3, 14)),
        fb.observation("weight", 68.0, fb.ago(days=2)),
        fb.observation("lvef", 58.0, day(2026, 8, 20)),
        fb.statement("trastuzumab", day(2025, 4, 1), day(2026, 1, 10)),
        fb.statement("pertuzumab", day(2025, 4, 1), day(2026, 1, 10)),
        fb.statement("docetaxel", day(2025, 4, 1), day(2025, 8, 1)),
        fb.statement("tdxd", day(2026, 1, 20), day(2026, 8, 10)),
        fb.administration("tdm1", day(2026, 9, 1), dose=3.6),
        fb.administration("tdm1", day(2026, 9, 22), dose=3.6),
        fb.administration("tdm1", day(2026, 10, 13), dose=3.6),
        fb.administration("tdm1", day(2026, 11, 3), dose=3.6),
    ]
    if lvef_days_ago:
        history.append(fb.observation("lvef", 57.0, fb.ago(days=lvef_days_ago)))
    if labs:
        history += fb.fresh_labs()
    return history


def adjuvant_early() -> list[dict[str, Any]]:
    """Residual disease after neoadjuvant THP; adjuvant T-DM1 cycle 4 due (KATHERINE-like)."""
    return [
        fb.breast_cancer(onset=day(2026, 1, 10)),
        fb.observation("weight", 61.0, fb.ago(days=1)),
        fb.observation("lvef", 62.0, day(2026, 8, 25)),
        fb.observation("lvef", 60.0, fb.ago(days=30)),
        fb.statement("trastuzumab", day(2026, 2, 1), day(2026, 7, 15)),
        fb.statement("pertuzumab", day(2026, 2, 1), day(2026, 7, 15)),
        fb.statement("paclitaxel", day(2026, 2, 1), day(2026, 5, 1)),
        fb.administration("tdm1", day(2026, 9, 10), dose=3.6),
        fb.administration("tdm1", day(2026, 10, 1), dose=3.6),
        fb.administration("tdm1", day(2026, 10, 22), dose=3.6),
    ]


def without(history: list[dict[str, Any]], loinc: str) -> list[dict[str, Any]]:
    return [
        r
        for r in history
        if not (r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == loinc)
    ]


def request(hook: str, history: list[dict[str, Any]], draft_id: str = "kadcyla-draft-1") -> dict[str, Any]:
    drafts = [fb.medication_request(rid=draft_id)] if hook != "patient-view" else []
    return fb.hook_request(hook, drafts=drafts, history=history)


def main() -> None:
    deterministic_ids("plt-mbc")
    history = [
        *without(on_tdm1_metastatic(), "777-3"),
        fb.observation("platelets", 48, fb.ago(days=1), unit="10*9/L"),
    ]
    write(
        "thrombocytopenia-hold-mbc-10e9L",
        "Platelets 48 × 10⁹/L before T-DM1 cycle 5 (metastatic)",
        "Metastatic, T-DM1 third line; platelets 48 × 10*9/L (Grade 3) the day before cycle 5: hold until ≥ 75,000/mm3.",
        request("order-sign", history),
        ["thrombocytopenia-hold"],
    )

    deterministic_ids("plt-ebc")
    history = [*adjuvant_early(), *without(fb.fresh_labs(), "777-3")]
    history.append(fb.observation("platelets", 62000, fb.ago(days=1), unit="/mm3"))
    write(
        "thrombocytopenia-hold-ebc-mm3",
        "Platelets 62,000/mm3 before adjuvant T-DM1 (early breast cancer)",
        "Adjuvant T-DM1 after residual disease; platelets 62,000/mm3: the (unverified) EBC table holds Grade 2.",
        request("order-select", history),
        ["thrombocytopenia-hold"],
    )

    deterministic_ids("plt-pv")
    history = [*without(on_tdm1_metastatic(), "777-3"), fb.observation("platelets", 21, fb.ago(days=1))]
    write(
        "thrombocytopenia-hold-patient-view",
        "Chart opened with cycle 5 due and platelets 21,000",
        "Cycle 5 due tomorrow; platelets 21 × 10*3/uL (Grade 4): hold, then resume one dose level lower.",
        request("patient-view", history),
        ["thrombocytopenia-hold", "treatment-summary"],
    )

    deterministic_ids("plt-g4")
    history = [
        *without(on_tdm1_metastatic(), "777-3"),
        fb.observation("platelets", 19, fb.ago(days=12), unit="10*3/uL"),
        fb.observation("platelets", 96, fb.ago(days=1), unit="10*3/uL"),
    ]
    write(
        "thrombocytopenia-recovered-not-reduced",
        "Platelets recovered after Grade 4, full dose ordered again",
        "Platelets fell to 19 × 10*3/uL after cycle 4 and recovered to 96; cycle 5 is ordered at 3.6 mg/kg again: one level lower.",
        request("order-sign", history),
        ["thrombocytopenia-hold"],
    )

    deterministic_ids("liver-hys")
    history = [
        *without(without(on_tdm1_metastatic(), "1742-6"), "1975-2"),
        fb.observation("alt", 152, fb.ago(days=1)),
        fb.observation("bilirubin", 2.6, fb.ago(days=1)),
    ]
    write(
        "hepatotoxicity-hys-law-mbc",
        "ALT 3.8 × ULN with bilirubin 2.2 × ULN (Hy's-law pattern)",
        "Metastatic, on T-DM1; ALT 152 U/L (ULN 40) and total bilirubin 2.6 mg/dL (ULN 1.2): permanently discontinue.",
        request("order-sign", history),
        ["hepatotoxicity"],
    )

    deterministic_ids("liver-g2")
    history = [*without(on_tdm1_metastatic(), "1742-6"), fb.observation("alt", 180, fb.ago(days=1))]
    write(
        "hepatotoxicity-grade2-mbc-no-card",
        "ALT 4.5 × ULN in metastatic disease: same dose, no card",
        "Metastatic, on T-DM1; ALT 180 U/L (ULN 40) is label Grade 2 (> 2.5 to ≤ 5 × ULN): treat at the same dose.",
        request("order-sign", history),
        [],
    )

    deterministic_ids("lvef-due")
    write(
        "lvef-monitoring-overdue",
        "No LVEF for four months on T-DM1",
        "Metastatic, T-DM1 cycle 5; last LVEF 2026-08-20, 97 days ago: echocardiogram due (every 3 months).",
        request("order-sign", on_tdm1_metastatic(lvef_days_ago=0)),
        ["lvef-monitoring"],
    )

    deterministic_ids("lvef-drop")
    history = [*on_tdm1_metastatic(), fb.observation("lvef", 44.0, fb.ago(days=3), code="8806-2")]
    write(
        "lvef-decline-mbc",
        "LVEF 44% from a 58% baseline",
        "Metastatic, on T-DM1; echo LVEF 44% (baseline 58% before the first dose, a 14-point fall): hold, repeat within 3 weeks.",
        request("order-sign", history),
        ["lvef-decline"],
    )

    deterministic_ids("lung")
    history = [*on_tdm1_metastatic(), fb.condition("205237003", "Pneumonitis", onset=fb.ago(days=10))]
    write(
        "pulmonary-toxicity-pneumonitis",
        "Pneumonitis on the problem list",
        "Metastatic, on T-DM1; pneumonitis diagnosed 10 days ago: permanently discontinue T-DM1.",
        request("order-select", history),
        ["pulmonary-toxicity"],
    )


if __name__ == "__main__":
    main()
