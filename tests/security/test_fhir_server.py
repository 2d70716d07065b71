"""No server-side request forgery: only listed FHIR servers are called, with the token, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests import fhir_builders as fb
from tests.security import support
from tests.security.conftest import aud, fhir_answer
from tests.security.support import LoopbackServer, SigningKey, bearer

SIGN = "/cds-services/tdm1-order-sign"
ACCESS_TOKEN = "fhir-access-token-1f9e2c"


def fetching_request(fhir_server: str) -> dict[str, Any]:
    """A T-DM1 order with no prefetch at all: everything must come from fhirServer."""
    request = fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")], prefetch={})
    request["fhirServer"] = fhir_server
    request["fhirAuthorization"] = fb.fhir_authorization(ACCESS_TOKEN)
    return request


def call(client: FlaskClient, key: SigningKey, request: dict[str, Any]) -> Any:
    return client.post(SIGN, json=request, headers=bearer(support.mint(key, aud(SIGN))))


def test_listed_server_is_called_with_the_access_token(
    prod_client: FlaskClient, es_key: SigningKey, fhir_stub: LoopbackServer
) -> None:
    response = call(prod_client, es_key, fetching_request(f"{fhir_stub.base}/fhir"))
    assert response.status_code == 200, response.get_json()
    assert fhir_stub.requests, "the listed FHIR server was not asked for the data"
    assert all(r.path.startswith("/fhir/") for r in fhir_stub.requests)
    assert {r.headers.get("Authorization") for r in fhir_stub.requests} == {f"Bearer {ACCESS_TOKEN}"}


def test_a_server_below_the_listed_base_is_allowed(
    prod_client: FlaskClient, es_key: SigningKey, fhir_stub: LoopbackServer
) -> None:
    response = call(prod_client, es_key, fetching_request(f"{fhir_stub.base}/fhir/R4"))
    assert response.status_code == 200
    assert all(r.path.startswith("/fhir/R4/") for r in fhir_stub.requests)


@pytest.mark.parametrize(
    "server",
    [
        "{other}/fhir",
        "{stub}/fhir-evil",
        "{stub}/",
        "{stub}/fhir/../admin",
        "{stub}/fhir/%2e%2e/admin",
        "http://user@{stub_hostport}/fhir",
        "https://{stub_hostport}/fhir",
        "http://169.254.169.254/latest/meta-data",
        "http://ehr.invalid/fhir",
    ],
)
def test_unlisted_servers_get_400_and_no_request(
    prod_client: FlaskClient,
    es_key: SigningKey,
    fhir_stub: LoopbackServer,
    elsewhere: LoopbackServer,
    server: str,
) -> None:
    url = server.format(
        other=elsewhere.base, stub=fhir_stub.base, stub_hostport=f"127.0.0.1:{fhir_stub.port}"
    )
    response = call(prod_client, es_key, fetching_request(url))
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert fhir_stub.requests == [] and elsewhere.requests == []


def test_unlisted_server_is_refused_even_for_an_order_that_needs_no_data(
    prod_client: FlaskClient, es_key: SigningKey, elsewhere: LoopbackServer
) -> None:
    request = fetching_request(f"{elsewhere.base}/fhir")
    request["context"]["draftOrders"]["entry"][0]["resource"] = fb.medication_request(
        "docetaxel", dose=75, unit="mg/m2"
    )
    response = call(prod_client, es_key, request)
    assert response.status_code == 400
    assert elsewhere.requests == []


def test_servers_are_per_issuer(
    make_app,
    issuer_entry: dict[str, Any],
    es_key: SigningKey,
    fhir_stub: LoopbackServer,
    elsewhere: LoopbackServer,
) -> None:
    other_issuer = {
        **issuer_entry,
        "iss": "https://other-ehr.example.org",
        "fhir_servers": [f"{elsewhere.base}/fhir"],
    }
    client = make_app([issuer_entry, other_issuer]).test_client()
    # Issuer A may not use issuer B's FHIR server.
    response = call(client, es_key, fetching_request(f"{elsewhere.base}/fhir"))
    assert response.status_code == 400
    assert elsewhere.requests == []


def test_redirects_are_not_followed(
    prod_client: FlaskClient, es_key: SigningKey, fhir_stub: LoopbackServer, elsewhere: LoopbackServer
) -> None:
    fhir_stub.routes["*"] = lambda path, _h: (302, {"Location": f"{elsewhere.base}{path}"}, b"")
    response = call(prod_client, es_key, fetching_request(f"{fhir_stub.base}/fhir"))
    assert response.status_code in (200, 412)
    assert fhir_stub.requests and elsewhere.requests == []


def test_paging_links_to_another_origin_are_refused(
    prod_client: FlaskClient, es_key: SigningKey, fhir_stub: LoopbackServer, elsewhere: LoopbackServer
) -> None:
    def paged(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if "/Patient/" in path:
            return fhir_answer(path, headers)
        bundle = fb.searchset([])
        bundle["link"] = [{"relation": "next", "url": f"{elsewhere.base}/fhir/Observation?page=2"}]
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle).encode()

    fhir_stub.routes["*"] = paged
    response = call(prod_client, es_key, fetching_request(f"{fhir_stub.base}/fhir"))
    assert response.status_code == 200
    assert fhir_stub.requests and elsewhere.requests == []


def test_prefetched_paging_link_to_another_origin_is_refused(
    prod_client: FlaskClient, es_key: SigningKey, fhir_stub: LoopbackServer, elsewhere: LoopbackServer
) -> None:
    request = fetching_request(f"{fhir_stub.base}/fhir")
    request["prefetch"] = fb.prefetch_for(fb.metastatic_history())
    request["prefetch"]["observations"]["link"] = [
        {"relation": "next", "url": f"{elsewhere.base}/fhir/Observation?page=2"}
    ]
    assert call(prod_client, es_key, request).status_code == 200
    assert elsewhere.requests == []


def test_dev_mode_calls_loopback_only(app, client: FlaskClient, elsewhere: LoopbackServer) -> None:
    request = fetching_request("http://ehr.example.org/fhir")
    request["prefetch"] = fb.prefetch_for(fb.metastatic_history())
    assert client.post(SIGN, json=request).status_code == 200  # prefetch used, the server ignored
    request = fetching_request(f"{elsewhere.base}/fhir")
    assert client.post(SIGN, json=request).status_code == 200
    assert elsewhere.requests  # loopback is what dev mode is for


@pytest.mark.parametrize(
    "suffix",
    ["/fhir?tenant=a", "/fhir#top", "/fhir/../admin", "/fhir/%2e%2e/admin"],
)
def test_dev_mode_refuses_a_loopback_server_that_is_not_a_base_url(
    app, client: FlaskClient, elsewhere: LoopbackServer, suffix: str
) -> None:
    # urljoin("…/fhir?tenant=a/", "Observation?…") is "…/Observation?…": the base path was lost.
    response = client.post(SIGN, json=fetching_request(f"{elsewhere.base}{suffix}"))
    assert response.status_code == 400
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "not a plain http(s) base URL" in json.dumps(body)
    assert elsewhere.requests == []


def test_dev_mode_refuses_credentials_in_a_loopback_server(
    app, client: FlaskClient, elsewhere: LoopbackServer
) -> None:
    response = client.post(SIGN, json=fetching_request(f"http://user:pw@127.0.0.1:{elsewhere.port}/fhir"))
    assert response.status_code == 400
    assert elsewhere.requests == []


@pytest.mark.parametrize("server", ["http://[::1", "http://127.0.0.1:99999/fhir", "http://127.0.0.1:x/fhir"])
def test_dev_mode_answers_an_unparsable_fhir_server_with_400(app, client: FlaskClient, server: str) -> None:
    response = client.post(SIGN, json=fetching_request(server))
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"
