"""One end-to-end request per label check (platelets, liver, LVEF, lung) through the real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests import fhir_builders as fb

pytestmark = pytest.mark.integration
REQUESTS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "requests"
SERVICE = {
    "order-select": "tdm1-order-select",
    "order-sign": "tdm1-order-sign",
    "patient-view": "tdm1-patient-view",
}


def post(live_server: str, request: dict) -> list[dict]:
    response = requests.post(
        f"{live_server}/cds-services/{SERVICE[request['hook']]}", json=request, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def scenario(name: str) -> tuple[dict, dict]:
    request = json.loads((REQUESTS / f"{name}.json").read_text(encoding="utf-8"))
    meta = json.loads((REQUESTS / f"{name}.meta.json").read_text(encoding="utf-8"))
    return request, meta


@pytest.mark.parametrize(
    ("name", "rule", "indicator", "in_summary"),
    [
        ("thrombocytopenia-hold-mbc-10e9L", "thrombocytopenia-hold", "critical", "48,000/mm3"),
        ("thrombocytopenia-hold-ebc-mm3", "thrombocytopenia-hold", "critical", "62,000/mm3"),
        ("thrombocytopenia-hold-patient-view", "thrombocytopenia-hold", "critical", "one dose level lower"),
        (
            "thrombocytopenia-recovered-not-reduced",
            "thrombocytopenia-hold",
            "critical",
            "one dose level lower",
        ),
        ("hepatotoxicity-hys-law-mbc", "hepatotoxicity", "critical", "Hy's-law pattern"),
        ("lvef-monitoring-overdue", "lvef-monitoring", "warning", "90 days"),
        ("lvef-decline-mbc", "lvef-decline", "critical", "LVEF 44%"),
        ("pulmonary-toxicity-pneumonitis", "pulmonary-toxicity", "critical", "Permanently discontinue"),
    ],
)
def test_rule_end_to_end(live_server: str, name: str, rule: str, indicator: str, in_summary: str) -> None:
    request, meta = scenario(name)
    cards = post(live_server, request)
    assert sorted(c["source"]["topic"]["code"] for c in cards) == meta["expect_cards"]
    (card,) = [c for c in cards if c["source"]["topic"]["code"] == rule]
    assert card["source"]["topic"]["system"] == "urn:tdm1-cds:rule"
    assert card["indicator"] == indicator
    assert len(card["summary"]) < 140 and in_summary in card["summary"]
    assert "**Source**" in card["detail"]
    assert all(r["display"] and r["code"] for r in card["overrideReasons"])
    if request["hook"] == "patient-view" or name == "thrombocytopenia-recovered-not-reduced":
        assert "suggestions" not in card
    else:
        (suggestion,) = card["suggestions"]
        assert card["selectionBehavior"] and suggestion["uuid"]


def test_ebc_card_says_its_table_is_unverified(live_server: str) -> None:
    request, _ = scenario("thrombocytopenia-hold-ebc-mm3")
    (card,) = post(live_server, request)
    assert "awaiting clinical review" in card["detail"] and "EBC" in card["detail"]


def test_hold_suggestion_deletes_the_draft(live_server: str) -> None:
    request, _ = scenario("pulmonary-toxicity-pneumonitis")
    (card,) = post(live_server, request)
    (action,) = card["suggestions"][0]["actions"]
    assert action == {
        "type": "delete",
        "description": "Remove the T-DM1 draft order",
        "resourceId": "MedicationRequest/kadcyla-draft-1",
    }


def test_accepted_echo_does_not_refire(live_server: str) -> None:
    request, _ = scenario("lvef-monitoring-overdue")
    (card,) = post(live_server, request)
    echo = card["suggestions"][0]["actions"][0]["resource"]
    assert echo["resourceType"] == "ServiceRequest" and echo["code"]["coding"][0]["code"] == "8806-2"
    request["context"]["draftOrders"]["entry"].append({"resource": echo})
    assert post(live_server, request) == []


def test_grade2_transaminases_in_mbc_give_no_card(live_server: str) -> None:
    request, meta = scenario("hepatotoxicity-grade2-mbc-no-card")
    assert meta["expect_cards"] == [] and post(live_server, request) == []


def test_missing_uln_is_said_not_graded(live_server: str) -> None:
    request, _ = scenario("hepatotoxicity-grade2-mbc-no-card")
    for entry in request["prefetch"]["observations"]["entry"]:
        resource = entry["resource"]
        if resource["code"]["coding"][0]["code"] == "1742-6":
            resource["valueQuantity"]["value"] = 2000
            resource.pop("referenceRange")
    (card,) = post(live_server, request)
    assert card["source"]["topic"]["code"] == "data-unavailable" and card["indicator"] == "warning"
    assert "no reference range" in card["detail"]


def test_unrelated_order_gets_no_label_card(live_server: str) -> None:
    request, _ = scenario("pulmonary-toxicity-pneumonitis")
    pertuzumab = fb.medication_request("pertuzumab", rid="perjeta-1")
    request["context"]["draftOrders"]["entry"] = [{"resource": pertuzumab}]
    request["context"]["selections"] = ["MedicationRequest/perjeta-1"]
    assert post(live_server, request) == []
