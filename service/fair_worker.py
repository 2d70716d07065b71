"""A gthread worker that accepts no more than its share of the open connections.

gunicorn's workers race to accept on one listening socket, and a keep-alive connection stays with
the worker that accepted it. An EHR's connection pool (or wrk's 16 connections) opens its
connections at once, and one worker often won most of them: the bench saw splits from 8/8 to 0/16
(bench/RESULTS.md, "Session 6"). At 0/16 one process serves every call on one core, under one
GIL, while the other idles: its queue sets the tail, and throughput halves.

Each worker counts its open connections in its own slot of an array the master shares with every
worker (made before the fork), and marks its slot alive each time its loop asks whether it may
accept. A worker accepts while it holds fewer than ceil((open + 1) / live workers): the share it
would hold after one more. A worker whose loop has not run yet (booting) or not for STALE_SECONDS
(hung, stopping, or gone before the master has reaped it) counts neither its connections nor
itself, so a worker that cannot accept keeps the others from accepting for 3 s at most. A worker with no slot (the hooks below not installed) accepts as
gthread does.

deploy/gunicorn.conf.py assigns a slot in `pre_fork` (assign_slot, in the master) and frees it in
`child_exit` (release_slot).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

SLOTS = 256  # more workers than this share no slot, and accept as plain gthread workers do
# A worker's loop waits at most 1 s for events (gthread's run), then asks again whether it may
# accept: a slot not refreshed for 3 s belongs to a worker that is stuck or gone.
STALE_SECONDS = 3.0
_FREE = 0.0  # a slot's heartbeat while no worker holds it

# One writer per slot (its worker's main thread, or the master while no worker holds it): no lock.
_connections = multiprocessing.RawArray("i", SLOTS)
_heartbeat = multiprocessing.RawArray("d", SLOTS)
_high = multiprocessing.RawValue("i", 0)  # one past the highest slot ever assigned: the loop's end
_assigned: set[int] = set()  # in the master: slots held by a live worker


def assign_slot(worker: Any) -> None:
    """In the master, before the fork: the lowest free slot, or none when all are taken."""
    free = next((slot for slot in range(SLOTS) if slot not in _assigned), None)
    worker.fair_slot = free
    if free is not None:
        _assigned.add(free)
        _connections[free] = 0
        # Not live until its loop first runs: while it boots (or a recycled one's successor does),
        # the others accept as many as they like, rather than keep a share for it waiting.
        _heartbeat[free] = _FREE
        _high.value = max(_high.value, free + 1)


def release_slot(worker: Any) -> None:
    """In the master, once the worker is reaped: its connections are closed with it."""
    slot = getattr(worker, "fair_slot", None)
    if slot is not None:
        _connections[slot] = 0
        _heartbeat[slot] = _FREE
        _assigned.discard(slot)


def share_limit(mine: int, slot: int, now: float) -> int:
    """How many connections this worker may hold before accepting one more: below it, accept."""
    live, total = 0, 0
    # Read on every turn of a worker's loop: only the slots ever used (2 for 2 workers), not all.
    for other in range(max(_high.value, slot + 1)):
        beat = _heartbeat[other]
        if other == slot or (beat != _FREE and now - beat <= STALE_SECONDS):
            live += 1
            total += mine if other == slot else _connections[other]
    return math.ceil((total + 1) / live)


class FairThreadWorker(ThreadWorker):
    """gthread, with `worker_connections` capped at this worker's share (read once per loop turn)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open = 0
        self._configured_connections = 0
        super().__init__(*args, **kwargs)

    @property
    def nr_conns(self) -> int:
        return self._open

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._open = value
        slot = getattr(self, "fair_slot", None)
        if slot is not None:
            _connections[slot] = value

    @property
    def worker_connections(self) -> int:
        slot = getattr(self, "fair_slot", None)
        if slot is None:
            return self._configured_connections
        now = time.monotonic()
        _heartbeat[slot] = now
        return min(self._configured_connections, share_limit(self._open, slot, now))

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._configured_connections = value
