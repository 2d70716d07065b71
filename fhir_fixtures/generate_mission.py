"""Writes the mission-check scenarios in fhir_fixtures/ from tests/fhir_builders (run once, commit the JSON).

    .venv/bin/python fhir_fixtures/generate_mission.py

Each scenario is a CDS Hooks request with complete prefetch (requests/<name>.json) and its
expectations (requests/<name>.meta.json). patients/<name>.json holds a patient's record as a
collection Bundle for the loopback FHIR server used by the integration tests.
Ids are deterministic so regenerating gives the same files.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fhir_fixtures.scenario_io import HERE, deterministic_ids, write
from tests import fhir_builders as fb


def order(hook: str, drafts: list[dict], history: list[dict], patient_id: str = "pat-1") -> dict:
    return fb.hook_request(hook, drafts=drafts, history=history, patient_id=patient_id)


def main() -> None:
    deterministic_ids("first-line")
    write(
        "first-line-metastatic",
        "T-DM1 ordered first line",
        "Liver metastases since March 2025, no HER2-directed therapy yet; T-DM1 3.6 mg/kg is ordered.",
        order(
            "order-sign",
            [fb.medication_request(rid="kadcyla-draft-1")],
            fb.metastatic_history(prior_her2=False),
        ),
        ["first-line-use"],
    )

    deterministic_ids("adjuvant-late")
    history = [
        *fb.metastatic_history(prior_her2=False),
        fb.statement("trastuzumab", datetime(2023, 6, 1, tzinfo=UTC), datetime(2024, 1, 10, tzinfo=UTC)),
    ]
    write(
        "first-line-after-late-recurrence",
        "Recurrence 14 months after adjuvant trastuzumab",
        "Adjuvant trastuzumab ended January 2024, liver metastases March 2025 (>12 months): first-line rules apply.",
        order("order-sign", [fb.medication_request()], history),
        ["first-line-use"],
    )

    deterministic_ids("adjuvant-early")
    history = [
        *fb.metastatic_history(prior_her2=False),
        fb.statement("trastuzumab", datetime(2023, 6, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)),
    ]
    write(
        "second-line-after-early-recurrence",
        "Recurrence 9 months after adjuvant trastuzumab",
        "Adjuvant trastuzumab ended June 2024, liver metastases March 2025 (≤12 months): treated as second line.",
        order("order-sign", [fb.medication_request()], history),
        ["tdxd-preferred"],  # ASCO Rec 5.0: second line, where Rec 2.1 prefers T-DXd
    )

    deterministic_ids("mbc-cycles")
    write(
        "fixed-cycles-metastatic",
        "Metastatic T-DM1 ordered for 6 cycles",
        "Second-line T-DM1 after THP, written like chemotherapy: count 6 and 'x 6 cycles' in the text.",
        order("order-sign", [fb.medication_request(count=6)], fb.metastatic_history()),
        ["fixed-duration-stop", "tdxd-preferred"],
    )

    deterministic_ids("ebc-14")
    ebc_history = [
        fb.breast_cancer(onset=datetime(2026, 2, 3, tzinfo=UTC)),
        fb.statement("trastuzumab", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)),
        fb.statement("paclitaxel", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)),
        fb.observation("weight", 64.0, fb.ago(days=1)),
        fb.observation("lvef", 62.0, fb.ago(days=20)),
        *fb.fresh_labs(),
    ]
    write(
        "adjuvant-14-cycles",
        "Adjuvant T-DM1, 14 cycles (KATHERINE)",
        "Residual disease after neoadjuvant THP; adjuvant T-DM1 for the label's fixed 14 cycles: no fixed-duration card.",
        order("order-sign", [fb.medication_request(count=14)], ebc_history),
        [],
    )

    deterministic_ids("stale-labs")
    stale = [*fb.metastatic_history(labs=False), *fb.fresh_labs(when=fb.ago(days=9))]
    write(
        "labs-stale",
        "Labs 9 days old",
        "Platelets and liver tests last drawn 9 days ago, outside the 3-day pre-dose window.",
        order("order-sign", [fb.medication_request()], stale),
        ["liver-tests-missing", "platelets-missing", "tdxd-preferred"],
    )

    deterministic_ids("eie-labs")
    labs = fb.fresh_labs()
    labs[0]["status"] = "entered-in-error"  # the platelet count was retracted
    write(
        "platelets-entered-in-error",
        "Platelet count entered in error",
        "Yesterday's platelet count was retracted (entered-in-error); liver tests are fine.",
        order("order-sign", [fb.medication_request()], [*fb.metastatic_history(labs=False), *labs]),
        ["platelets-missing", "tdxd-preferred"],
    )

    deterministic_ids("units")
    labs = fb.fresh_labs()
    labs[0]["valueQuantity"] = {"value": 182000, "unit": "/mm3", "system": fb.UCUM, "code": "/mm3"}
    write(
        "platelets-per-mm3",
        "Platelets reported in /mm3",
        "A lab that reports platelets as 182,000 /mm3 instead of 10*3/uL: read, normalised, no card.",
        order("order-sign", [fb.medication_request()], [*fb.metastatic_history(labs=False), *labs]),
        ["tdxd-preferred"],
    )

    deterministic_ids("sandbox")
    draft = fb.medication_request(intent=None)
    draft["medicationCodeableConcept"] = {
        "coding": [
            {
                "system": fb.RXNORM,
                "code": "1658087",
                "display": "ado-trastuzumab emtansine 100 MG Injection [Kadcyla]",
            }
        ]
    }
    request = order("order-select", [draft], fb.metastatic_history(prior_her2=False, labs=False))
    del request["context"]["draftOrders"]["type"]
    write(
        "sandbox-style-draft",
        "Sandbox-style draft, branded product code",
        "order-select from a client that omits Bundle.type and intent; Kadcyla SBD code; no labs, no prior HER2 therapy.",
        request,
        ["first-line-use", "liver-tests-missing", "platelets-missing"],
    )

    deterministic_ids("statements-only")
    history = [h for h in fb.metastatic_history() if h["resourceType"] != "MedicationStatement"]
    history += [
        fb.statement("trastuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC)),
        fb.statement("pertuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC)),
    ]
    ndc_draft = fb.medication_request()
    ndc_draft["medicationCodeableConcept"] = {
        "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "50242-088-01"}],
        "text": "KADCYLA 100 mg vial",
    }
    write(
        "history-as-statements-ndc",
        "Prior therapy only as MedicationStatements; NDC-coded order",
        "An outside-records history (statements only) shows first-line THP; the T-DM1 order is coded by NDC.",
        order("order-sign", [ndc_draft], history),
        ["tdxd-preferred"],
    )

    deterministic_ids("admins-only")
    history = [h for h in fb.metastatic_history() if h["resourceType"] != "MedicationStatement"]
    start = datetime(2025, 4, 1, tzinfo=UTC)
    history += [
        fb.administration("trastuzumab", start + timedelta(days=21 * i), dose=6 if i else 8) for i in range(8)
    ]
    write(
        "history-as-administrations",
        "Prior therapy only as MedicationAdministrations",
        "The infusion record shows eight trastuzumab doses for metastatic disease: T-DM1 is second line.",
        order("order-sign", [fb.medication_request()], history),
        ["tdxd-preferred"],
    )

    deterministic_ids("unrelated")
    write(
        "unrelated-order",
        "An order that is not T-DM1",
        "Docetaxel for a metastatic patient: not our business, no cards.",
        order(
            "order-sign", [fb.medication_request("docetaxel", dose=75, unit="mg/m2")], fb.metastatic_history()
        ),
        [],
    )

    deterministic_ids("pv-due")
    course = [fb.administration("tdm1", fb.ago(days=19 + 21 * i)) for i in range(5)]
    history = [
        *fb.metastatic_history(labs=False),
        fb.medication_request(status="active", authored=fb.ago(days=19 + 84)),
        *course,
    ]
    write(
        "patient-view-dose-due",
        "Chart opened two days before cycle 6",
        "Five cycles given, the next due in 2 days, no labs drawn yet.",
        fb.hook_request("patient-view", history=history),
        ["liver-tests-missing", "platelets-missing", "treatment-summary"],
    )

    deterministic_ids("pv-stopped")
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    doses = [fb.administration("tdm1", start + timedelta(days=21 * i)) for i in range(6)]
    stopped = fb.medication_request(status="stopped", authored=start)
    stopped["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {
        "start": fb.iso(start),
        "end": fb.iso(start + timedelta(days=21 * 6)),
    }
    write(
        "patient-view-stopped-after-6",
        "Metastatic T-DM1 stopped after 6 cycles",
        "The course was stopped in May 2026 with no progression, toxicity or reason recorded, and nothing since.",
        fb.hook_request("patient-view", history=[*fb.metastatic_history(), stopped, *doses]),
        ["fixed-duration-stop", "treatment-summary"],
    )

    # A record for the loopback FHIR server: 25 platelet counts (pages past 20), THP history, metastatic.
    deterministic_ids("fhir-pat")
    pid = "fhir-pat-1"
    resources = [fb.patient(pid)]
    resources += [
        fb.breast_cancer(patient_id=pid, onset=datetime(2023, 5, 2, tzinfo=UTC)),
        fb.liver_metastases(patient_id=pid, onset=datetime(2025, 3, 14, tzinfo=UTC)),
    ]
    resources += [
        fb.observation("platelets", 150 + i, fb.ago(days=1 + 21 * i), patient_id=pid) for i in range(25)
    ]
    resources += [
        fb.observation(k, v, fb.ago(days=1), patient_id=pid)
        for k, v in (("alt", 20), ("ast", 24), ("bilirubin", 0.5))
    ]
    resources += [
        fb.observation("weight", 68, fb.ago(days=1), patient_id=pid),
        fb.observation("lvef", 58, fb.ago(days=30), patient_id=pid),
    ]
    resources += [
        fb.statement(d, datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC), patient_id=pid)
        for d in ("trastuzumab", "pertuzumab")
    ]
    # The pharmacy's product record, which orders name by medicationReference.
    resources.append(
        {"resourceType": "Medication", "id": "kadcyla-100-vial", "code": fb.medication_concept("tdm1-scd")}
    )
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    (HERE / "patients" / "fhir-pat-1.json").write_text(json.dumps(bundle, indent=2) + "\n")


if __name__ == "__main__":
    main()
