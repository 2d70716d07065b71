"""The FHIR server misbehaves; the hook still answers 200 in time, with what it could check.

Each failure hits the Observation query only, so the checks that need Observations must be skipped
(and said to be skipped), while those that need Conditions and medication history still run.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from tests import fhir_builders as fb
from tests.resilience.conftest import (
    TOKEN,
    call,
    codes,
    no_prefetch_request,
    unavailable_card,
)
from tests.resilience.fhir_stub import StubState, data_for, fhir_stub, refused_url

# Cards that read Observations: none may appear when Observations could not be read.
OBSERVATION_CARDS = {
    "platelets-missing",
    "liver-tests-missing",
    "thrombocytopenia-hold",
    "hepatotoxicity",
    "lvef-monitoring",
    "lvef-decline",
    "her2-status",
}
OBSERVATIONS_NAME = "Observations"


def _failures(key: str, reason: str) -> float:
    return (
        REGISTRY.get_sample_value("tdm1_cds_fhir_fetch_failures_total", {"key": key, "reason": reason}) or 0
    )


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("slow", "timeout"),
        ("hang", "timeout"),
        ("401", "http_4xx"),
        ("403", "http_4xx"),
        ("500", "http_5xx"),
        ("html", "invalid"),
        ("truncated", "network"),
        ("trickle", "timeout"),
        ("outcome", "invalid"),
        ("gzip-bomb", "invalid"),  # 30 KB that decode to 21 MiB: stopped at the 20 MiB limit
        ("gzip-cut", "network"),
        ("gzip-corrupt", "invalid"),
        ("brotli", "invalid"),  # an encoding that was not asked for
        ("error-in-bundle", "invalid"),  # a searchset with an error OperationOutcome entry: incomplete
    ],
)
def test_observation_query_fails(client, mode: str, reason: str) -> None:
    # No prior HER2 therapy: first-line-use (Conditions + medications) must still fire.
    state = StubState(
        data=data_for(fb.metastatic_history(prior_her2=False)),
        token=TOKEN,
        modes={"Observation": mode},
        slow_seconds=30.0,
    )
    before = _failures("observations", reason)
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert response.status_code == 200
    found = set(codes(response))
    assert "first-line-use" in found
    assert not found & OBSERVATION_CARDS
    card = unavailable_card(response)
    assert OBSERVATIONS_NAME in card["summary"]
    assert OBSERVATIONS_NAME in card["detail"]
    assert _failures("observations", reason) == before + 1


@pytest.mark.parametrize("resource_type", ["Patient", *fb.PREFETCH_KEYS])
def test_garbage_bundle_entries_do_not_break_the_call(client, resource_type: str) -> None:
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN, modes={resource_type: "garbage"})
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert response.status_code == 200
    if resource_type != "Patient":  # no check needs demographics yet, so no card names them
        assert resource_type in unavailable_card(response)["detail"]


def test_unreadable_entries_make_the_list_unavailable(client) -> None:
    # An empty-looking lab list would fire "platelets missing": the entries were there, unreadable.
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN, modes={"Observation": "garbage"})
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert OBSERVATIONS_NAME in unavailable_card(response)["summary"]
    assert not set(codes(response)) & OBSERVATION_CARDS


def test_an_observation_query_answered_with_conditions_is_unavailable(client) -> None:
    # No Observation was read: the missing-lab checks must be skipped, not fired on an empty list.
    data = data_for(fb.metastatic_history())
    data["Observation"] = data["Condition"]
    before = _failures("observations", "invalid")
    with fhir_stub(StubState(data=data, token=TOKEN)) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert response.status_code == 200
    assert OBSERVATIONS_NAME in unavailable_card(response)["summary"]
    assert not set(codes(response)) & OBSERVATION_CARDS
    assert _failures("observations", "invalid") == before + 1


def test_paging_forever_stops_at_the_cap(roomy, client) -> None:
    roomy.config["SETTINGS"] = roomy.config["SETTINGS"].with_overrides(fetch_max_pages=4)
    before = _failures("observations", "truncated")
    state = StubState(
        data=data_for(fb.metastatic_history()), token=TOKEN, modes={"Observation": "page-forever"}
    )
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert response.status_code == 200
    assert len(state.paths("Observation")) == 4
    assert all(r.token_ok for r in state.requests)
    card = unavailable_card(response)
    assert OBSERVATIONS_NAME in card["summary"]
    assert "pages" in card["detail"]
    assert not set(codes(response)) & OBSERVATION_CARDS
    assert _failures("observations", "truncated") == before + 1


def test_paging_forever_under_the_deadline(client) -> None:
    # The default cap is high; the deadline ends it first. Either way the call returns.
    state = StubState(
        data=data_for(fb.metastatic_history()), token=TOKEN, modes={"Observation": "page-forever"}
    )
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert response.status_code == 200
    assert OBSERVATIONS_NAME in unavailable_card(response)["summary"]


def test_server_refusing_connections(client) -> None:
    response = call(client, no_prefetch_request(refused_url()))
    assert response.status_code == 200
    card = unavailable_card(response)
    for name in ("Conditions", "Observations", "MedicationRequest", "MedicationAdministration"):
        assert name in card["detail"]
    # Only the rules that need no patient data may speak (a wrong product at a wrong dose, say).
    assert set(codes(response)) <= {"data-unavailable", "dose-check", "product-mixup"}


def test_server_hanging_on_everything(client) -> None:
    state = StubState(data={}, token=TOKEN, modes={t: "hang" for t in fb.PREFETCH_KEYS} | {"Patient": "hang"})
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert response.status_code == 200
    assert "Observations" in unavailable_card(response)["detail"]


def test_patient_view_with_medication_history_unreadable(client) -> None:
    history = [*fb.metastatic_history(), fb.administration("tdm1", fb.ago(days=21))]
    state = StubState(
        data=data_for(history),
        token=TOKEN,
        modes={"MedicationAdministration": "500", "MedicationRequest": "500", "MedicationStatement": "500"},
    )
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url, hook="patient-view"), "tdm1-patient-view")
    assert response.status_code == 200
    assert codes(response) == ["data-unavailable"]
    assert "MedicationAdministration" in unavailable_card(response)["detail"]


def _prior_trastuzumab_by_reference(medication_id: str = "m-tras") -> list[dict]:
    """No HER2 therapy but one statement, whose drug is named only by a Medication reference."""
    prior = fb.statement("trastuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC))
    del prior["medicationCodeableConcept"]
    prior["medicationReference"] = {"reference": f"Medication/{medication_id}"}
    return [*fb.metastatic_history(prior_her2=False), prior]


def test_a_medication_read_that_fails_is_not_taken_for_no_prior_therapy(client) -> None:
    # The prior trastuzumab is named by Medication/m-tras only: if that read fails, "first-line
    # use" would fire on a history that could not be read.
    data = data_for(_prior_trastuzumab_by_reference())
    data["Medication"] = {
        "resourceType": "Medication",
        "id": "m-tras",
        "code": fb.medication_concept("trastuzumab"),
    }
    for mode in ("500", "hang"):
        state = StubState(data=data, token=TOKEN, modes={"Medication": mode})
        before = _failures("medication", "http_5xx" if mode == "500" else "timeout")
        with fhir_stub(state) as base_url:
            response = call(client, no_prefetch_request(base_url))
        assert response.status_code == 200
        assert "first-line-use" not in codes(response), mode
        card = unavailable_card(response)
        assert "MedicationStatement" in card["summary"] + card["detail"]
        assert "named the drug only by a Medication that could not be read" in card["detail"]
        assert _failures("medication", "http_5xx" if mode == "500" else "timeout") == before + 1
    with fhir_stub(StubState(data=data, token=TOKEN)) as base_url:  # read: the prior therapy is seen
        response = call(client, no_prefetch_request(base_url))
    assert "first-line-use" not in codes(response) and "data-unavailable" not in codes(response)


def test_a_draft_returned_by_the_server_is_not_history_whose_medication_is_unread(roomy, client) -> None:
    # The server returns the draft too, naming a Medication only the draftOrders Bundle holds.
    medication = {"resourceType": "Medication", "id": "m-new", "code": fb.medication_concept("tdm1")}
    draft = fb.medication_request("tdm1", rid="draft-1")
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = {"reference": "Medication/m-new"}
    data = data_for([*fb.metastatic_history(), draft])
    state = StubState(data=data, token=TOKEN, modes={"Medication": "500"})
    request = fb.hook_request("order-sign", drafts=[draft, medication])
    del request["prefetch"]
    request["fhirServer"], request["fhirAuthorization"] = None, fb.fhir_authorization(TOKEN)
    with fhir_stub(state) as base_url:
        request["fhirServer"] = base_url
        response = call(client, request)
    assert response.status_code == 200
    assert "data-unavailable" not in codes(response)


def test_a_draft_whose_medication_cannot_be_read_is_said_not_passed_over(roomy, client) -> None:
    """The draft names its drug only by Medication/m-draft, which the server fails to return: it may
    be T-DM1. The answer was {"cards": []}, as for an unrelated order that had been checked."""
    medication = {"resourceType": "Medication", "id": "m-draft", "code": fb.medication_concept("tdm1")}
    draft = fb.medication_request("tdm1", rid="draft-1")
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = {"reference": "Medication/m-draft"}
    data = data_for(fb.metastatic_history(prior_her2=False))
    data["Medication"] = medication
    for mode in ("500", "hang", None):
        state = StubState(data=data, token=TOKEN, modes={"Medication": mode} if mode else {})
        request = fb.hook_request("order-sign", drafts=[draft])
        del request["prefetch"]
        request["fhirAuthorization"] = fb.fhir_authorization(TOKEN)
        with fhir_stub(state) as base_url:
            request["fhirServer"] = base_url
            response = call(client, request)
        assert response.status_code == 200
        if mode is None:  # read: it is T-DM1 with no prior HER2 therapy
            assert "first-line-use" in codes(response) and "data-unavailable" not in codes(response)
            continue
        assert codes(response) == ["data-unavailable"], mode
        card = unavailable_card(response)
        assert "The drug of MedicationRequest/draft-1 could not be identified" in card["detail"]


def test_queries_run_side_by_side(roomy, client) -> None:
    # The server answers only once all six queries are waiting: a client asking one after another
    # would break the barrier (10 s) and get 500s. No clock is read by the assertion.
    state = StubState(
        data=data_for(fb.metastatic_history()), token=TOKEN, barrier=threading.Barrier(6, timeout=10)
    )
    state.modes = {t: "together" for t in [*fb.PREFETCH_KEYS, "Patient"]}
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert response.status_code == 200
    assert "data-unavailable" not in codes(response)
    assert len(state.paths()) == 6
    assert not state.barrier.broken


def test_no_token_or_patient_data_in_logs(client, caplog) -> None:
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN, modes={"Observation": "500"})
    with caplog.at_level(logging.DEBUG), fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url, patient_id="pat-secret-42"))
    assert response.status_code == 200
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert TOKEN not in text
    assert "pat-secret-42" not in text


def test_gzip_answers_are_read(client) -> None:
    # A FHIR server that compresses (as HAPI does when asked): the same cards as uncompressed data.
    history = fb.metastatic_history(prior_her2=False)
    plain = StubState(data=data_for(history), token=TOKEN)
    with fhir_stub(plain) as base_url:
        expected = sorted(codes(call(client, no_prefetch_request(base_url))))
    state = StubState(
        data=data_for(history), token=TOKEN, modes=dict.fromkeys(["Patient", *fb.PREFETCH_KEYS], "gzip")
    )
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert response.status_code == 200
    assert "data-unavailable" not in codes(response)
    assert sorted(codes(response)) == expected
    assert "first-line-use" in expected
    assert state.accept_encodings and set(state.accept_encodings) == {"gzip"}


@pytest.mark.parametrize("mode", ["warning-in-bundle", "bom"])
def test_answers_that_are_whole_are_read(client, mode: str) -> None:
    # A warning OperationOutcome beside the data, or a UTF-8 byte order mark (.NET servers): the
    # Observations are read, and the lab checks run on them.
    history = [*fb.metastatic_history(prior_her2=False)]
    plain = StubState(data=data_for(history), token=TOKEN)
    with fhir_stub(plain) as base_url:
        expected = sorted(codes(call(client, no_prefetch_request(base_url))))
    state = StubState(data=data_for(history), token=TOKEN, modes={"Observation": mode})
    with fhir_stub(state) as base_url:
        response = call(client, no_prefetch_request(base_url))
    assert response.status_code == 200
    assert sorted(codes(response)) == expected
    assert "data-unavailable" not in expected


def test_searches_ask_for_large_pages(client, app) -> None:
    # Servers page at 20 by default: years of weekly labs ran past the page cap or the deadline.
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN)
    with fhir_stub(state) as base_url:
        assert call(client, no_prefetch_request(base_url)).status_code == 200
    searches = [p for p in state.paths() if "?" in p]
    assert len(searches) == 5
    assert all("_count=200" in p.split("?", 1)[1].split("&") for p in searches)
    assert not [p for p in state.paths() if "?" not in p and "_count" in p]  # Patient/pat-1: a read
    app.config["SETTINGS"] = app.config["SETTINGS"].with_overrides(fetch_page_size=0)
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN)
    with fhir_stub(state) as base_url:
        assert call(client, no_prefetch_request(base_url)).status_code == 200
    assert not [p for p in state.paths() if "_count" in p]  # 0: the server's own page size
