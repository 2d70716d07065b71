"""A production-mode app (no --dev) trusting one issuer whose JWKS is served on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.settings import from_env
from tests import fhir_builders as fb
from tests.security import support
from tests.security.support import ISS, PUBLIC_URL, TENANT, LoopbackServer, SigningKey


@pytest.fixture(scope="session")
def es_key() -> SigningKey:
    return support.es384_key()


@pytest.fixture(scope="session")
def rs_key() -> SigningKey:
    return support.rs384_key()


@pytest.fixture
def jwks_server(es_key: SigningKey, rs_key: SigningKey) -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    server.published = [es_key, rs_key]  # type: ignore[attr-defined]
    server.json_route("/jwks.json", lambda: support.jwks_document(*server.published))  # type: ignore[attr-defined]
    yield server
    server.close()


def fhir_answer(path: str, _headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A FHIR server with one patient and nothing else: enough for a hook call to fetch its data."""
    import json

    resource_path = path.split("?", 1)[0]
    if "/Patient/" in resource_path:
        document: dict[str, Any] = fb.patient(resource_path.rsplit("/", 1)[1])
    else:
        document = fb.searchset([])
    return 200, {"Content-Type": "application/fhir+json"}, json.dumps(document).encode()


@pytest.fixture
def fhir_stub() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    server.routes["*"] = fhir_answer
    yield server
    server.close()


@pytest.fixture
def elsewhere() -> Iterator[LoopbackServer]:
    """A server nobody listed: it must never see a request (SSRF canary)."""
    server = LoopbackServer()
    server.routes["*"] = fhir_answer
    yield server
    server.close()


@pytest.fixture
def issuer_entry(jwks_server: LoopbackServer, fhir_stub: LoopbackServer) -> dict[str, Any]:
    return {
        "iss": ISS,
        "jwks_url": f"{jwks_server.base}/jwks.json",
        "tenants": [TENANT, "tenant-b"],
        "fhir_servers": [f"{fhir_stub.base}/fhir"],
    }


@pytest.fixture
def make_app(tmp_path: Path, issuer_entry: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def build(issuers: list[dict[str, Any]] | None = None, **overrides: Any) -> Flask:
        path = support.write_issuers(tmp_path / f"issuers-{len(apps)}.json", issuers or [issuer_entry])
        values: dict[str, Any] = {
            "issuers_file": str(path),
            "database_url": f"sqlite:///{tmp_path}/prod-{len(apps)}.sqlite3",
            "public_url": PUBLIC_URL,
            "jwks_refresh_floor_seconds": 0.0,
        }
        values.update(overrides)
        app = create_app(from_env({}, **values))
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.config["STORE"].close()


@pytest.fixture
def prod_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def prod_client(prod_app: Flask) -> FlaskClient:
    return prod_app.test_client()


def aud(path: str) -> str:
    return PUBLIC_URL + path
