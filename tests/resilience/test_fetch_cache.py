"""order-select then order-sign: the second call reuses what the first fetched, for that patient only."""

from __future__ import annotations

import pickle

from service.fhir.cache import FetchCache, Scope, token_fingerprint
from tests import fhir_builders as fb
from tests.resilience.conftest import TOKEN, call, codes, no_prefetch_request
from tests.resilience.fhir_stub import StubState, data_for, fhir_stub

QUERIES_PER_CALL = 6  # Patient, Condition, Observation, and three medication-history searches


def _sign_after_select(client, base_url: str, patient_id: str = "pat-1"):
    select = no_prefetch_request(base_url, hook="order-select", patient_id=patient_id)
    sign = no_prefetch_request(base_url, hook="order-sign", patient_id=patient_id)
    sign["context"]["draftOrders"] = select["context"]["draftOrders"]
    first = call(client, select, "tdm1-order-select")
    second = call(client, sign, "tdm1-order-sign")
    return first, second


def test_order_sign_reuses_what_order_select_fetched(roomy, client) -> None:
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN)
    with fhir_stub(state) as base_url:
        select = no_prefetch_request(base_url, hook="order-select")
        first = call(client, select, "tdm1-order-select")
        assert len(state.paths()) == QUERIES_PER_CALL
        sign = no_prefetch_request(base_url)
        sign["context"]["draftOrders"] = select["context"]["draftOrders"]
        second = call(client, sign)
        assert len(state.paths()) == QUERIES_PER_CALL  # no new request
    assert first.status_code == second.status_code == 200
    assert codes(first) == codes(second)


def test_another_patient_makes_its_own_requests(roomy, client) -> None:
    history = fb.metastatic_history()
    other = [dict(r, subject={"reference": "Patient/pat-2"}) for r in history]
    state = StubState(data=data_for(history), token=TOKEN)
    with fhir_stub(state) as base_url:
        call(client, no_prefetch_request(base_url, patient_id="pat-1"))
        state.data = data_for(other, "pat-2")
        call(client, no_prefetch_request(base_url, patient_id="pat-2"))
    paths = state.paths()
    assert len(paths) == 2 * QUERIES_PER_CALL
    assert sum("pat-2" in p for p in paths) == QUERIES_PER_CALL


def test_another_token_or_server_makes_its_own_requests(roomy, client) -> None:
    state = StubState(data=data_for(fb.metastatic_history()), token=None)
    second_server = StubState(data=data_for(fb.metastatic_history()), token=None)
    with fhir_stub(state) as base_url, fhir_stub(second_server) as other_url:
        call(client, no_prefetch_request(base_url))
        request = no_prefetch_request(base_url)
        request["fhirAuthorization"]["access_token"] = "another-users-token"
        call(client, request)
        call(client, no_prefetch_request(other_url))
    assert len(state.paths()) == 2 * QUERIES_PER_CALL
    assert len(second_server.paths()) == QUERIES_PER_CALL


def test_failures_are_not_kept(roomy, client) -> None:
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN, modes={"Observation": "500"})
    with fhir_stub(state) as base_url:
        first = call(client, no_prefetch_request(base_url))
        state.modes = {}
        second = call(client, no_prefetch_request(base_url))
    assert "data-unavailable" in codes(first)
    assert "data-unavailable" not in codes(second)
    assert len(state.paths("Observation")) == 2
    assert len(state.paths()) == QUERIES_PER_CALL + 1


def test_prefetched_data_is_not_kept(roomy, client) -> None:
    history = fb.metastatic_history()
    state = StubState(data=data_for(history), token=TOKEN)
    with fhir_stub(state) as base_url:
        with_prefetch = fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")], history=history)
        with_prefetch["fhirServer"] = base_url
        with_prefetch["fhirAuthorization"] = no_prefetch_request(base_url)["fhirAuthorization"]
        call(client, with_prefetch)
        assert state.paths() == []
        call(client, no_prefetch_request(base_url))
    assert len(state.paths()) == QUERIES_PER_CALL


def test_ttl_zero_turns_it_off(roomy, app, client) -> None:
    app.config["FETCH_CACHE"] = FetchCache(ttl_seconds=0)
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN)
    with fhir_stub(state) as base_url:
        _sign_after_select(client, base_url)
    assert len(state.paths()) == 2 * QUERIES_PER_CALL


def test_the_cache_holds_no_token(roomy, client, app) -> None:
    state = StubState(data=data_for(fb.metastatic_history()), token=TOKEN)
    with fhir_stub(state) as base_url:
        call(client, no_prefetch_request(base_url))
    cache = app.config["FETCH_CACHE"]
    assert len(cache) == QUERIES_PER_CALL
    assert TOKEN.encode() not in pickle.dumps(dict(cache._entries))


# --- the cache itself -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _scope(patient: str = "pat-1", token: str = "t") -> Scope:
    return Scope("http://127.0.0.1:1/fhir/", patient, token_fingerprint(token))


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = FetchCache(ttl_seconds=30, clock=clock)
    cache.put(_scope(), "Condition?patient=pat-1", [{"resourceType": "Condition"}], pages=1, truncated=False)
    clock.now += 29
    assert cache.get(_scope(), "Condition?patient=pat-1") is not None
    clock.now += 2
    assert cache.get(_scope(), "Condition?patient=pat-1") is None
    assert len(cache) == 0


def test_scope_separates_patients_and_tokens() -> None:
    cache = FetchCache()
    cache.put(_scope(), "Q", [{"resourceType": "Condition"}], pages=1, truncated=False)
    assert cache.get(_scope("pat-2"), "Q") is None
    assert cache.get(_scope(token="other"), "Q") is None
    assert cache.get(_scope(), "Q") is not None


def test_size_is_bounded_oldest_first() -> None:
    resource = {"resourceType": "Observation", "id": "x" * 1000}
    cache = FetchCache(max_bytes=5_000)
    for i in range(20):
        cache.put(_scope(), f"Q{i}", [resource], pages=1, truncated=False)
        assert cache.size_bytes <= 5_000
    assert cache.get(_scope(), "Q19") is not None
    assert cache.get(_scope(), "Q0") is None


def test_a_hit_is_a_copy() -> None:
    cache = FetchCache()
    cache.put(_scope(), "Q", [{"resourceType": "Condition", "id": "c1"}], pages=1, truncated=False)
    hit = cache.get(_scope(), "Q")
    assert hit is not None
    hit.resources[0]["id"] = "changed"
    again = cache.get(_scope(), "Q")
    assert again is not None and again.resources[0]["id"] == "c1"
