"""Trusted CDS clients: who may call us (iss, JWKS), for which tenants, and which FHIR servers we may call.

The file named by TDM1_CDS_ISSUERS is the whole trust configuration:

    {"issuers": [{"iss": "https://ehr.example.org",
                  "jwks_url": "https://ehr.example.org/.well-known/jwks.json",
                  "tenants": ["tenant-a"],                       # optional: any tenant when absent
                  "fhir_servers": ["https://ehr.example.org/fhir"]}]}  # optional: prefetch only

Every mistake in it stops the service at start-up with a message naming the issuer and field: a typo
in a trust file must never degrade into "trust everything" or "trust nothing" at run time.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from service.settings import PREFIX, SettingsError

ISSUER_FIELDS = {"iss", "jwks_url", "tenants", "fhir_servers"}
# The public CDS Hooks sandbox publishes the private half of its signing key, so anything it
# "signs" could have been signed by anyone: it may be trusted in dev mode only.
PUBLISHED_KEY_HOSTS = ("cds-hooks.org",)
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_published_key_host(host: str | None) -> bool:
    host = (host or "").lower().rstrip(".")
    return any(host == h or host.endswith("." + h) for h in PUBLISHED_KEY_HOSTS)


@dataclass(frozen=True)
class BaseUrl:
    """A URL reduced to what decides where a request goes: scheme, host, port and path segments."""

    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]

    def contains(self, other: BaseUrl) -> bool:
        """Same origin, and `other`'s path is this path or below it (segment-wise, not substring)."""
        return (self.scheme, self.host, self.port) == (
            other.scheme,
            other.host,
            other.port,
        ) and other.segments[: len(self.segments)] == self.segments


def normalise_base(url: str) -> BaseUrl | None:
    """None for anything that is not a plain http(s) base URL we could call without surprises."""
    if not isinstance(url, str) or len(url) > 2048 or any(c in url for c in "\\\x00\r\n\t "):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    # Credentials, queries and fragments have no place in a base URL; they are how allow-lists are fooled.
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return None
    segments = tuple(unquote(s) for s in parts.path.split("/") if s)
    if any(s in {".", ".."} or "/" in s or "\\" in s for s in segments):
        return None
    return BaseUrl(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme], segments)


@dataclass(frozen=True)
class Issuer:
    iss: str
    jwks_url: str
    tenants: tuple[str, ...] = ()
    fhir_servers: tuple[str, ...] = ()

    def allows_tenant(self, tenant: Any) -> bool:
        return not self.tenants or (isinstance(tenant, str) and tenant in self.tenants)

    def allows_fhir_server(self, url: str) -> bool:
        candidate = normalise_base(url)
        if candidate is None:
            return False
        for allowed in self.fhir_servers:
            base = normalise_base(allowed)
            if base is not None and base.contains(candidate):
                return True
        return False


def _secure_url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{where} must be a non-empty URL string")
    base = normalise_base(value)
    if base is None:
        raise SettingsError(
            f"{where}={value!r} is not a plain http(s) URL (no credentials, query, fragment or dot segments)"
        )
    if base.scheme != "https" and not is_loopback_host(base.host):
        raise SettingsError(f"{where}={value!r} must use https (plain http is accepted on loopback only)")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SettingsError(f"{where} must be a list of non-empty strings")
    return tuple(value)


def parse_issuers(document: Any, *, dev: bool, source: str = "issuers file") -> dict[str, Issuer]:
    if not isinstance(document, dict) or not isinstance(document.get("issuers"), list):
        raise SettingsError(f'{source}: expected a JSON object {{"issuers": [...]}}')
    if not document["issuers"]:
        raise SettingsError(f"{source}: the issuers list is empty, so no client could ever be trusted")
    found: dict[str, Issuer] = {}
    for index, entry in enumerate(document["issuers"]):
        where = f"{source}: issuers[{index}]"
        if not isinstance(entry, dict):
            raise SettingsError(f"{where} must be an object")
        unknown = sorted(set(entry) - ISSUER_FIELDS)
        if unknown:
            raise SettingsError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(ISSUER_FIELDS)}")
        iss = entry.get("iss")
        if not isinstance(iss, str) or not iss:
            raise SettingsError(f"{where}.iss must be a non-empty string")
        where = f"{source}: issuer {iss!r}"
        if iss in found:
            raise SettingsError(f"{where} is listed twice")
        jwks_url = _secure_url(entry.get("jwks_url"), f"{where}: jwks_url")
        fhir_servers = _strings(entry.get("fhir_servers"), f"{where}: fhir_servers")
        for server in fhir_servers:
            _secure_url(server, f"{where}: fhir_servers entry")
        if not dev and (
            _is_published_key_host(urlsplit(jwks_url).hostname)
            or _is_published_key_host(urlsplit(iss).hostname)
        ):
            raise SettingsError(
                f"{where}: the public CDS Hooks sandbox publishes its private signing key; "
                "it may be trusted in dev mode (--dev) only"
            )
        found[iss] = Issuer(
            iss=iss,
            jwks_url=jwks_url,
            tenants=_strings(entry.get("tenants"), f"{where}: tenants"),
            fhir_servers=fhir_servers,
        )
    return found


def load_issuers(path: str, *, dev: bool) -> dict[str, Issuer]:
    """The trusted issuers, or a SettingsError that says what is wrong with the file."""
    if not path:
        raise SettingsError(
            f"Production authentication is not configured: set {PREFIX}ISSUERS to the trusted-issuers "
            "file, or run with --dev (TDM1_CDS_DEV=1) on loopback for development."
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{PREFIX}ISSUERS={path!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{PREFIX}ISSUERS={path!r}: cannot be read ({type(exc).__name__})") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}ISSUERS={path!r}: not valid JSON ({exc})") from None
    return parse_issuers(document, dev=dev, source=f"{PREFIX}ISSUERS={path!r}")
