"""Tolerant accessors over FHIR R4 JSON as EHRs actually send it.

Incoming FHIR is read as plain dicts, not validated models: real payloads carry vendor extensions
inside Coding, dateTimes without seconds and elements a strict model rejects, and a whole-Bundle
validation costs ~35x a dict walk. Every accessor here returns None or an empty value for
anything it cannot read; the caller decides whether that makes a fact unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from typing import Any

Coding = tuple[str, str]  # (system, code)

_DATE_ONLY = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_NUMBER_TYPES = (int, float)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def as_number(value: Any) -> float | None:
    if type(value) is float:  # the usual JSON decimal: float(value) would be value itself
        return value if value - value == 0.0 else None
    # bool is an int in Python; a FHIR decimal never is.
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: no measurement
        return None
    # x - x is 0.0 for every finite float and NaN for NaN and the infinities.
    return number if number - number == 0.0 else None


def codings(concept: Any) -> list[Coding]:
    """(system, code) pairs of a CodeableConcept or a bare Coding; malformed entries are skipped."""
    # Called for every coded element of every resource: the as_dict/as_list/as_str steps are inlined.
    if not isinstance(concept, dict):
        return []
    if "coding" in concept:
        raw = concept["coding"]
        if not isinstance(raw, list):
            raw = () if raw is None else (raw,)
    else:
        raw = (concept,)
    pairs: list[Coding] = []
    for coding in raw:
        if isinstance(coding, dict):
            code = coding.get("code")
            if isinstance(code, str):
                code = code.strip()
                if code:
                    system = coding.get("system")
                    pairs.append((system if isinstance(system, str) and system.strip() else "", code))
    return pairs


def concept_text(concept: Any) -> str:
    """Everything human-readable in a CodeableConcept: text and every coding display."""
    if not isinstance(concept, dict):
        return ""
    text = concept.get("text")
    parts = [text] if isinstance(text, str) and text.strip() else []
    for coding in as_list(concept.get("coding")):
        if isinstance(coding, dict):
            display = coding.get("display")
            if isinstance(display, str) and display.strip():
                parts.append(display)
    return " ".join(parts)


# Dates outside these are unreadable: no clinical record is dated there, and the rules add or
# subtract cycles and lookbacks of up to a few years, which near year 1 or 9999 overflow Python's
# calendar (a 500 for one nonsense date, before this).
READABLE_FROM = datetime(1000, 1, 1, tzinfo=UTC)
READABLE_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)


def parse_datetime(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime.

    Partial dates (2024, 2024-05) fall on the first day; a dateTime without a zone is read as UTC,
    because a wrong zone moves a lab by hours while dropping it would lose it.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        # _DATE_ONLY matches at most 10 characters: longer (full dateTime) texts skip the regex.
        if len(text) <= 10 and _DATE_ONLY.match(text):
            parts = [int(p) for p in text.split("-")] + [1, 1]
            parsed = datetime.combine(date(parts[0], parts[1], parts[2]), time(), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            zone = parsed.tzinfo
            if zone is None:
                parsed = parsed.replace(tzinfo=UTC)
            elif zone is not UTC:  # "Z" and "+00:00" parse to the UTC singleton: nothing to convert
                parsed = parsed.astimezone(UTC)  # OverflowError past year 1 or 9999
    except (ValueError, OverflowError):
        return None
    return parsed if READABLE_FROM <= parsed < READABLE_UNTIL else None


_YEAR = re.compile(r"\s*(\d{4})(?!\d)")


def open_ended(value: Any) -> bool:
    """An end dated in year 9000 or later: the placeholder for "no end" (9999-12-31) that many
    systems write. parse_datetime reads it as no date; this tells it from an end that is garbled."""
    if not isinstance(value, str):
        return False
    match = _YEAR.match(value)
    return match is not None and int(match.group(1)) >= READABLE_UNTIL.year


# OperationOutcome.issue.severity values that say the answer failed, in whole or in part. A missing
# or unknown severity counts too: the list it came with cannot be taken as complete.
_NOT_FAILURES = frozenset({"warning", "information"})


def outcome_reports_error(outcome: Any) -> bool:
    """An OperationOutcome with an issue of severity error or fatal (or none that can be read)."""
    issues = as_list(as_dict(outcome).get("issue"))
    if not issues:
        return False  # an OperationOutcome that reports nothing (search.mode = outcome, empty)
    return any(as_dict(issue).get("severity") not in _NOT_FAILURES for issue in issues)


def why_incomplete(resource: dict[str, Any]) -> str | None:
    """Why a Bundle entry's resource means the Bundle is not the whole answer, or None.

    Not a FHIR resource at all (a fullUrl alone, garbage): a check for a missing lab must not fire
    because the lab sat in that entry. An OperationOutcome reporting an error (search.mode =
    outcome): the server left something out. One with only warnings leaves the list whole.
    """
    kind = resource.get("resourceType")
    if not as_str(kind):
        return "a Bundle entry is not a FHIR resource"
    if kind == "OperationOutcome" and outcome_reports_error(resource):
        return "the server reported an error within the results (OperationOutcome)"
    return None


# Bundle.total counts the matches only (FHIR R4 3.1.1.5.5): not what _include added (search.mode =
# include) nor an OperationOutcome (mode = outcome).
_NOT_MATCHES = frozenset({"include", "outcome"})


def counts_as_match(entry: dict[str, Any], resource: dict[str, Any]) -> bool:
    """Whether a Bundle entry is one of the results Bundle.total counts."""
    search = entry.get("search")
    mode = search.get("mode") if isinstance(search, dict) else None
    # A mode that is not a string (a list, an object) is no mode: counted, as an unstated one is.
    return (
        not (isinstance(mode, str) and mode in _NOT_MATCHES)
        and resource.get("resourceType") != "OperationOutcome"
    )


def shortfall(total: Any, matches: int) -> str | None:
    """Why a searchset read to its last page is incomplete: its total counts more results than its
    pages held (a server that cut its answer without a next link). None when it does not, or when
    total is absent or not an integer. A check for a missing lab must not run on the rest."""
    if isinstance(total, bool) or not isinstance(total, int) or total <= matches:
        return None
    return f"the server counted {total} results and sent {matches}"


def next_link(bundle: dict[str, Any]) -> str | None:
    if bundle.get("resourceType") != "Bundle":
        return None
    for link in as_list(bundle.get("link")):
        link = as_dict(link)
        if link.get("relation") == "next" and as_str(link.get("url")):
            return str(link["url"])
    return None


_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")


class BundleRead:
    """One walk of a Bundle: its resources (as bundle_resources gives them), how many of its entries
    Bundle.total counts, why an entry makes it less than the whole answer (`gap`), why a Bundle
    within it falls short of its total (`short`); None when not; and the resource types of the
    entries Bundle.total counts (`match_types`: what the search found, not what _include added)."""

    __slots__ = ("gap", "match_types", "matches", "resources", "short")

    def __init__(
        self,
        resources: list[dict[str, Any]],
        matches: int,
        gap: str | None,
        short: str | None = None,
        match_types: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self.resources = resources
        self.matches = matches
        self.gap = gap
        self.short = short
        self.match_types = match_types

    def wrong_type(self, resource_type: str | None) -> str | None:
        """Why this is not the answer to a search of `resource_type`: a result of another type (a
        server answering the Observation query with Conditions). An empty-looking Observation list
        would fire a missing-lab check on labs never read."""
        if resource_type is None:
            return None
        others = self.match_types - {resource_type}
        if not others:
            return None
        # Named only as FHIR type names: the text may reach a card, and the sender chose it.
        named = sorted(t for t in others if _TYPE_NAME.fullmatch(t))[:3] or ["unnamed"]
        return f"the {resource_type} search returned {', '.join(named)} resources"


def read_bundle(value: Any) -> BundleRead:
    """Walk a Bundle once (a Bundle within it too, as in a batch-response of searches); a value that
    is a resource itself is its only resource. A prefetch key is read once per hook call, for its
    resources and for whether it is the whole answer."""
    value = as_dict(value)
    if value.get("resourceType") != "Bundle":
        return BundleRead([value] if as_str(value.get("resourceType")) else [], 0, None)
    found: list[dict[str, Any]] = []
    matches = 0
    gap = short = None
    types: set[str] = set()
    for entry in as_list(value.get("entry")):
        entry = as_dict(entry)
        resource = as_dict(entry.get("resource"))
        problem = why_incomplete(resource)
        if problem:
            gap = gap or problem
        elif resource["resourceType"] == "Bundle":
            inner = read_bundle(resource)
            found += inner.resources
            types |= inner.match_types
            if next_link(resource):
                gap = gap or inner.gap or "a Bundle within the Bundle has pages that were not read"
            else:
                gap = gap or inner.gap
                short = short or inner.short or shortfall(resource.get("total"), inner.matches)
        else:
            found.append(resource)
            if counts_as_match(entry, resource):
                matches += 1
                types.add(resource["resourceType"])
    return BundleRead(found, matches, gap, short, types)


def prefetch_gap(value: Any, read: BundleRead | None = None, *, check_total: bool = True) -> str | None:
    """Why a prefetched Bundle is not the whole answer, its next pages aside (those are fetched):
    an entry (why_incomplete), or, with check_total, a last page short of its total (a Bundle
    within it too)."""
    value = as_dict(value)
    if value.get("resourceType") != "Bundle":
        return None
    read = read or read_bundle(value)
    if read.gap or not check_total:
        return read.gap
    if read.short or next_link(value):  # its own total is held against all its pages, once read
        return read.short
    return shortfall(value.get("total"), read.matches)


def period_bounds(period: Any) -> tuple[datetime | None, datetime | None]:
    if not isinstance(period, dict):
        return None, None
    start, end = period.get("start"), period.get("end")
    return (
        None if start is None else parse_datetime(start),
        None if end is None else parse_datetime(end),
    )


# effective[x] then occurrence[x]: (dateTime, instant, Period) element names, spelled out once.
_TIME_ELEMENTS = (
    ("effectiveDateTime", "effectiveInstant", "effectivePeriod"),
    ("occurrenceDateTime", "occurrenceInstant", "occurrencePeriod"),
)


def effective_time(resource: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """(start, end) of effective[x] / occurrence[x], as Observation and the medication resources use it."""
    for date_time, instant, period in _TIME_ELEMENTS:
        value = resource.get(date_time)
        moment = None if value is None else parse_datetime(value)
        if moment is None:
            value = resource.get(instant)
            moment = None if value is None else parse_datetime(value)
        if moment:
            return moment, moment
        value = resource.get(period)
        if value is not None:
            start, end = period_bounds(value)
            if start or end:
                return start or end, end
    return None, None


def reference_parts(reference: Any) -> tuple[str | None, str | None]:
    """("MedicationRequest", "123") from a Reference or a reference string; ("#", "med1") if contained."""
    text = reference.get("reference") if isinstance(reference, dict) else reference
    if not isinstance(text, str):
        return None, None
    # Fast path for the common "Type/id": one slash, nothing to strip, not contained, no _history.
    rtype, slash, rid = text.partition("/")
    if (
        slash
        and rtype
        and rid
        and "/" not in rid
        and not rtype[0].isspace()
        and not rid[-1].isspace()
        and rtype[0] != "#"
        and rtype != "_history"
        and rid != "_history"
    ):
        return rtype, rid
    text = text.strip()
    if not text:
        return None, None
    if text.startswith("#"):
        return "#", text[1:]
    segments = [s for s in text.split("/") if s]
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    if len(segments) >= 2:
        return segments[-2], segments[-1]
    return None, segments[0] if segments else None


def resource_key(resource: dict[str, Any]) -> str | None:
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if isinstance(rtype, str) and isinstance(rid, str) and rtype.strip() and rid.strip():
        return f"{rtype}/{rid}"
    return None


def bundle_resources(value: Any) -> Iterator[dict[str, Any]]:
    """Resources of a Bundle (any type, with or without Bundle.type), or the value itself if a resource."""
    value = as_dict(value)
    if value.get("resourceType") == "Bundle":
        for entry in as_list(value.get("entry")):
            resource = as_dict(as_dict(entry).get("resource"))
            if as_str(resource.get("resourceType")):
                yield from (
                    bundle_resources(resource) if resource.get("resourceType") == "Bundle" else [resource]
                )
    elif as_str(value.get("resourceType")):
        yield value


def extension_values(resource: dict[str, Any], url_suffix: str | tuple[str, ...]) -> list[Any]:
    """value[x] of extensions whose url ends with url_suffix, or with any of several (profiles move
    between canonical bases, and are renamed between versions)."""
    values: list[Any] = []
    for ext in as_list(resource.get("extension")):
        ext = as_dict(ext)
        url = as_str(ext.get("url")) or ""
        if url.endswith(url_suffix):
            values += [v for k, v in ext.items() if k.startswith("value")]
    return values
