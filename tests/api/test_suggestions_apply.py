"""A card's suggestion, applied as an EHR applies it, must leave an order the same rule accepts."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from service.app import create_app
from service.settings import from_env

FIXTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "requests"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    tmp = tmp_path_factory.mktemp("suggestions")
    return create_app(from_env({}, dev=True, database_url=f"sqlite:///{tmp}/db.sqlite3"))


def scenario(name: str) -> tuple[dict[str, Any], datetime]:
    request = json.loads((FIXTURES / f"{name}.json").read_text())
    meta = json.loads((FIXTURES / f"{name}.meta.json").read_text())
    return request, datetime.fromisoformat(meta["now"].replace("Z", "+00:00"))


def cards(app: Flask, request: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    app.config["CLOCK"] = lambda: now
    response = app.test_client().post("/cds-services/tdm1-order-sign", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


def card(found: list[dict[str, Any]], rule_id: str) -> dict[str, Any]:
    return next(c for c in found if c["source"]["topic"]["code"] == rule_id)


def test_removing_a_planned_end_that_was_all_the_timing_held(app: Flask) -> None:
    # The schedule is in the text; the structured timing carries the cycle count only.
    request, now = scenario("fixed-cycles-metastatic")
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    draft["dosageInstruction"][0]["timing"] = {"repeat": {"count": 6}}
    [update] = card(cards(app, request, now), "fixed-duration-stop")["suggestions"][0]["actions"]
    assert update["type"] == "update"
    assert update["resource"]["id"] == draft["id"]
    assert "timing" not in update["resource"]["dosageInstruction"][0]

    accepted = copy.deepcopy(request)
    accepted["context"]["draftOrders"]["entry"][0]["resource"] = update["resource"]
    codes = [c["source"]["topic"]["code"] for c in cards(app, accepted, now)]
    assert "fixed-duration-stop" not in codes
