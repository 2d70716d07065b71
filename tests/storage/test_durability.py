"""The real server (gunicorn, several workers): acknowledged writes survive kill -9 of everything,
and /metrics keeps the counts of workers that died."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select

from service.store import Feedback
from tests.integration.conftest import start_server, stop_server

pytestmark = pytest.mark.integration
FEEDBACK = "/cds-services/tdm1-order-sign/feedback"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_for(predicate, what: str, attempts: int = 150) -> None:
    """Poll a bounded number of times; the bound is a safety net, not a performance claim."""
    for _ in range(attempts):
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def _item(card: str) -> dict:
    return {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-25T09:00:00Z"}]}


def test_acknowledged_feedback_survives_kill_9_mid_write(database_url: str, tmp_path: Path) -> None:
    env = {"TDM1_CDS_DATABASE_URL": database_url}
    process, base = start_server(tmp_path, env, workers=2)
    acknowledged: list[str] = []
    stop = threading.Event()

    def post(prefix: str) -> None:
        session = requests.Session()
        for n in range(5000):
            if stop.is_set():
                return
            card = f"{prefix}-{n}"
            try:
                response = session.post(base + FEEDBACK, json=_item(card), timeout=10)
            except requests.RequestException:
                return  # the server is gone: what was not acknowledged may or may not be stored
            if response.status_code == 200 and response.json()["stored"] == 1:
                acknowledged.append(card)

    writers = [threading.Thread(target=post, args=(f"w{i}",)) for i in range(3)]
    try:
        for writer in writers:
            writer.start()
        _wait_for(lambda: len(acknowledged) >= 30, "30 acknowledged feedback posts")
        # Everything at once, while the writers are still posting: no graceful anything.
        for pid in [process.pid, *_children(process.pid)]:
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
        if process.poll() is None:
            process.kill()
    _wait_for(lambda: not _children(process.pid), "orphaned workers to exit")
    snapshot = list(acknowledged)

    process, base = start_server(tmp_path, env, workers=2)
    try:
        engine = create_engine(database_url)
        with engine.connect() as connection:
            stored = set(connection.scalars(select(Feedback.card_uuid)))
        engine.dispose()
        missing = [card for card in snapshot if card not in stored]
        assert not missing, f"{len(missing)} acknowledged feedback items lost: {missing[:5]}"
        # And still exactly once after the restart.
        again = requests.post(base + FEEDBACK, json=_item(snapshot[0]), timeout=10)
        assert again.status_code == 200 and again.json()["stored"] == 0
    finally:
        stop_server(process)


def _metric(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(part in line for part in labels.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_add_up_across_workers_even_after_they_die(tmp_path: Path) -> None:
    process, base = start_server(tmp_path, workers=2)
    try:
        answered = 0
        for _ in range(20):
            # A new connection each time, so the kernel spreads them over the workers.
            if requests.get(base + "/cds-services", timeout=10, headers={"Connection": "close"}).ok:
                answered += 1
        # /healthz answered once one worker was up; on a loaded machine the second may still be
        # starting (a CI run found one). Wait for both, boundedly, before killing them.
        try:
            _wait_for(lambda: len(_children(process.pid)) == 2, "two workers")
        except AssertionError:
            log = (tmp_path / "server.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"never two workers; the server's log ends: {log}") from None
        workers = _children(process.pid)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)  # their in-memory counts die with them; the files stay
        _wait_for(lambda: len(set(_children(process.pid)) - set(workers)) == 2, "replacement workers")

        def scrape() -> str | None:
            try:
                return requests.get(base + "/metrics", timeout=10).text
            except requests.RequestException:
                return None

        _wait_for(lambda: scrape() is not None, "a replacement worker to answer")
        text = scrape() or ""
        route = 'route="/cds-services",status="200"'
        assert _metric(text, "tdm1_cds_http_requests_total", route) == answered
    finally:
        stop_server(process)


@pytest.mark.parametrize("flaky_database", ["postgresql"], indirect=True)
def test_cards_issued_while_the_database_was_down_are_written_when_the_worker_stops(
    flaky_database, tmp_path: Path
) -> None:
    """The card log's backlog lives in the worker's memory: a worker that stops (SIGTERM at a rolling
    update, a max_requests recycle) with cards still waiting took them with it, uncounted."""
    from service.store import IssuedCard
    from tests import fhir_builders as fb

    url, switch = flaky_database
    process, base = start_server(tmp_path, {"TDM1_CDS_DATABASE_URL": url}, workers=1)
    request = fb.hook_request(
        "order-sign", drafts=[fb.medication_request()], history=fb.metastatic_history(prior_her2=False)
    )
    try:
        switch.down()
        response = requests.post(f"{base}/cds-services/tdm1-order-sign", json=request, timeout=30)
        assert response.status_code == 200
        (card,) = response.json()["cards"]
        switch.up()  # back, but nothing writes the waiting card before the worker stops
    finally:
        stop_server(process)
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "card log write failed; cards kept for retry" in log  # it did wait in the backlog
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            logged = set(connection.scalars(select(IssuedCard.uuid)))
    finally:
        engine.dispose()
    assert card["uuid"] in logged
