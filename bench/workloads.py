"""The request bodies the benchmark sends, built with the test builders as an EHR would send them.

A realistic patient: metastatic HER2-positive breast cancer after first-line THP, now on T-DM1 for
several cycles, with the labs drawn before each cycle. The large variant is the same patient with a
long history (years of weekly labs, many orders), about 2,000 resources in the prefetch.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests import fhir_builders as fb

PATIENT_ID = "bench-pat-1"


def _conditions(count: int) -> list[dict[str, Any]]:
    items = [
        fb.breast_cancer(onset=datetime(2023, 5, 2, tzinfo=UTC), patient_id=PATIENT_ID),
        fb.liver_metastases(onset=datetime(2025, 3, 14, tzinfo=UTC), patient_id=PATIENT_ID),
    ]
    others = [
        ("38341003", "Hypertensive disorder"),
        ("44054006", "Type 2 diabetes mellitus"),
        ("35489007", "Depressive disorder"),
        ("267036007", "Dyspnea"),
        ("271737000", "Anemia"),
    ]
    for i in range(count - len(items)):
        code, display = others[i % len(others)]
        onset = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=37 * i)
        items.append(fb.condition(code, display, onset=onset, patient_id=PATIENT_ID))
    return items


def _labs(cycles: int, extra_weekly: int = 0) -> list[dict[str, Any]]:
    """Pre-cycle labs every 21 days (platelets, ALT, AST, bilirubin) plus weight and LVEF."""
    items = []
    values = {"platelets": 190.0, "alt": 24.0, "ast": 27.0, "bilirubin": 0.7}
    for cycle in range(cycles):
        when = fb.ago(days=1 + 21 * cycle)
        items += [fb.observation(kind, value, when, patient_id=PATIENT_ID) for kind, value in values.items()]
    for week in range(extra_weekly):
        when = fb.ago(days=3 + 7 * week, hours=5)
        kind = ("platelets", "alt", "ast", "bilirubin", "weight")[week % 5]
        value = {"platelets": 200.0, "alt": 25.0, "ast": 26.0, "bilirubin": 0.6, "weight": 70.0}[kind]
        items.append(fb.observation(kind, value, when, patient_id=PATIENT_ID))
    items.append(fb.observation("weight", 70.0, fb.ago(days=2), patient_id=PATIENT_ID))
    items.append(fb.observation("lvef", 60.0, fb.ago(days=40), patient_id=PATIENT_ID))
    return items


def _therapy(cycles: int, older_orders: int = 0) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        fb.statement("trastuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
        fb.statement("pertuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
        fb.statement("docetaxel", datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC)),
    ]
    for statement in items:
        statement["subject"]["reference"] = f"Patient/{PATIENT_ID}"
    for cycle in range(cycles):
        when = fb.ago(days=21 * (cycle + 1))
        items.append(
            fb.medication_request(
                "tdm1", status="completed", authored=when - timedelta(days=1), patient_id=PATIENT_ID
            )
        )
        items.append(fb.administration("tdm1", when, patient_id=PATIENT_ID))
    for i in range(older_orders):
        # Years of earlier supportive and HER2-directed orders: read and normalised, mostly irrelevant.
        when = datetime(2023, 6, 1, tzinfo=UTC) + timedelta(days=3 * i)
        drug = ("trastuzumab", "pertuzumab", "docetaxel", "paclitaxel")[i % 4]
        if i % 2:
            items.append(fb.administration(drug, when, dose=6.0, patient_id=PATIENT_ID))
        else:
            items.append(
                fb.medication_request(
                    drug, status="completed", authored=when, dose=6.0, patient_id=PATIENT_ID
                )
            )
    return items


def realistic_history() -> list[dict[str, Any]]:
    """≈ 30 Observations, 5 Conditions, 20 MedicationRequests/Administrations (+3 statements)."""
    return _conditions(5) + _labs(7) + _therapy(10)


def large_history(total: int = 2000) -> list[dict[str, Any]]:
    """The same patient with years of records: `total` resources in the prefetch."""
    base = _conditions(40) + _labs(12) + _therapy(12)
    older_orders = 440
    weekly = total - len(base) - older_orders
    history = _conditions(40) + _labs(12, extra_weekly=weekly) + _therapy(12, older_orders=older_orders)
    assert len(history) == total, len(history)
    return history


def _draft() -> dict[str, Any]:
    # A planned end (6 cycles) in the metastatic setting: the fixed-duration-stop card fires, with its
    # suggestion, so rendering, suggestion validation and the card log are part of the measure.
    return fb.medication_request("tdm1", patient_id=PATIENT_ID, rid="bench-draft-1", count=6)


def order_sign(history: list[dict[str, Any]]) -> dict[str, Any]:
    return fb.hook_request("order-sign", drafts=[_draft()], history=history, patient_id=PATIENT_ID)


def patient_view(history: list[dict[str, Any]]) -> dict[str, Any]:
    return fb.hook_request("patient-view", history=history, patient_id=PATIENT_ID)


def order_sign_no_prefetch(fhir_server: str) -> dict[str, Any]:
    request = fb.hook_request("order-sign", drafts=[_draft()], patient_id=PATIENT_ID, prefetch={})
    del request["prefetch"]
    request["fhirServer"] = fhir_server
    request["fhirAuthorization"] = {
        "access_token": "bench-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "tdm1-cds",
    }
    return request


def fhir_responses(history: list[dict[str, Any]]) -> dict[str, bytes]:
    """What the slow FHIR server answers per resource type: the same data as the prefetch."""
    prefetch = fb.prefetch_for(history, PATIENT_ID)
    by_type = {"Patient": prefetch["patient"]}
    for resource_type, key in fb.PREFETCH_KEYS.items():
        by_type[resource_type] = prefetch[key]
    return {name: json.dumps(doc).encode() for name, doc in by_type.items()}


def write(directory: Path) -> dict[str, Path]:
    """Write the fixed bodies (not the no-prefetch one: it names the FHIR server's port)."""
    directory.mkdir(parents=True, exist_ok=True)
    realistic = realistic_history()
    bodies = {
        "order-sign": order_sign(realistic),
        "patient-view": patient_view(realistic),
        "order-sign-2000": order_sign(large_history()),
    }
    paths = {}
    for name, document in bodies.items():
        paths[name] = directory / f"{name}.json"
        paths[name].write_text(json.dumps(document), encoding="utf-8")
    return paths
