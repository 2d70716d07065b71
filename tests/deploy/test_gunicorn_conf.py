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
