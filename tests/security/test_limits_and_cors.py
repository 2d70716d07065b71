"""Configurable limits (body size, nesting depth, resources per request, fetch deadline) and CORS."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from flask import Flask

from service.app import create_app
from service.settings import SettingsError, from_env
from tests import fhir_builders as fb
from tests.security import support
from tests.security.conftest import aud
from tests.security.support import LoopbackServer, SigningKey, bearer

SIGN = "/cds-services/tdm1-order-sign"


def dev_app(tmp_path, **overrides: Any) -> Flask:
    return create_app(
        from_env({}, dev=True, database_url=f"sqlite:///{tmp_path}/limits.sqlite3", **overrides)
    )


def outcome(response: Any, status: int, text: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome" and text in json.dumps(body)


def sign_request(**kwargs: Any) -> dict[str, Any]:
    return fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")], **kwargs)


def test_body_size_limit_is_configurable(tmp_path) -> None:
    client = dev_app(tmp_path, max_body_bytes=2_000).test_client()
    outcome(
        client.post(SIGN, json=sign_request(history=fb.metastatic_history())), 413, "larger than 2000 bytes"
    )
    small = fb.hook_request("order-sign", drafts=[], prefetch={})
    assert client.post(SIGN, json=small).status_code == 200


def test_body_without_content_length_is_bounded_too(tmp_path) -> None:
    from werkzeug.test import EnvironBuilder

    app = dev_app(tmp_path, max_body_bytes=2_000)
    body = json.dumps(sign_request(history=fb.metastatic_history())).encode()
    environ = EnvironBuilder(
        path=SIGN, method="POST", data=body, content_type="application/json"
    ).get_environ()
    del environ["CONTENT_LENGTH"]  # as a chunked upload arrives: the size is only known by reading
    environ["wsgi.input_terminated"] = True
    statuses: list[str] = []
    # Straight to the WSGI callable: the test client would put the Content-Length back.
    answer = b"".join(app(environ, lambda status, _headers: statuses.append(status)))
    assert statuses[0].startswith("413")
    assert json.loads(answer)["resourceType"] == "OperationOutcome"


def _posted_without_length(app: Flask, body: bytes) -> str:
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(
        path=SIGN, method="POST", data=body, content_type="application/json"
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    statuses: list[str] = []
    b"".join(app(environ, lambda status, _headers: statuses.append(status)))
    return statuses[0]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_exactly_the_limit_is_read_with_or_without_a_length(tmp_path, chunked: bool) -> None:
    """The limit is the largest body accepted: sent chunked, a body of exactly 2,000 bytes was a 413
    while the same body with a Content-Length was read. One byte more is a 413 either way."""
    app = dev_app(tmp_path, max_body_bytes=2_000)
    small = json.dumps(fb.hook_request("order-sign", drafts=[], prefetch={})).encode()
    exact = small + b" " * (2_000 - len(small))  # whitespace after the object is still JSON
    for body, status in ((exact, "200"), (exact + b" ", "413")):
        if chunked:
            assert _posted_without_length(app, body).startswith(status)
        else:
            assert (
                str(app.test_client().post(SIGN, data=body, content_type="application/json").status_code)
                == status
            )


class _BrokenBody:
    """wsgi.input as gunicorn gives it for a body it cannot read as sent: reading raises its parse error."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def read(self, *_args: Any) -> bytes:
        raise self.error


@pytest.mark.parametrize("error", ["InvalidChunkSize", "ChunkMissingTerminator", "NoMoreData"])
@pytest.mark.parametrize("path", [SIGN, f"{SIGN}/feedback"])
def test_a_body_the_server_cannot_read_is_400_not_500(tmp_path, error: str, path: str) -> None:
    from gunicorn.http import errors
    from werkzeug.test import EnvironBuilder

    app = dev_app(tmp_path)
    environ = EnvironBuilder(path=path, method="POST", content_type="application/json").get_environ()
    environ.pop("CONTENT_LENGTH", None)  # chunked: no length, read until the server says the end
    environ["wsgi.input_terminated"] = True
    environ["wsgi.input"] = _BrokenBody(getattr(errors, error)(b"pat-9"))
    statuses: list[str] = []
    answer = b"".join(app(environ, lambda status, _headers: statuses.append(status)))
    assert statuses[0].startswith("400"), statuses
    assert json.loads(answer)["resourceType"] == "OperationOutcome" and b"pat-9" not in answer


@pytest.mark.integration
def test_a_malformed_chunked_body_through_gunicorn_is_400(tmp_path) -> None:
    import socket

    from tests.integration.conftest import start_server, stop_server

    process, base = start_server(tmp_path, workers=1)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"POST {SIGN}/feedback HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\nnot-a-chunk-size\r\n".encode()
            )
            answer = b""
            while b"}" not in answer and (chunk := sock.recv(4096)):  # the headers, then the body
                answer += chunk
    finally:
        stop_server(process)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"OperationOutcome" in answer
    assert "unhandled error" not in (tmp_path / "server.log").read_text(errors="replace")


def test_nesting_depth_limit_is_configurable(tmp_path) -> None:
    request = sign_request(history=fb.metastatic_history())  # Bundle → entry → resource → ... ≈ 10 levels
    assert dev_app(tmp_path, max_json_depth=64).test_client().post(SIGN, json=request).status_code == 200
    outcome(
        dev_app(tmp_path, max_json_depth=6).test_client().post(SIGN, json=request),
        400,
        "nested deeper than 6",
    )


@pytest.mark.parametrize("depth", [0, 1025])
def test_nesting_depth_limit_outside_what_the_parser_reads_is_refused(depth: int) -> None:
    with pytest.raises(SettingsError, match="MAX_JSON_DEPTH"):
        from_env({"TDM1_CDS_MAX_JSON_DEPTH": str(depth)}, dev=True)


def test_resource_count_limit_is_configurable(tmp_path) -> None:
    history = fb.metastatic_history() + [fb.observation("weight", 70.0, fb.ago(days=d)) for d in range(30)]
    request = sign_request(history=history)
    client = dev_app(tmp_path, max_resources=20).test_client()
    outcome(client.post(SIGN, json=request), 400, "More than 20 resources")
    assert dev_app(tmp_path, max_resources=1000).test_client().post(SIGN, json=request).status_code == 200


def test_fetch_deadline_bounds_a_hanging_fhir_server(
    make_app, es_key: SigningKey, fhir_stub: LoopbackServer
) -> None:
    release = threading.Event()

    def hang(_path: str, _headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        release.wait(10)
        return 200, {}, b"{}"

    fhir_stub.routes["*"] = hang
    client = make_app(fetch_deadline_seconds=0.3).test_client()
    request = sign_request(prefetch={})
    request["fhirServer"] = f"{fhir_stub.base}/fhir"
    try:
        response = client.post(SIGN, json=request, headers=bearer(support.mint(es_key, aud(SIGN))))
    finally:
        release.set()
    # The call was answered although the server never did: what could not be fetched is said in a card.
    assert response.status_code == 200, response.get_json()
    codes = [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]
    assert "data-unavailable" in codes


def test_limits_are_validated(tmp_path) -> None:
    from service.settings import SettingsError

    for overrides in ({"max_body_bytes": 0}, {"fetch_deadline_seconds": 0}):
        with pytest.raises(SettingsError):
            from_env({}, dev=True, **overrides)


# --- CORS --------------------------------------------------------------------------------------

ORIGIN = "https://ehr-browser.example.org"


def preflight(client: Any, origin: str = ORIGIN) -> Any:
    return client.options(
        SIGN,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_production_allows_no_origin_by_default(prod_client) -> None:
    response = preflight(prod_client)
    assert response.status_code == 204
    assert "Access-Control-Allow-Origin" not in response.headers


def test_configured_origins_only(make_app, es_key: SigningKey) -> None:
    client = make_app(cors_origins=(ORIGIN,)).test_client()
    allowed = preflight(client)
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in allowed.headers.get("Vary", "")
    assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Origin" not in preflight(client, "https://evil.example.org").headers
    # A refused call still tells the allowed browser client why it failed (401, with CORS headers).
    refused = client.post(SIGN, json=sign_request(), headers={"Origin": ORIGIN})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_cors_origins_from_the_environment(tmp_path) -> None:
    settings = from_env({"TDM1_CDS_CORS_ORIGINS": f"{ORIGIN}, https://b.example.org", "TDM1_CDS_DEV": "1"})
    assert settings.allowed_origins == (ORIGIN, "https://b.example.org")


def test_dev_mode_allows_any_origin_without_credentials(client) -> None:
    response = preflight(client)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_credentials_are_never_allowed(make_app) -> None:
    client = make_app(cors_origins=(ORIGIN,)).test_client()
    assert "Access-Control-Allow-Credentials" not in preflight(client).headers


def test_star_cannot_be_mixed_with_named_origins() -> None:
    from service.settings import SettingsError

    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        from_env({}, dev=True, cors_origins=("*", ORIGIN))


@pytest.mark.parametrize("size", ["-1", "1001", "many"])
def test_fetch_page_size_outside_0_to_1000_is_refused(size: str) -> None:
    with pytest.raises(SettingsError, match="FETCH_PAGE_SIZE"):
        from_env({"TDM1_CDS_FETCH_PAGE_SIZE": size}, dev=True)


def test_fetch_page_size_zero_and_the_default() -> None:
    assert from_env({}, dev=True).fetch_page_size == 200
    assert from_env({"TDM1_CDS_FETCH_PAGE_SIZE": "0"}, dev=True).fetch_page_size == 0


def test_check_bundle_total_is_on_by_default_and_reads_a_boolean() -> None:
    assert from_env({}, dev=True).check_bundle_total is True
    assert from_env({"TDM1_CDS_CHECK_BUNDLE_TOTAL": "false"}, dev=True).check_bundle_total is False
    with pytest.raises(SettingsError, match="CHECK_BUNDLE_TOTAL"):
        from_env({"TDM1_CDS_CHECK_BUNDLE_TOTAL": "sometimes"}, dev=True)


@pytest.mark.parametrize("origin", [None, ORIGIN, "https://evil.example.org"])
def test_named_origins_vary_on_origin_in_every_answer(make_app, origin: str | None) -> None:
    # Vary: Origin was set only with an allowed Origin: a cache could serve the answer it stored for a
    # request without Origin (no Access-Control-Allow-Origin) to the allowed browser client.
    client = make_app(cors_origins=(ORIGIN,)).test_client()
    headers = {"Origin": origin} if origin else {}
    for response in (client.get("/healthz", headers=headers), preflight(client, origin or ORIGIN)):
        assert [v.strip() for v in response.headers.get("Vary", "").split(",")].count("Origin") == 1


def test_any_origin_needs_no_vary(client) -> None:
    assert "Origin" not in client.get("/healthz", headers={"Origin": ORIGIN}).headers.get("Vary", "")


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("FETCH_WORKERS", "0", "FETCH_WORKERS must be at least 1"),  # was a 500 on every fetch
        ("WORKERS", "0", "WORKERS must be at least 1"),  # gunicorn bound the port and never answered
        ("PORT", "70000", "PORT must be between 0"),  # was gunicorn's OverflowError traceback
        ("PORT", "-1", "PORT must be between 0"),
        ("FETCH_DEADLINE_SECONDS", "inf", "must be a finite number"),  # was a 500 on every fetch
        ("FETCH_DEADLINE_SECONDS", "nan", "must be a finite number"),  # every fetch failed in silence
        ("FETCH_CACHE_TTL_SECONDS", "nan", "must be a finite number"),
        ("JWKS_TIMEOUT_SECONDS", "nan", "must be a finite number"),
    ],
)
def test_settings_the_service_cannot_run_with_stop_it_at_start(variable: str, raw: str, message: str) -> None:
    from service.settings import SettingsError

    with pytest.raises(SettingsError, match=message):
        from_env({f"TDM1_CDS_{variable}": raw, "TDM1_CDS_DEV": "1"})


def test_port_0_the_systems_pick_of_a_free_port_is_accepted() -> None:
    assert from_env({"TDM1_CDS_PORT": "0", "TDM1_CDS_DEV": "1"}).port == 0


@pytest.mark.parametrize("error", [TypeError("a bug"), MemoryError()])
def test_a_server_fault_reading_the_body_is_not_blamed_on_the_client(tmp_path, error: Exception) -> None:
    """Only what a client's body can cause (gunicorn's parse errors, an I/O error on the socket) is
    a 400: a fault of the server's own (a bug, memory exhausted) stays a 500, logged as unhandled,
    not a 400 telling the EHR its request was malformed."""
    from werkzeug.test import EnvironBuilder

    app = dev_app(tmp_path)
    environ = EnvironBuilder(path=SIGN, method="POST", content_type="application/json").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True
    environ["wsgi.input"] = _BrokenBody(error)
    statuses: list[str] = []
    b"".join(app(environ, lambda status, _headers: statuses.append(status)))
    assert statuses[0].startswith("500"), statuses
