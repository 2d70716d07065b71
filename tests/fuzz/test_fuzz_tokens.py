"""Hostile Authorization headers: random strings, mutated headers and payloads, and validly signed
tokens whose claims are nonsense. Every answer is 200 or a bare 401; verification never errors."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import jwt
import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from tests import fhir_builders as fb
from tests.fuzz import strategies as fs
from tests.fuzz.conftest import count, fuzz_settings
from tests.security import support
from tests.security.support import PUBLIC_URL, SigningKey

PATH = "/cds-services/tdm1-order-sign"
REQUEST = fb.hook_request("order-sign", drafts=[fb.medication_request("docetaxel")])


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def call(app: Flask, authorization: str) -> Any:
    return app.test_client().post(PATH, json=REQUEST, headers={"Authorization": authorization})


def assert_refused_or_accepted(response: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert response.status_code in (200, 401), response.get_data(as_text=True)[:500]
    if response.status_code == 401:
        assert response.get_json() == {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "login"}],
        }
    # The fail-closed catch-all in service/auth.py must never be what refused the token.
    assert not [r for r in caplog.records if r.getMessage() == "authentication error"]


def test_random_and_mutated_tokens_are_refused(
    prod_app: Flask, es_key: SigningKey, caplog: pytest.LogCaptureFixture, no_outbound_network
) -> None:
    good_header = {"alg": "ES384", "typ": "JWT", "kid": es_key.kid}

    def forged(header: Any, payload: Any, signature: bytes) -> str:
        return f"{b64(header)}.{b64(payload)}.{b64(signature)}"

    tokens = st.one_of(
        # Any printable text: a header cannot carry line breaks (the HTTP layer refuses them first).
        st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=300),
        st.lists(st.text(alphabet="abcXYZ-_=.0189", max_size=40), min_size=1, max_size=5).map(".".join),
        st.builds(
            forged,
            fs.mutated(st.just(good_header)),
            fs.mutated(st.just(support.claims(PUBLIC_URL + PATH))),
            st.binary(max_size=120),
        ),
    )

    @fuzz_settings(100)
    @given(token=tokens, scheme=st.sampled_from(["Bearer", "bearer", "Basic", "", "Bearer  "]))
    def run(token: str, scheme: str) -> None:
        count("forged or random tokens")
        with caplog.at_level(logging.INFO, logger="tdm1_cds.auth"):
            response = call(prod_app, f"{scheme} {token}".strip())
        assert_refused_or_accepted(response, caplog)
        assert response.status_code == 401

    run()


def test_signed_tokens_with_nonsense_claims(
    prod_app: Flask, es_key: SigningKey, caplog: pytest.LogCaptureFixture, no_outbound_network
) -> None:
    """Signed by the trusted key, so only the claim checks stand between them and the service."""

    @fuzz_settings(80)
    @given(claims=fs.mutated(st.builds(lambda: support.claims(PUBLIC_URL + PATH))))
    def run(claims: Any) -> None:
        count("signed tokens with mutated claims")
        try:
            token = jwt.encode(
                claims, es_key.private, algorithm="ES384", headers={"kid": es_key.kid, "typ": "JWT"}
            )
        except (TypeError, ValueError):
            return  # PyJWT will not sign it (not a JSON object, or not JSON at all): nothing to send
        with caplog.at_level(logging.INFO, logger="tdm1_cds.auth"):
            assert_refused_or_accepted(call(prod_app, f"Bearer {token}"), caplog)

    run()
