"""build() and what it reads as they were before they were made fast, kept as the reference.

A verbatim copy of the original formulations (service/clinical/resources.py accessors, the units
conversions, the Terminology matchers that tried each set in order, and record.build with its
helpers), from before the commit "record.build: inline the tolerant accessors on the hot paths".
tests/unit/test_record_equivalence.py checks the fast code against it. If what build() reads is
changed on purpose, change it here too, in the same commit: that is the point of keeping it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

from service.clinical.record import (
    ALL_CATEGORIES,
    EXCLUDED_REQUEST_STATUSES,
    EXCLUDED_STATEMENT_STATUSES,
    EXCLUDED_VERIFICATION,
    FAR_FUTURE,
    INACTIVE_CONDITION_STATUSES,
    VALID_OBSERVATION_STATUSES,
    ConditionFact,
    Dose,
    Her2,
    PatientRecord,
    Result,
    Setting,
    TherapyEvent,
)
from service.clinical.terminology import TDM1, Terminology, normalise_ndc

Coding = tuple[str, str]

# --- service/clinical/resources.py ---------------------------------------------------------------

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
    try:
        number = float(value)
    except OverflowError:  # deliberate change since the original: unreadable, not an exception
        return None
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
    # Deliberate change since the original (kept here so the comparison stays exact): a date out of
    # range, or one whose zone conversion overflows, is unreadable instead of an OverflowError.
    try:
        if _DATE_ONLY.match(text):
            parts = [int(p) for p in text.split("-")] + [1, 1]
            parsed = datetime.combine(date(parts[0], parts[1], parts[2]), time(), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    earliest, latest = datetime(1000, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
    return parsed if earliest <= parsed < latest else None


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


def extension_values(resource: dict[str, Any], url_suffix: str) -> list[Any]:
    """value[x] of extensions whose url ends with url_suffix (profiles move between canonical bases)."""
    values: list[Any] = []
    for ext in as_list(resource.get("extension")):
        ext = as_dict(ext)
        url = as_str(ext.get("url")) or ""
        if url.endswith(url_suffix):
            values += [v for k, v in ext.items() if k.startswith("value")]
    return values


# --- service/clinical/py --------------------------------------------------------------

# factor to multiply the value by to get cells per mm3 (= per uL)
_PLATELET_FACTORS = {
    "10*3/ul": 1_000.0,
    "10^3/ul": 1_000.0,
    "10*3/mm3": 1_000.0,
    "k/ul": 1_000.0,
    "k/mm3": 1_000.0,
    "thou/ul": 1_000.0,
    "x10e3/ul": 1_000.0,
    "10*9/l": 1_000.0,
    "10^9/l": 1_000.0,
    "x10*9/l": 1_000.0,
    "giga/l": 1_000.0,
    "/ul": 1.0,
    "/mm3": 1.0,
    "1/ul": 1.0,
    "1/mm3": 1.0,
    "{cells}/ul": 1.0,
    "cells/ul": 1.0,
    # Deliberate change since the original: 10*6/L is one cell per uL (it was 0.001, 1000x too low).
    "10*6/l": 1.0,
}

_WEIGHT_FACTORS = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237}

_PERCENT = {"%", "percent"}

# Deliberate change since the original: enzyme activities are converted to U/L (1 ukat/L = 60 U/L,
# 1 nkat/L = 0.06 U/L, mU/mL = U/L), where ukat/L used to be kept as its own unit and a ULN in U/L
# divided into it as if it were in ukat/L.
_U_L_PER = {"u/l": 1.0, "[iu]/l": 1.0, "iu/l": 1.0, "mu/ml": 1.0, "ukat/l": 60.0, "µkat/l": 60.0}
_U_L_PER["nkat/l"] = 60.0 / 1000
_BILIRUBIN_TO_MG_DL = {"mg/dl": 1.0, "umol/l": 1 / 17.1, "µmol/l": 1 / 17.1, "mmol/l": 1000 / 17.1}

_ANNOTATION = re.compile(r"\{[^}]*\}")


def unit_key(quantity: Any) -> str:
    """The UCUM code if present, else the human unit; lower-cased, spaces and annotations dropped."""
    quantity = as_dict(quantity)
    raw = as_str(quantity.get("code")) or as_str(quantity.get("unit")) or ""
    key = raw.strip().lower().replace(" ", "")
    return key if key in _PLATELET_FACTORS else _ANNOTATION.sub("", key)


def platelets_per_mm3(quantity: Any) -> float | None:
    value = as_number(as_dict(quantity).get("value"))
    factor = _PLATELET_FACTORS.get(unit_key(quantity))
    return None if value is None or factor is None else value * factor


def weight_kg(quantity: Any) -> float | None:
    value = as_number(as_dict(quantity).get("value"))
    factor = _WEIGHT_FACTORS.get(unit_key(quantity))
    return None if value is None or factor is None else value * factor


def percent(quantity: Any) -> float | None:
    value = as_number(as_dict(quantity).get("value"))
    return value if value is not None and unit_key(quantity) in _PERCENT else None


def comparable(kind: str, quantity: Any) -> tuple[float, str] | None:
    """A liver test value in a canonical unit, so result and ULN can be divided."""
    value = as_number(as_dict(quantity).get("value"))
    if value is None:
        return None
    key = unit_key(quantity)
    if kind == "bilirubin":
        factor = _BILIRUBIN_TO_MG_DL.get(key)
        return None if factor is None else (value * factor, "mg/dL")
    factor = _U_L_PER.get(key)
    return None if factor is None else (value * factor, "U/L")


# --- service/clinical/terminology.py: the matchers ------------------------------------------------


class ReferenceTerminology:
    """A Terminology whose matchers try each family, kind and condition set in order, as they did."""

    def __init__(self, terms: Terminology) -> None:
        self.terms = terms
        self.systems = terms.systems
        self.drugs = terms.drugs
        self.observations = terms.observations
        self.conditions = terms.conditions
        self.qualifiers = terms.qualifiers
        self.extensions = terms.extensions
        self.staging = terms.staging
        self.her2_text = terms.her2_text

    def drug_family(self, coding_list: Iterable[Coding], text: str = "") -> str | None:
        normalised = {self._normalise(system, code) for system, code in coding_list}
        for drug in self.drugs:
            if drug.codes & normalised:
                return drug.family
        if text:
            for drug in self.drugs:
                if drug.text_pattern and drug.text_pattern.search(text):
                    return drug.family
        return None

    def _normalise(self, system: str, code: str) -> Coding:
        if system == self.systems["ndc"]:
            return system, normalise_ndc(code)
        return system, code

    # -- observations and conditions ------------------------------------------------------------
    def observation_kind(self, coding_list: Iterable[Coding]) -> str | None:
        pairs = set(coding_list)
        for kind, codes in self.observations.items():
            if codes & pairs:
                return kind
        return None

    def in_condition_set(self, name: str, coding_list: Iterable[Coding], text: str = "") -> bool:
        spec = self.conditions[name]
        snomed, icd = self.systems["snomed"], self.systems["icd10cm"]
        for system, code in coding_list:
            if system == snomed and code in spec.get("snomed", ()):
                return True
            undotted = code.upper().replace(".", "")
            if system == icd and any(
                undotted.startswith(p.replace(".", "")) for p in spec.get("icd10cm_prefix", ())
            ):
                return True
        lowered = text.lower()
        return bool(lowered) and any(phrase in lowered for phrase in spec.get("text", ()))

    def has_qualifier(self, name: str, coding_list: Iterable[Coding]) -> bool:
        return any(code in self.qualifiers[name] for _system, code in coding_list)


# --- service/clinical/record.py: building ---------------------------------------------------


def _dose(quantity: Any) -> Dose | None:
    quantity = as_dict(quantity)
    value = as_number(quantity.get("value"))
    if value is None or value <= 0:
        return None
    key = unit_key(quantity)
    if key in {"mg/kg", "mg/kg/dose", "mg/kg[bw]"}:
        return Dose(value, "mg/kg")
    if key == "mg":
        return Dose(value, "mg")
    if key == "g":
        return Dose(value * 1000, "mg")
    return None


def request_dose(resource: dict[str, Any]) -> Dose | None:
    for instruction in as_list(resource.get("dosageInstruction")):
        for dose_and_rate in as_list(as_dict(instruction).get("doseAndRate")):
            dose = _dose(as_dict(dose_and_rate).get("doseQuantity"))
            if dose:
                return dose
    return None


def medication_concept(resource: dict[str, Any], medications: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """medicationCodeableConcept, or the code of a contained or referenced Medication."""
    concept = as_dict(resource.get("medicationCodeableConcept"))
    if concept:
        return concept
    rtype, rid = reference_parts(resource.get("medicationReference"))
    if rtype == "#":
        for contained in as_list(resource.get("contained")):
            contained = as_dict(contained)
            if contained.get("resourceType") == "Medication" and contained.get("id") == rid:
                return as_dict(contained.get("code"))
    elif rid:
        medication = medications.get(f"Medication/{rid}")
        if medication:
            return as_dict(medication.get("code"))
    display = as_str(as_dict(resource.get("medicationReference")).get("display"))
    return {"text": display} if display else {}


def medication_family(
    resource: dict[str, Any], terminology: Terminology, medications: dict[str, dict[str, Any]]
) -> str | None:
    concept = medication_concept(resource, medications)
    return terminology.drug_family(codings(concept), concept_text(concept))


# Deliberate change, 2026-12-01: treatmentIntent is read under each URL terminology.yaml lists
# (mCODE STU2-STU4 mcode-procedure-intent beside STU1's mcode-treatment-intent), matched on the
# URL's last path segment; before, only URLs ending "mcode-treatment-intent".
def _intents(resource: dict[str, Any], terminology: Terminology) -> frozenset[str]:
    names = {url.rsplit("/", 1)[-1] for url in terminology.extensions.get("treatment_intent", ())}
    codes: set[str] = set()
    for ext in as_list(resource.get("extension")):
        ext = as_dict(ext)
        url = as_str(ext.get("url")) or ""
        if "/" in url and url.rsplit("/", 1)[-1] in names:
            codes |= {code for k, v in ext.items() if k.startswith("value") for _s, code in codings(v)}
    for category in as_list(resource.get("category")):
        codes |= {code for _s, code in codings(category)}
    return frozenset(codes)


def _status_reasons(resource: dict[str, Any]) -> frozenset[str]:
    reasons = resource.get("statusReason")
    return frozenset(code for concept in as_list(reasons) for _s, code in codings(concept))


def _therapy_event(
    resource: dict[str, Any], terminology: Terminology, medications: dict[str, dict[str, Any]]
) -> TherapyEvent | None:
    rtype = resource.get("resourceType")
    status = as_str(resource.get("status")) or "unknown"
    family = medication_family(resource, terminology, medications)
    if family is None:
        return None
    rid = resource_key(resource) or ""
    common = {
        "family": family,
        "resource_id": rid,
        "status": status,
        "intents": _intents(resource, terminology),
        "status_reasons": _status_reasons(resource),
    }
    if rtype == "MedicationRequest":
        if status in EXCLUDED_REQUEST_STATUSES:
            return None
        start, end = None, None
        for instruction in as_list(resource.get("dosageInstruction")):
            repeat = as_dict(as_dict(as_dict(instruction).get("timing")).get("repeat"))
            start, end = period_bounds(repeat.get("boundsPeriod"))
            if start or end:
                break
        start = start or parse_datetime(resource.get("authoredOn"))
        return TherapyEvent(kind="request", start=start, end=end, dose=request_dose(resource), **common)
    if rtype == "MedicationAdministration":
        if status == "entered-in-error" or status == "not-done":
            return None
        start, end = effective_time(resource)
        dose = _dose(as_dict(resource.get("dosage")).get("dose"))
        return TherapyEvent(kind="administration", start=start, end=end, dose=dose, **common)
    if rtype == "MedicationStatement":
        if status in EXCLUDED_STATEMENT_STATUSES:
            return None
        start, end = effective_time(resource)
        if start == end and status in {"active", "on-hold"}:
            end = None
        return TherapyEvent(kind="statement", start=start, end=end, **common)
    return None


# Deliberate change, 2026-12-01: a result dated by issued because its effective[x] (or occurrence[x])
# is there but gives no date is kept unreadable, saying so: issued is when the lab released it, not
# when the sample was drawn. With no effective[x] at all it is dated by issued and read, as before.
def _observation_result(resource: dict[str, Any], kind: str) -> Result | None:
    result = _dated_result(resource, kind)
    elements = ["effectiveDateTime", "effectiveInstant", "effectivePeriod", "effectiveTiming"]
    elements += ["occurrenceDateTime", "occurrenceInstant", "occurrencePeriod"]
    elements += ["_effectiveDateTime", "_effectiveInstant", "_occurrenceDateTime", "_occurrenceInstant"]
    if result is None or effective_time(resource)[0] or all(resource.get(e) is None for e in elements):
        return result
    problem = f"effective date unreadable; issued {result.when.date().isoformat()}"
    return replace(result, problem=f"{result.problem}; {problem}" if result.problem else problem)


def _dated_result(resource: dict[str, Any], kind: str) -> Result | None:
    when, _end = effective_time(resource)
    when = when or parse_datetime(resource.get("issued"))
    rid = resource_key(resource) or ""
    if when is None:
        return None  # an undated result cannot be placed before or after a dose
    absent = _absent_value(resource, kind, when, rid)
    if absent is not None:
        return absent
    quantity = as_dict(resource.get("valueQuantity"))
    if not quantity:
        return Result(kind=kind, when=when, resource_id=rid, problem="no numeric value")
    # Deliberate change, 2026-12-01: a value that cannot be a measurement of its kind (a weight of
    # 0 kg or less, an LVEF outside 0-100 %, a negative count or level) is unreadable, not kept.
    # Deliberate change, 2026-12-02: a bound (valueQuantity.comparator) is read by _comparator first,
    # and the value it gives is the one checked and kept.
    if kind in ("platelets", "weight", "lvef"):
        unit = {"platelets": "/mm3", "weight": "kg", "lvef": "%"}[kind]
        value = {"platelets": platelets_per_mm3, "weight": weight_kg, "lvef": percent}[kind](quantity)
        if value is None:
            return Result(kind, when, rid, None, unit, problem=_quantity_problem(quantity))
        value, problem, comparator = _comparator(kind, value, unit, quantity)
        if value is None:
            return Result(kind, when, rid, None, unit, problem=problem)
        if kind == "platelets" and value < 0:
            problem = f"{value:,.0f}/mm3 is not a platelet count"
        elif kind == "weight" and value <= 0:
            problem = f"{value:g} kg is not a body weight"
        elif kind == "lvef" and (value < 0 or value > 100):
            problem = f"{value:g} % is not an LVEF (0 to 100 %)"
        if problem:
            return Result(kind, when, rid, None, unit, problem=problem)
        return Result(kind, when, rid, value, unit, comparator=comparator)
    measured = comparable(kind, quantity)
    if measured is None:
        return Result(kind=kind, when=when, resource_id=rid, problem=_quantity_problem(quantity))
    value, unit = measured
    bounded, problem, comparator = _comparator(kind, value, unit, quantity)
    if bounded is None:
        return Result(kind=kind, when=when, resource_id=rid, problem=problem)
    if bounded < 0:
        return Result(kind=kind, when=when, resource_id=rid, problem=f"{bounded:g} {unit} is below 0")
    uln, uln_problem = _uln(resource, kind, quantity)
    return Result(kind, when, rid, bounded, unit, uln=uln, uln_problem=uln_problem, comparator=comparator)


# Deliberate change, 2026-12-02: valueQuantity.comparator was ignored (LVEF "<40 %" read as 40 %).
# Now a strict bound, on either side, is read a millionth beyond it (review, same day: LVEF ">45 %"
# read as 45 held in the "40% to <= 45%" row), a non-strict one at it; the comparator is kept. A
# bounded weight, "ad", any other comparator, and "below 0" are unreadable.
_NAMES = {"platelets": "platelet count", "alt": "ALT", "ast": "AST", "bilirubin": "total bilirubin"}
_NAMES |= {"weight": "body weight", "lvef": "LVEF"}


def _comparator(
    kind: str, value: float, unit: str, quantity: dict[str, Any]
) -> tuple[float | None, str, str]:
    """(the value read, or None; why not; the comparator kept)."""
    c = quantity.get("comparator")
    if c is None:
        return value, "", ""
    if c == "ad":
        return None, "reported with comparator 'ad' (sufficient to achieve), not as a value", ""
    if c not in ("<", "<=", ">", ">="):
        name = c if isinstance(c, str) else type(c).__name__
        return None, f"comparator {name[:20]!r} not recognised", ""
    if kind == "weight":
        return None, f"reported as a bound ({c}{value:g} {unit}), not as a measured value", ""
    if c == "<" and value <= 0:
        return None, f"reported as below {value:g}, which no {_NAMES[kind]} is", ""
    if c == "<":
        return value * (1 - 1e-6), "", c
    if c == ">":
        return value * (1 + 1e-6), "", c
    return value, "", c


# Deliberate change, 2026-12-01 (preliminary): a preliminary lab, weight or LVEF result (FHIR R4:
# early results, not all final) was dropped, so a preliminary platelet count of 40,000/mm3 left a
# card saying there was none. It is kept unreadable, its value as reported, ULN and date leading the
# problem, to be named and never graded. One recording no value stays no measurement. A preliminary
# HER2, disease status or stage result is still dropped (build).
# Deliberate change, 2026-12-01 (unknown): one of status unknown ("the source system does not know
# which of the status values applies") takes the same path, its problem led by "status unknown".
_NAMED_STATUS_PROBLEMS = {"preliminary": "preliminary, not final", "unknown": "status unknown"}


def _preliminary(result: Result, problem: str = "preliminary, not final") -> Result:
    if result.absent_reason:
        return result
    if result.value is not None:
        value = result.value
        if result.comparator == "<":
            value = value / (1 - 1e-6)
        elif result.comparator == ">":
            value = value / (1 + 1e-6)
        if result.kind == "platelets":
            shown = f"{result.comparator}{value:,.0f}/mm3"
        else:
            shown = f"{result.comparator}{value:g} {result.unit}".strip()
        uln = f" (ULN {result.uln:g} {result.unit})" if result.uln else ""
        problem += f": {shown}{uln} on {result.when.date().isoformat()}"
    if result.problem:
        problem += f"; {result.problem}"
    return replace(result, problem=problem)


# Deliberate change, 2026-12-01: an Observation with no value[x] (or a valueQuantity without a value)
# and a dataAbsentReason (a CodeableConcept) records that no value was obtained: no measurement, kept
# with its reason (absent_reason), never an unreadable newest result. Except for the reasons saying
# that a value exists but is withheld, in the narrative, or not a finite number: unreadable.
_WITHHELD = ("masked", "as-text", "not-a-number", "negative-infinity", "positive-infinity")


def _absent_value(resource: dict[str, Any], kind: str, when: datetime, rid: str) -> Result | None:
    reason = resource.get("dataAbsentReason")
    if not isinstance(reason, dict) or not reason:
        return None
    for name, value in resource.items():
        if name == "valueQuantity":
            if as_dict(value).get("value") is not None:
                return None
        elif (name.startswith("value") or name.startswith("_value")) and value is not None:
            return None
    coded = codings(reason)
    hl7 = [
        code
        for system, code in coded
        if system in ("", "http://terminology.hl7.org/CodeSystem/data-absent-reason")
    ]
    for code in hl7:
        if code in _WITHHELD:
            return Result(kind, when, rid, problem=f"no numeric value (data absent: {code})")
    if hl7:
        named = hl7[0]
    elif coded:
        named = coded[0][1]
    else:
        named = concept_text(reason) or "no reason given"
    return Result(kind, when, rid, problem=f"not measured (data absent: {named})", absent_reason=named)


# Deliberate change since the original: a quantity without a numeric value says so, where it used to
# blame its unit ("unit 'kg' not recognised" for {"unit": "kg"}): the dose check names it on a card.
def _quantity_problem(quantity: dict[str, Any]) -> str:
    if as_number(quantity.get("value")) is None:
        return "no numeric value"
    return _unit_problem(quantity)


def _unit_problem(quantity: dict[str, Any]) -> str:
    unit = as_str(quantity.get("code")) or as_str(quantity.get("unit"))
    return f"unit {unit!r} not recognised" if unit else "no unit"


# Deliberate change since the original: a ULN whose unit cannot be converted to the value's is not
# used, and why is kept (uln_problem): the first such ULN, unless a later range gives a usable one.
def _uln(resource: dict[str, Any], kind: str, quantity: dict[str, Any]) -> tuple[float | None, str]:
    unconvertible: list[str] = []
    texts: list[str] = []
    for reference_range in as_list(resource.get("referenceRange")):
        high = as_dict(as_dict(reference_range).get("high"))
        value = as_number(high.get("value"))
        if value is None:
            # Deliberate change, 2026-12-01: a range given only as text is named as such.
            if high.get("value") is None and as_str(as_dict(reference_range).get("text")):
                texts.append(as_str(as_dict(reference_range).get("text")) or "")
            continue
        # A range stated without a unit is in the result's unit: that is how labs print it.
        if not (high.get("code") or high.get("unit")):
            high = {**high, "code": quantity.get("code"), "unit": quantity.get("unit")}
        measured = comparable(kind, high)
        if measured and measured[0] > 0:
            return measured[0], ""
        unit = as_str(high.get("code")) or as_str(high.get("unit"))
        stated = f"{value:g} {unit!r}" if unit else f"{value:g} with no readable unit"
        if measured is None:
            target = "mg/dL" if kind == "bilirubin" else "U/L"
            unconvertible.append(f"its ULN (referenceRange.high {stated}) cannot be converted to {target}")
        else:  # deliberate change, 2026-12-01: a ULN of 0 or less is named, not taken for none
            unconvertible.append(f"its ULN (referenceRange.high {stated}) is not above 0")
    if unconvertible:
        return None, unconvertible[0]
    if texts:
        return None, f"its reference range is given only as text ({texts[0][:60]!r}), with no numeric ULN"
    return None, ""


# Deliberate change, 2026-12-01: a HER2 result's text is read as terminology.yaml `her2_text` says:
# an ISH result in a clause naming ISH (not amplified / negative first) settles the IHC score
# ("IHC 2+; ISH positive" is positive, "IHC 2+, ISH negative" negative), then equivocal, negative,
# positive by words or IHC score; a phrase with a negation word up to two words before it counts
# for nothing ("not positive"); HER2-low is negative. Word by word here, not by regular expression.
def _her2_reading(resource: dict[str, Any], terminology: Terminology) -> Her2:
    concept = as_dict(resource.get("valueCodeableConcept"))
    pairs = codings(concept) + [p for i in as_list(resource.get("interpretation")) for p in codings(i)]
    if terminology.has_qualifier("positive", pairs) or any(code == "POS" for _s, code in pairs):
        return "positive"
    if terminology.has_qualifier("negative", pairs) or any(code == "NEG" for _s, code in pairs):
        return "negative"
    spec = terminology.her2_text
    texts = [concept_text(concept), as_str(resource.get("valueString")) or ""]
    clauses: list[list[str]] = []
    for text in texts:
        for clause in re.split(r"[;,\n]|\.(?!\d)", text.lower()):
            words = re.sub(r"[^\w+.]+", " ", clause.replace("-", " ")).split()
            if words:
                clauses.append(words)

    def says(words: list[str], name: str) -> bool:
        for phrase in spec[name]:
            wanted = phrase.lower().replace("-", " ").split()
            for i in range(len(words) - len(wanted) + 1):
                if [w.strip(".") for w in words[i : i + len(wanted)]] == wanted and (
                    name == "ish_words" or not set(words[max(0, i - 3) : i]) & set(spec["negations"])
                ):
                    return True
        return False

    def scores(words: list[str]) -> set[str]:
        found = set()
        for i, word in enumerate(words):
            if len(word) == 2 and word[0] in "0123" and word[1] == "+":
                found.add(word[0])
            elif word in ("0", "1", "2", "3") and i > 0 and words[i - 1].strip(":=") in ("ihc", "score"):
                found.add(word)
            elif word in ("ihc0", "ihc1", "ihc2", "ihc3"):
                found.add(word[3])
        if words in (["0"], ["1"], ["2"], ["3"]):
            found.add(words[0])
        return {spec["ihc_scores"][score] for score in found}

    ish = [words for words in clauses if says(words, "ish_words")]
    if any(says(words, "ish_negative") for words in ish):
        return "negative"
    if any(says(words, "ish_positive") for words in ish):
        return "positive"
    meant = set().union(*(scores(words) for words in clauses)) if clauses else set()
    if "equivocal" in meant or any(says(words, "equivocal") for words in clauses):
        return "unknown"
    if "negative" in meant or any(says(words, "negative") for words in clauses):
        return "negative"
    if "positive" in meant or any(says(words, "positive") for words in clauses):
        return "positive"
    return "unknown"


# Deliberate change, 2026-12-01: stage group IV and M1 (codes.md: metastatic evidence), in a stage
# Observation or a Condition.stage.summary, make the setting metastatic; the Observation's
# effective date counts among the metastatic dates, a Condition's stage has none.
def _stage_is(concept: Any, text: Any, name: str, terminology: Terminology) -> bool:
    spec = terminology.staging["values"][name]
    snomed, ajcc = terminology.systems["snomed"], terminology.staging["ajcc_system"]
    pairs = [(system, code) for system, code in codings(concept) if system in (snomed, ajcc)]
    if pairs:  # coded: the code decides, whatever the text says
        ajcc_codes = [c.upper() for c in spec.get("ajcc", [])]
        return any(
            code in spec.get("snomed", []) if system == snomed else code.upper() in ajcc_codes
            for system, code in pairs
        )
    concept = as_dict(concept)
    texts = [concept.get("text"), text] + [as_dict(c).get("display") for c in as_list(concept.get("coding"))]
    wanted = {" ".join(t.lower().split()) for t in spec.get("text", [])}
    return any(isinstance(t, str) and " ".join(t.lower().split()) in wanted for t in texts)


def _is_current_condition(resource: dict[str, Any]) -> tuple[bool, bool]:
    """(usable, active): entered-in-error and refuted conditions are not usable at all."""
    verification = {code for _s, code in codings(resource.get("verificationStatus"))}
    if verification & EXCLUDED_VERIFICATION:
        return False, False
    clinical = {code for _s, code in codings(resource.get("clinicalStatus"))}
    return True, not (clinical & INACTIVE_CONDITION_STATUSES)


# Deliberate change, 2026-12-01 (second): a stage is evidence of metastatic breast cancer only when
# it stages the breast cancer. A Condition.stage.summary counts on a breast cancer Condition only; a
# stage Observation when one of the usable Conditions it is linked to is a breast cancer: by its
# focus ("Condition/id", or "#id" contained), by a Condition's stage.assessment citing it, or the
# same for a stage group listing it in hasMember. Linked to other Conditions only: not used. Linked
# to none: not used, and listed (unlinked_stages) for the data-unavailable note.
def _is_breast(condition: dict[str, Any], terminology: Terminology) -> bool:
    code = as_dict(condition.get("code"))
    return terminology.in_condition_set("breast_cancer", codings(code), concept_text(code))


class _StageLinks:
    """Every link a stage Observation may have to a Condition, gathered before the build reads one."""

    def __init__(self, everything: list[dict[str, Any]], terminology: Terminology) -> None:
        self.conditions: dict[str, dict[str, Any]] = {}
        self.cited_by: dict[str, list[dict[str, Any]]] = {}
        self.groups: dict[str, list[dict[str, Any]]] = {}
        for resource in everything:
            rtype = resource.get("resourceType")
            if rtype == "Condition" and _is_current_condition(resource)[0]:
                key = resource_key(resource)
                if key:
                    self.conditions[key] = resource
                for stage in as_list(resource.get("stage")):
                    for cited in as_list(as_dict(stage).get("assessment")):
                        ctype, cid = reference_parts(cited)
                        if ctype == "Observation" and cid:
                            self.cited_by.setdefault("Observation/" + cid, []).append(resource)
            elif (
                rtype == "Observation"
                and as_str(resource.get("status")) in VALID_OBSERVATION_STATUSES
                and terminology.observation_kind(codings(resource.get("code"))) == "stage_group"
            ):
                for member in as_list(resource.get("hasMember")):
                    mtype, mid = reference_parts(member)
                    if mtype == "Observation" and mid:
                        self.groups.setdefault("Observation/" + mid, []).append(resource)

    def _direct(self, observation: dict[str, Any]) -> list[dict[str, Any]]:
        linked = []
        for focus in as_list(observation.get("focus")):
            ftype, fid = reference_parts(focus)
            if ftype == "#" and fid:
                linked += [
                    c
                    for c in map(as_dict, as_list(observation.get("contained")))
                    if c.get("resourceType") == "Condition"
                    and c.get("id") == fid
                    and _is_current_condition(c)[0]
                ]
            elif ftype == "Condition" and fid and "Condition/" + fid in self.conditions:
                linked.append(self.conditions["Condition/" + fid])
        key = resource_key(observation)
        return linked + (self.cited_by.get(key, []) if key else [])

    def staged(self, observation: dict[str, Any]) -> list[dict[str, Any]]:
        """The usable Conditions the stage Observation stages, its stage groups' included."""
        key = resource_key(observation)
        linked = self._direct(observation)
        for group in self.groups.get(key, []) if key else []:
            linked += self._direct(group)
        return linked


def about_another_patient(resource: dict[str, Any], patient_id: str) -> bool:
    """True when subject or patient names a different Patient; resources naming none are kept."""
    for element in ("subject", "patient"):
        rtype, rid = reference_parts(resource.get(element))
        if rtype == "Patient" and rid and rid != patient_id:
            return True
    return False


def build(
    patient_id: str,
    resources: Iterable[dict[str, Any]],
    terminology: Terminology,
    available: frozenset[str] = ALL_CATEGORIES,
) -> PatientRecord:
    by_key: dict[str, dict[str, Any]] = {}
    anonymous: list[dict[str, Any]] = []
    foreign = 0
    for resource in resources:
        if about_another_patient(resource, patient_id):
            foreign += 1  # a misbehaving server or prefetch: never let it fire a card for this patient
            continue
        key = resource_key(resource)
        if key:
            by_key[key] = resource
        else:
            anonymous.append(resource)
    everything = list(by_key.values()) + anonymous
    medications = {k: v for k, v in by_key.items() if v.get("resourceType") == "Medication"}

    conditions: list[ConditionFact] = []
    therapy: list[TherapyEvent] = []
    progression: list[datetime] = []
    results: dict[str, list[Result]] = {}
    undated: dict[str, int] = {}  # deliberate change, 2026-12-01: undated results are counted
    her2_readings: list[tuple[datetime, Her2, str]] = []
    staged: list[datetime | None] = []
    unlinked: list[tuple[str, datetime | None]] = []
    links = _StageLinks(everything, terminology)

    for resource in everything:
        rtype = resource.get("resourceType")
        if rtype == "Condition":
            usable, active = _is_current_condition(resource)
            if usable:
                onset = (
                    parse_datetime(resource.get("onsetDateTime"))
                    or period_bounds(resource.get("onsetPeriod"))[0]
                    or parse_datetime(resource.get("recordedDate"))
                )
                code = as_dict(resource.get("code"))
                conditions.append(
                    ConditionFact(
                        resource_key(resource) or "", tuple(codings(code)), concept_text(code), onset, active
                    )
                )
                for stage in as_list(resource.get("stage")):
                    if _is_breast(resource, terminology) and _stage_is(
                        as_dict(stage).get("summary"), None, "stage_iv", terminology
                    ):
                        staged.append(None)
                        break
        elif rtype in {"MedicationRequest", "MedicationAdministration", "MedicationStatement"}:
            event = _therapy_event(resource, terminology, medications)
            if event:
                therapy.append(event)
        elif rtype == "Observation":
            status = as_str(resource.get("status"))
            if status not in VALID_OBSERVATION_STATUSES and status not in _NAMED_STATUS_PROBLEMS:
                continue
            pairs = codings(resource.get("code"))
            kind = terminology.observation_kind(pairs)
            if status in _NAMED_STATUS_PROBLEMS and kind not in _NAMES:
                continue  # HER2, disease status, stage: final results only, as before
            if kind == "disease_status":
                when, _ = effective_time(resource)
                if when and terminology.has_qualifier(
                    "progression", codings(resource.get("valueCodeableConcept"))
                ):
                    progression.append(when)
            elif kind == "her2":
                when, _ = effective_time(resource)
                # Pathology reports often carry only `issued`: an undated result would be lost.
                when = when or parse_datetime(resource.get("issued"))
                reading = _her2_reading(resource, terminology)
                if when and reading != "unknown":
                    her2_readings.append((when, reading, resource_key(resource) or "Observation"))
            elif kind in ("stage_group", "distant_metastases"):
                value = "stage_iv" if kind == "stage_group" else "m1"
                if _stage_is(
                    resource.get("valueCodeableConcept"), resource.get("valueString"), value, terminology
                ):
                    linked = links.staged(resource)
                    if any(_is_breast(c, terminology) for c in linked):
                        staged.append(effective_time(resource)[0])
                    elif not linked:
                        name = "stage group IV" if kind == "stage_group" else "M1"
                        unlinked.append((name, effective_time(resource)[0]))
            elif kind:
                result = _observation_result(resource, kind)
                if result and status in _NAMED_STATUS_PROBLEMS:
                    result = _preliminary(result, _NAMED_STATUS_PROBLEMS[status])
                if result:
                    results.setdefault(kind, []).append(result)
                else:
                    undated[kind] = undated.get(kind, 0) + 1

    metastatic = [c for c in conditions if terminology.in_condition_set("metastatic", c.codes, c.text)]
    breast = [c for c in conditions if terminology.in_condition_set("breast_cancer", c.codes, c.text)]
    tdm1_intents = {i for e in therapy if e.family == TDM1 for i in e.intents}
    setting: Setting
    if metastatic or staged:
        setting = "metastatic"
    elif breast or tdm1_intents & terminology.qualifiers["intent_curative"]:
        setting = "early"
    else:
        setting = "unknown"
    onsets = [c.onset for c in metastatic if c.onset] + [when for when in staged if when]
    metastatic_since = min(onsets) if onsets else None

    her2, evidence = _her2_status(her2_readings, conditions, terminology)
    therapy.sort(key=lambda e: e.start or FAR_FUTURE)
    for kind in results:
        results[kind].sort(key=lambda r: r.when, reverse=True)
    return PatientRecord(
        patient_id=patient_id,
        setting=setting,
        metastatic_since=metastatic_since,
        her2=her2,
        her2_evidence=evidence,
        conditions=tuple(conditions),
        therapy=tuple(therapy),
        progression=tuple(sorted(progression)),
        results={kind: tuple(items) for kind, items in results.items()},
        available=available,
        medications=medications,
        foreign_resources=foreign,
        undated_results=undated,
        unlinked_stages=tuple(
            sorted(unlinked, key=lambda u: (u[1] is None, u[1] or datetime.min.replace(tzinfo=UTC), u[0]))
        ),
    )


def _her2_status(
    readings: list[tuple[datetime, Her2, str]], conditions: list[ConditionFact], terminology: Terminology
) -> tuple[Her2, str]:
    if readings:
        when, reading, source = max(readings, key=lambda r: r[0])
        return reading, f"{source} ({when.date().isoformat()})"
    coded: list[tuple[datetime, int, Her2, str]] = []
    for condition in conditions:
        onset = condition.onset or datetime.min.replace(tzinfo=UTC)
        if terminology.in_condition_set("her2_negative_breast_cancer", condition.codes):
            coded.append((onset, 1, "negative", condition.resource_id))
        elif terminology.in_condition_set("her2_positive_breast_cancer", condition.codes):
            coded.append((onset, 0, "positive", condition.resource_id))
    if coded:
        # The latest diagnosis decides (a metastasis can be re-typed); on a tie, negative wins so
        # that a contradiction is shown rather than hidden.
        _onset, _rank, status, source = max(coded, key=lambda c: (c[0], c[1]))
        return status, source
    return "unknown", ""


def reference_build(
    patient_id: str,
    resources: Iterable[dict[str, Any]],
    terms: Terminology,
    available: frozenset[str] = ALL_CATEGORIES,
) -> PatientRecord:
    """build() as it was, over the reference accessors and matchers."""
    return build(patient_id, resources, ReferenceTerminology(terms), available)  # type: ignore[arg-type]
