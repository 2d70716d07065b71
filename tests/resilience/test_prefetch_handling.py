"""Prefetch as clients really send it: partial, stale (an OperationOutcome per key), null, paged."""

from __future__ import annotations

from typing import Any

from tests import fhir_builders as fb
from tests.resilience.conftest import TOKEN, call, codes, unavailable_card
from tests.resilience.fhir_stub import StubState, data_for, fhir_stub

STALE = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}


def _request(base_url: str | None, prefetch: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    request = fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")], prefetch=prefetch)
    if base_url:
        request["fhirServer"] = base_url
        request["fhirAuthorization"] = fb.fhir_authorization(TOKEN)
    return request


def _types(state: StubState) -> set[str]:
    return {path.split("/")[2].split("?")[0] for path in state.paths()}


def test_missing_keys_fetched(roomy, client) -> None:
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    prefetch = {
        "patient": full["patient"],
        "conditions": full["conditions"],
        "observations": STALE,
        "medicationRequests": None,
        "medicationAdministrations": full["medicationAdministrations"],
    }
    state = StubState(data=data_for(history), token=TOKEN)
    with fhir_stub(state) as base_url:
        response = call(client, _request(base_url, prefetch, history))
    assert response.status_code == 200
    assert _types(state) == {"Observation", "MedicationRequest", "MedicationStatement"}
    assert all(r.token_ok for r in state.requests)
    assert "data-unavailable" not in codes(response)
    # The fetched Observations were used: fresh labs on record, so no missing-lab card.
    assert not {"platelets-missing", "liver-tests-missing"} & set(codes(response))


def test_stale_prefetch_and_server_down_is_named(roomy, client) -> None:
    history = fb.metastatic_history()
    prefetch = {**fb.prefetch_for(history), "observations": STALE}
    state = StubState(data=data_for(history), token=TOKEN, modes={"Observation": "500"})
    with fhir_stub(state) as base_url:
        response = call(client, _request(base_url, prefetch, history))
    assert response.status_code == 200
    assert "Observations" in unavailable_card(response)["summary"]
    assert not {"platelets-missing", "liver-tests-missing"} & set(codes(response))


def _paged_observations(base_url: str, first_page: list[dict[str, Any]]) -> dict[str, Any]:
    bundle = fb.searchset(first_page)
    bundle["link"] = [
        {"relation": "self", "url": f"{base_url}/Observation?patient=pat-1"},
        {"relation": "next", "url": f"{base_url}/Observation?patient=pat-1&_page=2"},
    ]
    return bundle


def test_paged_prefetch_is_followed_with_the_same_token(roomy, client) -> None:
    history = fb.metastatic_history(labs=False)
    labs = fb.fresh_labs()
    # Page 1 (prefetched) has the weight and LVEF; page 2 (on the server) has the pre-dose labs.
    state = StubState(data={"Observation": fb.searchset(labs)}, token=TOKEN)
    with fhir_stub(state) as base_url:
        prefetch = fb.prefetch_for(history)
        first_page = [e["resource"] for e in prefetch["observations"]["entry"]]
        prefetch["observations"] = _paged_observations(base_url, first_page)
        response = call(client, _request(base_url, prefetch, history))
    assert response.status_code == 200
    assert state.paths() == ["/fhir/Observation?patient=pat-1&_page=2"]
    assert state.requests[0].token_ok
    assert not {"platelets-missing", "liver-tests-missing", "data-unavailable"} & set(codes(response))


def test_paged_prefetch_linking_elsewhere_is_not_followed(roomy, client) -> None:
    history = fb.metastatic_history(labs=False)
    state = StubState(data={"Observation": fb.searchset(fb.fresh_labs())}, token=TOKEN)
    with fhir_stub(state) as base_url:
        prefetch = fb.prefetch_for(history)
        prefetch["observations"] = _paged_observations(
            "http://127.0.0.2:9/fhir", [e["resource"] for e in prefetch["observations"]["entry"]]
        )
        response = call(client, _request(base_url, prefetch, history))
    assert response.status_code == 200
    assert state.paths() == []  # and nothing was sent to the other origin with our token
    assert "Observations" in unavailable_card(response)["summary"]
    assert not {"platelets-missing", "liver-tests-missing"} & set(codes(response))


def test_paged_prefetch_without_a_server_is_not_taken_for_the_whole_history(roomy, client) -> None:
    history = fb.metastatic_history(labs=False)
    prefetch = fb.prefetch_for(history)
    prefetch["observations"] = _paged_observations(
        "http://127.0.0.1:9/fhir", [e["resource"] for e in prefetch["observations"]["entry"]]
    )
    response = call(client, _request(None, prefetch, history))
    assert response.status_code == 200
    card = unavailable_card(response)
    assert "Observations" in card["summary"]
    # Labs may sit on the unread page: "missing" cards would be guesses.
    assert not {"platelets-missing", "liver-tests-missing"} & set(codes(response))


def _with_outcome_entry(bundle: dict[str, Any], severity: str) -> dict[str, Any]:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": "too-costly"}]}
    return {
        **bundle,
        "entry": [*bundle.get("entry", []), {"resource": outcome, "search": {"mode": "outcome"}}],
    }


def test_a_prefetched_searchset_reporting_an_error_is_fetched_again(roomy, client) -> None:
    # A prefetch search that failed in part carries its error as an OperationOutcome entry: its
    # entries are not the whole list (here, no labs at all), so the Observations are fetched.
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    prefetch = {**full, "observations": _with_outcome_entry(fb.searchset([]), "error")}
    state = StubState(data=data_for(history), token=TOKEN)
    with fhir_stub(state) as base_url:
        response = call(client, _request(base_url, prefetch, history))
    assert response.status_code == 200
    assert _types(state) == {"Observation"}
    assert not {"platelets-missing", "liver-tests-missing", "data-unavailable"} & set(codes(response))


def test_a_prefetched_searchset_reporting_an_error_without_a_server_is_unavailable(roomy, client) -> None:
    history = fb.metastatic_history()
    prefetch = {**fb.prefetch_for(history), "observations": _with_outcome_entry(fb.searchset([]), "fatal")}
    response = call(client, _request(None, prefetch, history))
    assert response.status_code == 200
    assert "Observations" in unavailable_card(response)["summary"]
    assert not {"platelets-missing", "liver-tests-missing"} & set(codes(response))


def test_a_warning_beside_prefetched_data_leaves_it_whole(roomy, client) -> None:
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    prefetch = {**full, "observations": _with_outcome_entry(full["observations"], "warning")}
    response = call(client, _request(None, prefetch, history))
    assert response.status_code == 200
    assert codes(response) == codes(call(client, _request(None, full, history)))


def test_a_prefetched_entry_that_is_not_a_resource_makes_the_list_partial(roomy, client) -> None:
    # The fetch path refuses such a list (test_unreadable_entries_make_the_list_unavailable); a
    # prefetched one is no more complete: fetched again, or named unavailable.
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    for broken in ({"fullUrl": "https://ehr.example.org/fhir/Observation/1"}, {"resource": {}}, "x"):
        observations = {**full["observations"], "entry": [*full["observations"]["entry"], broken]}
        prefetch = {**full, "observations": observations}
        state = StubState(data=data_for(history), token=TOKEN)
        with fhir_stub(state) as base_url:
            fetched = call(client, _request(base_url, prefetch, history))
        assert _types(state) == {"Observation"}, broken
        assert "data-unavailable" not in codes(fetched)
        alone = call(client, _request(None, prefetch, history))
        assert "Observations" in unavailable_card(alone)["summary"], broken
        assert not {"platelets-missing", "liver-tests-missing"} & set(codes(alone))


def test_a_prefetched_last_page_short_of_its_total_is_partial(roomy, client) -> None:
    # Bundle.total counts more Observations than were sent and there is no next link: the server
    # cut the list. Fetched again, or named unavailable; never read as "no platelet count".
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    observations = {**full["observations"], "total": len(full["observations"]["entry"]) + 1}
    prefetch = {**full, "observations": observations}
    state = StubState(data=data_for(history), token=TOKEN)
    with fhir_stub(state) as base_url:
        fetched = call(client, _request(base_url, prefetch, history))
    assert _types(state) == {"Observation"}
    assert "data-unavailable" not in codes(fetched)
    alone = call(client, _request(None, prefetch, history))
    assert "Observations" in unavailable_card(alone)["summary"]
    assert not {"platelets-missing", "liver-tests-missing"} & set(codes(alone))
    # The other side: the total as sent is the whole list.
    whole = call(client, _request(None, full, history))
    assert "data-unavailable" not in codes(whole)


def test_a_prefetched_batch_response_with_a_paged_search_inside_is_partial(roomy, client) -> None:
    # An EHR that runs its prefetch as a batch may hand over a batch-response of searchsets; an
    # inner searchset with a next link has pages nobody will read.
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    inner = _paged_observations(
        "http://127.0.0.1:9/fhir", [e["resource"] for e in full["observations"]["entry"]]
    )
    batch = {"resourceType": "Bundle", "type": "batch-response", "entry": [{"resource": inner}]}
    response = call(client, _request(None, {**full, "observations": batch}, history))
    assert "Observations" in unavailable_card(response)["summary"]
    assert not {"platelets-missing", "liver-tests-missing"} & set(codes(response))
    del inner["link"][1]  # a last page, whole: its Observations are read
    response = call(client, _request(None, {**full, "observations": batch}, history))
    assert "data-unavailable" not in codes(response)
    assert codes(response) == codes(call(client, _request(None, full, history)))


def test_a_short_prefetch_without_a_server_says_why(roomy, client) -> None:
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    count = len(full["observations"]["entry"])
    prefetch = {**full, "observations": {**full["observations"], "total": count + 3}}
    card = unavailable_card(call(client, _request(None, prefetch, history)))
    assert (
        f"Prefetched observations was incomplete (the server counted {count + 3} results and sent {count}) "
        "and no FHIR server was given."
    ) in card["detail"]


def test_a_prefetched_lone_resource_of_another_type_is_not_read_as_an_empty_list(roomy, client) -> None:
    # An Observation prefetch that is a Patient, or a resource with no readable type: no Observation
    # was read, so "no platelet count" would be a guess.
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    patient = full["patient"]
    for wrong in (patient, {"resourceType": ""}, {"resourceType": 5}, {"resourceType": "Basic", "id": "b"}):
        prefetch = {**full, "observations": wrong}
        response = call(client, _request(None, prefetch, history))
        assert "Observations" in unavailable_card(response)["summary"], wrong
        assert not {"platelets-missing", "liver-tests-missing"} & set(codes(response)), wrong
        state = StubState(data=data_for(history), token=TOKEN)
        with fhir_stub(state) as base_url:
            fetched = call(client, _request(base_url, prefetch, history))
        assert _types(state) == {"Observation"}, wrong
        assert "data-unavailable" not in codes(fetched)
    # The other side: the patient key's own lone Patient is read.
    assert "data-unavailable" not in codes(call(client, _request(None, full, history)))


def test_a_prefetched_bundle_of_another_type_is_not_read_as_an_empty_list(roomy, client) -> None:
    # The observations key holding the Conditions searchset: no Observation was sent.
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    prefetch = {**full, "observations": full["conditions"]}
    response = call(client, _request(None, prefetch, history))
    card = unavailable_card(response)
    assert "Observations" in card["summary"]
    assert "the Observation search returned Condition resources" in card["detail"]
    assert not {"platelets-missing", "liver-tests-missing"} & set(codes(response))
    state = StubState(data=data_for(history), token=TOKEN)
    with fhir_stub(state) as base_url:
        fetched = call(client, _request(base_url, prefetch, history))
    assert _types(state) == {"Observation"}
    assert codes(fetched) == codes(call(client, _request(None, full, history)))


def test_a_prefetched_history_naming_a_medication_not_sent_is_not_read_as_no_therapy(roomy, client) -> None:
    # No fhirServer, and the prior trastuzumab named only by a Medication the prefetch lacks.
    history = fb.metastatic_history(prior_her2=False)
    prior = fb.statement("trastuzumab", fb.ago(days=600), fb.ago(days=120))
    del prior["medicationCodeableConcept"]
    prior["medicationReference"] = {"reference": "Medication/m-tras"}
    response = call(client, _request(None, fb.prefetch_for([*history, prior]), history))
    assert "first-line-use" not in codes(response)
    card = unavailable_card(response)
    assert "MedicationStatement" in card["detail"]
    # A reference with a display names its drug: read as before.
    prior["medicationReference"]["display"] = "trastuzumab"
    response = call(client, _request(None, fb.prefetch_for([*history, prior]), history))
    assert "first-line-use" not in codes(response)
    assert "MedicationStatement" not in " ".join(c["detail"] for c in response.get_json()["cards"])


def test_a_hostile_search_mode_in_a_prefetch_is_read_not_a_500(roomy, client) -> None:
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    entries = [
        {**e, "search": {"mode": mode}}
        for e, mode in zip(full["observations"]["entry"], [[], {}, ["x"]] * 50, strict=False)
    ]
    prefetch = {**full, "observations": {**full["observations"], "entry": entries}}
    response = call(client, _request(None, prefetch, history))
    assert response.status_code == 200
    assert codes(response) == codes(call(client, _request(None, full, history)))


def test_a_server_known_to_miscount_can_be_trusted_without_its_total(roomy, client) -> None:
    # TDM1_CDS_CHECK_BUNDLE_TOTAL=false: for a server whose total counts what it never sends, the
    # list is read as it comes, as before the check, instead of every call being unavailable.
    history = fb.metastatic_history()
    full = fb.prefetch_for(history)
    prefetch = {**full, "observations": {**full["observations"], "total": 999}}
    assert "data-unavailable" in codes(call(client, _request(None, prefetch, history)))
    roomy.config["SETTINGS"] = roomy.config["SETTINGS"].with_overrides(check_bundle_total=False)
    trusted = call(client, _request(None, prefetch, history))
    assert codes(trusted) == codes(call(client, _request(None, full, history)))
    state = StubState(data=data_for(history), token=TOKEN)
    with fhir_stub(state) as base_url:
        assert "data-unavailable" not in codes(call(client, _request(base_url, prefetch, history)))
    assert state.paths() == []  # the short prefetch was used, not fetched again
