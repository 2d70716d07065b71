"""One end-to-end request per label check (dose, product mix-up, HER2, T-DXd preferred) through
the real gunicorn server, with the committed scenarios an EHR could have sent."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.integration
REQUESTS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "requests"
SERVICE = {"order-select": "tdm1-order-select", "order-sign": "tdm1-order-sign"}


def post(live_server: str, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    request = json.loads((REQUESTS / f"{name}.json").read_text(encoding="utf-8"))
    meta = json.loads((REQUESTS / f"{name}.meta.json").read_text(encoding="utf-8"))
    response = requests.post(
        f"{live_server}/cds-services/{SERVICE[request['hook']]}", json=request, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()["cards"], meta


@pytest.mark.parametrize(
    ("name", "rule", "indicator", "action_types"),
    [
        ("dose-reescalation-after-reduction", "dose-check", "warning", [["update"]]),
        ("dose-above-maximum-mg", "dose-check", "critical", [["update"]]),
        ("mixup-tdxd-at-tdm1-dose", "product-mixup", "critical", [["delete", "create"], ["delete"]]),
        ("mixup-trastuzumab-during-tdm1", "product-mixup", "critical", [["delete"]]),
        ("her2-negative-rebiopsy", "her2-status", "critical", []),
        ("second-line-tdm1-quiet", "tdxd-preferred", "info", [["delete", "create"]]),
    ],
)
def test_label_check_end_to_end(
    live_server: str, name: str, rule: str, indicator: str, action_types: list[list[str]]
) -> None:
    cards, meta = post(live_server, name)
    assert sorted(c["source"]["topic"]["code"] for c in cards) == sorted(meta["expect_cards"])
    (card,) = [c for c in cards if c["source"]["topic"]["code"] == rule]
    assert card["indicator"] == indicator
    assert len(card["summary"]) < 140
    uuid.UUID(card["uuid"])
    assert card["source"]["topic"]["system"] == "urn:tdm1-cds:rule"
    assert card["overrideReasons"] and all(r["display"] for r in card["overrideReasons"])
    suggestions = card.get("suggestions", [])
    assert [[a["type"] for a in s["actions"]] for s in suggestions] == action_types
    for suggestion in suggestions:
        uuid.UUID(suggestion["uuid"])
        assert card["selectionBehavior"] == "at-most-one"
        for action in suggestion["actions"]:
            if action["type"] == "delete":
                assert action["resourceId"].startswith("MedicationRequest/")
            else:
                assert action["resource"]["resourceType"] == "MedicationRequest"
                assert action["resource"]["status"] == "draft"
