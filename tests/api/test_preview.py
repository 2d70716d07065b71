"""/preview/: on in dev mode, off in production unless enabled; scenarios listed from a directory;
the dev-only X-TDM1-CDS-Now header. The page itself is tested in a real browser (tests/browser)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from service.api import errors, preview
from service.app import create_app
from service.settings import Settings, SettingsError, from_env
from tests import fhir_builders as fb

PINNED = datetime(2020, 1, 1, tzinfo=UTC)


def write(directory: Path, name: str, document: object) -> None:
    (directory / name).write_text(json.dumps(document) if not isinstance(document, str) else document)


@pytest.fixture
def fixtures(tmp_path: Path) -> Path:
    directory = tmp_path / "requests"
    directory.mkdir()
    write(directory, "b-first.json", fb.hook_request("order-sign", drafts=[fb.medication_request()]))
    write(
        directory,
        "b-first.meta.json",
        {
            "title": "First",
            "story": "Line one of the story.\nLine two.",
            "now": "2026-11-25T09:00:00Z",
            "expect_cards": ["first-line-use"],
        },
    )
    write(directory, "a-no-meta.json", fb.hook_request("patient-view"))
    write(directory, "c-half-written.json", '{"hook": "order-si')
    return directory


@pytest.fixture
def preview_app(tmp_path: Path, fixtures: Path) -> Flask:
    settings = from_env(
        {},
        dev=True,
        database_url=f"sqlite:///{tmp_path}/preview.sqlite3",
        extra={"preview_fixtures": str(fixtures)},
    )
    app = create_app(settings)
    yield app
    app.config["STORE"].close()


def test_dev_mode_serves_the_page_and_its_assets_under_a_strict_policy(preview_app: Flask) -> None:
    client = preview_app.test_client()
    page = client.get("/preview/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert b'src="static/preview.js"' in page.data
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    script = client.get("/preview/static/preview.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    html_parsing = re.compile(
        rb"innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser|createContextualFragment"
    )
    assert html_parsing.findall(script.data) == []  # card text reaches the page only as text nodes
    assert client.get("/preview/static/preview.css").mimetype == "text/css"
    assert client.get("/preview/static/../../api/preview.py").status_code == 404


def test_scenarios_are_listed_from_the_directory_as_it_is_now(preview_app: Flask, fixtures: Path) -> None:
    client = preview_app.test_client()
    listed = client.get("/preview/scenarios").get_json()["scenarios"]
    assert [s["name"] for s in listed] == ["a-no-meta", "b-first"]  # the half-written file is skipped
    first = listed[1]
    assert first["title"] == "First"
    assert first["storyLine"] == "Line one of the story."
    assert first["hook"] == "order-sign"
    assert first["now"] == "2026-11-25T09:00:00Z"
    assert first["expectCards"] == ["first-line-use"]
    assert listed[0]["title"] == "a-no-meta" and listed[0]["hook"] == "patient-view"
    assert client.get("/preview/scenarios").get_json()["nowHonoured"] is True

    write(fixtures, "d-added.json", fb.hook_request("order-select", drafts=[fb.medication_request()]))
    assert "d-added" in [s["name"] for s in client.get("/preview/scenarios").get_json()["scenarios"]]


def test_one_scenario_carries_its_request(preview_app: Flask, fixtures: Path) -> None:
    client = preview_app.test_client()
    answer = client.get("/preview/scenarios/b-first").get_json()
    assert answer["request"] == json.loads((fixtures / "b-first.json").read_text())
    missing = client.get("/preview/scenarios/nope")
    assert missing.status_code == 404
    assert missing.get_json()["resourceType"] == "OperationOutcome"
    assert client.get("/preview/scenarios/..%2F..%2Fpyproject").status_code == 404
    assert client.get("/preview/scenarios/b-first.meta").status_code == 404


def bare_app(settings: Settings, environ: dict[str, str]) -> Flask:
    """Only what preview.register needs, so production mode is tested without a trust file."""
    app = Flask("preview-test")
    app.config.update(SETTINGS=settings, CLOCK=lambda: PINNED)
    errors.register(app)
    preview.register(app, environ)
    return app


def test_production_answers_404_unless_explicitly_enabled() -> None:
    production = from_env({}, dev=False)
    off = bare_app(production, {}).test_client()
    assert off.get("/preview/").status_code == 404
    assert off.get("/preview/scenarios").status_code == 404
    assert off.get("/preview/static/preview.js").status_code == 404
    on = bare_app(production, {"TDM1_CDS_PREVIEW": "1"}).test_client()
    assert on.get("/preview/").status_code == 200
    assert on.get("/preview/scenarios").get_json()["nowHonoured"] is False  # the page says so
    dev_off = bare_app(from_env({}, dev=True), {"TDM1_CDS_PREVIEW": "0"}).test_client()
    assert dev_off.get("/preview/").status_code == 404


def test_enabled_follows_the_setting_then_the_mode() -> None:
    assert preview.enabled(from_env({}, dev=True), {}) is True
    assert preview.enabled(from_env({}, dev=False), {}) is False
    assert preview.enabled(from_env({}, dev=False), {"TDM1_CDS_PREVIEW": "yes"}) is True
    assert preview.enabled(from_env({}, dev=False, extra={"preview": True}), {}) is True
    with pytest.raises(SettingsError, match="TDM1_CDS_PREVIEW"):
        preview.enabled(from_env({}, dev=False), {"TDM1_CDS_PREVIEW": "maybe"})


def test_the_now_header_is_ignored_in_production() -> None:
    app = bare_app(from_env({}, dev=False), {"TDM1_CDS_PREVIEW": "1"})
    with app.test_request_context("/", headers={preview.NOW_HEADER: "2030-01-01T00:00:00Z"}):
        assert app.config["CLOCK"]() == PINNED


def test_the_now_header_sets_the_evaluation_instant_in_dev_mode(client) -> None:
    history = fb.metastatic_history()  # labs drawn one day before fb.NOW
    request = fb.hook_request("order-sign", drafts=[fb.medication_request()], history=history)

    def rules(now: datetime) -> set[str]:
        answer = client.post(
            "/cds-services/tdm1-order-sign", json=request, headers={preview.NOW_HEADER: fb.iso(now)}
        )
        assert answer.status_code == 200, answer.get_json()
        return {card["source"]["topic"]["code"] for card in answer.get_json()["cards"]}

    assert "platelets-missing" not in rules(fb.NOW)
    assert {"platelets-missing", "liver-tests-missing"} <= rules(fb.NOW + timedelta(days=10))

    bad = client.post("/cds-services/tdm1-order-sign", json=request, headers={preview.NOW_HEADER: "soon"})
    assert bad.status_code == 400
    assert "X-TDM1-CDS-Now" in bad.get_json()["issue"][0]["diagnostics"]
