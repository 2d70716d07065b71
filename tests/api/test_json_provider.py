"""Responses written by orjson read back exactly as Flask's default provider would have written them."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider

from service.api import json_provider


@dataclasses.dataclass
class _Point:
    x: int
    label: str


VALUES = [
    {"cards": [{"summary": "Platelets < 75 × 10⁹/L: hold", "indicator": "critical"}]},
    {"z": 1, "a": [1.5, None, True, "é"]},  # key order kept, not sorted
    {"when": datetime(2026, 12, 1, 9, 30, tzinfo=UTC), "day": date(2026, 12, 1)},
    {"id": UUID("12345678-1234-5678-1234-567812345678"), "dose": Decimal("3.6")},
    {"point": _Point(3, "x")},
    {"huge": 2**70},  # past orjson's 64-bit integers: the default provider writes it
    {1: "int key"},
]


@pytest.fixture
def apps() -> tuple[Flask, Flask]:
    ours = Flask("ours")
    json_provider.install(ours)
    theirs = Flask("theirs")
    theirs.json = DefaultJSONProvider(theirs)
    theirs.json.sort_keys = False  # type: ignore[attr-defined]
    return ours, theirs


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_same_json_as_flasks_default(apps, value):
    ours, theirs = apps
    with ours.app_context():
        mine = jsonify(value)
        text = ours.json.dumps(value)
    with theirs.app_context():
        expected = jsonify(value)
    assert mine.mimetype == "application/json"
    assert json.loads(mine.get_data()) == json.loads(expected.get_data())
    assert list(json.loads(mine.get_data())) == list(json.loads(expected.get_data()))
    assert json.loads(text) == json.loads(expected.get_data())


def test_the_app_answers_with_the_orjson_provider(client):
    assert isinstance(client.application.json, json_provider.OrjsonProvider)
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.get_json()["services"]


def test_options_a_caller_asks_for_are_honoured(apps):
    ours, _ = apps
    with ours.app_context():
        assert ours.json.dumps({"a": 1}, indent=2) == '{\n  "a": 1\n}'
