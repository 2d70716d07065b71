"""deploy/gunicorn.conf.py: the collector settings each worker applies, and a bad value refused."""

from __future__ import annotations

import gc
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "deploy" / "gunicorn.conf.py"


def _load(monkeypatch: pytest.MonkeyPatch, value: str | None) -> dict[str, Any]:
    if value is None:
        monkeypatch.delenv("TDM1_CDS_GC_THRESHOLDS", raising=False)
    else:
        monkeypatch.setenv("TDM1_CDS_GC_THRESHOLDS", value)
    return runpy.run_path(str(CONF))


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_each_worker_raises_the_collector_thresholds_by_default(monkeypatch, restore_gc):
    conf = _load(monkeypatch, None)
    gc.set_threshold(700, 10, 10)
    conf["post_worker_init"](worker=None)
    assert gc.get_threshold() == (50000, 20, 10)
    assert gc.get_freeze_count() > 0


def test_the_thresholds_can_be_set_back_to_cpythons(monkeypatch, restore_gc):
    conf = _load(monkeypatch, "700,10,10")
    gc.set_threshold(1, 1, 1)
    conf["post_worker_init"](worker=None)
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("value", ["", "50000", "50000,20", "50000,20,10,5", "a,b,c", "0,20,10", "-1,2,3"])
def test_a_bad_value_stops_the_start_naming_the_variable(monkeypatch, value):
    with pytest.raises(SystemExit) as stopped:
        _load(monkeypatch, value)
    assert "TDM1_CDS_GC_THRESHOLDS" in str(stopped.value)
    assert "three positive integers" in str(stopped.value)


def test_serve_refuses_a_bad_value_before_listening(tmp_path):
    env = {
        **os.environ,
        "TDM1_CDS_GC_THRESHOLDS": "fast",
        "TDM1_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--dev", "--port", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "TDM1_CDS_GC_THRESHOLDS='fast'" in done.stderr


_COUNT_ARENAS = r"""
import ctypes, os, runpy, sys, tempfile, threading
conf = runpy.run_path(sys.argv[1])
if sys.argv[2] == "limit":
    assert conf["limit_malloc_arenas"]() is True
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
barrier = threading.Barrier(12)
def allocate():
    block = libc.malloc(200_000)  # each new thread is given an arena on its first malloc
    barrier.wait()  # all alive at once, so none can inherit another's arena
    libc.free(block)
threads = [threading.Thread(target=allocate) for _ in range(12)]
for t in threads: t.start()
for t in threads: t.join()
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_char_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
path = tempfile.mktemp()
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
print(open(path).read().count("<heap nr="))
os.unlink(path)
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_ARENAS, str(CONF), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc arenas")
def test_each_worker_limits_glibc_malloc_arenas():
    """Twelve threads allocating at once get up to 12 arenas from glibc, 2 after the worker's
    post_fork limit (the soak's memory growth came from per-thread arenas)."""
    assert _arenas("default") > 2
    assert _arenas("limit") <= 2


def test_an_operators_malloc_arena_max_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    conf = runpy.run_path(str(CONF))
    assert conf["limit_malloc_arenas"]() is False


def _filtered(monkeypatch: pytest.MonkeyPatch, msg: str, *args: object) -> str:
    import logging

    record = logging.makeLogRecord({"name": "gunicorn.error", "msg": msg, "args": args})
    assert _load(monkeypatch, None)["WITHHOLD_REQUEST_DATA"].filter(record) is True
    return record.getMessage()


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (
            "Invalid HTTP request line: 'GET /x?patient=pat-9 HTTP/1.1'",
            "Invalid HTTP request line (detail withheld)",
        ),
        ("Invalid HTTP Header: 'Authorization Bearer eyJ.x.y'", "Invalid HTTP Header (detail withheld)"),
        ("Invalid chunk size: b'pat-9'", "Invalid chunk size (detail withheld)"),
        ("No more data after: b'pat-9'", "No more data after (detail withheld)"),
        ("Request Line is too large (8190 > 4094)", "Request Line is too large (8190 > 4094)"),
    ],
)
def test_gunicorn_names_a_request_it_cannot_parse_without_quoting_it(monkeypatch, error: str, kept: str):
    line = _filtered(monkeypatch, f"Invalid request from ip=2001:db8::1: {error}")
    assert line == f"Invalid request from ip=2001:db8::1: {kept}"


def test_gunicorn_names_a_failed_request_by_its_path_without_the_query(monkeypatch):
    import logging

    line = _filtered(monkeypatch, "Error handling request %s %s", "GET", "/cds-services?patient=pat-9")
    assert line == "Error handling request GET /cds-services"
    assert _filtered(monkeypatch, "Worker exiting (pid: %s)", 12) == "Worker exiting (pid: 12)"
    record = logging.makeLogRecord({"name": "gunicorn.error", "msg": "two %s %s", "args": ("one",)})
    assert _load(monkeypatch, None)["WITHHOLD_REQUEST_DATA"].filter(record) is True  # not raised here


def test_the_filter_is_on_gunicorns_error_log_before_workers_fork(monkeypatch):
    import logging

    conf = _load(monkeypatch, None)
    logger = logging.getLogger("gunicorn.error")
    try:
        conf["on_starting"](server=None)
        assert conf["WITHHOLD_REQUEST_DATA"] in logger.filters
    finally:
        logger.removeFilter(conf["WITHHOLD_REQUEST_DATA"])


def test_a_stopping_worker_drains_the_card_log_backlog(monkeypatch):
    class Store:
        drained = 0

        def drain(self) -> int:
            self.drained += 1
            return 0

    class Worker:
        wsgi = type("App", (), {"config": {"STORE": Store()}})()

    conf = _load(monkeypatch, None)
    worker = Worker()
    conf["worker_exit"](server=None, worker=worker)
    assert worker.wsgi.config["STORE"].drained == 1
    conf["worker_exit"](server=None, worker=object())  # no app loaded (it failed to start): nothing to do
