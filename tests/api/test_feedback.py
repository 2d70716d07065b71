"""CDS Hooks 2.0 feedback: validated, stored once, tied to the issued card."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests import fhir_builders as fb

URL = "/cds-services/tdm1-order-sign/feedback"


@pytest.fixture
def issued(client: FlaskClient, frozen_now) -> dict:
    body = fb.hook_request(
        "order-sign", drafts=[fb.medication_request()], history=fb.metastatic_history(prior_her2=False)
    )
    (card,) = client.post("/cds-services/tdm1-order-sign", json=body).get_json()["cards"]
    return card


def test_accepted_suggestion_is_stored(client: FlaskClient, app: Flask, issued: dict) -> None:
    feedback = {
        "feedback": [
            {
                "card": issued["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": issued["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-11-25T09:01:00Z",
            }
        ]
    }
    response = client.post(URL, json=feedback)
    assert response.status_code == 200 and response.get_json()["stored"] == 1
    (row,) = app.config["STORE"].feedback_for(issued["uuid"])
    assert row.outcome == "accepted" and row.known_card
    assert issued["suggestions"][0]["uuid"] in row.accepted_suggestions


def test_override_reason_is_stored_without_the_comment(client: FlaskClient, app: Flask, issued: dict) -> None:
    reason = issued["overrideReasons"][0]
    feedback = {
        "feedback": [
            {
                "card": issued["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": reason,
                    "userComment": "Mrs Testpatient had THP at St Elsewhere",
                },
                "outcomeTimestamp": "2026-11-25T09:02:00Z",
            }
        ]
    }
    assert client.post(URL, json=feedback).status_code == 200
    (row,) = app.config["STORE"].feedback_for(issued["uuid"])
    assert (row.override_system, row.override_code) == (reason["system"], reason["code"])
    assert row.has_comment is True
    assert "Testpatient" not in str(vars(row))


def test_same_outcome_twice_is_stored_once(client: FlaskClient, app: Flask, issued: dict) -> None:
    item = {"card": issued["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-25T09:03:00Z"}
    assert client.post(URL, json={"feedback": [item]}).get_json()["stored"] == 1
    assert client.post(URL, json={"feedback": [item]}).get_json()["stored"] == 0
    assert len(app.config["STORE"].feedback_for(issued["uuid"])) == 1


@pytest.mark.parametrize(
    ("item", "text"),
    [
        (
            {
                "outcome": "accepted",
                "outcomeTimestamp": "2026-11-25T09:00:00Z",
                "acceptedSuggestions": [{"id": "x"}],
            },
            "card",
        ),
        ({"card": "c", "outcome": "maybe", "outcomeTimestamp": "2026-11-25T09:00:00Z"}, "maybe"),
        (
            {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-25T09:00:00Z"},
            "acceptedSuggestions",
        ),
        ({"card": "c", "outcome": "overridden"}, "outcomeTimestamp"),
    ],
)
def test_invalid_feedback_is_400(client: FlaskClient, item: dict, text: str) -> None:
    response = client.post(URL, json={"feedback": [item]})
    assert response.status_code == 400
    assert text in response.get_data(as_text=True)


def test_feedback_for_unknown_service_is_404(client: FlaskClient) -> None:
    item = {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T09:00:00Z"}
    assert client.post("/cds-services/nope/feedback", json={"feedback": [item]}).status_code == 404
