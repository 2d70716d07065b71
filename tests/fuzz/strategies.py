"""Hypothesis strategies for FHIR R4 JSON as real and broken clients send it, and for mutating it.

Three layers:
- `resources()`: plausible R4 resources of the kinds the service reads (and some it does not),
  built with the same codes the rules look for, so that generated data gets past the cheap exits
  (a T-DM1 order is recognised) and into record building, rules and card rendering;
- `mutated()`: any JSON value with one node replaced by something hostile: wrong type, missing,
  huge string or array, deep nesting, NaN-free numbers at the edges, dates without zones, R5/STU3
  shapes, unknown resourceTypes;
- `raw_bodies()`: bytes that are not JSON the way Python writes it: non-UTF-8, NaN/Infinity,
  truncated documents, BOMs, duplicate keys.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hypothesis import strategies as st

from tests import fhir_builders as fb

RESOURCE_TYPES = [
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationStatement",
    "Medication",
    "Bundle",
    "OperationOutcome",
    "Encounter",
    "Basic",
    "NotARealType",
    "",
]
RXNORM_CODES = [code for code, _display in fb.DRUGS.values()] + ["1371041", "0", "x" * 40]
LOINC_CODES = [code for code, _d, _u in fb.LABS.values()] + ["97509-4", "48676-1", "85319-2", "0000-0"]
UNITS = [
    "mg/kg",
    "mg",
    "kg",
    "g",
    "[lb_av]",
    "10*3/uL",
    "10*9/L",
    "/mm3",
    "U/L",
    "mg/dL",
    "umol/L",
    "%",
    "",
    "??",
]


def dates() -> st.SearchStrategy[Any]:
    """Dates as clients write them, valid or not: with and without zones, partial, impossible."""
    return st.one_of(
        st.sampled_from(
            [
                "2026-11-24",
                "2026-11",
                "2026",
                "2026-11-24T08:00:00",  # no time zone
                "2026-11-24T08:00:00Z",
                "2026-11-24T08:00:00+14:00",
                "2026-11-24T08:00:00.123456789-12:00",
                "2026-02-30",
                "0000-01-01",
                "9999-12-31T23:59:59Z",
                "9999-12-31",  # a cycle later is past the calendar (was a 500)
                "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC (was a 500)
                "9999-12-31T23:59:59-01:00",
                "24/11/2026",
                "yesterday",
                "",
                "2026-11-24T25:61:61Z",
                "\u0000",
            ]
        ),
        st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
        st.integers(),
        st.none(),
    )


def numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(
            [0, -1, 3.6, 3.0, 2.4, 4.4, 5.4, 1e308, -1e308, 5e-324, 10**30, 2**63, "3.6", "", None, True]
        ),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(),
    )


def huge_strings() -> st.SearchStrategy[str]:
    return st.sampled_from(["x" * 100_000, "é" * 20_000, "\u202e" * 1000, "\ud7ff" * 10, "<script>" * 500])


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), numbers(), st.text(max_size=40), huge_strings())


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for index in range(depth):
        value = [value] if index % 2 else {"a": value}
    return value


def hostile_values() -> st.SearchStrategy[Any]:
    """What replaces a node when a document is mutated."""
    return st.one_of(
        scalars(),
        json_values(),
        dates(),
        st.integers(min_value=10, max_value=200).map(deep),
        st.sampled_from([[], {}, [None] * 5000, [{}] * 2000, {"resourceType": "Bundle"}, {"reference": "#"}]),
    )


def codings(system: str, codes: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    coding = st.fixed_dictionaries(
        {
            "system": st.just(system) | st.text(max_size=20),
            "code": st.sampled_from(codes) | st.text(max_size=10),
        },
        optional={"display": st.text(max_size=30)},
    )
    return st.fixed_dictionaries(
        {"coding": st.lists(coding, max_size=3)}, optional={"text": st.text(max_size=30)}
    )


def quantities() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"value": numbers()},
        optional={
            "unit": st.sampled_from(UNITS),
            "code": st.sampled_from(UNITS),
            "system": st.just(fb.UCUM),
            "comparator": st.sampled_from(["<", ">", "<=", ">=", "ad"]),
        },
    )


def subject() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"reference": st.sampled_from(["Patient/pat-1", "Patient/other", "pat-1", "", "#p"])}
    )


def medication_requests() -> st.SearchStrategy[dict[str, Any]]:
    dose = st.fixed_dictionaries({}, optional={"doseQuantity": quantities(), "doseRange": st.just({})})
    dosage = st.fixed_dictionaries(
        {},
        optional={
            "text": st.text(max_size=40),
            "doseAndRate": st.lists(dose, max_size=2),
            "doseQuantity": quantities(),  # STU3 shape
            "timing": st.fixed_dictionaries(
                {},
                optional={
                    "repeat": st.fixed_dictionaries(
                        {},
                        optional={
                            "count": numbers(),
                            "period": numbers(),
                            "periodUnit": st.sampled_from(["d", "wk", "mo", "", "x"]),
                            "boundsPeriod": st.fixed_dictionaries(
                                {}, optional={"start": dates(), "end": dates()}
                            ),
                            "boundsDuration": quantities(),
                        },
                    )
                },
            ),
        },
    )
    return st.fixed_dictionaries(
        {"resourceType": st.just("MedicationRequest")},
        optional={
            "id": st.text(min_size=1, max_size=20) | st.integers(),
            "status": st.sampled_from(
                ["draft", "active", "completed", "stopped", "on-hold", "entered-in-error", ""]
            ),
            "intent": st.sampled_from(["order", "plan", "proposal", "original-order"]),
            "medicationCodeableConcept": codings(fb.RXNORM, RXNORM_CODES),
            "medicationReference": st.fixed_dictionaries(
                {"reference": st.sampled_from(["Medication/m1", "#m1", "Medication/", "urn:uuid:x"])}
            ),
            "medication": st.fixed_dictionaries(
                {"concept": codings(fb.RXNORM, RXNORM_CODES)}
            ),  # R5 CodeableReference
            "contained": st.lists(
                st.fixed_dictionaries(
                    {"resourceType": st.just("Medication"), "id": st.just("m1")},
                    optional={"code": codings(fb.RXNORM, RXNORM_CODES)},
                ),
                max_size=2,
            ),
            "subject": subject(),
            "authoredOn": dates(),
            "dosageInstruction": st.lists(dosage, max_size=3),
            "reasonCode": st.lists(codings(fb.SNOMED, ["427685000", "94381002"]), max_size=2),
        },
    )


def observations() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"resourceType": st.just("Observation")},
        optional={
            "id": st.text(min_size=1, max_size=20),
            "status": st.sampled_from(
                ["final", "amended", "preliminary", "cancelled", "entered-in-error", "x"]
            ),
            "code": codings(fb.LOINC, LOINC_CODES),
            "subject": subject(),
            "effectiveDateTime": dates(),
            "effectiveInstant": dates(),
            "effectivePeriod": st.fixed_dictionaries({}, optional={"start": dates(), "end": dates()}),
            # Timing is an effective[x] the record never reads a date from (dated by issued, unreadable)
            "effectiveTiming": st.fixed_dictionaries({}, optional={"event": st.lists(dates(), max_size=2)}),
            "issued": dates(),
            "valueQuantity": quantities(),
            "valueString": st.text(max_size=20),
            "valueCodeableConcept": codings(fb.SNOMED, ["10828004", "260385009", "x"]),
            "referenceRange": st.lists(
                st.fixed_dictionaries({}, optional={"high": quantities(), "low": quantities()}), max_size=2
            ),
            "component": st.lists(
                st.fixed_dictionaries({"code": codings(fb.LOINC, LOINC_CODES)}), max_size=2
            ),
        },
    )


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    status = codings("http://terminology.hl7.org/CodeSystem/condition-clinical", ["active", "resolved", "x"])
    return st.fixed_dictionaries(
        {"resourceType": st.just("Condition")},
        optional={
            "id": st.text(min_size=1, max_size=20),
            "clinicalStatus": status,
            "verificationStatus": status,
            "code": codings(fb.SNOMED, ["427685000", "94381002", "233703007", "84114007", "1", ""]),
            "subject": subject(),
            "onsetDateTime": dates(),
            "recordedDate": dates(),
            "abatementDateTime": dates(),
        },
    )


def therapy_events() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"resourceType": st.sampled_from(["MedicationAdministration", "MedicationStatement"])},
        optional={
            "id": st.text(min_size=1, max_size=20),
            "status": st.sampled_from(
                ["completed", "in-progress", "stopped", "not-done", "entered-in-error", "taken"]
            ),
            "medicationCodeableConcept": codings(fb.RXNORM, RXNORM_CODES),
            "subject": subject(),
            "effectiveDateTime": dates(),
            "effectivePeriod": st.fixed_dictionaries({}, optional={"start": dates(), "end": dates()}),
            "dosage": st.fixed_dictionaries({}, optional={"dose": quantities()}),
            "statusReason": st.lists(codings(fb.SNOMED, ["ILD", "progression"]), max_size=2),
            "taken": st.sampled_from(["y", "n", "unk"]),  # STU3 MedicationStatement
        },
    )


def other_resources() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"resourceType": st.sampled_from(RESOURCE_TYPES)},
        optional={"id": st.text(max_size=10), "meta": json_values(4), "text": json_values(4)},
    )


def resources() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(medication_requests(), observations(), conditions(), therapy_events(), other_resources())


def bundles(entries: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    modes = st.one_of(st.sampled_from(["match", "include", "outcome", [], {}, ["include"]]), hostile_values())
    entry = st.fixed_dictionaries(
        {},
        optional={
            "resource": entries or resources(),
            "fullUrl": st.text(max_size=20),
            # Bundle.total counts entries by search.mode: a hostile one must not break the count.
            "search": st.one_of(st.fixed_dictionaries({}, optional={"mode": modes}), hostile_values()),
        },
    )
    bundle = st.fixed_dictionaries(
        {"resourceType": st.just("Bundle")},
        optional={
            "type": st.sampled_from(["searchset", "collection", "transaction", "batch", ""]),
            "entry": st.lists(entry, max_size=8),
            "total": numbers(),
            "link": st.lists(
                st.fixed_dictionaries(
                    {"relation": st.just("next"), "url": st.sampled_from(["Observation?page=2", ""])}
                ),
                max_size=1,
            ),
        },
    )
    return st.one_of(
        bundle, st.none(), st.just({"resourceType": "OperationOutcome", "issue": []}), resources()
    )


def prefetch() -> st.SearchStrategy[Any]:
    keys = [
        "patient",
        "conditions",
        "observations",
        "medicationRequests",
        "medicationAdministrations",
        "medicationStatements",
        "unknownKey",
    ]
    return st.one_of(st.none(), st.dictionaries(st.sampled_from(keys), bundles(), max_size=7))


_DATE_ELEMENTS = ("effectiveDateTime", "effectiveInstant", "effectivePeriod", "effectiveTiming", "issued")


def realistic_labs() -> st.SearchStrategy[dict[str, Any]]:
    """A builder-made lab, weight or LVEF (final, coded, in its unit) whose date elements are
    generated: each of effective[x] and issued absent, readable or not, so that the record's choice
    of a date (and the unreadable result dated by issued) is reached on nearly every draw."""
    period = st.fixed_dictionaries({}, optional={"start": dates(), "end": dates()})
    timing = st.fixed_dictionaries({}, optional={"event": st.lists(dates(), max_size=2)})
    effective = {
        "effectiveDateTime": dates(),
        "effectiveInstant": dates(),
        "effectivePeriod": period,
        "effectiveTiming": timing,
    }
    # issued is usually there and readable (a lab system stamps it), sometimes not
    readable = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1))
    issued = st.one_of(readable.map(lambda d: d.isoformat() + "Z"), dates())

    def lab(kind: str, value: float, dated: dict[str, Any]) -> dict[str, Any]:
        resource = fb.observation(kind, value, fb.NOW)
        for element in _DATE_ELEMENTS:
            resource.pop(element, None)
        return {**resource, **dated}

    return st.builds(
        lab,
        st.sampled_from(sorted(fb.LABS)),
        st.floats(min_value=0, max_value=500_000, allow_nan=False),
        st.fixed_dictionaries({"issued": issued}, optional=effective),
    )


def realistic_orders() -> st.SearchStrategy[dict[str, Any]]:
    """A builder-made order of T-DM1 or a look-alike with some fields overridden by generated ones:
    recognised as T-DM1, so it gets past the quick exit into the record, the rules and the cards."""
    generated = medication_requests().map(lambda r: {k: v for k, v in r.items() if k != "resourceType"})
    return st.builds(
        lambda drug, dose, unit, overrides: {
            **fb.medication_request(drug, dose=dose, unit=unit),
            **overrides,
        },
        st.sampled_from(["tdm1", "tdm1-scd", "tdxd", "trastuzumab"]),
        st.one_of(st.none(), st.floats(min_value=0, max_value=1000, allow_nan=False)),
        st.sampled_from(["mg/kg", "mg", "g", "mL", "??"]),
        st.dictionaries(st.sampled_from(sorted(_MR_FIELDS)), st.just(None), max_size=2).flatmap(
            lambda keys: generated.map(lambda g: {k: g[k] for k in keys if k in g})
        ),
    )


_MR_FIELDS = {
    "status",
    "intent",
    "authoredOn",
    "dosageInstruction",
    "subject",
    "contained",
    "medicationReference",
}


def realistic_prefetch() -> st.SearchStrategy[dict[str, Any]]:
    """A builder-made metastatic history, some of it dropped, plus generated resources in each key."""
    history = fb.metastatic_history()
    return st.builds(
        lambda keep, extra: _prefetch_for([r for r, k in zip(history, keep, strict=False) if k] + extra),
        st.lists(st.booleans(), min_size=len(history), max_size=len(history)),
        st.lists(st.one_of(observations(), conditions(), therapy_events()), max_size=6),
    )


def _prefetch_for(history: list[dict[str, Any]]) -> dict[str, Any]:
    """fb.prefetch_for without its assumptions (every resource has an id): generated ones may not."""
    grouped: dict[str, list[dict[str, Any]]] = {key: [] for key in fb.PREFETCH_KEYS.values()}
    for resource in history:
        key = fb.PREFETCH_KEYS.get(resource.get("resourceType"))  # type: ignore[arg-type]
        if key:
            grouped[key].append(resource)
    bundles = {
        key: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in items]}
        for key, items in grouped.items()
    }
    return {"patient": fb.patient(), **bundles}


def hook_requests() -> st.SearchStrategy[dict[str, Any]]:
    """Structurally valid CDS Hooks requests whose FHIR content is generated."""

    def build(hook: str, drafts: list[Any], fetched: Any, patient_id: Any) -> dict[str, Any]:
        request = fb.hook_request(hook, drafts=[], patient_id="pat-1")
        request["context"]["patientId"] = patient_id
        if "draftOrders" in request["context"]:
            request["context"]["draftOrders"]["entry"] = [{"resource": d} for d in drafts]
        if hook == "order-select":
            request["context"]["selections"] = [
                f"MedicationRequest/{d.get('id')}" for d in drafts if isinstance(d, dict)
            ]
        request["prefetch"] = fetched
        return request

    return st.builds(
        build,
        st.sampled_from(["order-select", "order-sign", "patient-view"]),
        st.lists(
            st.one_of(realistic_orders(), realistic_orders(), medication_requests(), resources()), max_size=4
        ),
        st.one_of(realistic_prefetch(), realistic_prefetch(), prefetch()),
        st.sampled_from(["pat-1", "x", "a" * 64, "../Patient", "pat 1", "pat-1?_id=2"]),
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    if not rest and delete:
        del copy[head]
    else:
        copy[head] = _replace(copy[head], rest, new, delete)
    return copy


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """A document from `base` with 1-3 nodes replaced by hostile values or removed."""
    document = draw(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        delete = bool(path) and draw(st.booleans())
        document = _replace(document, path, draw(hostile_values()), delete)
    return document


def raw_bodies() -> st.SearchStrategy[bytes]:
    """Request bodies that are not the JSON a well-behaved client writes."""
    good = json.dumps(fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")])).encode()
    return st.one_of(
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"",
                b"{",
                good[: len(good) // 2],
                b"\xef\xbb\xbf" + good,  # UTF-8 BOM
                good.replace(b'"pat-1"', b'"\xff\xfe"'),  # not UTF-8
                good.replace(b"3.6", b"NaN"),
                good.replace(b"3.6", b"Infinity"),
                good.replace(b"3.6", b"-Infinity"),
                good.replace(b"3.6", b"1e999999"),
                good.replace(b"3.6", b"3" * 5000),
                good.replace(b'"hook"', b'"hook": "patient-view", "hook"'),  # duplicate keys
                b"[" * 100_000 + b"]" * 100_000,
                b'{"a":' * 5000 + b"1" + b"}" * 5000,
                b"null",
                b"[]",
                b'"string"',
                good.decode().encode("utf-16"),
                b'{"hook": "order-sign", "hookInstance": "\\ud800", "context": {}}',
            ]
        ),
        mutated(st.just(json.loads(good))).map(lambda d: json.dumps(d).encode()),
    )
