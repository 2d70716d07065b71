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


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def as_number(value: Any) -> float | None:
    # bool is an int in Python; a FHIR decimal never is.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def codings(concept: Any) -> list[Coding]:
    """(system, code) pairs of a CodeableConcept or a bare Coding; malformed entries are skipped."""
    concept = as_dict(concept)
    raw = concept.get("coding") if "coding" in concept else [concept]
    pairs: list[Coding] = []
    for coding in as_list(raw):
        coding = as_dict(coding)
        code = as_str(coding.get("code"))
        if code:
            pairs.append((as_str(coding.get("system")) or "", code.strip()))
    return pairs


def concept_text(concept: Any) -> str:
    """Everything human-readable in a CodeableConcept: text and every coding display."""
    concept = as_dict(concept)
    parts = [as_str(concept.get("text")) or ""]
    parts += [as_str(as_dict(c).get("display")) or "" for c in as_list(concept.get("coding"))]
    return " ".join(part for part in parts if part)


def parse_datetime(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime.

    Partial dates (2024, 2024-05) fall on the first day; a dateTime without a zone is read as UTC,
    because a wrong zone moves a lab by hours while dropping it would lose it.
    """
    text = as_str(value)
    if text is None:
        return None
    text = text.strip()
    try:
        if _DATE_ONLY.match(text):
            parts = [int(p) for p in text.split("-")] + [1, 1]
            return datetime.combine(date(parts[0], parts[1], parts[2]), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def period_bounds(period: Any) -> tuple[datetime | None, datetime | None]:
    period = as_dict(period)
    return parse_datetime(period.get("start")), parse_datetime(period.get("end"))


def effective_time(resource: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """(start, end) of effective[x] / occurrence[x], as Observation and the medication resources use it."""
    for prefix in ("effective", "occurrence"):
        moment = parse_datetime(resource.get(f"{prefix}DateTime")) or parse_datetime(
            resource.get(f"{prefix}Instant")
        )
        if moment:
            return moment, moment
        start, end = period_bounds(resource.get(f"{prefix}Period"))
        if start or end:
            return start or end, end
    return None, None


def reference_parts(reference: Any) -> tuple[str | None, str | None]:
    """("MedicationRequest", "123") from a Reference or a reference string; ("#", "med1") if contained."""
    text = as_str(as_dict(reference).get("reference")) if isinstance(reference, dict) else as_str(reference)
    if not text:
        return None, None
    text = text.strip()
    if text.startswith("#"):
        return "#", text[1:]
    segments = [s for s in text.split("/") if s]
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    if len(segments) >= 2:
        return segments[-2], segments[-1]
    return None, segments[0] if segments else None


def resource_key(resource: dict[str, Any]) -> str | None:
    rtype, rid = as_str(resource.get("resourceType")), as_str(resource.get("id"))
    return f"{rtype}/{rid}" if rtype and rid else None


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


def extension_values(resource: dict[str, Any], url_suffix: str) -> list[Any]:
    """value[x] of extensions whose url ends with url_suffix (profiles move between canonical bases)."""
    values: list[Any] = []
    for ext in as_list(resource.get("extension")):
        ext = as_dict(ext)
        url = as_str(ext.get("url")) or ""
        if url.endswith(url_suffix):
            values += [v for k, v in ext.items() if k.startswith("value")]
    return values
