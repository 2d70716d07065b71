"""Random (version 4) UUIDs for cards, suggestions and the resources suggestions carry.

uuid.uuid4() makes one getrandom() system call per id, and each call lets go of the GIL: under load
the thread then waits behind the others to get it back (up to the 5 ms switch interval), and a card
with a suggestion needs three ids. Here each thread draws 4 KiB from os.urandom at a time (the same
source, so the ids are as unpredictable) and cuts 16-byte ids from it.
"""

from __future__ import annotations

import os
import threading
import uuid

_BATCH_BYTES = 4096
_ID_BYTES = 16


class _Pool(threading.local):
    data = b""
    offset = 0


_pool = _Pool()


def _forget_after_fork() -> None:
    # A forked process must never hand out the bytes its parent still had: start empty.
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_after_fork)


def random_uuid() -> str:
    pool = _pool
    if pool.offset + _ID_BYTES > len(pool.data):
        pool.data, pool.offset = os.urandom(_BATCH_BYTES), 0
    start = pool.offset
    pool.offset = start + _ID_BYTES
    return str(uuid.UUID(bytes=pool.data[start : start + _ID_BYTES], version=4))
