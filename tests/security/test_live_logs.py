"""The real server in production mode, through a full run: its logs hold no token and no patient."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import fhir_builders as fb
from tests.integration.conftest import start_server, stop_server
from tests.security import support
from tests.security.support import ISS, TENANT, LoopbackServer

pytestmark = pytest.mark.integration

PATIENT_ID = "pat-qz81vx"
FAMILY, GIVEN = "Quillfeather", "Marisol"
ACCESS_TOKEN = "at-7f3c9e1d2b4a6f8e0c1d3b5a7e9f2c4d"


def ehr_answer(path: str, _headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """The EHR's FHIR server: a named patient on T-DM1 with a recent history."""
    resource_path = path.split("?", 1)[0]
    if resource_path.endswith(f"/Patient/{PATIENT_ID}"):
        patient = fb.patient(PATIENT_ID)
        patient["name"] = [{"family": FAMILY, "given": [GIVEN]}]
        document: dict[str, Any] = patient
    else:
        kind = resource_path.rsplit("/", 1)[-1]
        history = [
            r for r in fb.metastatic_history(labs=False) if r["resourceType"] == kind and "subject" in r
        ]
        for resource in history:
            resource["subject"] = {"reference": f"Patient/{PATIENT_ID}", "display": f"{GIVEN} {FAMILY}"}
        document = fb.searchset(history)
    return 200, {"Content-Type": "application/fhir+json"}, json.dumps(document).encode()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[LoopbackServer, LoopbackServer, support.SigningKey]]:
    key = support.es384_key()
    jwks, ehr = LoopbackServer(), LoopbackServer()
    jwks.json_route("/jwks.json", support.jwks_document(key))
    ehr.routes["*"] = ehr_answer
    yield jwks, ehr, key
    jwks.close()
    ehr.close()


def test_full_run_logs_no_token_and_no_patient(tmp_path: Path, servers) -> None:
    jwks, ehr, key = servers
    issuers = support.write_issuers(
        tmp_path / "issuers.json",
        [
            {
                "iss": ISS,
                "jwks_url": f"{jwks.base}/jwks.json",
                "tenants": [TENANT],
                "fhir_servers": [f"{ehr.base}/fhir"],
            }
        ],
    )
    process, base = start_server(tmp_path, {"TDM1_CDS_ISSUERS": str(issuers)}, workers=1, dev=False)
    tokens: list[str] = []

    def signed(path: str) -> dict[str, str]:
        tokens.append(support.mint(key, base + path))
        return support.bearer(tokens[-1])

    try:
        assert requests.get(f"{base}/cds-services", timeout=10).status_code == 401
        assert (
            requests.get(f"{base}/cds-services", headers=signed("/cds-services"), timeout=10).status_code
            == 200
        )

        sign = "/cds-services/tdm1-order-sign"
        request = fb.hook_request(
            "order-sign",
            drafts=[fb.medication_request("tdm1", patient_id=PATIENT_ID)],
            patient_id=PATIENT_ID,
            prefetch={},
        )
        request["fhirServer"] = f"{ehr.base}/fhir"
        request["fhirAuthorization"] = {
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "tdm1-cds",
            "patient": PATIENT_ID,
        }
        response = requests.post(f"{base}{sign}", json=request, headers=signed(sign), timeout=30)
        assert response.status_code == 200, response.text
        cards = response.json()["cards"]
        assert cards, "the run should issue cards, so that the card log path is exercised too"
        assert any(f"Bearer {ACCESS_TOKEN}" == r.headers.get("Authorization") for r in ehr.requests)

        # A replay of the same JWT is refused, and that refusal is logged too.
        replay = requests.post(f"{base}{sign}", json=request, headers=support.bearer(tokens[-1]), timeout=30)
        assert replay.status_code == 401

        feedback_path = f"{sign}/feedback"
        feedback = {
            "feedback": [
                {
                    "card": cards[0]["uuid"],
                    "outcome": "overridden",
                    "overrideReason": {"userComment": f"{GIVEN} {FAMILY} declined"},
                    "outcomeTimestamp": fb.iso(fb.NOW),
                }
            ]
        }
        answer = requests.post(
            f"{base}{feedback_path}", json=feedback, headers=signed(feedback_path), timeout=10
        )
        assert answer.status_code == 200, answer.text
    finally:
        stop_server(process)

    log = (tmp_path / "server.log").read_text(errors="replace")
    # Positive control: the log did record the run, with who called and a hashed patient.
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    calls = [e for e in events if e.get("event") == "hook call"]
    assert calls and calls[0]["iss"] == ISS and calls[0]["tenant"] == TENANT and calls[0]["jti"]
    assert any(e.get("reason") == "replay" for e in events)

    forbidden = [ACCESS_TOKEN, PATIENT_ID, FAMILY, GIVEN, *tokens, *(t.split(".")[2] for t in tokens)]
    leaked = [secret for secret in forbidden if secret in log]
    assert leaked == []


def _send_raw(base: str, request: bytes) -> bytes:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(200)


def test_requests_gunicorn_cannot_parse_are_logged_without_what_they_carried(tmp_path: Path) -> None:
    # gunicorn's warning for an unparseable request quoted the bad part: the request line with its
    # query string, a header line with its value (here a JWT sent without its colon).
    jwt_like = "eyJhbGciOiJFUzM4NCJ9.eyJqdGkiOiJzZWNyZXQtand0In0.c2lnbmF0dXJlLXNlY3JldA"
    process, base = start_server(tmp_path, workers=1)
    try:
        for raw in (
            f"GET /cds-services?patient={PATIENT_ID}\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
            f"GET /cds-services HTTP/1.1\r\nHost: a\r\nAuthorization Bearer {jwt_like}\r\n\r\n",
        ):
            assert _send_raw(base, raw.encode()).startswith(b"HTTP/1.1 400")
    finally:
        stop_server(process)
    log = (tmp_path / "server.log").read_text(errors="replace")
    # Positive control: each refusal is still logged, with what kind of problem it was.
    assert log.count("Invalid request from ip=127.0.0.1") == 2, log
    assert "Invalid HTTP request line" in log and "Invalid HTTP Header" in log
    assert [secret for secret in (PATIENT_ID, jwt_like, jwt_like[-20:]) if secret in log] == []
