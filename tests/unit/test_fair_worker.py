"""service/fair_worker.py: each gunicorn worker accepts no more than its share of the open connections."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from service import fair_worker as fw


@pytest.fixture(autouse=True)
def fresh_slots():
    """The arrays are the master's, shared by every worker: start each test with none assigned."""
    saved = set(fw._assigned)
    for slot in range(fw.SLOTS):
        fw._connections[slot], fw._heartbeat[slot] = 0, fw._FREE
    fw._assigned.clear()
    fw._high.value = 0
    yield
    fw._assigned.clear()
    fw._assigned.update(saved)


def started(count: int) -> list[SimpleNamespace]:
    workers = [SimpleNamespace() for _ in range(count)]
    for worker in workers:
        fw.assign_slot(worker)
    return workers


def looping(worker: SimpleNamespace, connections: int, now: float) -> None:
    """As the worker's loop leaves it: its count, and its heartbeat of this turn."""
    fw._connections[worker.fair_slot] = connections
    fw._heartbeat[worker.fair_slot] = now


def test_slots_are_the_lowest_free_and_freed_when_the_worker_is_reaped() -> None:
    a, b = started(2)
    assert (a.fair_slot, b.fair_slot) == (0, 1)
    looping(a, 5, time.monotonic())
    fw.release_slot(a)
    assert fw._connections[0] == 0 and fw._heartbeat[0] == fw._FREE
    (c,) = started(1)
    assert c.fair_slot == 0


def test_no_slot_left_means_plain_gthread() -> None:
    workers = started(fw.SLOTS + 1)
    assert workers[-1].fair_slot is None


@pytest.mark.parametrize(
    ("mine", "theirs", "may_accept"),
    [(0, 0, True), (1, 0, False), (0, 1, True), (1, 1, True), (2, 1, False), (8, 7, False), (7, 8, True)],
)
def test_a_worker_accepts_only_below_its_share_after_one_more(
    mine: int, theirs: int, may_accept: bool
) -> None:
    a, b = started(2)
    now = time.monotonic()
    looping(a, mine, now)
    looping(b, theirs, now)
    assert (mine < fw.share_limit(mine, a.fair_slot, now)) is may_accept


def test_sixteen_connections_arriving_one_by_one_split_eight_eight() -> None:
    a, b = started(2)
    counts = {a.fair_slot: 0, b.fair_slot: 0}
    for _ in range(16):
        now = time.monotonic()
        # The worker that wins the race accepts if its share allows; else the other one does.
        for winner in (a, b):
            looping(winner, counts[winner.fair_slot], now)
        for winner in (a, b):
            if counts[winner.fair_slot] < fw.share_limit(counts[winner.fair_slot], winner.fair_slot, now):
                counts[winner.fair_slot] += 1
                fw._connections[winner.fair_slot] = counts[winner.fair_slot]
                break
    assert sorted(counts.values()) == [8, 8]


@pytest.mark.parametrize("state", ["booting", "stale"])
def test_a_worker_that_is_not_looping_holds_no_share_back(state: str) -> None:
    a, b = started(2)
    now = time.monotonic()
    looping(a, 6, now)
    fw._connections[b.fair_slot] = 2
    if state == "stale":
        fw._heartbeat[b.fair_slot] = now - fw.STALE_SECONDS - 0.1
    # Alone: a's share is every connection open plus one.
    assert fw.share_limit(6, a.fair_slot, now) == 7


def test_a_worker_exactly_stale_seconds_quiet_still_counts() -> None:
    a, b = started(2)
    now = time.monotonic()
    looping(a, 3, now)
    looping(b, 0, now - fw.STALE_SECONDS)
    assert fw.share_limit(3, a.fair_slot, now) == 2
