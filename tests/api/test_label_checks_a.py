"""dose-check, product-mixup, her2-status and tdxd-preferred through the Flask edge: rendered cards."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient

from tests import fhir_builders as fb

SIGN = "/cds-services/tdm1-order-sign"
SELECT = "/cds-services/tdm1-order-select"


def cards_of(client: FlaskClient, url: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(url, json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


def card(cards: list[dict[str, Any]], rule_id: str) -> dict[str, Any]:
    matching = [c for c in cards if c["source"]["topic"]["code"] == rule_id]
    assert len(matching) == 1, [c["source"]["topic"]["code"] for c in cards]
    return matching[0]


def assert_spec_shape(rendered: dict[str, Any]) -> None:
    uuid.UUID(rendered["uuid"])
    assert len(rendered["summary"]) < 140
    assert rendered["source"]["topic"]["system"] == "urn:tdm1-cds:rule"
    assert all(
        r["display"] and r["system"] == "urn:tdm1-cds:override-reason" for r in rendered["overrideReasons"]
    )
    assert all(link["type"] == "absolute" for link in rendered.get("links", []))
    if "suggestions" in rendered:
        assert rendered["selectionBehavior"] == "at-most-one"
        for suggestion in rendered["suggestions"]:
            uuid.UUID(suggestion["uuid"])
            assert suggestion["label"] and suggestion["actions"]
    assert "**Source**" in rendered["detail"]


def test_quiet_second_line_order_gives_only_the_tdxd_advisory(
    client: FlaskClient, frozen_now: datetime
) -> None:
    request = fb.hook_request(
        "order-sign", drafts=[fb.medication_request(rid="k-1")], history=fb.metastatic_history()
    )
    cards = cards_of(client, SIGN, request)
    assert [c["source"]["topic"]["code"] for c in cards] == ["tdxd-preferred"]
    advisory = cards[0]
    assert_spec_shape(advisory)
    assert advisory["indicator"] == "info"
    assert "75.8%" in advisory["detail"] and "HR 0.28" in advisory["detail"]
    assert "ASCO 2022 guideline update, Rec 2.1" in advisory["detail"]
    assert [r["code"] for r in advisory["overrideReasons"]] == [
        "tdxd-unavailable",
        "tdxd-contraindicated-ild",
        "patient-preference",
    ]
    delete, create = advisory["suggestions"][0]["actions"]
    assert delete == {
        "type": "delete",
        "description": "Remove the T-DM1 draft order",
        "resourceId": "MedicationRequest/k-1",
    }
    assert create["resource"]["resourceType"] == "MedicationRequest"


def test_dose_above_maximum_is_critical_with_the_corrected_order(
    client: FlaskClient, frozen_now: datetime
) -> None:
    request = fb.hook_request(
        "order-sign",
        drafts=[fb.medication_request(dose=336, unit="mg", rid="k-mg")],
        history=fb.metastatic_history(),
    )
    dose = card(cards_of(client, SIGN, request), "dose-check")
    assert_spec_shape(dose)
    assert dose["indicator"] == "critical"
    assert "4.8 mg/kg" in dose["summary"]
    assert "greater than 3.6 mg/kg" in dose["detail"]
    (action,) = dose["suggestions"][0]["actions"]
    assert action["type"] == "update"
    assert action["resource"]["id"] == "k-mg"
    assert action["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 252


def test_a_weight_of_zero_kg_answers_with_a_card_naming_it(client: FlaskClient, frozen_now: datetime) -> None:
    # Was HTTP 500: an mg order's dose was divided by the 0 kg weight.
    history = [r for r in fb.metastatic_history() if r.get("code", {}).get("text") != "Body weight"]
    zero = fb.observation("weight", 0, fb.ago(days=1))
    for hook, url in (("order-sign", SIGN), ("order-select", SELECT)):
        request = fb.hook_request(
            hook, drafts=[fb.medication_request(dose=252, unit="mg", rid="k-0")], history=[*history, zero]
        )
        dose = card(cards_of(client, url, request), "dose-check")
        assert_spec_shape(dose)
        assert dose["indicator"] == "warning"
        assert "the newest body weight (2026-11-24) could not be read" in dose["summary"]
        assert "0 kg is not a body weight" in dose["detail"]


def test_tdxd_selected_at_a_tdm1_dose_is_a_critical_mixup(client: FlaskClient, frozen_now: datetime) -> None:
    request = fb.hook_request(
        "order-select",
        drafts=[fb.medication_request("tdxd", dose=3.6, rid="e-1")],
        history=fb.metastatic_history(),
    )
    cards = cards_of(client, SELECT, request)
    assert [c["source"]["topic"]["code"] for c in cards] == ["product-mixup"]
    mixup = cards[0]
    assert_spec_shape(mixup)
    assert mixup["indicator"] == "critical"
    assert "Do not substitute KADCYLA for or with trastuzumab." in mixup["detail"]
    assert {a["type"] for s in mixup["suggestions"] for a in s["actions"]} == {"delete", "create"}


def test_her2_negative_is_critical(client: FlaskClient, frozen_now: datetime) -> None:
    negative = fb.condition("431396003", "HER2-negative carcinoma of breast", onset=fb.ago(days=600))
    history = [
        r
        for r in fb.metastatic_history()
        if r.get("code", {}).get("coding", [{}])[0].get("code") != "427685000"
    ]
    request = fb.hook_request("order-sign", drafts=[fb.medication_request()], history=[*history, negative])
    her2 = card(cards_of(client, SIGN, request), "her2-status")
    assert_spec_shape(her2)
    assert her2["indicator"] == "critical"
    assert "suggestions" not in her2


def test_unrelated_order_still_gets_no_card(client: FlaskClient, frozen_now: datetime) -> None:
    request = fb.hook_request(
        "order-sign", drafts=[fb.medication_request("pertuzumab", dose=3.6)], history=fb.metastatic_history()
    )
    assert cards_of(client, SIGN, request) == []
