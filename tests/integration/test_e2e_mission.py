"""One end-to-end request per mission rule through the real server (gunicorn, dev mode)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration
REQUESTS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "requests"
SERVICE = {
    "order-select": "tdm1-order-select",
    "order-sign": "tdm1-order-sign",
    "patient-view": "tdm1-patient-view",
}


def cards_for(live_server: str, scenario: str) -> list[dict]:
    request = json.loads((REQUESTS / f"{scenario}.json").read_text())
    response = requests.post(
        f"{live_server}/cds-services/{SERVICE[request['hook']]}", json=request, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["cards"]


@pytest.mark.parametrize(
    ("scenario", "rule", "indicator"),
    [
        ("first-line-metastatic", "first-line-use", "warning"),
        ("fixed-cycles-metastatic", "fixed-duration-stop", "warning"),
        ("labs-stale", "platelets-missing", "warning"),
        ("labs-stale", "liver-tests-missing", "warning"),
        ("patient-view-dose-due", "treatment-summary", "info"),
        ("patient-view-stopped-after-6", "fixed-duration-stop", "warning"),
    ],
)
def test_rule_end_to_end(live_server: str, scenario: str, rule: str, indicator: str) -> None:
    (card,) = [c for c in cards_for(live_server, scenario) if c["source"]["topic"]["code"] == rule]
    assert card["indicator"] == indicator
    assert len(card["summary"]) < 140
    assert card["detail"] and "**Source**" in card["detail"]
    for suggestion in card.get("suggestions", []):
        assert suggestion["uuid"] and suggestion["actions"]
        assert card["selectionBehavior"]


def test_data_unavailable_end_to_end(live_server: str) -> None:
    request = json.loads((REQUESTS / "first-line-metastatic.json").read_text())
    request["prefetch"]["observations"] = None
    response = requests.post(f"{live_server}/cds-services/tdm1-order-sign", json=request, timeout=30)
    (card,) = [c for c in response.json()["cards"] if c["source"]["topic"]["code"] == "data-unavailable"]
    assert card["indicator"] == "warning" and "Observations" in card["summary"]


def test_unrelated_order_is_silent_end_to_end(live_server: str) -> None:
    assert cards_for(live_server, "unrelated-order") == []


def test_discovery_and_feedback_round_trip(live_server: str) -> None:
    services = requests.get(f"{live_server}/cds-services", timeout=10).json()["services"]
    assert {s["id"] for s in services} == set(SERVICE.values())
    (card,) = cards_for(live_server, "first-line-metastatic")
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": card["overrideReasons"][0]},
                "outcomeTimestamp": "2026-11-25T09:05:00Z",
            }
        ]
    }
    response = requests.post(
        f"{live_server}/cds-services/tdm1-order-sign/feedback", json=feedback, timeout=10
    )
    assert response.status_code == 200 and response.json()["stored"] == 1
