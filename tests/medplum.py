"""Start the loopback Medplum-based FHIR R4 test server (tests/fhirserver) from Python.

Pytest-free so tests, fixtures and benchmarks can all use it::

    with medplum_server([Path("fhir_fixtures/patient-123")], token="t0k") as base_url:
        requests.get(f"{base_url}/Patient/123", headers={"Authorization": "Bearer t0k"})
        assert fetch_requests(base_url)[0]["authorization_ok"]

Needs node (>= 20) and ``npm ci --prefix tests/fhirserver`` once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

SERVER_DIR = Path(__file__).resolve().parent / "fhirserver"
SERVER_SCRIPT = SERVER_DIR / "server.mjs"
INSTALL_HINT = "run `npm ci --prefix tests/fhirserver` from the repository root"
# Loading the FHIR definitions takes ~1-2 s; allow for slow CI machines.
STARTUP_TIMEOUT_S = 60.0


def _check_prerequisites() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(
            f"node is not on PATH; the Medplum test FHIR server needs Node.js >= 20 ({INSTALL_HINT})"
        )
    if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        raise RuntimeError(f"{SERVER_DIR / 'node_modules'} is missing; {INSTALL_HINT}")
    return node


def _wait_for_port(proc: subprocess.Popen[str], timeout_s: float) -> int:
    """Read stdout until the server's ``LISTENING <port>`` line; readline in a thread so we can time out."""
    result: dict[str, str] = {}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("LISTENING "):
                result["line"] = line
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if "line" not in result:
        proc.kill()
        _, stderr = proc.communicate(timeout=5)
        state = f"exited with code {proc.returncode}" if not reader.is_alive() else "timed out"
        raise RuntimeError(f"Medplum test FHIR server {state} before listening; stderr:\n{stderr}")
    return int(result["line"].split()[1])


@contextmanager
def medplum_server(load_dirs: list[Path], token: str | None = None, delay_ms: int = 0) -> Iterator[str]:
    """Run the test FHIR server on an ephemeral loopback port; yield its base URL (``http://127.0.0.1:PORT/fhir``).

    ``load_dirs``: directories whose ``*.json`` files (resources or Bundles) are loaded at start.
    ``token``: if given, every FHIR request must send ``Authorization: Bearer <token>``.
    ``delay_ms``: delay every FHIR response by this many milliseconds.
    """
    node = _check_prerequisites()
    cmd = [node, str(SERVER_SCRIPT), "--port", "0"]
    for d in load_dirs:
        if not Path(d).is_dir():
            raise RuntimeError(f"FHIR fixture directory does not exist: {d}")
        cmd += ["--load", str(Path(d).resolve())]
    if token is not None:
        cmd += ["--token", token]
    if delay_ms:
        cmd += ["--delay-ms", str(int(delay_ms))]

    proc = subprocess.Popen(
        cmd,
        cwd=SERVER_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    try:
        port = _wait_for_port(proc, STARTUP_TIMEOUT_S)
        # Keep draining stderr so a chatty server can never block on a full pipe.
        threading.Thread(target=lambda: proc.stderr and proc.stderr.read(), daemon=True).start()
        yield f"http://127.0.0.1:{port}/fhir"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()


def _control_url(base_url: str, path: str) -> str:
    root = base_url.rstrip("/")
    if root.endswith("/fhir"):
        root = root[: -len("/fhir")]
    return f"{root}/{path}"


def fetch_requests(base_url: str) -> list[dict[str, Any]]:
    """Requests the server received so far: ``{method, url, authorization_present, authorization_ok}`` each.

    ``url`` is path + query as sent (e.g. ``/fhir/Observation?patient=123``); ``authorization_ok`` is
    ``None`` when the server runs without ``--token``.
    """
    resp = requests.get(_control_url(base_url, "__requests"), timeout=10)
    resp.raise_for_status()
    data: list[dict[str, Any]] = resp.json()
    return data


def reset_requests(base_url: str) -> None:
    """Clear the server's request log."""
    requests.post(_control_url(base_url, "__reset_requests"), timeout=10).raise_for_status()
