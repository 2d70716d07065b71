"""A real browser (Debian's Chromium, driven by Playwright) against the real server (gunicorn, dev mode).

Chromium comes from apt (.ci/run installs it); Playwright's own browser download does not work here
and is never used. Without Chromium the tests fail in CI (CI=true) and skip locally, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import fhir_builders as fb
from tests.integration.conftest import REPO, start_server, stop_server

CHROMIUM = os.environ.get("TDM1_CDS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home, which on a closed network
# is a flood of refused connections; Playwright's launch() already gives each run a fresh profile.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 400, "height": 800}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(f"browser tests skipped: {reason} (install with: apt-get install -y chromium)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def write_scenario(directory: Path, name: str, request: dict[str, Any], meta: dict[str, Any]) -> None:
    (directory / f"{name}.json").write_text(json.dumps(request, indent=2), encoding="utf-8")
    (directory / f"{name}.meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def preview_scenarios(directory: Path) -> None:
    """Scenarios of our own, so these tests do not move when the shared fixtures do."""
    now = fb.iso(fb.NOW)
    write_scenario(
        directory,
        "first-line",
        fb.hook_request(
            "order-sign",
            drafts=[fb.medication_request(rid="draft-tdm1")],
            history=fb.metastatic_history(prior_her2=False),
        ),
        {
            "title": "T-DM1 ordered first line",
            "story": "Liver metastases, no HER2-directed therapy yet; T-DM1 is ordered.\nSecond line of story.",
            "now": now,
            "expect_cards": ["first-line-use"],
        },
    )
    no_platelets = fb.metastatic_history(labs=False) + [
        fb.observation(kind, value, fb.ago(days=1))
        for kind, value in (("alt", 22.0), ("ast", 25.0), ("bilirubin", 0.6))
    ]
    write_scenario(
        directory,
        "platelets-missing",
        fb.hook_request("order-sign", drafts=[fb.medication_request(rid="draft-tdm1")], history=no_platelets),
        {
            "title": "No platelet count before the dose",
            "story": "Second-line T-DM1; liver tests drawn yesterday, platelets not drawn.",
            "now": now,
            "expect_cards": ["platelets-missing", "tdxd-preferred"],
        },
    )
    on_treatment = fb.metastatic_history() + [fb.administration("tdm1", fb.ago(days=d)) for d in (2, 23, 44)]
    write_scenario(
        directory,
        "summary",
        fb.hook_request("patient-view", history=on_treatment),
        {
            "title": "Chart of a patient on T-DM1",
            "story": "Three cycles given, the last two days ago.",
            "now": now,
            "expect_cards": ["treatment-summary"],
        },
    )


@dataclass(frozen=True)
class PreviewServer:
    base: str
    database: Path
    fixtures: Path

    def report(self) -> dict[str, dict[str, Any]]:
        """`tdm1-cds report` over the live server's card log, by rule id."""
        env = {**os.environ, "TDM1_CDS_DATABASE_URL": f"sqlite:///{self.database}"}
        command = [sys.executable, "-m", "service.cli", "report", "--format", "json"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=REPO)
        return {row["rule_id"]: row for row in json.loads(done.stdout)["rules"]}

    def feedback_rows(self, card_uuid: str) -> list[dict[str, Any]]:
        with sqlite3.connect(self.database) as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute("SELECT * FROM feedback WHERE card_uuid = ?", (card_uuid,)).fetchall()
        return [dict(row) for row in rows]


@pytest.fixture(scope="session")
def preview_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreviewServer]:
    tmp = tmp_path_factory.mktemp("preview")
    fixtures = tmp / "requests"
    fixtures.mkdir()
    preview_scenarios(fixtures)
    process, base = start_server(tmp, extra_env={"TDM1_CDS_PREVIEW_FIXTURES": str(fixtures)}, workers=1)
    yield PreviewServer(base, tmp / "live.sqlite3", fixtures)
    stop_server(process)


@pytest.fixture(scope="session")
def shared_fixtures_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server as `make run` starts it: the scenarios are the repository's fhir_fixtures/requests/."""
    tmp = tmp_path_factory.mktemp("preview-shared")
    process, base = start_server(tmp, workers=1)
    yield base
    stop_server(process)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
