"""Generated and mutated FHIR in prefetch, draftOrders and FHIR server answers: never a 5xx.

Every answer is JSON with a documented status; 200s carry a card list; errors an OperationOutcome.
The service runs in production mode (each call signed), with fhirServer on a loopback stub, and
with name resolution for any other host made to fail the test.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from tests import fhir_builders as fb
from tests.fuzz import strategies as fs
from tests.fuzz.conftest import count, fuzz_settings
from tests.security import support
from tests.security.support import PUBLIC_URL, LoopbackServer, SigningKey

SERVICE_BY_HOOK = {
    "order-select": "tdm1-order-select",
    "order-sign": "tdm1-order-sign",
    "patient-view": "tdm1-patient-view",
}
CLIENT_ERRORS = {400, 412, 413, 415}


def assert_sane(response: Any, name: str = "") -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:2000]
    assert response.status_code in {200} | CLIENT_ERRORS, response.status_code
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data())
    # How deep the cases got: a fuzzer that only ever hits 400s is not testing the rules.
    outcome = (
        "200 with cards" if response.status_code == 200 and body.get("cards") else str(response.status_code)
    )
    count(f"  {name}: answered {outcome}")
    if response.status_code == 200:
        assert isinstance(body["cards"], list)
        for card in body["cards"]:
            assert (
                len(card["summary"]) < 140
                and card["uuid"]
                and card["indicator"] in {"info", "warning", "critical"}
            )
    else:
        assert body["resourceType"] == "OperationOutcome" and body["issue"]


def post(app: Flask, key: SigningKey, path: str, body: Any = None, *, data: bytes | None = None) -> Any:
    token = support.mint(key, PUBLIC_URL + path)
    headers = {**support.bearer(token), "Content-Type": "application/json"}
    payload = data if data is not None else json.dumps(body).encode()
    return app.test_client().post(path, data=payload, headers=headers)


def service_path(request: Any) -> str:
    hook = request.get("hook") if isinstance(request, dict) else None
    return f"/cds-services/{SERVICE_BY_HOOK.get(hook, 'tdm1-order-sign') if isinstance(hook, str) else 'tdm1-order-sign'}"


def fhir_server_choice(stub: LoopbackServer, other: LoopbackServer) -> st.SearchStrategy[str | None]:
    return st.sampled_from(
        [
            None,
            f"{stub.base}/fhir",
            f"{other.base}/fhir",
            "https://ehr.example.org/fhir",
            "http://10.0.0.1/fhir",
        ]
    )


def test_generated_fhir_requests(
    prod_app: Flask, es_key: SigningKey, fhir_stub, elsewhere, no_outbound_network
) -> None:
    @fuzz_settings(120)
    @given(request=fs.hook_requests(), server=fhir_server_choice(fhir_stub, elsewhere))
    def run(request: dict[str, Any], server: str | None) -> None:
        if server:
            request["fhirServer"] = server
            request["fhirAuthorization"] = {
                "access_token": "t",
                "token_type": "Bearer",
                "expires_in": 60,
                "scope": "patient/*.read",
                "subject": "s",
            }
        count("generated FHIR in prefetch/draftOrders")
        assert_sane(post(prod_app, es_key, service_path(request), request), "generated")

    run()
    assert elsewhere.requests == []


def test_mutated_requests(prod_app: Flask, es_key: SigningKey, elsewhere, no_outbound_network) -> None:
    @fuzz_settings(120)
    @given(request=fs.mutated(fs.hook_requests()))
    def run(request: Any) -> None:
        count("mutated CDS Hooks requests")
        assert_sane(post(prod_app, es_key, service_path(request), request), "mutated")

    run()
    assert elsewhere.requests == []


def test_raw_bodies(prod_app: Flask, es_key: SigningKey, no_outbound_network) -> None:
    @fuzz_settings(60)
    @given(
        raw=fs.raw_bodies(), service=st.sampled_from(sorted(SERVICE_BY_HOOK.values())), feedback=st.booleans()
    )
    def run(raw: bytes, service: str, feedback: bool) -> None:
        count("raw request bodies")
        path = f"/cds-services/{service}" + ("/feedback" if feedback else "")
        assert_sane_feedback_or_hook(post(prod_app, es_key, path, data=raw), feedback, "raw")

    run()


def assert_sane_feedback_or_hook(response: Any, feedback: bool, name: str) -> None:
    if feedback and response.status_code == 200:
        count(f"  {name}: answered 200")
        assert set(response.get_json()) == {"received", "stored"}
        return
    assert_sane(response, name)


def test_mutated_feedback(prod_app: Flask, es_key: SigningKey, no_outbound_network) -> None:
    base = {
        "feedback": [
            {
                "card": "c1",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "s1"}],
                "outcomeTimestamp": fb.iso(fb.NOW),
            }
        ]
    }

    @fuzz_settings(40)
    @given(document=fs.mutated(st.just(base)))
    def run(document: Any) -> None:
        count("mutated feedback")
        assert_sane_feedback_or_hook(
            post(prod_app, es_key, "/cds-services/tdm1-order-sign/feedback", document), True, "feedback"
        )

    run()


def test_fhir_server_answers(
    prod_app: Flask, es_key: SigningKey, fhir_stub: LoopbackServer, elsewhere, no_outbound_network
) -> None:
    """What the EHR's FHIR server answers is input too: generated, mutated, or not FHIR at all."""
    answer: dict[str, bytes] = {"body": b"{}"}
    fhir_stub.routes["*"] = lambda _path, _headers: (
        200,
        {"Content-Type": "application/fhir+json"},
        answer["body"],
    )
    request = fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")], prefetch={})
    request["fhirServer"] = f"{fhir_stub.base}/fhir"
    documents = st.one_of(
        fs.bundles().map(lambda d: json.dumps(d).encode()),
        fs.mutated(fs.bundles()).map(lambda d: json.dumps(d).encode()),
        fs.raw_bodies(),
    )

    @fuzz_settings(40)
    @given(body=documents)
    def run(body: bytes) -> None:
        answer["body"] = body
        count("FHIR server answers")
        request["hookInstance"] = fb.new_id()
        assert_sane(post(prod_app, es_key, "/cds-services/tdm1-order-sign", request), "FHIR server answers")

    run()
    assert elsewhere.requests == []
