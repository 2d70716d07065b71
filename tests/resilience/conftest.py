"""App with a short FHIR deadline, a stub FHIR server per test, and a call that must come back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.settings import Settings, from_env
from tests import fhir_builders as fb
from tests.resilience.fhir_stub import StubState, data_for, fhir_stub

DEADLINE = 1.0
# For tests whose point is that every query succeeds (cache, prefetch): a loaded CI machine must not
# turn them into timeout tests.
ROOMY_DEADLINE = 10.0
TOKEN = "stub-token-7f3a"
# Far above the deadline: a hung call fails the test instead of hanging the suite.
RETURN_WITHIN = 30.0


@pytest.fixture
def settings(tmp_path) -> Settings:
    return from_env(
        {},
        dev=True,
        database_url=f"sqlite:///{tmp_path}/resilience.sqlite3",
        fetch_deadline_seconds=DEADLINE,
        fixed_now=fb.iso(fb.NOW),
    )


# `app` and `client` come from tests/conftest.py, built on the `settings` above.


@pytest.fixture
def roomy(app: Flask) -> Flask:
    app.config["SETTINGS"] = app.config["SETTINGS"].with_overrides(fetch_deadline_seconds=ROOMY_DEADLINE)
    return app


@pytest.fixture
def stub() -> Iterator[tuple[StubState, str]]:
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN)
    with fhir_stub(state) as base_url:
        yield state, base_url


def no_prefetch_request(base_url: str, hook: str = "order-sign", patient_id: str = "pat-1") -> dict[str, Any]:
    drafts = [fb.medication_request("tdm1", patient_id=patient_id)] if hook != "patient-view" else []
    request = fb.hook_request(hook, drafts=drafts, patient_id=patient_id, prefetch={})
    del request["prefetch"]
    request["fhirServer"] = base_url
    request["fhirAuthorization"] = fb.fhir_authorization(TOKEN)
    return request


def call(client: FlaskClient, request: dict[str, Any], service: str = "tdm1-order-sign") -> Any:
    """POST the hook call in a thread and insist that it returns (no latency bound: CI is noisy)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["response"] = client.post(f"/cds-services/{service}", json=request)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(RETURN_WITHIN)
    assert not worker.is_alive(), "the hook call did not return: the FHIR deadline was not respected"
    return outcome["response"]


def codes(response: Any) -> list[str]:
    return [card["source"]["topic"]["code"] for card in response.get_json()["cards"]]


def unavailable_card(response: Any) -> dict[str, Any]:
    cards = [c for c in response.get_json()["cards"] if c["source"]["topic"]["code"] == "data-unavailable"]
    assert len(cards) == 1, codes(response)
    assert cards[0]["indicator"] == "warning"
    return cards[0]
