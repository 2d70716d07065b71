"""Real keys, a real JWKS over loopback HTTP, and tokens signed the way an EHR signs them.

Nothing here is mocked: the service fetches the JWKS with its own HTTP client from a server thread,
and verifies signatures made with freshly generated ES384 and RS384 key pairs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISS = "https://ehr.example.org/cds-client"
TENANT = "tenant-a"
PUBLIC_URL = "https://cds.example.org"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


Handler = Callable[[str, dict[str, str]], tuple[int, dict[str, str], bytes]]


class LoopbackServer:
    """An HTTP server on 127.0.0.1 whose answers tests set per path; it records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Recorded] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path
                outer.requests.append(Recorded("GET", path, {k: v for k, v in self.headers.items()}))
                route = outer.routes.get(path.split("?", 1)[0]) or outer.routes.get("*")
                status, headers, body = route(path, dict(self.headers.items())) if route else (404, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # the service hung up on a slow answer on purpose (deadlines): not news

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def json_route(self, path: str, document: Any | Callable[[], Any], status: int = 200) -> None:
        def answer(_path: str, _headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
            value = document() if callable(document) else document
            return status, {"Content-Type": "application/fhir+json"}, json.dumps(value).encode()

        self.routes[path] = answer

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class SigningKey:
    alg: str
    kid: str
    private: Any
    extra_jwk: dict[str, Any] = field(default_factory=dict)

    @property
    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        algorithm = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        jwk = algorithm.to_jwk(public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", **self.extra_jwk})
        return jwk

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def es384_key(kid: str = "es384-1") -> SigningKey:
    return SigningKey("ES384", kid, ec.generate_private_key(ec.SECP384R1()), {"alg": "ES384"})


def rs384_key(kid: str = "rs384-1") -> SigningKey:
    # No "alg" in the JWK, as many EHRs publish RSA keys: the service must not assume RS256.
    return SigningKey("RS384", kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def claims(audience: str | list[str], **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISS,
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "tenant": TENANT,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def mint(
    key: SigningKey,
    audience: str | list[str],
    *,
    headers: dict[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """A token as an EHR signs it: alg, typ JWT, kid and jku in the header."""
    header = {"kid": key.kid, "typ": "JWT", **(headers or {})}
    return jwt.encode(claims(audience, **overrides), key.private, algorithm=key.alg, headers=header)


def unsigned(audience: str, **overrides: Any) -> str:
    """`alg: none`, the oldest JWT attack: a token with no signature at all."""
    header = {"alg": "none", "typ": "JWT", "kid": "es384-1"}
    body = claims(audience, **overrides)
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}."


def hmac_with_public_key(key: SigningKey, audience: str) -> str:
    """HS256 keyed with the issuer's *public* key: fools verifiers that let the token pick the algorithm."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims(audience)).encode())}"
    signature = hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tamper(token: str, **changes: Any) -> str:
    """Change claims but keep the original signature."""
    head, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(changes)
    return f"{head}.{b64url(json.dumps(body).encode())}.{signature}"


def jwks_document(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk for k in keys]}


def write_issuers(path: Path, issuers: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"issuers": issuers}), encoding="utf-8")
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
