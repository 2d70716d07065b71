"""CDS client authentication: the signed JWT every CDS Hooks call carries (CDS Hooks 2.0.1 §Security).

Without --dev, every request under /cds-services needs `Authorization: Bearer <JWT>`. Verification is
PyJWT's, against the JWKS of an issuer listed in the trust file (service/issuers.py). A failure is a
bare 401; the reason goes to the log and to a metric, never to the caller (it would teach an attacker
which check to work around).

In dev mode no token is needed and one that is sent is not examined: dev mode trusts its caller by
definition, and verifying a sandbox token (whose private key is public) would prove nothing.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt
import requests
from flask import Flask, Response, current_app, g, request

from service import metrics
from service.api.errors import error_response
from service.issuers import Issuer, load_issuers
from service.settings import Settings

log = logging.getLogger("tdm1_cds.auth")

PROTECTED_PREFIX = "/cds-services"
MAX_TOKEN_CHARS = 8192
MAX_JWKS_BYTES = 256 * 1024
KEY_TYPES = {"ES": "EC", "RS": "RSA"}  # algorithm family → the only JWK kty that may verify it
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]


class AuthError(Exception):
    """Why a token was refused: a short reason code for the log and metrics, never shown to callers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedClient:
    """Who is calling, once the JWT checked out; kept on flask.g for this request only."""

    issuer: Issuer
    tenant: str | None
    jti: str
    replay_key: str = ""  # the key its jti was remembered under (release_token)

    def log_fields(self) -> dict[str, Any]:
        return {"iss": self.issuer.iss, "tenant": self.tenant, "jti": self.jti}


# --- replay protection ---------------------------------------------------------------------------


class ReplayCache(Protocol):
    """Remembers token ids until they expire. `first_use` is atomic: True once, False for a replay.

    The default is the database (StoreReplayCache), shared by every gunicorn worker and replica; the
    in-process MemoryReplayCache protects one process only and suits tests and single-worker tools.
    """

    def first_use(self, key: str, expires_at: float) -> bool: ...

    def forget(self, key: str) -> None:
        """The call this key's token made did not take effect (release_token): it may come again."""


class MemoryReplayCache:
    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def first_use(self, key: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            while self._expiry and self._expiry[0][0] < now:
                _when, old = heapq.heappop(self._expiry)
                if self._seen.get(old, now + 1) < now:
                    del self._seen[old]
            if key in self._seen:
                return False
            if len(self._seen) >= self._max_entries:
                # Full of live ids: refusing is safer than forgetting one, which would allow a replay.
                raise AuthError("replay-cache-full")
            self._seen[key] = expires_at
            heapq.heappush(self._expiry, (expires_at, key))
            return True

    def forget(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)  # its heap entry stays; the expiry sweep skips a missing key


class StoreReplayCache:
    """The replay cache in the service database (service/store.py), shared by every worker and replica."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def first_use(self, key: str, expires_at: float) -> bool:
        try:
            return bool(self._store.remember_jti(key, datetime.fromtimestamp(expires_at, UTC)))
        except Exception as exc:  # the store says why in its own log; refuse rather than risk a replay
            raise ReplayCacheUnavailable(type(exc).__name__) from None

    def forget(self, key: str) -> None:
        self._store.forget_jti(key)


class ReplayCacheUnavailable(Exception):
    """A replay cannot be ruled out right now: the call is refused with 503 (retry), not 401."""


# --- JWKS ----------------------------------------------------------------------------------------


@dataclass
class _KeySet:
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched_at: float = float("-inf")  # last successful fetch
    attempted_at: float = float("-inf")  # last attempt, successful or not


class JwksCache:
    """Each issuer's signing keys, fetched from its configured jwks_url only.

    Refreshed when a token names an unknown `kid` or the set is older than max_age, but never more
    often than once per refresh_floor per issuer: otherwise a stream of made-up kids would turn this
    service into a tool for hammering the EHR's key endpoint.
    """

    def __init__(
        self, session: requests.Session, *, timeout: float, max_age: float, refresh_floor: float
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._max_age = max_age
        self._floor = refresh_floor
        self._sets: dict[str, _KeySet] = {}
        self._lock = threading.Lock()

    def key(self, issuer: Issuer, kid: str) -> dict[str, Any] | None:
        with self._lock:
            keyset = self._sets.setdefault(issuer.iss, _KeySet())
            now = time.monotonic()
            stale = now - keyset.fetched_at > self._max_age
            if (kid not in keyset.keys or stale) and now - keyset.attempted_at >= self._floor:
                keyset.attempted_at = now
                fetched = self._fetch(issuer)
                if fetched is not None:
                    keyset.keys, keyset.fetched_at = fetched, now
            return keyset.keys.get(kid)

    def _fetch(self, issuer: Issuer) -> dict[str, dict[str, Any]] | None:
        try:
            response = self._session.get(
                issuer.jwks_url,
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
                headers={"Accept": "application/json, application/jwk-set+json"},
            )
            try:
                if response.status_code != 200:
                    log.warning(
                        "jwks fetch failed", extra={"iss": issuer.iss, "status": response.status_code}
                    )
                    return None
                raw = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
            finally:
                response.close()
        except (requests.RequestException, OSError) as exc:
            log.warning("jwks fetch failed", extra={"iss": issuer.iss, "error": type(exc).__name__})
            return None
        if len(raw) > MAX_JWKS_BYTES:
            log.warning("jwks fetch failed", extra={"iss": issuer.iss, "error": "too large"})
            return None
        try:
            document = json.loads(raw)
        except ValueError:
            log.warning("jwks fetch failed", extra={"iss": issuer.iss, "error": "not JSON"})
            return None
        keys: dict[str, dict[str, Any]] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            # Only public signature keys with an id; a symmetric ("oct") key is never usable here.
            if (
                isinstance(jwk, dict)
                and isinstance(jwk.get("kid"), str)
                and jwk.get("kty") in KEY_TYPES.values()
                and jwk.get("use", "sig") == "sig"
            ):
                keys[jwk["kid"]] = jwk
        log.info("jwks fetched", extra={"iss": issuer.iss, "keys": len(keys)})
        return keys


# --- verification --------------------------------------------------------------------------------


class Verifier:
    def __init__(
        self,
        settings: Settings,
        issuers: dict[str, Issuer],
        jwks: JwksCache,
        replay: ReplayCache,
    ) -> None:
        self.settings = settings
        self.issuers = issuers
        self.jwks = jwks
        self.replay = replay

    def verify(self, token: str, audiences: list[str]) -> VerifiedClient:
        settings = self.settings
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise AuthError("malformed")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("malformed") from None
        alg = header.get("alg")
        if alg not in settings.jwt_algorithms:  # before any key is touched: no `none`, no HMAC
            raise AuthError("algorithm")
        if str(header.get("typ", "")).upper() != "JWT":
            raise AuthError("typ")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("kid")
        issuer = self.issuers.get(unverified.get("iss")) if isinstance(unverified.get("iss"), str) else None
        if issuer is None:
            raise AuthError("issuer")
        if "jku" in header and header["jku"] != issuer.jwks_url:
            raise AuthError("jku")
        jwk = self.jwks.key(issuer, kid)
        if jwk is None:
            raise AuthError("unknown-kid")
        if KEY_TYPES.get(alg[:2]) != jwk.get("kty") or jwk.get("alg", alg) != alg:
            raise AuthError("algorithm")
        try:
            # An RSA JWK often carries no `alg`; bind the (already allow-listed) header alg explicitly,
            # since PyJWT would otherwise assume RS256 for it.
            key = jwt.PyJWK(jwk, algorithm=alg)
        except Exception:  # a malformed key in the issuer's set: nothing can be verified with it
            raise AuthError("jwk") from None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(settings.jwt_algorithms),
                audience=audiences,
                issuer=issuer.iss,
                leeway=settings.jwt_leeway_seconds,
                # Epic and others add `sub` in their own shape; we do not use it, so do not judge it.
                options={"require": REQUIRED_CLAIMS, "verify_sub": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("not-yet-valid") from None
        except jwt.InvalidAudienceError:
            raise AuthError("audience") from None
        except jwt.MissingRequiredClaimError:
            raise AuthError("missing-claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("signature") from None
        except jwt.PyJWTError:
            raise AuthError("invalid") from None
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise AuthError("jti")
        try:
            expires = float(claims["exp"])
        except (OverflowError, TypeError, ValueError):  # PyJWT accepts any int, even 10**400
            raise AuthError("lifetime") from None
        # A long-lived token would have to sit in the replay cache for as long: bound both.
        if expires - time.time() > settings.jwt_max_lifetime_seconds + settings.jwt_leeway_seconds:
            raise AuthError("lifetime")
        tenant = claims.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise AuthError("tenant")
        if not issuer.allows_tenant(tenant):
            raise AuthError("tenant")
        # Last, so that a token refused for another reason does not use up its jti.
        replay_key = hashlib.sha256(f"{issuer.iss}\x00{jti}".encode()).hexdigest()
        if not self.replay.first_use(replay_key, expires + settings.jwt_leeway_seconds):
            raise AuthError("replay")
        return VerifiedClient(issuer=issuer, tenant=tenant, jti=jti, replay_key=replay_key)


def expected_audiences(settings: Settings) -> list[str]:
    """The URL that was called, as the client knows it: PUBLIC_URL (behind a proxy) or this request's
    own host, plus each configured alias, each followed by the path."""
    bases = [settings.public_url or request.host_url, *settings.audience_aliases]
    return [base.rstrip("/") + request.path for base in bases]


def is_protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def current_client() -> VerifiedClient | None:
    """The verified caller of this request; None in dev mode (unauthenticated by design)."""
    return g.get("cds_client")


def release_token() -> None:
    """Forget this request's jti: the call failed without effect (feedback answered 503), and a
    client retrying it with the same JWT, as an HTTP retry does, must not be refused as a replay and
    lose the feedback. Only a call that changed nothing may be released, and only by itself. Best
    effort: a database still down keeps the jti, and the retry is refused as before."""
    client = current_client()
    verifier = current_app.config.get("AUTH_VERIFIER")
    if client is None or not client.replay_key or verifier is None:
        return
    try:
        verifier.replay.forget(client.replay_key)
    except Exception as exc:
        log.warning("jti not released", extra={"error": type(exc).__name__, "path": request.path})


def log_fields() -> dict[str, Any]:
    client = current_client()
    return client.log_fields() if client else {}


def _unauthorized() -> Response:
    response = error_response(401)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def load_trust(settings: Settings) -> dict[str, Issuer] | None:
    """The trusted issuers (SettingsError when missing or invalid); None in dev mode, which trusts all."""
    if settings.dev:
        if settings.issuers_file:
            load_issuers(settings.issuers_file, dev=True)  # still report a broken file at start-up
        return None
    return load_issuers(settings.issuers_file, dev=False)


def register(
    app: Flask,
    settings: Settings,
    issuers: dict[str, Issuer] | None,
    replay: ReplayCache | None = None,
) -> None:
    """Authenticate every /cds-services request before it reaches a view (production only)."""
    if settings.dev:
        return
    if issuers is None:  # never fall through to "no authentication" in production
        issuers = load_issuers(settings.issuers_file, dev=False)
    session = requests.Session()
    session.trust_env = False  # the JWKS comes from the configured URL, not via an environment proxy
    verifier = Verifier(
        settings,
        issuers,
        JwksCache(
            session,
            timeout=settings.jwks_timeout_seconds,
            max_age=settings.jwks_max_age_seconds,
            refresh_floor=settings.jwks_refresh_floor_seconds,
        ),
        replay or StoreReplayCache(app.config["STORE"]),
    )
    app.config["AUTH_VERIFIER"] = verifier

    @app.before_request
    def _authenticate() -> Response | None:
        if request.method == "OPTIONS" or not is_protected(request.path):
            return None  # CORS preflight carries no credentials by design; health and docs are open
        verifier_: Verifier = current_app.config["AUTH_VERIFIER"]
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("missing")
            g.cds_client = verifier_.verify(token.strip(), expected_audiences(settings))
        except AuthError as refused:
            metrics.jwt_failure(refused.reason)
            log.warning("authentication refused", extra={"reason": refused.reason, "path": request.path})
            return _unauthorized()
        except ReplayCacheUnavailable as exc:
            metrics.jwt_failure("replay-cache-unavailable")
            log.error("replay cache unavailable", extra={"error": str(exc), "path": request.path})
            return error_response(503, "Temporarily unable to verify the request; please retry.")
        except Exception as exc:  # a bug in verification must fail closed, as a 401, never a 500 or a pass
            metrics.jwt_failure("error")
            log.error("authentication error", extra={"error": type(exc).__name__, "path": request.path})
            return _unauthorized()
        return None
