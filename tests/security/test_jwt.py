"""CDS client JWTs (CDS Hooks 2.0.1 §Trusting CDS Clients): each attack gets a bare 401, the good path its cards."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests import fhir_builders as fb
from tests.security import support
from tests.security.conftest import aud
from tests.security.support import ISS, SigningKey, bearer

SIGN = "/cds-services/tdm1-order-sign"
DISCOVERY = "/cds-services"
FEEDBACK = "/cds-services/tdm1-order-sign/feedback"


def tdm1_sign_request() -> dict[str, Any]:
    """A T-DM1 order with complete prefetch: the whole pipeline runs behind authentication."""
    history = fb.metastatic_history()
    return fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")], history=history)


def post_sign(client: FlaskClient, token: str) -> Any:
    return client.post(SIGN, json=tdm1_sign_request(), headers=bearer(token))


def assert_bare_401(response: Any) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.get_json()
    # Bare: an OperationOutcome with the code only, nothing that says which check failed.
    assert body == {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}


# --- the good path ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["es_key", "rs_key"])
def test_valid_token_reaches_the_cards(prod_client: FlaskClient, key_name: str, request: Any) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    response = post_sign(prod_client, support.mint(key, aud(SIGN)))
    assert response.status_code == 200, response.get_json()
    assert isinstance(response.get_json()["cards"], list)


def test_epic_style_token_with_nbf_sub_and_jku(
    prod_client: FlaskClient, rs_key: SigningKey, jwks_server
) -> None:
    token = support.mint(
        rs_key,
        [aud(SIGN)],  # aud as an array is allowed by RFC 7519
        headers={"jku": f"{jwks_server.base}/jwks.json"},
        nbf=int(time.time()) - 5,
        sub="d3Vzc2VsbEBlcGljLmV4YW1wbGU",
        client_id="epic-client-123",
    )
    assert post_sign(prod_client, token).status_code == 200


def test_discovery_and_feedback_need_and_accept_a_token(prod_client: FlaskClient, es_key: SigningKey) -> None:
    assert_bare_401(prod_client.get(DISCOVERY))
    assert prod_client.get(DISCOVERY, headers=bearer(support.mint(es_key, aud(DISCOVERY)))).status_code == 200
    feedback = {
        "feedback": [
            {
                "card": "0b7c1b7e-4bd5-4e77-9c1a-000000000001",
                "outcome": "overridden",
                "outcomeTimestamp": fb.iso(fb.NOW),
            }
        ]
    }
    assert_bare_401(prod_client.post(FEEDBACK, json=feedback))
    response = prod_client.post(FEEDBACK, json=feedback, headers=bearer(support.mint(es_key, aud(FEEDBACK))))
    assert response.status_code == 200


def test_health_and_preflight_need_no_token(prod_client: FlaskClient) -> None:
    assert prod_client.get("/healthz").status_code == 200
    assert prod_client.get("/readyz").status_code == 200
    preflight = prod_client.options(
        SIGN, headers={"Origin": "https://ehr.example.org", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204


def test_audience_alias_is_accepted(make_app, es_key: SigningKey) -> None:
    client = make_app(audience_aliases=("https://cds.alias.example.org/",)).test_client()
    token = support.mint(es_key, "https://cds.alias.example.org" + SIGN)
    assert post_sign(client, token).status_code == 200
    other = support.mint(es_key, "https://cds.unlisted.example.org" + SIGN)
    assert_bare_401(post_sign(client, other))


def test_without_public_url_the_audience_is_the_host_called(make_app, es_key: SigningKey) -> None:
    client = make_app(public_url="").test_client()
    assert post_sign(client, support.mint(es_key, "http://localhost" + SIGN)).status_code == 200
    assert_bare_401(post_sign(client, support.mint(es_key, aud(SIGN))))


def test_tenant_absent_is_accepted_when_issuer_lists_none(make_app, issuer_entry, es_key: SigningKey) -> None:
    client = make_app([{**issuer_entry, "tenants": []}]).test_client()
    assert post_sign(client, support.mint(es_key, aud(SIGN), tenant=None)).status_code == 200


# --- one test per attack --------------------------------------------------------------------------


def test_no_token(prod_client: FlaskClient) -> None:
    assert_bare_401(prod_client.post(SIGN, json=tdm1_sign_request()))


def test_not_a_bearer_token(prod_client: FlaskClient, es_key: SigningKey) -> None:
    token = support.mint(es_key, aud(SIGN))
    assert_bare_401(
        prod_client.post(SIGN, json=tdm1_sign_request(), headers={"Authorization": f"Basic {token}"})
    )


def test_garbage_token(prod_client: FlaskClient) -> None:
    assert_bare_401(post_sign(prod_client, "not.a.jwt"))


def test_alg_none(prod_client: FlaskClient) -> None:
    assert_bare_401(post_sign(prod_client, support.unsigned(aud(SIGN))))


def test_hs256_signed_with_the_public_key(
    prod_client: FlaskClient, es_key: SigningKey, rs_key: SigningKey
) -> None:
    assert_bare_401(post_sign(prod_client, support.hmac_with_public_key(es_key, aud(SIGN))))
    assert_bare_401(post_sign(prod_client, support.hmac_with_public_key(rs_key, aud(SIGN))))


def test_expired(prod_client: FlaskClient, es_key: SigningKey) -> None:
    now = int(time.time())
    assert_bare_401(post_sign(prod_client, support.mint(es_key, aud(SIGN), iat=now - 600, exp=now - 120)))


def test_issued_in_the_future(prod_client: FlaskClient, es_key: SigningKey) -> None:
    now = int(time.time())
    assert_bare_401(post_sign(prod_client, support.mint(es_key, aud(SIGN), iat=now + 600, exp=now + 900)))


def test_not_before_in_the_future(prod_client: FlaskClient, es_key: SigningKey) -> None:
    assert_bare_401(post_sign(prod_client, support.mint(es_key, aud(SIGN), nbf=int(time.time()) + 600)))


def test_wrong_audience(prod_client: FlaskClient, es_key: SigningKey) -> None:
    assert_bare_401(post_sign(prod_client, support.mint(es_key, "https://evil.example.org" + SIGN)))


def test_another_endpoints_audience(prod_client: FlaskClient, es_key: SigningKey) -> None:
    for other in (DISCOVERY, "/cds-services/tdm1-order-select", FEEDBACK):
        assert_bare_401(post_sign(prod_client, support.mint(es_key, aud(other))))


def test_unknown_issuer(prod_client: FlaskClient, es_key: SigningKey) -> None:
    assert_bare_401(
        post_sign(prod_client, support.mint(es_key, aud(SIGN), iss="https://attacker.example.org"))
    )


def test_jku_not_the_issuers(prod_client: FlaskClient, es_key: SigningKey, elsewhere) -> None:
    token = support.mint(es_key, aud(SIGN), headers={"jku": f"{elsewhere.base}/jwks.json"})
    assert_bare_401(post_sign(prod_client, token))
    assert elsewhere.requests == []  # the attacker's key set was never even fetched


def test_unknown_kid(prod_client: FlaskClient) -> None:
    stranger = support.es384_key(kid="never-published")
    assert_bare_401(post_sign(prod_client, support.mint(stranger, aud(SIGN))))


def test_known_kid_signed_by_another_key(prod_client: FlaskClient, es_key: SigningKey) -> None:
    impostor = support.es384_key(kid=es_key.kid)
    assert_bare_401(post_sign(prod_client, support.mint(impostor, aud(SIGN))))


def test_tampered_payload(prod_client: FlaskClient, es_key: SigningKey) -> None:
    token = support.mint(es_key, aud(DISCOVERY))
    assert_bare_401(post_sign(prod_client, support.tamper(token, aud=aud(SIGN))))


def test_replayed_jti(prod_client: FlaskClient, es_key: SigningKey) -> None:
    token = support.mint(es_key, aud(SIGN))
    assert post_sign(prod_client, token).status_code == 200
    assert_bare_401(post_sign(prod_client, token))
    # The same jti in a freshly signed token is a replay too.
    jti = support.tamper(token).split(".")[1]
    assert jti
    again = support.mint(es_key, aud(SIGN), jti=support.claims(aud(SIGN))["jti"])
    assert post_sign(prod_client, again).status_code == 200
    same_id = support.mint(es_key, aud(SIGN), jti=_jti(again))
    assert_bare_401(post_sign(prod_client, same_id))


def _jti(token: str) -> str:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})["jti"]


def test_wrong_tenant(prod_client: FlaskClient, es_key: SigningKey) -> None:
    assert_bare_401(post_sign(prod_client, support.mint(es_key, aud(SIGN), tenant="tenant-z")))
    assert_bare_401(post_sign(prod_client, support.mint(es_key, aud(SIGN), tenant=None)))


def test_algorithm_not_configured(prod_client: FlaskClient) -> None:
    es256 = support.SigningKey("ES256", "es256-1", support.ec.generate_private_key(support.ec.SECP256R1()))
    assert_bare_401(post_sign(prod_client, support.mint(es256, aud(SIGN))))


def test_key_type_must_match_algorithm(prod_client: FlaskClient, rs_key: SigningKey) -> None:
    # An RS384 key's kid with an ES384 header: the key set says RSA, the token must not say otherwise.
    impostor = support.es384_key(kid=rs_key.kid)
    assert_bare_401(post_sign(prod_client, support.mint(impostor, aud(SIGN))))


def test_missing_required_claims(prod_client: FlaskClient, es_key: SigningKey) -> None:
    for claim in ("jti", "exp", "iat", "aud"):
        token = support.mint(es_key, aud(SIGN), **{claim: None})
        assert_bare_401(post_sign(prod_client, token))


def test_typ_must_be_jwt(prod_client: FlaskClient, es_key: SigningKey) -> None:
    assert_bare_401(post_sign(prod_client, support.mint(es_key, aud(SIGN), headers={"typ": "at+jwt"})))


def test_lifetime_longer_than_allowed(prod_client: FlaskClient, es_key: SigningKey) -> None:
    token = support.mint(es_key, aud(SIGN), exp=int(time.time()) + 30 * 24 * 3600)
    assert_bare_401(post_sign(prod_client, token))


def test_clock_skew_is_tolerated_within_leeway(prod_client: FlaskClient, es_key: SigningKey) -> None:
    now = int(time.time())
    assert post_sign(prod_client, support.mint(es_key, aud(SIGN), iat=now + 10)).status_code == 200


def test_refusal_reason_is_logged_not_returned(
    prod_client: FlaskClient, es_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    token = support.mint(es_key, aud(SIGN), tenant="tenant-z")
    with caplog.at_level(logging.WARNING, logger="tdm1_cds.auth"):
        assert_bare_401(post_sign(prod_client, token))
    refusals = [r for r in caplog.records if r.getMessage() == "authentication refused"]
    assert [r.reason for r in refusals] == ["tenant"]  # type: ignore[attr-defined]
    assert all(token not in r.getMessage() and token not in str(vars(r)) for r in caplog.records)


def test_issuer_is_known_by_exact_iss(prod_client: FlaskClient, es_key: SigningKey) -> None:
    assert_bare_401(post_sign(prod_client, support.mint(es_key, aud(SIGN), iss=ISS + "/")))


def test_replay_is_refused_across_workers_sharing_the_database(
    make_app, tmp_path, es_key: SigningKey
) -> None:
    # Two apps on one database stand for two gunicorn workers (or two replicas).
    database = f"sqlite:///{tmp_path}/shared.sqlite3"
    first, second = (
        make_app(database_url=database).test_client(),
        make_app(database_url=database).test_client(),
    )
    token = support.mint(es_key, aud(SIGN))
    assert post_sign(first, token).status_code == 200
    assert_bare_401(post_sign(second, token))


def test_replay_cache_outage_is_503_not_a_pass(prod_app, es_key: SigningKey) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> bool:
        raise RuntimeError("database down")

    prod_app.config["STORE"].remember_jti = broken
    response = post_sign(prod_app.test_client(), support.mint(es_key, aud(SIGN)))
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_memory_replay_cache_forgets_only_expired_ids() -> None:
    from service.auth import MemoryReplayCache

    cache = MemoryReplayCache()
    now = time.time()
    assert cache.first_use("a", now + 60)
    assert not cache.first_use("a", now + 60)
    assert cache.first_use("old", now - 1)
    assert cache.first_use("b", now + 60)  # prunes "old", keeps "a"
    assert cache.first_use("old", now + 60)
    assert not cache.first_use("a", now + 60)


def test_es256_only_when_configured(make_app, jwks_server) -> None:
    es256 = support.SigningKey(
        "ES256", "es256-1", support.ec.generate_private_key(support.ec.SECP256R1()), {"alg": "ES256"}
    )
    jwks_server.published.append(es256)
    assert_bare_401(post_sign(make_app().test_client(), support.mint(es256, aud(SIGN))))
    widened = make_app(jwt_algorithms=("ES384", "RS384", "ES256")).test_client()
    assert post_sign(widened, support.mint(es256, aud(SIGN))).status_code == 200


def test_metrics_stay_open(prod_client: FlaskClient) -> None:
    assert prod_client.get("/metrics").status_code == 200


def test_dev_mode_needs_no_token_and_ignores_one_sent(client: FlaskClient) -> None:
    request = fb.hook_request("order-sign", drafts=[fb.medication_request("docetaxel")])
    assert client.post(SIGN, json=request).status_code == 200
    assert client.post(SIGN, json=request, headers=bearer("not-a-jwt")).status_code == 200


def test_absurd_expiry_is_refused_not_an_error(
    prod_client: FlaskClient, es_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    # PyJWT accepts any integer exp; 10**400 cannot even be a float.
    with caplog.at_level(logging.WARNING, logger="tdm1_cds.auth"):
        assert_bare_401(post_sign(prod_client, support.mint(es_key, aud(SIGN), exp=10**400)))
    assert [getattr(r, "reason", None) for r in caplog.records if r.name == "tdm1_cds.auth"] == ["lifetime"]


def test_an_error_inside_verification_fails_closed(prod_app, es_key: SigningKey) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("bug")

    prod_app.config["AUTH_VERIFIER"].jwks.key = broken
    assert_bare_401(post_sign(prod_app.test_client(), support.mint(es_key, aud(SIGN))))


def test_feedback_refused_503_can_be_retried_with_the_same_token(
    prod_app, es_key: SigningKey, monkeypatch
) -> None:
    """Its jti was remembered before the write failed: an HTTP retry of the same request, same JWT,
    was refused as a replay (401) and the feedback was lost. A 503 now releases the jti."""
    client = prod_app.test_client()
    store = prod_app.config["STORE"]
    real_save = store.save_feedback
    failures = iter([RuntimeError("database is locked")])

    def save_once_failing(*args: Any, **kwargs: Any) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_save(*args, **kwargs)

    monkeypatch.setattr(store, "save_feedback", save_once_failing)
    feedback = {
        "feedback": [
            {
                "card": "0b7c1b7e-4bd5-4e77-9c1a-000000000002",
                "outcome": "overridden",
                "outcomeTimestamp": fb.iso(fb.NOW),
            }
        ]
    }
    token = support.mint(es_key, aud(FEEDBACK))
    refused = client.post(FEEDBACK, json=feedback, headers=bearer(token))
    assert refused.status_code == 503 and refused.is_json
    assert refused.headers["Retry-After"] == "2"
    retried = client.post(FEEDBACK, json=feedback, headers=bearer(token))
    assert retried.status_code == 200
    assert retried.get_json() == {"received": 1, "stored": 1}
    # Stored now: the same token again is a replay, as before.
    assert_bare_401(client.post(FEEDBACK, json=feedback, headers=bearer(token)))
