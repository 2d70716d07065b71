"""The real server: `tdm1-cds serve --dev` under gunicorn on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import fhir_builders

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    tmp: Path, extra_env: dict[str, str] | None = None, workers: int = 2, dev: bool = True
) -> tuple[subprocess.Popen, str]:
    """dev=False serves in production mode: extra_env must then name a trust file (TDM1_CDS_ISSUERS)."""
    port = free_port()
    env = {
        **os.environ,
        "TDM1_CDS_DATABASE_URL": f"sqlite:///{tmp}/live.sqlite3",
        **({"TDM1_CDS_FIXED_NOW": fhir_builders.iso(fhir_builders.NOW)} if dev else {}),
        **(extra_env or {}),
    }
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            *(["--dev"] if dev else []),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {(tmp / 'server.log').read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except requests.ConnectionError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("server did not become healthy in 30 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a gunicorn-served tdm1-cds (dev mode, clock pinned to fhir_builders.NOW)."""
    tmp = tmp_path_factory.mktemp("live")
    process, base = start_server(tmp)
    yield base
    stop_server(process)
