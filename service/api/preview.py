"""GET /preview/: a card preview for informaticists, served next to the real service.

The page is static (HTML, CSS, one script; no build step). It lists the scenarios in
fhir_fixtures/requests/, sends each scenario's request to the real endpoint
(POST /cds-services/{id}) from the browser, renders the cards the way an EHR order-entry popup
does, and posts real CDS Hooks feedback when a suggestion is accepted or a card dismissed.

It is on in dev mode and off (404) in production unless TDM1_CDS_PREVIEW=1: it serves fixture
files and a page that posts feedback, neither of which a production deployment should expose
by accident.

Dated fixtures stay reproducible through the dev-only request header X-TDM1-CDS-Now, which makes
one hook call evaluate at the scenario's `now`. Only dev mode honours it: in production the
clock is the clock, whoever asks.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    has_request_context,
    jsonify,
    request,
    send_from_directory,
)

from service.api.errors import ApiError
from service.settings import PREFIX, REPO_ROOT, Settings, SettingsError

NOW_HEADER = "X-TDM1-CDS-Now"
STATIC_DIR = Path(__file__).resolve().parent.parent / "preview"
DEFAULT_FIXTURES = REPO_ROOT / "fhir_fixtures" / "requests"
_SCENARIO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The page builds every element with textContent and loads nothing from elsewhere; the policy makes
# a slip (an innerHTML somewhere, a javascript: link) inert instead of exploitable.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)

blueprint = Blueprint("preview", __name__, url_prefix="/preview")


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{PREFIX}{name}={raw!r}: not a boolean")


def enabled(settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    """An explicit TDM1_CDS_PREVIEW (or settings.extra["preview"]) wins; otherwise on in dev only."""
    env = os.environ if environ is None else environ
    explicit = settings.extra.get("preview", env.get(PREFIX + "PREVIEW"))
    if explicit is None or explicit == "":
        return settings.dev
    return explicit if isinstance(explicit, bool) else _flag("PREVIEW", str(explicit))


def fixtures_dir(settings: Settings, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = settings.extra.get("preview_fixtures") or env.get(PREFIX + "PREVIEW_FIXTURES")
    return Path(configured) if configured else DEFAULT_FIXTURES


def parse_instant(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _header_clock(base: Callable[[], datetime]) -> Callable[[], datetime]:
    def clock() -> datetime:
        raw = request.headers.get(NOW_HEADER) if has_request_context() else None
        if not raw:
            return base()
        try:
            return parse_instant(raw)
        except ValueError:
            raise ApiError(400, f"{NOW_HEADER} must be an ISO 8601 instant, not {raw[:64]!r}.") from None

    return clock


def register(app: Flask, environ: Mapping[str, str] | None = None) -> None:
    settings: Settings = app.config["SETTINGS"]
    if settings.dev:
        app.config["CLOCK"] = _header_clock(app.config["CLOCK"])
    if enabled(settings, environ):
        app.config["PREVIEW_FIXTURES"] = fixtures_dir(settings, environ)
        app.register_blueprint(blueprint)


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"  # fixtures and the page change while people work
    return response


@blueprint.get("/")
def index() -> Response:
    return send_from_directory(STATIC_DIR, "index.html", mimetype="text/html")


@blueprint.get("/static/<path:filename>")
def static_file(filename: str) -> Response:
    return send_from_directory(STATIC_DIR / "static", filename)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _summary(name: str, request_path: Path) -> dict[str, Any] | None:
    """One scenario as the list shows it; a fixture someone is still writing is skipped, not fatal."""
    meta_path = request_path.with_name(f"{name}.meta.json")
    try:
        document = _read_json(request_path)
        meta = _read_json(meta_path) if meta_path.exists() else {}
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or not isinstance(meta, dict):
        return None
    story = str(meta.get("story") or "").strip()
    return {
        "name": name,
        "title": str(meta.get("title") or name),
        "story": story,
        "storyLine": story.splitlines()[0] if story else "",
        "hook": document.get("hook"),
        "now": meta.get("now"),
        "expectCards": meta.get("expect_cards", []),
    }


def _request_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {
        path.name[: -len(".json")]: path
        for path in sorted(directory.glob("*.json"))
        if not path.name.endswith(".meta.json") and _SCENARIO_NAME.match(path.name[: -len(".json")])
    }


@blueprint.get("/scenarios")
def scenarios() -> Response:
    files = _request_files(current_app.config["PREVIEW_FIXTURES"])
    listed = [item for name, path in files.items() if (item := _summary(name, path)) is not None]
    return jsonify({"scenarios": listed, "nowHonoured": _now_honoured()})


@blueprint.get("/scenarios/<name>")
def scenario(name: str) -> Response:
    path = _request_files(current_app.config["PREVIEW_FIXTURES"]).get(name)
    summary = _summary(name, path) if path else None
    if path is None or summary is None:
        raise ApiError(404, f"No scenario {name!r}.")
    return jsonify({**summary, "nowHonoured": _now_honoured(), "request": _read_json(path)})


def _now_honoured() -> bool:
    """Whether the scenario's `now` reaches the rules; the page says so rather than mislead."""
    return bool(current_app.config["SETTINGS"].dev)
