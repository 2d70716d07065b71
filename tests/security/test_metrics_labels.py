"""Metric labels and log fields stay bounded whatever ids a client sends: no series per resource id."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from service.app import create_app
from service.settings import from_env
from tests import fhir_builders as fb
from tests.resilience.fhir_stub import StubState, data_for, fhir_stub

TOKEN = "stub-token-labels"


@pytest.fixture
def app(tmp_path) -> Iterator[Flask]:
    built = create_app(
        from_env(
            {},
            dev=True,
            database_url=f"sqlite:///{tmp_path}/labels.sqlite3",
            fetch_deadline_seconds=10.0,
            fixed_now=fb.iso(fb.NOW),
        )
    )
    yield built
    built.config["STORE"].close()


def _unavailable(key: str) -> float:
    return (
        REGISTRY.get_sample_value("tdm1_cds_prefetch_keys_total", {"key": key, "source": "unavailable"}) or 0
    )


def test_a_medication_that_cannot_be_read_is_no_label_and_no_log_field_of_its_own(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    # Each draft names its drug by a Medication the server fails to return: the unread reference
    # ("Medication/<id>", an id the client chose) became a prefetch_keys label, a new series per id.
    client = app.test_client()
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN, modes={"Medication": "500"})
    ids = [f"med-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    before = _unavailable("medication")
    caplog.set_level(logging.INFO, logger="tdm1_cds")
    with fhir_stub(state) as base_url:
        for medication_id in ids:
            draft = fb.medication_request("tdm1")
            del draft["medicationCodeableConcept"]
            draft["medicationReference"] = {"reference": f"Medication/{medication_id}"}
            request = fb.hook_request("order-sign", drafts=[draft], prefetch={})
            del request["prefetch"]
            request["fhirServer"] = base_url
            request["fhirAuthorization"] = fb.fhir_authorization(TOKEN)
            assert client.post("/cds-services/tdm1-order-sign", json=request).status_code == 200
    assert any(f"/Medication/{ids[0]}" in path for path in state.paths())  # the read was tried
    scrape = client.get("/metrics").get_data(as_text=True)
    assert [i for i in ids if i in scrape] == []
    assert 'key="Medication/' not in scrape
    assert _unavailable("medication") == before + 3  # still counted, under one bounded label
    calls = [r for r in caplog.records if r.getMessage() == "hook call"]
    assert len(calls) == 3 and all(r.fetch_failures == ["medication"] for r in calls)
    assert [i for i in ids if i in caplog.text] == []
