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

from service.clinical.record import unresolved_medication_ids
from service.clinical.resources import as_dict, bundle_resources
from service.fhir.client import FetchResult, FhirClient, next_link, run_parallel
from service.protocol import prefetch

FHIR_ID = re.compile(r"(?=.*[A-Za-z0-9])[A-Za-z0-9\-.]{1,64}")


class DataNotObtainable(Exception):
    """Data is needed and there is neither prefetch nor a FHIR server: answer 412."""


@dataclass
class ResolvedData:
    resources: list[dict[str, Any]] = field(default_factory=list)
    available: set[str] = field(default_factory=set)
    prefetched_keys: list[str] = field(default_factory=list)
    fetched_keys: list[str] = field(default_factory=list)
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
) -> ResolvedData:
    deadline = time.monotonic() + deadline_seconds
    prefetched = prefetched or {}
    data = ResolvedData()
    jobs = {}
    if client is None and not any(prefetch.usable(v) for v in prefetched.values()):
        raise DataNotObtainable("no prefetch was sent and no fhirServer was given")
    for spec in prefetch.specs():
        value = prefetched.get(spec.key)
        if prefetch.usable(value):
            data.prefetched_keys.append(spec.key)
            more = next_link(as_dict(value))
            if more and client is not None:
                jobs[spec.key] = (spec, _continue(client, spec.key, value, deadline))
                continue
            data.resources += list(bundle_resources(value))
            data.available.add(spec.category)
            if more:
                data.notes.append(
                    f"Prefetched {spec.key} was paged and no FHIR server was given: only its first page was read."
                )
            continue
        query = prefetch.render(spec.template, context)
        if client is None or query is None:
            data.failures[spec.key] = (
                "not prefetched and no FHIR server to ask" if client is None else "no patient id"
            )
            continue
        jobs[spec.key] = (spec, _search(client, spec.key, query, deadline))
    results = run_parallel({k: job for k, (_spec, job) in jobs.items()}, deadline, workers)
    for key, (spec, _job) in jobs.items():
        result = results[key]
        if result.ok:
            data.resources += result.resources
            data.available.add(spec.category)
            if key not in data.prefetched_keys:
                data.fetched_keys.append(key)
            if result.truncated:
                data.notes.append(f"{key}: more than {result.pages} pages; the oldest results were not read.")
        else:
            data.failures[key] = result.error
    _resolve_medications(data, draft_resources or [], client, deadline, workers)
    return data


def _search(client: FhirClient, key: str, query: str, deadline: float):
    return lambda: client.search(key, query, deadline)


def _continue(client: FhirClient, key: str, bundle: dict[str, Any], deadline: float):
    return lambda: client.continue_paging(key, bundle, deadline)


def _resolve_medications(
    data: ResolvedData, drafts: list[dict[str, Any]], client: FhirClient | None, deadline: float, workers: int
) -> None:
    """medicationReference to a Medication that was neither contained nor prefetched: read it."""
    known = {f"Medication/{r.get('id')}": r for r in data.resources if r.get("resourceType") == "Medication"}
    # Only well-formed FHIR ids go into a URL: a crafted reference must not walk the server's paths.
    wanted = sorted(
        i for i in unresolved_medication_ids(data.resources + drafts, known) if FHIR_ID.fullmatch(i)
    )[:50]
    if not wanted or client is None:
        if wanted:
            data.notes.append(
                f"{len(wanted)} referenced Medication resource(s) were not provided; those orders could not be identified."
            )
        return
    jobs = {
        f"Medication/{mid}": _search(client, f"Medication/{mid}", f"Medication/{mid}", deadline)
        for mid in wanted
    }
    results: dict[str, FetchResult] = run_parallel(jobs, deadline, workers)
    for key, result in results.items():
        if result.ok:
            data.resources += result.resources
        else:
            data.failures[key] = result.error
