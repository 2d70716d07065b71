"""Service settings, read from the environment (TDM1_CDS_*) and overridden by CLI flags.

Clinical thresholds do not live here: they are knowledge (service/clinical/knowledge/*.yaml) with a
source and a review status. Settings are operational: where to listen, how long to wait, what to trust.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PREFIX = "TDM1_CDS_"
REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message says which and why."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    dev: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    database_url: str = "sqlite:///tdm1-cds.sqlite3"
    public_url: str = ""
    issuers_file: str = ""
    cards_dir: str = str(REPO_ROOT / "cards")
    # Request limits: bodies above this answer 413 before they are parsed.
    max_body_bytes: int = 5 * 1024 * 1024
    max_json_depth: int = 64
    max_resources: int = 20_000
    # One deadline for all FHIR fetches of a hook call, and how many pages per query at most.
    fetch_deadline_seconds: float = 2.0
    fetch_max_pages: int = 20
    # _count asked for on each search the service sends (0: the server's default page size).
    fetch_page_size: int = 200
    # A searchset read to its last page with fewer results than its Bundle.total counts is incomplete.
    # false: for a server known to count what it does not send (some HAPI versions counted included
    # resources), whose every answer would otherwise be unavailable.
    check_bundle_total: bool = True
    # Threads per worker process for FHIR queries: each hook call without prefetch makes six at once,
    # and a worker runs up to 16 calls (gunicorn threads): 96 queries at most, six of them per call;
    # past 64 some wait for a thread, which only happens with more than ten slow calls in one worker.
    fetch_workers: int = 64
    # order-select then order-sign on the same draft: reuse what was fetched (not prefetched) for the
    # same patient, server and token for this long (0 = off), within this many bytes per worker.
    fetch_cache_ttl_seconds: float = 30.0
    fetch_cache_max_bytes: int = 32 * 1024 * 1024
    # Operational windows that decide when a check is due; the label's own numbers are knowledge.
    lab_window_days: int = 3
    weight_stale_days: int = 30
    lvef_interval_days: int = 90
    dose_tolerance: float = 0.05
    cors_origins: tuple[str, ...] = ()
    # CDS client JWTs (service/auth.py). `aud` must be the URL called: public_url + path, or an alias + path.
    audience_aliases: tuple[str, ...] = ()
    jwt_algorithms: tuple[str, ...] = ("ES384", "RS384")
    jwt_leeway_seconds: int = 30
    jwt_max_lifetime_seconds: int = 3600
    jwks_timeout_seconds: float = 3.0
    jwks_max_age_seconds: float = 3600.0
    jwks_refresh_floor_seconds: float = 60.0
    # Key for the keyed hash of patient ids in the card log; generated and kept in the database when empty.
    hash_key: str = ""
    log_level: str = "INFO"
    # /admin/report (override analytics, HTML) answers only to this bearer token; empty = the page is 404.
    admin_token: str = ""
    # Dev mode only: evaluate as if it were this instant (ISO 8601), so dated fixtures stay reproducible.
    fixed_now: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        if self.cors_origins:
            return self.cors_origins
        return ("*",) if self.dev else ()

    def with_overrides(self, **overrides: Any) -> Settings:
        clean = {key: value for key, value in overrides.items() if value is not None}
        return replace(self, **clean)


_PARSERS: dict[str, Any] = {
    "dev": _bool,
    "port": int,
    "workers": int,
    "max_body_bytes": int,
    "max_json_depth": int,
    "max_resources": int,
    "fetch_deadline_seconds": float,
    "fetch_max_pages": int,
    "fetch_page_size": int,
    "check_bundle_total": _bool,
    "fetch_workers": int,
    "fetch_cache_ttl_seconds": float,
    "fetch_cache_max_bytes": int,
    "lab_window_days": int,
    "weight_stale_days": int,
    "lvef_interval_days": int,
    "dose_tolerance": float,
    "cors_origins": _list,
    "audience_aliases": _list,
    "jwt_algorithms": _list,
    "jwt_leeway_seconds": int,
    "jwt_max_lifetime_seconds": int,
    "jwks_timeout_seconds": float,
    "jwks_max_age_seconds": float,
    "jwks_refresh_floor_seconds": float,
}


# Where the documented variable name is not the field name upper-cased (design.md fixes TDM1_CDS_ISSUERS).
ENV_NAMES = {"issuers_file": "ISSUERS"}


def from_env(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from TDM1_CDS_* variables, then keyword overrides (CLI flags, tests)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for spec in fields(Settings):
        if spec.name == "extra":
            continue
        name = ENV_NAMES.get(spec.name, spec.name.upper())
        raw = env.get(PREFIX + name)
        if raw is None:
            continue
        parser = _PARSERS.get(spec.name, str)
        try:
            values[spec.name] = parser(raw)
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}{name}={raw!r}: {exc}") from exc
    settings = Settings(**values).with_overrides(**overrides)
    validate(settings)
    return settings


# The JSON parser (orjson) refuses documents nested deeper than this whatever the setting says.
MAX_JSON_DEPTH_PARSER = 1024


def validate(settings: Settings) -> None:
    # float() reads "nan" and "inf": a NaN deadline fails every fetch in silence, an infinite one is a
    # 500 on each call, and NaN passes every range check below (each comparison with it is False).
    for spec in fields(Settings):
        value = getattr(settings, spec.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingsError(f"{PREFIX}{spec.name.upper()} must be a finite number, not {value}")
    # 0 is the system's pick of a free port (tests, a supervisor that reads it back): kept.
    if not 0 <= settings.port <= 65535:
        raise SettingsError(f"{PREFIX}PORT must be between 0 (any free port) and 65535")
    # Zero gunicorn workers bind the port and never answer; zero fetch threads are a 500 per fetch.
    if settings.workers < 1:
        raise SettingsError(f"{PREFIX}WORKERS must be at least 1")
    if settings.fetch_workers < 1:
        raise SettingsError(f"{PREFIX}FETCH_WORKERS must be at least 1")
    # Asymmetric signatures only (CDS Hooks 2.0.1 forbids `none` and HMAC); ES384/RS384 are recommended.
    unsupported = set(settings.jwt_algorithms) - {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512"}
    if unsupported or not settings.jwt_algorithms:
        raise SettingsError(
            f"{PREFIX}JWT_ALGORITHMS: only ES256/384/512 and RS256/384/512 are allowed, not {sorted(unsupported)}"
        )
    if not 0 <= settings.jwt_leeway_seconds <= 300:
        raise SettingsError(f"{PREFIX}JWT_LEEWAY_SECONDS must be between 0 and 300")
    if settings.jwt_max_lifetime_seconds <= 0:
        raise SettingsError(f"{PREFIX}JWT_MAX_LIFETIME_SECONDS must be positive")
    if settings.jwks_timeout_seconds <= 0 or settings.jwks_refresh_floor_seconds < 0:
        raise SettingsError(f"{PREFIX}JWKS_TIMEOUT_SECONDS must be positive, JWKS_REFRESH_FLOOR_SECONDS >= 0")
    if settings.cors_origins and "*" in settings.cors_origins and len(settings.cors_origins) > 1:
        raise SettingsError(f"{PREFIX}CORS_ORIGINS: '*' cannot be combined with named origins")
    if settings.fixed_now and not settings.dev:
        raise SettingsError(f"{PREFIX}FIXED_NOW is for dev mode only")
    if settings.fetch_cache_ttl_seconds < 0 or settings.fetch_cache_max_bytes < 0:
        raise SettingsError(f"{PREFIX}FETCH_CACHE_TTL_SECONDS and FETCH_CACHE_MAX_BYTES cannot be negative")
    if not 0 <= settings.fetch_page_size <= 1000:
        raise SettingsError(f"{PREFIX}FETCH_PAGE_SIZE must be between 0 (the server's default) and 1000")
    if settings.fetch_deadline_seconds <= 0:
        raise SettingsError(f"{PREFIX}FETCH_DEADLINE_SECONDS must be positive")
    if settings.max_body_bytes <= 0:
        raise SettingsError(f"{PREFIX}MAX_BODY_BYTES must be positive")
    if not 1 <= settings.max_json_depth <= MAX_JSON_DEPTH_PARSER:
        raise SettingsError(f"{PREFIX}MAX_JSON_DEPTH must be between 1 and {MAX_JSON_DEPTH_PARSER}")
    if not 0 <= settings.dose_tolerance < 0.5:
        raise SettingsError(f"{PREFIX}DOSE_TOLERANCE must be a fraction between 0 and 0.5")
    for name in ("lab_window_days", "weight_stale_days", "lvef_interval_days"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{PREFIX}{name.upper()} must be a positive number of days")
