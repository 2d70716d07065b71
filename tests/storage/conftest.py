"""Storage tests run twice: on SQLite (embedded default) and on a real PostgreSQL.

PostgreSQL comes from TDM1_CDS_TEST_POSTGRES_URL (tests/storage/postgres.sh starts one on loopback
and prints it; .ci/run does so). Without it the PostgreSQL half is skipped with the reason shown,
except in CI (CI=true), where a missing server is a failure: CI must test what production runs.
Each test gets a database of its own, created and dropped here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ENV = "TDM1_CDS_TEST_POSTGRES_URL"


def postgres_admin_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"{POSTGRES_ENV} is not set in CI: .ci/run must start PostgreSQL (tests/storage/postgres.sh)"
        )
    pytest.skip(f"no PostgreSQL configured: set {POSTGRES_ENV} (bash tests/storage/postgres.sh start)")
    return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    admin_url = make_url(postgres_admin_url() or "")
    name = f"tdm1_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on both databases the service supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cards.sqlite3"
    return request.getfixturevalue("postgres_url")


class TcpProxy:
    """A loopback TCP forwarder in front of PostgreSQL: `down()` makes the database unreachable
    (existing connections cut, new ones refused) and `up()` brings it back on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown() first: close() alone leaves a thread blocked in accept() listening.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def flaky_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, object]]:
    """(url, switch) for a database that can be taken down and brought back: switch.down()/up().

    SQLite: "down" is its directory missing (the file cannot be opened); PostgreSQL: a TCP proxy.
    """
    kind = request.param if hasattr(request, "param") else "sqlite"
    if kind == "sqlite":
        folder = tmp_path / "db"
        folder.mkdir()

        class Folder:
            def down(self) -> None:
                folder.rename(tmp_path / "db-away")

            def up(self) -> None:
                (tmp_path / "db-away").rename(folder)

        yield f"sqlite:///{folder}/cards.sqlite3", Folder()
        return
    url = make_url(request.getfixturevalue("postgres_url"))
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.up()
    try:
        yield url.set(port=proxy.port).render_as_string(hide_password=False), proxy
    finally:
        proxy.down()
