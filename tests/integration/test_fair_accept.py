"""The real server's two workers share keep-alive connections evenly (service/fair_worker.py).

With plain gthread workers one often won the race for most of a client's connections (the bench saw
0/16): one process then served every call on one core. Eight connections opened one by one, each
kept alive after a call, must end four on each worker.
"""

from __future__ import annotations

import http.client
import time
from pathlib import Path

import pytest

from bench.run import connections_per_worker
from tests.integration.conftest import start_server, stop_server

pytestmark = pytest.mark.integration


def test_eight_keepalive_connections_split_four_four(tmp_path: Path) -> None:
    process, base = start_server(tmp_path, workers=2)
    port = int(base.rsplit(":", 1)[1])
    connections: list[http.client.HTTPConnection] = []
    try:
        # Every worker's loop turns at least once a second: by then both count as live.
        time.sleep(1.5)
        for _ in range(8):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("Connection", "").lower() != "close"
            connections.append(connection)
        split = connections_per_worker(process.pid, port)
        assert sorted(split) == [4, 4], split
    finally:
        for connection in connections:
            connection.close()
        stop_server(process)
