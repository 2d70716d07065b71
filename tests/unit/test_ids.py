"""Card and suggestion ids: version 4 UUIDs, never repeated, within a thread, across threads and
across a fork (gunicorn forks its workers from one master)."""

from __future__ import annotations

import os
import threading
import uuid

from service.ids import random_uuid


def test_ids_are_version_4_uuids_and_do_not_repeat_across_batches() -> None:
    ids = [random_uuid() for _ in range(2000)]  # several 4 KiB batches
    assert len(set(ids)) == len(ids)
    for text in ids[:50]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


def test_threads_draw_their_own_ids() -> None:
    found: list[list[str]] = [[] for _ in range(4)]

    def draw(slot: int) -> None:
        found[slot] = [random_uuid() for _ in range(500)]

    threads = [threading.Thread(target=draw, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for ids in found for i in ids]
    assert len(set(every)) == 2000


def test_a_forked_child_does_not_reuse_its_parents_bytes() -> None:
    random_uuid()  # the parent now holds a partly used batch
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent, then out without cleanup
        os.close(read)
        os.write(write, ",".join(random_uuid() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [random_uuid() for _ in range(10)]
    assert len(child) == 10 and not set(child) & set(parent)
