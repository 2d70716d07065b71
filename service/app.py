"""create_app(settings) → the Flask app. Nothing happens at import time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask

import service.api.preview as preview
from service import auth, logs
from service import cards as card_content
from service.api import admin, cors, discovery, errors, feedback, health, hooks, json_provider, openapi
from service.api import metrics as metrics_api
from service.clinical import knowledge, suggestions, terminology
from service.clinical.findings import Params
from service.fhir.cache import FetchCache
from service.fhir.client import new_pool
from service.protocol import validation
from service.settings import Settings, SettingsError, from_env
from service.store import Store


def params_from(settings: Settings) -> Params:
    return Params(
        knowledge=knowledge.default(),
        terminology=terminology.default(),
        lab_window=timedelta(days=settings.lab_window_days),
        weight_stale=timedelta(days=settings.weight_stale_days),
        lvef_interval=timedelta(days=settings.lvef_interval_days),
        dose_tolerance=settings.dose_tolerance,
    )


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    settings = settings or from_env()
    trusted = auth.load_trust(settings)  # before anything else: no trust file, no service
    logs.configure(settings.log_level)
    app = Flask("tdm1_cds")
    app.config.update(
        SETTINGS=settings,
        # One byte more than the limit: a body sent without a length (chunked) is cut there by Werkzeug,
        # and only a body cut past the limit is too large (body.read_json); one of exactly the limit is not.
        MAX_CONTENT_LENGTH=settings.max_body_bytes + 1,
        JSON_SORT_KEYS=False,
        PARAMS=params_from(settings),
        TERMINOLOGY=terminology.default(),
        CARD_CONTENT=card_content.load(Path(settings.cards_dir)),
        STORE=store or Store(settings.database_url, settings.hash_key),
        FHIR_POOL=new_pool(settings.fetch_workers),  # one kept-alive connection per concurrent query
        FETCH_CACHE=FetchCache(settings.fetch_cache_ttl_seconds, settings.fetch_cache_max_bytes),
        CLOCK=_clock(settings),  # the clinical core takes `now` as an argument; dev and tests may pin it
    )
    json_provider.install(app)
    suggestions.warm()
    validation.warm()
    errors.register(app)
    cors.register(app)
    auth.register(app, settings, trusted)
    app.register_blueprint(openapi.blueprint)  # GET /openapi.json, open like the health endpoints
    for blueprint in (discovery.blueprint, hooks.blueprint, feedback.blueprint, health.blueprint):
        app.register_blueprint(blueprint)
    app.register_blueprint(metrics_api.blueprint)  # GET /metrics, and counts every request
    app.register_blueprint(admin.blueprint)  # GET /admin/report: 404 unless TDM1_CDS_ADMIN_TOKEN is set
    preview.register(app)  # /preview/: on in dev mode, off in production unless TDM1_CDS_PREVIEW=1
    return app


def _clock(settings: Settings) -> Callable[[], datetime]:
    if settings.fixed_now:
        try:
            pinned = datetime.fromisoformat(settings.fixed_now.replace("Z", "+00:00"))
        except ValueError as exc:
            raise SettingsError(f"TDM1_CDS_FIXED_NOW={settings.fixed_now!r}: {exc}") from None
        pinned = pinned if pinned.tzinfo else pinned.replace(tzinfo=UTC)
        return lambda: pinned
    return lambda: datetime.now(UTC)
