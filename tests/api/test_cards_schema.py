"""The response schema in /openapi.json holds cards to CDS Hooks 2.0.1, so a card that breaks the spec
fails the tests that validate real responses against it (tests/security/test_openapi.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from service.app import create_app
from service.settings import from_env
from tests.security.test_openapi import validator_for

GOOD_CARD: dict[str, Any] = {
    "uuid": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
    "summary": "s" * 139,
    "indicator": "warning",
    "source": {"label": "x", "topic": {"system": "urn:tdm1-cds:rule", "code": "dose-check"}},
    "selectionBehavior": "at-most-one",
    "suggestions": [
        {
            "label": "Fix",
            "uuid": "e56e1945-20b3-4393-8503-a1a20fd73152",
            "actions": [
                {"type": "update", "description": "d", "resource": {"resourceType": "MedicationRequest"}},
                {"type": "delete", "description": "d", "resourceId": "MedicationRequest/a"},
            ],
        }
    ],
    "overrideReasons": [{"system": "urn:tdm1-cds:override-reason", "code": "c", "display": "Reason"}],
}


@pytest.fixture(scope="module")
def card_validator(tmp_path_factory: pytest.TempPathFactory) -> Draft202012Validator:
    tmp = tmp_path_factory.mktemp("schema")
    app = create_app(from_env({}, dev=True, database_url=f"sqlite:///{tmp}/db.sqlite3"))
    doc = app.test_client().get("/openapi.json").get_json()
    return validator_for(doc, doc["components"]["schemas"]["Card"])


def _broken(change: str) -> dict[str, Any]:
    card = copy.deepcopy(GOOD_CARD)
    actions = card["suggestions"][0]["actions"]
    if change == "summary of 140 characters":
        card["summary"] = "s" * 140
    elif change == "topic without system":
        del card["source"]["topic"]["system"]
    elif change == "override reason without display":
        del card["overrideReasons"][0]["display"]
    elif change == "override reason without system":
        del card["overrideReasons"][0]["system"]
    elif change == "action without description":
        del actions[0]["description"]
    elif change == "update without resource":
        del actions[0]["resource"]
    elif change == "delete without resourceId":
        del actions[1]["resourceId"]
    return card


def test_a_conformant_card_validates(card_validator: Draft202012Validator) -> None:
    card_validator.validate(GOOD_CARD)


@pytest.mark.parametrize(
    "change",
    [
        "summary of 140 characters",
        "topic without system",
        "override reason without display",
        "override reason without system",
        "action without description",
        "update without resource",
        "delete without resourceId",
    ],
)
def test_a_card_that_breaks_the_spec_does_not_validate(
    card_validator: Draft202012Validator, change: str
) -> None:
    assert not card_validator.is_valid(_broken(change)), change
