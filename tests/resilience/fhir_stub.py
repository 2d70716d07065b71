"""A loopback FHIR server whose failures the test chooses, per resource type.

Each resource type (the first path segment: Patient, Observation, ...) answers in one of these modes:
ok, slow (answers after `slow_seconds`), together (answers once every query
holding the barrier has arrived), hang (never answers until the server stops), 401, 403, 500,
html, garbage (a Bundle whose entries are not resources), truncated (half a JSON document, then the connection closes), trickle (a valid body, one byte at
a time, slowly), page-forever (every page links to another page), outcome (an OperationOutcome).
Every request is recorded (path, whether the bearer token was the expected one), so tests can count.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests import fhir_builders as fb


@dataclass
class Recorded:
    path: str
    token_ok: bool


@dataclass
class StubState:
    data: dict[str, dict[str, Any]]  # resource type -> resource or searchset Bundle
    token: str | None = None
    modes: dict[str, str] = field(default_factory=dict)
    slow_seconds: float = 0.2
    barrier: threading.Barrier | None = None  # mode "together": answer once all parties are waiting
    requests: list[Recorded] = field(default_factory=list)
    accept_encodings: list[str] = field(default_factory=list)  # as sent with compressed answers
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self, resource_type: str | None = None) -> list[str]:
        with self.lock:
            return [
                r.path
                for r in self.requests
                if resource_type is None or r.path.split("/")[2].split("?")[0] == resource_type
            ]


def data_for(history: list[dict[str, Any]], patient_id: str = "pat-1") -> dict[str, dict[str, Any]]:
    prefetch = fb.prefetch_for(history, patient_id)
    data: dict[str, dict[str, Any]] = {"Patient": prefetch["patient"]}
    for resource_type, key in fb.PREFETCH_KEYS.items():
        data[resource_type] = prefetch[key]
    return data


def _handler(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle on, the second waits for a delayed ACK
        # (~40 ms), a delay no real FHIR server adds.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            segments = parts.path.strip("/").split("/")  # fhir, Type, [id]
            resource_type = segments[1] if len(segments) > 1 else ""
            token_ok = state.token is None or self.headers.get("Authorization") == f"Bearer {state.token}"
            with state.lock:
                state.requests.append(Recorded(self.path, token_ok))
            mode = state.modes.get(resource_type, "ok")
            if not token_ok:
                return self._send(401, {"resourceType": "OperationOutcome", "issue": []})
            if mode == "hang":
                state.stop.wait(60)
                return self._send(503, {"resourceType": "OperationOutcome", "issue": []})
            if mode == "slow":
                time.sleep(state.slow_seconds)
            if mode == "together" and state.barrier is not None:
                try:
                    state.barrier.wait()
                except threading.BrokenBarrierError:  # the queries did not all arrive together
                    return self._send(500, {"resourceType": "OperationOutcome", "issue": []})
            if mode in ("401", "403", "500"):
                return self._send(int(mode), {"resourceType": "OperationOutcome", "issue": []})
            if mode == "outcome":
                return self._send(200, {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]})
            if mode == "garbage":
                entries = [
                    1,
                    "x",
                    None,
                    {"resource": []},
                    {"resource": {"resourceType": 5}},
                    {"resource": {}},
                ]
                return self._send(200, {"resourceType": "Bundle", "type": "searchset", "entry": entries})
            if mode in ("error-in-bundle", "warning-in-bundle"):
                # The search answered with its data and an OperationOutcome entry (search.mode outcome).
                document = json.loads(json.dumps(state.data.get(resource_type, fb.searchset([]))))
                severity = "error" if mode == "error-in-bundle" else "warning"
                document.setdefault("entry", []).append(
                    {
                        "resource": {
                            "resourceType": "OperationOutcome",
                            "issue": [{"severity": severity, "code": "processing", "diagnostics": "partial"}],
                        },
                        "search": {"mode": "outcome"},
                    }
                )
                return self._send(200, document)
            if mode == "bom":
                body = b"\xef\xbb\xbf" + json.dumps(state.data.get(resource_type, fb.searchset([]))).encode()
                return self._send_raw(200, body, "application/fhir+json; charset=utf-8")
            if mode == "html":
                return self._send_raw(200, b"<html><body>Maintenance</body></html>", "text/html")
            document = state.data.get(resource_type, fb.searchset([]))
            if mode == "page-forever":
                offset = int(parse_qs(parts.query).get("_offset", ["0"])[0])
                host, port = self.server.server_address[:2]
                document = {
                    **fb.searchset([]),
                    "link": [
                        {
                            "relation": "next",
                            "url": f"http://{host}:{port}/fhir/{resource_type}?_offset={offset + 1}",
                        }
                    ],
                }
            body = json.dumps(document).encode()
            if mode.startswith("gzip") or mode == "brotli":
                return self._send_encoded(mode, body)
            if mode == "truncated":
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            if mode == "trickle":
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for i in range(len(body)):
                    if state.stop.wait(0.05):
                        break
                    try:
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                    except OSError:  # the client gave up: that is the point
                        break
                self.close_connection = True
                return None
            return self._send_raw(200, body, "application/fhir+json")

        def _send_encoded(self, mode: str, body: bytes) -> None:
            """Compressed bodies, as a FHIR server that honours Accept-Encoding sends them."""
            state.accept_encodings.append(self.headers.get("Accept-Encoding", ""))
            encoding = "gzip"
            if mode == "gzip":
                payload = gzip.compress(body)
            elif mode == "gzip-bomb":  # ~30 KB on the wire, 21 MiB of JSON once decoded
                payload = gzip.compress(b'{"resourceType": "Bundle", "x": "' + b" " * (21 << 20) + b'"}')
            elif mode == "gzip-cut":  # the gzip stream stops halfway, with a Content-Length to match
                payload = gzip.compress(body)[: len(gzip.compress(body)) // 2]
            elif mode == "gzip-corrupt":
                payload = gzip.compress(body)[:10] + b"\x00not deflate data\xff" * 8
            else:  # brotli: an encoding that was not asked for
                encoding, payload = "br", b"\x1b\x00\x00not really brotli"
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _send(self, status: int, document: dict[str, Any]) -> None:
            self._send_raw(status, json.dumps(document).encode(), "application/fhir+json")

        def _send_raw(self, status: int, body: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                self.close_connection = True

    return Handler


@contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread; yield its FHIR base URL (…/fhir)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/fhir"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def fhir_stub(state: StubState) -> Iterator[str]:
    """Serve `state` on a free loopback port; yield the FHIR base URL."""
    with loopback_server(_handler(state)) as base_url:
        try:
            yield base_url
        finally:
            state.stop.set()  # before the shutdown: handlers that hang or trickle give up


def refused_url() -> str:
    """A loopback URL nobody listens on: connecting is refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir"
