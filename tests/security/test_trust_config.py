"""The trust file: without a valid one the service refuses to start, and says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.app import create_app
from service.issuers import Issuer, normalise_base, parse_issuers
from service.settings import SettingsError, from_env
from tests.security import support

REPO = Path(__file__).resolve().parents[2]
GOOD = {"iss": "https://ehr.example.org", "jwks_url": "https://ehr.example.org/jwks.json"}


def production(tmp_path: Path, **overrides: Any):
    return from_env({}, database_url=f"sqlite:///{tmp_path}/t.sqlite3", **overrides)


def refused(document: Any, *, dev: bool = False) -> str:
    with pytest.raises(SettingsError) as caught:
        parse_issuers(document, dev=dev)
    return str(caught.value)


def test_missing_setting_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="TDM1_CDS_ISSUERS"):
        create_app(production(tmp_path))


def test_missing_file_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        create_app(production(tmp_path, issuers_file=str(tmp_path / "absent.json")))


def test_invalid_json_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid JSON"):
        create_app(production(tmp_path, issuers_file=str(path)))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "expected a JSON object"),
        ({"issuers": []}, "empty"),
        ({"issuers": ["x"]}, "must be an object"),
        ({"issuers": [{"jwks_url": GOOD["jwks_url"]}]}, "iss must be a non-empty string"),
        ({"issuers": [{"iss": "a"}]}, "jwks_url must be a non-empty URL"),
        ({"issuers": [{**GOOD, "tenant": ["t"]}]}, "unknown field"),
        ({"issuers": [GOOD, GOOD]}, "listed twice"),
        ({"issuers": [{**GOOD, "tenants": "t"}]}, "tenants must be a list"),
        ({"issuers": [{**GOOD, "fhir_servers": ["ftp://ehr.example.org/fhir"]}]}, "not a plain http"),
        ({"issuers": [{**GOOD, "fhir_servers": ["http://ehr.example.org/fhir"]}]}, "must use https"),
        ({"issuers": [{**GOOD, "jwks_url": "https://user:pw@ehr.example.org/jwks"}]}, "no credentials"),
    ],
)
def test_invalid_file_is_refused_with_a_reason(document: Any, reason: str) -> None:
    assert reason in refused(document)


def test_non_https_jwks_url_on_a_public_host_is_refused() -> None:
    message = refused({"issuers": [{**GOOD, "jwks_url": "http://ehr.example.org/jwks.json"}]})
    assert "must use https" in message and "ehr.example.org" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_http_is_accepted_on_loopback(host: str) -> None:
    issuers = parse_issuers({"issuers": [{**GOOD, "jwks_url": f"http://{host}:9999/jwks.json"}]}, dev=False)
    assert issuers[GOOD["iss"]].jwks_url.startswith("http://")


def test_the_public_sandbox_is_trusted_in_dev_mode_only() -> None:
    sandbox = {
        "iss": "https://sandbox.cds-hooks.org",
        "jwks_url": "https://sandbox.cds-hooks.org/.well-known/jwks.json",
    }
    assert "publishes its private signing key" in refused({"issuers": [sandbox]})
    assert parse_issuers({"issuers": [sandbox]}, dev=True)


def test_invalid_file_is_reported_even_in_dev_mode(tmp_path: Path) -> None:
    path = support.write_issuers(
        tmp_path / "issuers.json", [{"iss": "a", "jwks_url": "http://ehr.example.org/"}]
    )
    with pytest.raises(SettingsError, match="https"):
        create_app(production(tmp_path, dev=True, issuers_file=str(path)))


def test_bad_jwt_settings_are_refused(tmp_path: Path) -> None:
    for overrides in (
        {"jwt_algorithms": ("HS256",)},
        {"jwt_algorithms": ("none",)},
        {"jwt_leeway_seconds": -1},
    ):
        with pytest.raises(SettingsError):
            production(tmp_path, **overrides)


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TDM1_CDS_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "1", "--workers", "1"],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_serve_without_trust_file_exits_nonzero_with_the_reason(tmp_path: Path) -> None:
    result = _serve({"TDM1_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3"})
    assert result.returncode != 0
    assert "TDM1_CDS_ISSUERS" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_serve_with_invalid_trust_file_exits_nonzero_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [{"iss": "x", "jwks_url": "http://ehr.example.org/k"}]}))
    result = _serve(
        {"TDM1_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3", "TDM1_CDS_ISSUERS": str(path)}
    )
    assert result.returncode != 0
    assert "must use https" in result.stderr
    assert "Traceback" not in result.stderr


# --- the fhirServer allow-list: prefix match on a normalised base URL, never a substring -----------

ISSUER = Issuer(
    iss="i", jwks_url="https://ehr.example.org/jwks", fhir_servers=("https://EHR.example.org:443/fhir/R4/",)
)


@pytest.mark.parametrize(
    "server",
    [
        "https://ehr.example.org/fhir/R4",
        "https://ehr.example.org/fhir/R4/",
        "HTTPS://ehr.EXAMPLE.org/fhir/R4",
        "https://ehr.example.org:443/fhir/R4",
        "https://ehr.example.org/fhir/R4/tenant-7",
    ],
)
def test_listed_fhir_servers_are_allowed(server: str) -> None:
    assert ISSUER.allows_fhir_server(server)


@pytest.mark.parametrize(
    "server",
    [
        "https://ehr.example.org/fhir/R4-evil",  # a prefix of the string, not of the path
        "https://ehr.example.org/fhir",  # above the listed base
        "https://ehr.example.org/fhir/R4/../../admin",
        "https://ehr.example.org/fhir/R4/%2e%2e/admin",
        "https://ehr.example.org/fhir/R4/a%2fb",
        "http://ehr.example.org/fhir/R4",  # scheme
        "https://ehr.example.org:8443/fhir/R4",  # port
        "https://ehr.example.org.evil.test/fhir/R4",  # host suffix
        "https://evil.test/https://ehr.example.org/fhir/R4",  # substring
        "https://ehr.example.org@evil.test/fhir/R4",  # userinfo
        "https://evil.test#@ehr.example.org/fhir/R4",
        "https://ehr.example.org/fhir/R4?x=https://evil.test",
        "https://ehr.example.org\\@evil.test/fhir/R4",
        "https://ehr.example.org:99999/fhir/R4",
        "//ehr.example.org/fhir/R4",
        "",
    ],
)
def test_other_fhir_servers_are_refused(server: str) -> None:
    assert not ISSUER.allows_fhir_server(server)


def test_normalise_base_keeps_what_decides_the_destination() -> None:
    base = normalise_base("HTTPS://Ehr.Example.org/fhir/")
    assert base is not None and (base.scheme, base.host, base.port, base.segments) == (
        "https",
        "ehr.example.org",
        443,
        ("fhir",),
    )
