"""A short-lived, per-worker cache of what was fetched from a fhirServer for one patient.

Why: an EHR calls order-select when the clinician picks the order and order-sign seconds later for
the same draft. Without prefetch, both calls would make the same queries; the second can reuse the
first's answers and be fast.

What keeps it safe:
- The key is (fhirServer base URL, patient id, fingerprint of the access token, query). Two
  patients, two servers or two tokens (two users, two sessions) never share an entry; a query
  that names another patient cannot be answered from this patient's entries.
- The fingerprint is an HMAC under a key made at process start and never written anywhere: the
  token itself is never held, and the fingerprint cannot be tested against guessed tokens offline.
- Only data that was fetched, complete and without error, is stored; prefetch is never stored (the
  EHR sends it again), failures are never stored (the next call tries again).
- Entries live `ttl_seconds` (default 30 s) and the whole cache holds at most `max_bytes` of JSON;
  the oldest entries go first. A TTL of 0 turns it off.
- Values are stored as JSON bytes and parsed on every hit, so a caller that changes a resource
  cannot change what the next call sees.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_PROCESS_KEY = secrets.token_bytes(32)


def token_fingerprint(token: str | None) -> str:
    if not token:
        return "-"
    return hmac.new(_PROCESS_KEY, token.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Scope:
    """Whose data an entry is: one server, one patient, one token."""

    server: str
    patient_id: str
    token_fingerprint: str


@dataclass(frozen=True)
class CachedResult:
    resources: list[dict[str, Any]]
    pages: int
    truncated: bool


class FetchCache:
    def __init__(
        self,
        ttl_seconds: float = 30.0,
        max_bytes: int = 32 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (expires_at, payload); insertion order = age, for eviction.
        self._entries: OrderedDict[tuple[Scope, str], tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0 and self.max_bytes > 0

    def get(self, scope: Scope, query: str) -> CachedResult | None:
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            entry = self._entries.get((scope, query))
            if entry is None:
                return None
            expires_at, payload = entry
            if expires_at <= now:
                self._drop((scope, query))
                return None
        document = json.loads(payload)
        return CachedResult(document["resources"], document["pages"], document["truncated"])

    def put(
        self, scope: Scope, query: str, resources: list[dict[str, Any]], *, pages: int, truncated: bool
    ) -> None:
        if not self.enabled:
            return
        payload = json.dumps({"resources": resources, "pages": pages, "truncated": truncated}).encode()
        if len(payload) > self.max_bytes:
            return
        now = self._clock()
        with self._lock:
            key = (scope, query)
            self._drop(key)
            self._entries[key] = (now + self.ttl_seconds, payload)
            self._bytes += len(payload)
            self._evict(now)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _drop(self, key: tuple[Scope, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])

    def _evict(self, now: float) -> None:
        # Expired entries first (all are in age order, and all have the same TTL), then the oldest
        # live ones until the byte budget holds.
        while self._entries:
            key, (expires_at, _payload) = next(iter(self._entries.items()))
            if expires_at > now and self._bytes <= self.max_bytes:
                break
            self._drop(key)
