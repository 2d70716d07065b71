"""The issuers' key sets: fetched from the configured URL only, refreshed on rotation, never hammered."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests import fhir_builders as fb
from tests.security import support
from tests.security.conftest import aud
from tests.security.support import LoopbackServer, SigningKey, bearer

DISCOVERY = "/cds-services"


def discover(client: Any, token: str) -> int:
    return client.get(DISCOVERY, headers=bearer(token)).status_code


def jwks_fetches(server: LoopbackServer) -> int:
    return sum(1 for r in server.requests if r.path == "/jwks.json")


def test_rotated_key_is_picked_up_on_unknown_kid(
    make_app, jwks_server: LoopbackServer, es_key: SigningKey
) -> None:
    client = make_app().test_client()
    assert discover(client, support.mint(es_key, aud(DISCOVERY))) == 200
    rotated = support.es384_key(kid="es384-2026-12")
    jwks_server.published.append(rotated)  # type: ignore[attr-defined]
    assert discover(client, support.mint(rotated, aud(DISCOVERY))) == 200
    assert jwks_fetches(jwks_server) == 2
    # Known kids are served from the cache.
    assert discover(client, support.mint(es_key, aud(DISCOVERY))) == 200
    assert jwks_fetches(jwks_server) == 2


def test_unknown_kids_cannot_make_us_hammer_the_jwks_endpoint(
    make_app, jwks_server: LoopbackServer, es_key: SigningKey
) -> None:
    client = make_app(jwks_refresh_floor_seconds=3600.0).test_client()
    assert discover(client, support.mint(es_key, aud(DISCOVERY))) == 200
    for n in range(20):
        assert discover(client, support.mint(support.es384_key(kid=f"made-up-{n}"), aud(DISCOVERY))) == 401
    assert jwks_fetches(jwks_server) == 1


@pytest.mark.parametrize(
    "answer",
    [
        (500, {}, b"{}"),
        (200, {"Content-Type": "application/json"}, b"<html>not json</html>"),
        (200, {"Content-Type": "application/json"}, b'{"keys": "none"}'),
        (200, {"Content-Type": "application/json"}, b"[1, 2]"),
        (
            200,
            {"Content-Type": "application/json"},
            b'{"keys": [{"kty": "EC", "kid": "es384-1", "crv": "P-384"}]}',
        ),
    ],
)
def test_broken_jwks_endpoint_gives_401_not_500(
    make_app, jwks_server: LoopbackServer, es_key: SigningKey, answer: tuple[int, dict[str, str], bytes]
) -> None:
    jwks_server.routes["/jwks.json"] = lambda _p, _h: answer
    assert discover(make_app().test_client(), support.mint(es_key, aud(DISCOVERY))) == 401


def test_jwks_redirect_is_not_followed(
    make_app, jwks_server: LoopbackServer, elsewhere: LoopbackServer, es_key: SigningKey
) -> None:
    elsewhere.json_route("/jwks.json", support.jwks_document(es_key))
    jwks_server.routes["/jwks.json"] = lambda _p, _h: (302, {"Location": f"{elsewhere.base}/jwks.json"}, b"")
    assert discover(make_app().test_client(), support.mint(es_key, aud(DISCOVERY))) == 401
    assert elsewhere.requests == []


def test_slow_jwks_endpoint_is_given_up_on(make_app, jwks_server: LoopbackServer, es_key: SigningKey) -> None:
    def slow(_path: str, _headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(2.0)
        return 200, {}, b'{"keys": []}'

    jwks_server.routes["/jwks.json"] = slow
    assert (
        discover(make_app(jwks_timeout_seconds=0.2).test_client(), support.mint(es_key, aud(DISCOVERY)))
        == 401
    )


def test_symmetric_key_in_the_jwks_is_never_used(make_app, jwks_server: LoopbackServer) -> None:
    secret = b"shared-secret-that-should-never-be-accepted-000000"
    oct_key = {"kty": "oct", "kid": "hmac-1", "k": support.b64url(secret), "alg": "HS256"}
    jwks_server.routes["/jwks.json"] = lambda _p, _h: (
        200,
        {"Content-Type": "application/json"},
        json.dumps({"keys": [oct_key]}).encode(),
    )
    import jwt

    token = jwt.encode(support.claims(aud(DISCOVERY)), secret, algorithm="HS256", headers={"kid": "hmac-1"})
    client = make_app(jwt_algorithms=("ES384", "RS384")).test_client()
    assert discover(client, token) == 401


def test_feedback_and_hook_share_the_key_cache(
    make_app, jwks_server: LoopbackServer, rs_key: SigningKey
) -> None:
    client = make_app().test_client()
    sign = "/cds-services/tdm1-order-sign"
    request = fb.hook_request("order-sign", drafts=[fb.medication_request("docetaxel")])
    assert client.post(sign, json=request, headers=bearer(support.mint(rs_key, aud(sign)))).status_code == 200
    assert discover(client, support.mint(rs_key, aud(DISCOVERY))) == 200
    assert jwks_fetches(jwks_server) == 1
