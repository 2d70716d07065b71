"""Every scenario in fhir_fixtures/requests gives exactly the cards its .meta.json names."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask

from service.app import create_app
from service.settings import from_env

FIXTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "requests"
SCENARIOS = sorted(p for p in FIXTURES.glob("*.json") if not p.name.endswith(".meta.json"))
SERVICE_BY_HOOK = {
    "order-select": "tdm1-order-select",
    "order-sign": "tdm1-order-sign",
    "patient-view": "tdm1-patient-view",
}


def test_there_are_scenarios_and_each_has_expectations() -> None:
    assert len(SCENARIOS) >= 10
    for scenario in SCENARIOS:
        assert scenario.with_name(scenario.stem + ".meta.json").exists(), f"{scenario.name} has no .meta.json"


@pytest.fixture(scope="module")
def pinned_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    tmp = tmp_path_factory.mktemp("fixtures")
    return create_app(from_env({}, dev=True, database_url=f"sqlite:///{tmp}/db.sqlite3"))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_gives_exactly_the_expected_cards(pinned_app: Flask, scenario: Path) -> None:
    request = json.loads(scenario.read_text())
    meta = json.loads(scenario.with_name(scenario.stem + ".meta.json").read_text())
    now = datetime.fromisoformat(meta["now"].replace("Z", "+00:00"))
    pinned_app.config["CLOCK"] = lambda: now
    response = pinned_app.test_client().post(
        f"/cds-services/{SERVICE_BY_HOOK[request['hook']]}", json=request
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    assert sorted(c["source"]["topic"]["code"] for c in cards) == sorted(meta["expect_cards"])
    for card in cards:
        assert len(card["summary"]) < 140
