"""Prometheus metrics for tdm1-cds, and the small helpers the rest of the service calls.

Labels are bounded on purpose: service ids, route names, prefetch keys, rule ids and reason codes
only. A patient id, a URL, a token or an exception message never becomes a label (cardinality and
privacy both).

Multi-process gunicorn: prometheus_client picks its value store when it is first imported, from
PROMETHEUS_MULTIPROC_DIR. `tdm1-cds serve` sets that variable before anything imports this module
when it runs more than one worker (service/metrics_dir.py), gunicorn.conf.py marks dead workers, and
`render()` aggregates every worker's files; otherwise each scrape would see one worker's share.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Hook calls answer within ~500 ms by the spec's advice; FHIR fetches share a 2 s deadline.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "tdm1_cds_http_requests",
    "HTTP requests answered, by CDS service (or '-' for non-service routes), route and status code.",
    ["service", "route", "status"],
)
HOOK_LATENCY = Histogram(
    "tdm1_cds_hook_duration_seconds",
    "Time to answer a hook call, by CDS service and hook.",
    ["service", "hook"],
    buckets=_LATENCY_BUCKETS,
)
FHIR_FETCH_LATENCY = Histogram(
    "tdm1_cds_fhir_fetch_duration_seconds",
    "Time of one FHIR query to the client's fhirServer (all pages), by prefetch key.",
    ["key"],
    buckets=_LATENCY_BUCKETS,
)
FHIR_FETCH_FAILURES = Counter(
    "tdm1_cds_fhir_fetch_failures",
    "FHIR queries that did not give data, by prefetch key and reason (timeout, http_4xx, http_5xx, network, invalid, incomplete, truncated).",
    ["key", "reason"],
)
CARDS_ISSUED = Counter(
    "tdm1_cds_cards_issued",
    "Cards returned to the EHR, by rule id and indicator.",
    ["rule", "indicator"],
)
JWT_FAILURES = Counter(
    "tdm1_cds_jwt_failures",
    "Hook calls refused by JWT verification, by reason (missing, malformed, signature, issuer, audience, expired, replay, ...).",
    ["reason"],
)
PREFETCH_KEYS = Counter(
    "tdm1_cds_prefetch_keys",
    "Prefetch keys a hook call needed, by key and how they were obtained (prefetched, fetched, cached, unavailable).",
    ["key", "source"],
)
CARD_LOG_WRITE_FAILURES = Counter(
    "tdm1_cds_card_log_write_failures",
    "Issued-card log writes that failed after retrying; the EHR still got its cards.",
    ["service"],
)
CARD_LOG_DROPPED = Counter(
    "tdm1_cds_card_log_dropped",
    "Issued cards never logged: the in-process backlog was full while the database was down.",
)
FEEDBACK_ITEMS = Counter(
    "tdm1_cds_feedback_items",
    "Feedback items received, by outcome and whether they were new or a repeat.",
    ["outcome", "stored"],
)

_LABEL_SAFE = re.compile(r"[^A-Za-z0-9_.:/<>\-]")


def _label(value: object, limit: int = 64) -> str:
    """A bounded, printable label value: callers pass codes, but a slip must not explode cardinality."""
    try:
        return _bounded(value, limit)
    except TypeError:  # unhashable (a slip passing a dict or list): not cached, still bounded
        return _bounded(str(value), limit)


@lru_cache(maxsize=4096)
def _bounded(value: object, limit: int) -> str:
    text = _LABEL_SAFE.sub("_", str(value))[:limit]
    return text or "-"


@lru_cache(maxsize=4096)
def _child(metric: Any, *labels: str) -> Any:
    """metric.labels(...), kept: it validates and looks up under a lock on every call, and a hook call
    updates a dozen children, the same ones call after call. The cache is bounded, as the labels are;
    a child survives gunicorn's fork (prometheus_client re-opens its files in the new process)."""
    return metric.labels(*labels)


def observe_request(service: str, route: str, status: int) -> None:
    _child(HTTP_REQUESTS, _label(service), _label(route), str(int(status))).inc()


def observe_hook(service: str, hook: str, seconds: float) -> None:
    _child(HOOK_LATENCY, _label(service), _label(hook)).observe(max(seconds, 0.0))


def observe_fhir_fetch(key: str, seconds: float) -> None:
    """One FHIR query finished (successfully or not): how long it took, per prefetch key."""
    _child(FHIR_FETCH_LATENCY, _label(key)).observe(max(seconds, 0.0))


def fhir_fetch_failed(key: str, reason: str) -> None:
    _child(FHIR_FETCH_FAILURES, _label(key), _label(reason, 32)).inc()


def cards_issued(cards: Iterable[dict]) -> None:
    for card in cards:
        topic = card.get("source", {}).get("topic", {}) if isinstance(card, dict) else {}
        _child(CARDS_ISSUED, _label(topic.get("code", "-")), _label(card.get("indicator", "-"), 16)).inc()


def jwt_failure(reason: str) -> None:
    _child(JWT_FAILURES, _label(reason, 32)).inc()


def prefetch_keys(
    prefetched: Iterable[str],
    fetched: Iterable[str],
    unavailable: Iterable[str] = (),
    cached: Iterable[str] = (),
) -> None:
    sources = (
        ("prefetched", prefetched),
        ("fetched", fetched),
        ("cached", cached),
        ("unavailable", unavailable),
    )
    for source, keys in sources:
        for key in keys:
            _child(PREFETCH_KEYS, _label(key), source).inc()


def card_log_write_failed(service: str) -> None:
    _child(CARD_LOG_WRITE_FAILURES, _label(service)).inc()


def card_log_dropped(cards: int) -> None:
    CARD_LOG_DROPPED.inc(cards)


def feedback_received(outcome: str, new: bool) -> None:
    _child(FEEDBACK_ITEMS, _label(outcome, 16), "new" if new else "repeat").inc()


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> tuple[bytes, str]:
    """The exposition text for GET /metrics: every worker's metrics in multi-process mode."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """gunicorn child_exit: drop a dead worker's live-gauge files (counters stay summed)."""
    if multiprocess_enabled():
        _multiprocess.mark_process_dead(pid)
