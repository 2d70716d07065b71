"""Prefetch first, the FHIR server for the rest: what a hook call knows about its patient.

Each prefetch key is an explicit choice: used when the client sent a usable value; fetched from
fhirServer when absent, null or an OperationOutcome; reported unavailable when it cannot be
fetched in time. No prefetch at all and no fhirServer is a 412 (the caller decides).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from service import metrics
from service.clinical.record import (
    MEDICATION_ADMINISTRATIONS,
    MEDICATION_REQUESTS,
    MEDICATION_STATEMENTS,
    unresolved_medication_ids,
)
from service.clinical.resources import (
    BundleRead,
    as_dict,
    as_str,
    next_link,
    prefetch_gap,
    read_bundle,
    resource_key,
)
from service.fhir.cache import FetchCache, Scope
from service.fhir.client import FetchResult, FhirClient, run_parallel
from service.protocol import prefetch

FHIR_ID = re.compile(r"(?=.*[A-Za-z0-9])[A-Za-z0-9\-.]{1,64}")


def key_label(key: str) -> str:
    """A key as metrics and logs may name it: a prefetch key, or "medication" for any Medication read.

    A Medication read is keyed "Medication/<id>", an id the client's data chose: as a label it made
    a new time series per id, and in a log line it is a resource id.
    """
    return "medication" if key.startswith("Medication/") else key


class DataNotObtainable(Exception):
    """Data is needed and there is neither prefetch nor a FHIR server: answer 412."""


@dataclass
class ResolvedData:
    resources: list[dict[str, Any]] = field(default_factory=list)
    available: set[str] = field(default_factory=set)
    prefetched_keys: list[str] = field(default_factory=list)
    fetched_keys: list[str] = field(default_factory=list)
    cached_keys: list[str] = field(default_factory=list)  # fetched by a call seconds ago, reused
    failures: dict[str, str] = field(default_factory=dict)  # key -> safe reason
    notes: list[str] = field(default_factory=list)


def resolve(
    context: dict[str, Any],
    prefetched: dict[str, Any] | None,
    client: FhirClient | None,
    *,
    deadline_seconds: float,
    workers: int = 16,
    draft_resources: list[dict[str, Any]] | None = None,
    cache: FetchCache | None = None,
    prefetched_reads: dict[str, BundleRead] | None = None,
    check_total: bool = True,
    excluding: frozenset[str] | set[str] = frozenset(),
) -> ResolvedData:
    """`prefetched_reads`, when given, is read_bundle() of each prefetch value, already walked by the
    caller (a 2,000-resource prefetch costs a millisecond a walk); a key it lacks is walked here.
    `excluding`: the keys ("Type/id") of the call's draft orders, which are not history."""
    deadline = time.monotonic() + deadline_seconds
    prefetched = prefetched or {}
    reads = dict(prefetched_reads or {})
    for key, value in prefetched.items():
        if key not in reads:
            reads[key] = read_bundle(value)
    data = ResolvedData()
    jobs = {}
    queries: dict[str, str] = {}
    fetcher = _Fetcher(client, cache, str(context.get("patientId", "")))
    if client is None and not any(
        prefetch.usable(v, reads[k], check_total=check_total) for k, v in prefetched.items()
    ):
        raise DataNotObtainable("no prefetch was sent and no fhirServer was given")
    for spec in prefetch.specs():
        value = prefetched.get(spec.key)
        if value is not None and prefetch.usable(
            value, reads[spec.key], spec.resource_type, check_total=check_total
        ):
            data.prefetched_keys.append(spec.key)
            more = next_link(as_dict(value))
            if more and client is not None:
                jobs[spec.key] = (spec, _continue(client, spec, value, deadline))
                continue
            if more:
                # Rules that look for an absence (no prior therapy, no LVEF) would fire on what the
                # unread pages hold: the category counts as unavailable, and the card says why.
                data.failures[spec.key] = "prefetch was paged and no FHIR server was given"
                data.notes.append(
                    f"Prefetched {spec.key} was paged and no FHIR server was given: its other pages could not be read."
                )
                continue
            data.resources += reads[spec.key].resources
            data.available.add(spec.category)
            continue
        query = prefetch.render(spec.template, context)
        if (
            client is None
            and value is not None
            and (
                gap := prefetch_gap(value, reads[spec.key], check_total=check_total)
                or reads[spec.key].wrong_type(spec.resource_type)
            )
        ):
            # Sent, but not the whole answer: the card says why, so the EHR's prefetch can be mended.
            data.failures[spec.key] = f"prefetch incomplete: {gap}"
            data.notes.append(f"Prefetched {spec.key} was incomplete ({gap}) and no FHIR server was given.")
            continue
        if client is None or query is None:
            data.failures[spec.key] = (
                "not prefetched and no FHIR server to ask" if client is None else "no patient id"
            )
            continue
        cached = fetcher.cached(spec.key, query)
        if cached is not None:
            data.cached_keys.append(spec.key)
            _use(data, spec.category, cached)
            continue
        queries[spec.key] = query
        jobs[spec.key] = (spec, _search(client, spec.key, query, deadline))
    results = run_parallel({k: job for k, (_spec, job) in jobs.items()}, deadline, workers)
    for key, (spec, _job) in jobs.items():
        result = results[key]
        fetcher.done(key, queries.get(key), result)
        if result.ok and result.truncated:
            # Same reason as a paged prefetch: a partial history must not look like a complete one.
            data.failures[key] = f"more than {result.pages} pages"
            data.notes.append(f"{key}: more than {result.pages} pages of results; they were not all read.")
        elif result.ok:
            data.resources += result.resources
            data.available.add(spec.category)
            if key not in data.prefetched_keys:
                data.fetched_keys.append(key)
        else:
            data.failures[key] = result.error
    _resolve_medications(data, draft_resources or [], fetcher, deadline, workers, excluding)
    return data


def _use(data: ResolvedData, category: str, result: FetchResult) -> None:
    data.resources += result.resources
    data.available.add(category)


class _Fetcher:
    """The FHIR side of one hook call: the fetch cache and the metrics for each query."""

    def __init__(self, client: FhirClient | None, cache: FetchCache | None, patient_id: str) -> None:
        self.client = client
        self._cache = cache if cache is not None and cache.enabled and patient_id else None
        self._scope: Scope | None = (
            client.cache_scope(patient_id) if client is not None and self._cache is not None else None
        )

    def cached(self, key: str, query: str) -> FetchResult | None:
        if self._cache is None or self._scope is None:
            return None
        hit = self._cache.get(self._scope, query)
        if hit is None:
            return None
        return FetchResult(key=key, resources=hit.resources, pages=hit.pages)

    def done(self, key: str, query: str | None, result: FetchResult) -> None:
        """Count the query; keep a complete, successful search (never a prefetch continuation)."""
        label = key_label(key)
        if result.seconds > 0:
            metrics.observe_fhir_fetch(label, result.seconds)
        if not result.ok:
            metrics.fhir_fetch_failed(label, result.reason or "invalid")
        elif result.truncated:  # read, but not all of it: as unusable as a failure
            metrics.fhir_fetch_failed(label, "truncated")
        elif (
            query is not None and not result.truncated and self._cache is not None and self._scope is not None
        ):
            self._cache.put(
                self._scope, query, result.resources, pages=result.pages, truncated=result.truncated
            )


def _search(client: FhirClient, key: str, query: str, deadline: float):
    return lambda: client.search(key, query, deadline)


def _continue(client: FhirClient, spec: prefetch.PrefetchKey, bundle: dict[str, Any], deadline: float):
    return lambda: client.continue_paging(spec.key, bundle, deadline, spec.resource_type)


def _resolve_medications(
    data: ResolvedData,
    drafts: list[dict[str, Any]],
    fetcher: _Fetcher,
    deadline: float,
    workers: int,
    excluding: frozenset[str] | set[str] = frozenset(),
) -> None:
    _read_medications(data, drafts, fetcher, deadline, workers)
    _set_aside_unidentified_history(data, excluding)


_HISTORY_CATEGORIES = {
    "MedicationRequest": MEDICATION_REQUESTS,
    "MedicationAdministration": MEDICATION_ADMINISTRATIONS,
    "MedicationStatement": MEDICATION_STATEMENTS,
}


def _set_aside_unidentified_history(data: ResolvedData, excluding: frozenset[str] | set[str]) -> None:
    """A history entry that names its drug only through a Medication that could not be read (the read
    failed or timed out, it was not prefetched and there is no server, its id is malformed): a
    check for prior HER2 therapy would take it for no therapy. Its category counts as unavailable,
    and the card says why. One whose reference has a display is identified by that text, as before;
    `excluding` (the call's draft orders, returned by the server too) is not history."""
    known = {f"Medication/{r.get('id')}": r for r in data.resources if r.get("resourceType") == "Medication"}
    blind: dict[str, int] = {}
    for resource in data.resources:
        category = _HISTORY_CATEGORIES.get(resource.get("resourceType"))
        if category is None or "medicationReference" not in resource or category not in data.available:
            continue
        if resource_key(resource) in excluding:
            continue
        if as_str(as_dict(resource.get("medicationReference")).get("display")):
            continue
        if unresolved_medication_ids([resource], known):
            blind[category] = blind.get(category, 0) + 1
    if blind:
        data.available -= set(blind)
        data.notes.append(
            f"{sum(blind.values())} medication history entr{'y' if sum(blind.values()) == 1 else 'ies'} "
            "named the drug only by a Medication that could not be read: what the patient received "
            "is not known."
        )


def _read_medications(
    data: ResolvedData, drafts: list[dict[str, Any]], fetcher: _Fetcher, deadline: float, workers: int
) -> None:
    """medicationReference to a Medication that was neither contained nor prefetched: read it."""
    known = {f"Medication/{r.get('id')}": r for r in data.resources if r.get("resourceType") == "Medication"}
    # Only well-formed FHIR ids go into a URL: a crafted reference must not walk the server's paths.
    wanted = sorted(
        i for i in unresolved_medication_ids(data.resources + drafts, known) if FHIR_ID.fullmatch(i)
    )[:50]
    client = fetcher.client
    if not wanted or client is None:
        if wanted:
            data.notes.append(
                f"{len(wanted)} referenced Medication resource(s) were not provided; those orders could not be identified."
            )
        return
    jobs = {}
    for mid in wanted:
        key = f"Medication/{mid}"
        cached = fetcher.cached(key, key)
        if cached is not None:
            data.resources += cached.resources
        else:
            jobs[key] = _search(client, key, key, deadline)
    results: dict[str, FetchResult] = run_parallel(jobs, deadline, workers)
    for key, result in results.items():
        fetcher.done(key, key, result)
        if result.ok:
            data.resources += result.resources
        else:
            data.failures[key] = result.error
