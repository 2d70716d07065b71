"""PatientRecord: the normalised facts the rules read, built from FHIR resources. Pure, no I/O.

What it derives:
- the setting: metastatic (a metastatic condition, mCODE SecondaryCancerCondition codes, or a stage
  group IV / M1 result or Condition.stage.summary of the breast cancer) or early (breast cancer
  without metastatic evidence, or curative-intent T-DM1), else unknown. A stage is the breast
  cancer's only when linked to it (see _stage_links): another cancer's stage IV (a lymphoma treated
  years ago) says nothing about the breast cancer, and one linked to no condition is not used but
  kept in unlinked_stages, for the hook to say so;
- HER2 status from tissue tests or a HER2-coded breast cancer condition;
- the dated timeline of HER2-directed and taxane therapy from MedicationRequest,
  MedicationAdministration and MedicationStatement;
- progression events (LOINC 97509-4 = SNOMED 271299001);
- labs, weight and LVEF with UCUM-normalised values and their ULN from referenceRange.high, each
  dated by effective[x] (when the sample was drawn), else by issued (when the lab released it).
A result reported as a bound (valueQuantity.comparator) is read at the bound, or just past a strict
one, and notes_on says so when the actual value lies on the worse side (BOUND_WORSE_WHEN, bound_note);
a bounded weight, "ad" and unknown comparators are unreadable.
Only final, amended and corrected results are read. A preliminary lab, weight or LVEF result is
kept as an unreadable one (PRELIMINARY, its value and date in the reason): never graded, never
counted as present, but named where unreadable results are; so is one of unknown status
(NAMED_STATUSES). A preliminary HER2, disease status or stage result is dropped, as are registered
(no result yet), entered-in-error and cancelled ones. Results that are present but unreadable are
kept with the reason, so a rule can say so instead of firing on them. One that records no value was
obtained (dataAbsentReason, Result.absent_reason) is kept as no measurement: it is neither read nor
named as unreadable, and an older readable result stands, preliminary or not. Dated by issued is
readable only when the result has no effective[x] at all: one whose effective[x] is there but
cannot be read (a garbled date, a Period with no readable bound, a Timing) is kept dated
by issued, so a card can name it in its window, and unreadable ("effective date unreadable").
A result with no readable date at all (neither effective[x] nor issued) cannot be placed before or
after a dose: it is dropped and counted per kind in undated_results, for the hook to say so.
HER2 results are dated by effective[x], else issued, readable or not (the date only picks the
newest reading); disease status by effective[x] alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal

from service.clinical import units
from service.clinical.resources import (
    as_dict,
    as_list,
    as_number,
    as_str,
    codings,
    concept_text,
    effective_time,
    extension_values,
    parse_datetime,
    period_bounds,
    reference_parts,
    resource_key,
)
from service.clinical.terminology import TDM1, Terminology

Setting = Literal["metastatic", "early", "unknown"]
Her2 = Literal["positive", "negative", "unknown"]

# Data categories: what a rule needs, and what a hook call managed to read.
PATIENT = "patient"
CONDITIONS = "conditions"
OBSERVATIONS = "observations"
MEDICATION_REQUESTS = "medication-requests"
MEDICATION_ADMINISTRATIONS = "medication-administrations"
MEDICATION_STATEMENTS = "medication-statements"
MEDICATION_HISTORY = frozenset({MEDICATION_REQUESTS, MEDICATION_ADMINISTRATIONS, MEDICATION_STATEMENTS})
ALL_CATEGORIES = frozenset({PATIENT, CONDITIONS, OBSERVATIONS}) | MEDICATION_HISTORY

# FHIR R4 ObservationStatus. Final, amended and corrected results are read. A preliminary one
# ("verified early results are available, but not all results are final") has a value that may still
# change: a lab, weight or LVEF result is kept, never graded, and named (NAMED_STATUSES, _preliminary).
# Registered ("no result yet available") has nothing to name, and entered-in-error and cancelled
# results were withdrawn: dropped.
VALID_OBSERVATION_STATUSES = frozenset({"final", "amended", "corrected"})
# Statuses whose lab, weight or LVEF result is kept unreadable and named, with the problem said.
# Unknown is "the source system does not know which of the status values applies": it may be a
# final result, so dropping it unsaid would hide a value; it may be a withdrawn one, so not read.
NAMED_STATUSES = {"preliminary": "preliminary, not final", "unknown": "status unknown"}
INACTIVE_CONDITION_STATUSES = frozenset({"inactive", "resolved", "remission"})
EXCLUDED_VERIFICATION = frozenset({"entered-in-error", "refuted"})
EXCLUDED_REQUEST_STATUSES = frozenset({"entered-in-error", "cancelled", "draft"})
GIVEN_ADMINISTRATION_STATUSES = frozenset({"completed", "in-progress"})
EXCLUDED_STATEMENT_STATUSES = frozenset({"entered-in-error", "not-taken", "intended"})
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Dose:
    value: float
    unit: str  # "mg/kg" or "mg"

    def mg_per_kg(self, weight_kg: float | None) -> float | None:
        if self.unit == "mg/kg":
            return self.value
        if weight_kg is not None and weight_kg > 0:  # no weight is 0 kg or less: never divided by
            return self.value / weight_kg
        return None


@dataclass(frozen=True)
class Result:
    """One Observation of a kind the rules read (platelets, alt, ast, bilirubin, weight, lvef)."""

    kind: str
    when: datetime
    resource_id: str
    value: float | None = None  # platelets /mm3, weight kg, lvef %, liver tests in `unit`
    unit: str = ""
    uln: float | None = None  # same unit as value
    problem: str = ""  # why the value cannot be used; empty when readable
    # Why referenceRange.high could not serve as the ULN (a unit not convertible to the value's):
    # the value stays readable, but it cannot be graded, and the rule says why.
    uln_problem: str = ""
    # The dataAbsentReason of an Observation that records that no value was obtained (not performed,
    # declined, ...). Such a result is no measurement at all: not a value, and not an unreadable one
    # either, so it never stands as "the newest result" that an older readable one must not replace.
    absent_reason: str = ""
    # valueQuantity.comparator of a result reported as a bound ("<", "<=", ">=", ">") that is still
    # read (see BOUND_WORSE_WHEN): kept to show the bound as reported, and to say when the actual
    # value may lie further beyond it than the value graded (bound_note).
    comparator: str = ""

    @property
    def readable(self) -> bool:
        return self.value is not None and not self.problem

    @property
    def measured(self) -> bool:
        """False when the Observation records that there is no value (absent_reason)."""
        return not self.absent_reason

    @property
    def misdated(self) -> bool:
        """Dated by issued beside an effective[x] that cannot be read (MISDATED): when it was drawn
        is unknown."""
        return MISDATED in self.problem

    @property
    def placed(self) -> bool:
        """A measurement whose draw date is known: it can stand as the newest result of its kind,
        readable or not."""
        return self.measured and not self.misdated

    @property
    def times_uln(self) -> float | None:
        return None if self.value is None or not self.uln else self.value / self.uln


# The kinds of Result as a card names them.
RESULT_NAMES = {
    "platelets": "platelet count",
    "alt": "ALT",
    "ast": "AST",
    "bilirubin": "total bilirubin",
    "weight": "body weight",
    "lvef": "LVEF",
}
# The liver tests of the label's hepatotoxicity table (USPI §2.3, §5.2) and the pre-dose labs.
LIVER_TESTS = {kind: RESULT_NAMES[kind] for kind in ("alt", "ast", "bilirubin")}


@dataclass(frozen=True)
class TherapyEvent:
    family: str
    kind: Literal["request", "administration", "statement"]
    resource_id: str
    status: str
    start: datetime | None
    end: datetime | None
    dose: Dose | None = None
    intents: frozenset[str] = frozenset()
    status_reasons: frozenset[str] = frozenset()

    @property
    def is_dose_given(self) -> bool:
        return self.kind == "administration" and self.status in GIVEN_ADMINISTRATION_STATUSES

    @property
    def last_date(self) -> datetime | None:
        return self.end or self.start

    @property
    def still_taken(self) -> bool:
        """A MedicationStatement saying the patient takes it now (active, on hold) with no end: it did
        not end at its start date. Orders are not read this way: an "active" order is often stale."""
        return self.kind == "statement" and self.end is None and self.status in _STILL_TAKING


@dataclass(frozen=True)
class ConditionFact:
    resource_id: str
    codes: tuple[tuple[str, str], ...]
    text: str
    onset: datetime | None
    active: bool


@dataclass(frozen=True)
class PatientRecord:
    patient_id: str
    setting: Setting
    metastatic_since: datetime | None
    her2: Her2
    her2_evidence: str
    conditions: tuple[ConditionFact, ...]
    therapy: tuple[TherapyEvent, ...]
    progression: tuple[datetime, ...]
    results: dict[str, tuple[Result, ...]]  # newest first
    available: frozenset[str]
    medications: dict[str, dict[str, Any]] = field(default_factory=dict)
    foreign_resources: int = 0  # resources naming another patient, dropped
    undated_results: dict[str, int] = field(default_factory=dict)  # per kind: no readable date, dropped
    # Stage group IV / M1 results linked to no condition on record, not used for the setting:
    # (what it says, its effective date), oldest first, undated last.
    unlinked_stages: tuple[tuple[str, datetime | None], ...] = ()

    def results_of(self, kind: str) -> tuple[Result, ...]:
        return self.results.get(kind, ())

    def latest(
        self, kind: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> Result | None:
        """Newest readable result of a kind within [since, until]."""
        for result in self.results_of(kind):
            if until and result.when > until:
                continue
            if since and result.when < since:
                return None
            if result.readable:
                return result
        return None

    def unreadable_in(self, kind: str, since: datetime, until: datetime) -> tuple[Result, ...]:
        """Measurements in [since, until] whose value cannot be read (not those with no value)."""
        return tuple(
            r for r in self.results_of(kind) if since <= r.when <= until and not r.readable and r.measured
        )

    def events(self, *families: str) -> tuple[TherapyEvent, ...]:
        return tuple(e for e in self.therapy if not families or e.family in families)

    def doses_given(self, family: str = TDM1) -> tuple[TherapyEvent, ...]:
        return tuple(e for e in self.events(family) if e.is_dose_given and e.start)

    def has_condition(self, terminology: Terminology, value_set: str, *, active_only: bool = True) -> bool:
        return any(
            terminology.in_condition_set(value_set, c.codes, c.text)
            for c in self.conditions
            if c.active or not active_only
        )

    def first_tdm1_date(self) -> datetime | None:
        dates = [
            e.start for e in self.events(TDM1) if e.start and (e.is_dose_given or e.kind != "administration")
        ]
        return min(dates) if dates else None


# --- building -------------------------------------------------------------------------------------
#
# build() reads every resource of a history (thousands in a long one) on each hook call, so the hot
# paths below test types inline instead of chaining as_dict/as_list/as_str, and skip the work a
# resource's status or type already rules out. What is kept and dropped is as documented above:
# foreign resources and undated results are dropped and counted, the counts kept in the record.

THERAPY_TYPES = frozenset({"MedicationRequest", "MedicationAdministration", "MedicationStatement"})
_MG_PER_KG_UNITS = frozenset({"mg/kg", "mg/kg/dose", "mg/kg[bw]"})
_STILL_TAKING = frozenset({"active", "on-hold"})
_NO_CODES: frozenset[str] = frozenset()
_WHEN = attrgetter("when")


# Result and TherapyEvent are frozen: their generated __init__ pays one object.__setattr__ per
# field, a third of the cost of reading a lab. build() makes one per lab and per therapy resource,
# so it fills the instance dict directly instead. The instances are the same (same class, same
# fields in declaration order, still frozen); _check_fast_constructors keeps the lists in step
# with the classes, and tests/unit/test_record_equivalence.py compares them with the constructors.
_new = object.__new__


def _result(
    kind: str,
    when: datetime,
    resource_id: str,
    value: float | None,
    unit: str,
    uln: float | None,
    problem: str,
    uln_problem: str = "",
    absent_reason: str = "",
    comparator: str = "",
) -> Result:
    result = _new(Result)
    result.__dict__.update(
        {
            "kind": kind,
            "when": when,
            "resource_id": resource_id,
            "value": value,
            "unit": unit,
            "uln": uln,
            "problem": problem,
            "uln_problem": uln_problem,
            "absent_reason": absent_reason,
            "comparator": comparator,
        }
    )
    return result


def _therapy(
    family: str,
    kind: Literal["request", "administration", "statement"],
    resource_id: str,
    status: str,
    start: datetime | None,
    end: datetime | None,
    dose: Dose | None,
    intents: frozenset[str],
    status_reasons: frozenset[str],
) -> TherapyEvent:
    event = _new(TherapyEvent)
    event.__dict__.update(
        {
            "family": family,
            "kind": kind,
            "resource_id": resource_id,
            "status": status,
            "start": start,
            "end": end,
            "dose": dose,
            "intents": intents,
            "status_reasons": status_reasons,
        }
    )
    return event


def _check_fast_constructors() -> None:
    for cls, maker in ((Result, _result), (TherapyEvent, _therapy)):
        names = tuple(f.name for f in fields(cls))
        if names != maker.__code__.co_varnames[: maker.__code__.co_argcount] or hasattr(cls, "__post_init__"):
            raise TypeError(f"{maker.__name__} no longer builds a {cls.__name__}: update it with the class")


_check_fast_constructors()


def quantity_dose(quantity: Any) -> Dose | None:
    """A dose Quantity in mg/kg or mg (g converted), else None: how every order's dose is read."""
    if not isinstance(quantity, dict):
        return None
    value = as_number(quantity.get("value"))
    if value is None or value <= 0:
        return None
    key = units.unit_key(quantity)
    if key in _MG_PER_KG_UNITS:
        return Dose(value, "mg/kg")
    if key == "mg":
        return Dose(value, "mg")
    if key == "g":
        return Dose(value * 1000, "mg")
    return None


def dose_and_rates(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each dosageInstruction.doseAndRate entry of an order that is an object, in order."""
    for instruction in as_list(resource.get("dosageInstruction")):
        if isinstance(instruction, dict):
            for dose_and_rate in as_list(instruction.get("doseAndRate")):
                if isinstance(dose_and_rate, dict):
                    yield dose_and_rate


def _request_doses(resource: dict[str, Any]) -> Iterator[Dose]:
    """Each dose the order states (doseAndRate.doseQuantity in mg/kg or mg, or a doseRange whose
    bounds are one dose), in order."""
    for dose_and_rate in dose_and_rates(resource):
        dose = quantity_dose(dose_and_rate.get("doseQuantity")) or range_dose(dose_and_rate.get("doseRange"))
        if dose:
            yield dose


def range_bounds(dose_range: Any) -> tuple[Dose, Dose] | None:
    """A doseRange's low and high as doses, when both are readable in one unit; else None."""
    if not isinstance(dose_range, dict):
        return None
    low, high = quantity_dose(dose_range.get("low")), quantity_dose(dose_range.get("high"))
    if low is None or high is None or low.unit != high.unit:
        return None
    return low, high


def range_dose(dose_range: Any) -> Dose | None:
    """A doseRange from a dose to the same dose (some order builders write a fixed dose so) is that
    dose. A true range is no single dose: None, and the dose check says it was not applied."""
    bounds = range_bounds(dose_range)
    return bounds[0] if bounds is not None and bounds[0].value == bounds[1].value else None


def request_per_kg_dose(resource: dict[str, Any]) -> Dose | None:
    """The first dose the order states in mg/kg: beside an mg amount (Epic's calculated mg before
    its ordered mg/kg) it is the prescriber's dose, checkable with no weight at all."""
    return next((dose for dose in _request_doses(resource) if dose.unit == "mg/kg"), None)


def request_dose(resource: dict[str, Any]) -> Dose | None:
    return next(_request_doses(resource), None)


def medication_concept(resource: dict[str, Any], medications: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """medicationCodeableConcept, or the code of a contained or referenced Medication."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict) and concept:
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
    family = terminology.drug_family(codings(concept))
    if family is None:
        # Text is the last resort (drug_family tries codes first anyway): joined only when needed.
        family = terminology.drug_family((), concept_text(concept))
    return family


def unresolved_medication_ids(resources: Iterable[dict[str, Any]], medications: dict[str, Any]) -> set[str]:
    """Medication ids referenced but neither contained nor at hand: the ones worth fetching."""
    wanted = set()
    for resource in resources:
        if resource.get("medicationCodeableConcept"):
            continue
        rtype, rid = reference_parts(resource.get("medicationReference"))
        if rid and rtype not in ("#", None) and f"Medication/{rid}" not in medications:
            wanted.add(rid)
    return wanted


def unidentified_drug(resource: dict[str, Any], medications: dict[str, Any]) -> bool:
    """An order whose drug nothing at hand names: it refers to a Medication that was not read
    (medications), to a contained one that is not there, or to one that carries no code and no
    text. A reference whose display names the drug is identified by that text, as a history entry
    is (resolve)."""
    if resource.get("medicationCodeableConcept") or not resource.get("medicationReference"):
        return False  # named by its own concept, or no medication order at all (a lab order)
    concept = medication_concept(resource, medications)
    return not codings(concept) and not as_str(concept.get("text"))


def _intents(resource: dict[str, Any], intent_suffixes: tuple[str, ...]) -> frozenset[str]:
    """mCODE treatmentIntent codes (intent_suffixes: Terminology.extension_suffixes), and category codes."""
    extensions, categories = resource.get("extension"), resource.get("category")
    if extensions is None and categories is None:
        return _NO_CODES
    codes = {code for v in extension_values(resource, intent_suffixes) for _s, code in codings(v)}
    for category in as_list(categories):
        codes |= {code for _s, code in codings(category)}
    return frozenset(codes)


def _status_reasons(resource: dict[str, Any]) -> frozenset[str]:
    reasons = resource.get("statusReason")
    if reasons is None:
        return _NO_CODES
    return frozenset(code for concept in as_list(reasons) for _s, code in codings(concept))


# Per THERAPY_TYPE, the statuses whose resource is no therapy event at all.
_EXCLUDED_THERAPY_STATUSES = {
    "MedicationRequest": EXCLUDED_REQUEST_STATUSES,
    "MedicationAdministration": frozenset({"entered-in-error", "not-done"}),
    "MedicationStatement": EXCLUDED_STATEMENT_STATUSES,
}


def _request_period(resource: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The first dosage boundsPeriod with a date, else from authoredOn (no end)."""
    start, end = None, None
    for instruction in as_list(resource.get("dosageInstruction")):
        timing = instruction.get("timing") if isinstance(instruction, dict) else None
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
        start, end = (None, None) if bounds is None else period_bounds(bounds)
        if start or end:
            break
    return start or parse_datetime(resource.get("authoredOn")), end


def _therapy_event(
    resource: dict[str, Any],
    rtype: str,
    rid: str,
    terminology: Terminology,
    medications: dict[str, dict[str, Any]],
) -> TherapyEvent | None:
    """One of the THERAPY_TYPES as a dated event of a drug family, or None when it does not count."""
    status = resource.get("status")
    if not (isinstance(status, str) and status.strip()):
        status = "unknown"
    # Status first: it is the cheap test, and every step after it is pure.
    if status in _EXCLUDED_THERAPY_STATUSES[rtype]:
        return None
    family = medication_family(resource, terminology, medications)
    if family is None:
        return None
    intents = _intents(resource, terminology.extension_suffixes("treatment_intent"))
    reasons = _status_reasons(resource)
    if rtype == "MedicationRequest":
        start, end = _request_period(resource)
        return _therapy(family, "request", rid, status, start, end, request_dose(resource), intents, reasons)
    start, end = effective_time(resource)
    if rtype == "MedicationAdministration":
        dosage = resource.get("dosage")
        dose = quantity_dose(dosage.get("dose")) if isinstance(dosage, dict) else None
        return _therapy(family, "administration", rid, status, start, end, dose, intents, reasons)
    if start == end and status in _STILL_TAKING:
        end = None
    return _therapy(family, "statement", rid, status, start, end, None, intents, reasons)


# effective[x], and occurrence[x] which effective_time reads as well: when one of them is there but
# gives no date, `issued` is when the lab released the result, not when the sample was drawn.
# A primitive's "_name" (its extensions: a data-absent-reason with no value) says it is there too.
_EFFECTIVE_ELEMENTS = (
    "effectiveDateTime",
    "effectiveInstant",
    "effectivePeriod",
    "effectiveTiming",  # never read: it gives no single time
    "occurrenceDateTime",
    "occurrenceInstant",
    "occurrencePeriod",
    "_effectiveDateTime",
    "_effectiveInstant",
    "_occurrenceDateTime",
    "_occurrenceInstant",
)
# The problem of a result dated by issued beside an effective[x] that cannot be read.
MISDATED = "effective date unreadable"


def _observation_result(resource: dict[str, Any], kind: str, rid: str) -> Result | None:
    """The result dated by effective[x] start, else by issued; None when neither gives a date."""
    # effectiveDateTime, the usual one, is tried first: the rest only when it gives no date.
    value = resource.get("effectiveDateTime")
    when = None if value is None else parse_datetime(value)
    if when is None:
        when = effective_time(resource)[0]
        if when is None:
            return _issued_result(resource, kind, rid)
    return _measured(resource, kind, rid, when)


def _issued_result(resource: dict[str, Any], kind: str, rid: str) -> Result | None:
    """Dated by issued. With no effective[x] at all that is the only date there is, and the result is
    used; with an effective[x] that cannot be read, the sample may have been drawn days before the
    lab released it (before the window it seems to be in): kept, to be named, but never readable."""
    when = parse_datetime(resource.get("issued"))
    if when is None:
        return None  # an undated result cannot be placed before or after a dose: build() counts it
    result = _measured(resource, kind, rid, when)
    if all(resource.get(name) is None for name in _EFFECTIVE_ELEMENTS):
        return result
    problem = f"{MISDATED}; issued {when.date().isoformat()}"
    return _with_problem(result, f"{result.problem}; {problem}" if result.problem else problem)


def _with_problem(result: Result, problem: str) -> Result:
    """The same result, unreadable for `problem` (which says any problem it had already)."""
    return _result(
        result.kind,
        result.when,
        result.resource_id,
        result.value,
        result.unit,
        result.uln,
        problem,
        result.uln_problem,
        result.absent_reason,
        result.comparator,
    )


# The problem of a preliminary result (Observation.status preliminary), which leads the rest.
PRELIMINARY = NAMED_STATUSES["preliminary"]


def _preliminary(result: Result, problem: str = PRELIMINARY) -> Result:
    """A preliminary result, kept to be named but never readable: its value may still change.

    The value, unit and ULN are kept, as for a misdated result, so that a card can show them (a
    preliminary platelet count of 40,000/mm3 is worth a look before the dose), and the problem says
    them with its date: the missing-lab cards show only the problem of a result they name. An
    Observation that records no value (absent_reason) stays no measurement, preliminary or not.
    """
    if not result.measured:
        return result
    if result.value is not None:
        uln = f" (ULN {result.uln:g} {result.unit})" if result.uln else ""
        problem = f"{problem}: {_shown(result)}{uln} on {result.when.date().isoformat()}"
    return _with_problem(result, f"{problem}; {result.problem}" if result.problem else problem)


# data-absent-reason codes (http://terminology.hl7.org/CodeSystem/data-absent-reason) by which a value
# exists but is not given as a number: withheld (masked), in the narrative (as-text), or not a finite
# number (an analyser's off-scale reading). Such an Observation is a measurement that cannot be read.
# Every other reason (not-performed, not-asked, asked-declined, unknown, temp-unknown, error, ...)
# says that no value was obtained: no measurement at all.
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
VALUE_WITHHELD_REASONS = frozenset(
    {"masked", "as-text", "not-a-number", "negative-infinity", "positive-infinity"}
)
# The problem of a result whose Observation records that it has no value (Result.absent_reason).
NOT_MEASURED = "not measured"


def _measured(resource: dict[str, Any], kind: str, rid: str, when: datetime) -> Result:
    """The result's value in the unit the rules compare, or why it cannot be read."""
    quantity = resource.get("valueQuantity")
    if "dataAbsentReason" in resource:
        absent = _data_absent(resource, kind, rid, when, quantity)
        if absent is not None:
            return absent
    if not isinstance(quantity, dict) or not quantity:
        return _result(kind, when, rid, None, "", None, "no numeric value")
    if kind == "platelets":
        value = units.platelets_per_mm3(quantity)
        return _in_range(kind, when, rid, value, "/mm3", quantity)
    if kind == "weight":
        value = units.weight_kg(quantity)
        return _in_range(kind, when, rid, value, "kg", quantity)
    if kind == "lvef":
        value = units.percent(quantity)
        return _in_range(kind, when, rid, value, "%", quantity)
    measured = units.comparable(kind, quantity)
    if measured is None:
        return _result(kind, when, rid, None, "", None, _value_problem(None, quantity))
    value, unit = measured
    graded, problem, comparator = _bounded(kind, value, unit, quantity)
    if graded is None:
        return _result(kind, when, rid, None, "", None, problem)
    uln, uln_problem = _uln(resource, kind, quantity)
    return _result(kind, when, rid, graded, unit, uln, "", uln_problem, "", comparator)


# valueQuantity.comparator: a result reported as a bound ("<0.2 mg/dL", ">1000 U/L", "<40 %"), not
# as a value. Which side of the bound is worse for the patient, per kind; semantics, not a label
# threshold: every label row acts on a LOW platelet count or LVEF and a HIGH liver test. A bound
# whose true value lies on the better side (bilirubin "<0.2 mg/dL", routine below-detection
# reporting; platelets ">150 10*3/uL") is graded at the worst value it allows: at a non-strict bound,
# just inside a strict one (BEYOND; LVEF ">45 %" is above 45, never in the "40% to <= 45%" hold
# row), and needs no note. One whose true value lies on the worse side (LVEF "<40 %", ALT ">1000
# U/L") is graded just beyond a strict bound (BEYOND), at a non-strict one: readable, since the hold or
# discontinuation it certainly reaches must fire, and said (bound_note), since the actual value may
# fall in a more severe row than the one graded. An LVEF bound is said either way: a ">70 %"
# baseline understates the fall from it. Body weight is in neither direction: a dose in mg is
# divided by it, and a bound gives nothing to divide by, so a bounded weight is unreadable, as is
# any kind with "ad" (a prescription's "sufficient to achieve") or a comparator FHIR does not define.
BOUND_WORSE_WHEN = {
    "platelets": "lower",
    "lvef": "lower",
    "alt": "higher",
    "ast": "higher",
    "bilirubin": "higher",
}
BELOW, ABOVE = ("<", "<="), (">", ">=")
# How far past a strict bound its value is read: relative, so "<40 %" is below 40 for any table
# row at 40, "<75 10*3/uL" below 75,000/mm3 and ">200 U/L" with ULN 40 above 5 x ULN, and it
# survives the rules' rounding (platelet counts to 3 decimals, ratios to ULN to 6 digits:
# label_tables.RATIO_DIGITS); yet tiny, so that every value shown (label_tables.number: six
# significant digits, or a whole count) still shows the bound as reported.
BEYOND = 1e-6


def _bounded(kind: str, value: float, unit: str, quantity: dict[str, Any]) -> tuple[float | None, str, str]:
    """(the value to grade, else None; why it cannot be read; the comparator kept) of a readable
    converted value, by its valueQuantity.comparator (BOUND_WORSE_WHEN), and _impossible."""
    comparator = quantity.get("comparator")
    if comparator is None:
        impossible = _impossible(kind, value, unit)
        return (None, impossible, "") if impossible else (value, "", "")
    below = comparator in BELOW
    if not below and comparator not in ABOVE:
        shown = comparator if isinstance(comparator, str) else type(comparator).__name__
        if comparator == "ad":
            return None, "reported with comparator 'ad' (sufficient to achieve), not as a value", ""
        return None, f"comparator {shown[:20]!r} not recognised", ""
    worse = BOUND_WORSE_WHEN.get(kind)
    if worse is None:  # body weight
        return None, f"reported as a bound ({comparator}{value:g} {unit}), not as a measured value", ""
    if comparator == "<" and value <= 0:
        return None, f"reported as below {value:g}, which no {RESULT_NAMES[kind]} is", ""
    graded = value
    if comparator in ("<", ">"):  # strict: its value is never the bound itself, on either side
        graded = value * (1 - BEYOND) if below else value * (1 + BEYOND)
    impossible = _impossible(kind, graded, unit)
    return (None, impossible, "") if impossible else (graded, "", comparator)


def reported(result: Result) -> float | None:
    """The value of a result as reported: for a strict bound, the bound itself, without the BEYOND
    the grading reads past it (_bounded). What the cards show (a nudged "<60 %" read 59.99994 showed
    as "<59.9999 %" at six significant digits), and what an LVEF fall is computed from."""
    if result.value is None or result.comparator not in ("<", ">"):
        return result.value
    return result.value / (1 - BEYOND) if result.comparator == "<" else result.value / (1 + BEYOND)


def bound_note(result: Result) -> str:
    """Why the actual value of a result read as a bound may be worse than the value graded; "" when
    the bound is on the safe side (BOUND_WORSE_WHEN) or it is no bound."""
    if not result.comparator or result.value is None:
        return ""
    below = result.comparator in BELOW
    worse = BOUND_WORSE_WHEN.get(result.kind)
    name = RESULT_NAMES.get(result.kind, result.kind)
    bound = _shown(result, with_comparator=False)
    lead = f"{name[0].upper()}{name[1:]} reported as a bound ({_shown(result)}) on {result.when.date().isoformat()}"
    if (worse == "lower") == below:
        side = ("just below " if below else "just above ") if result.comparator in ("<", ">") else ""
        # An LVEF below its bound is worse as the current value but, as the baseline, makes a fall
        # from it smaller than graded: said both ways, since the note cannot know which it serves.
        baseline = (
            "; as the baseline, a fall from it may be smaller than graded" if result.kind == "lvef" else ""
        )
        return (
            f"{lead}: graded as {side}{bound}; the actual value may be {'lower' if below else 'higher'}, "
            f"in a more severe row of the label's table than the one graded{baseline}. "
            "Check the report before the dose."
        )
    if result.kind == "lvef":  # above the bound: the current LVEF is safe, a fall from it is not
        return (
            f"{lead}: graded as {bound}; the actual value may be higher, so a fall from it, as the "
            "baseline, may be larger than graded. Check the report before the dose."
        )
    return ""


def _data_absent(
    resource: dict[str, Any], kind: str, rid: str, when: datetime, quantity: Any
) -> Result | None:
    """The result of an Observation that gives a dataAbsentReason instead of a value; None when it
    has a value after all (a quantity with a value, or another value[x]: read as any other)."""
    reason = resource["dataAbsentReason"]
    if not isinstance(reason, dict) or not reason:
        return None  # not a CodeableConcept: no reason to read, so the missing value is unreadable
    if isinstance(quantity, dict) and quantity.get("value") is not None:
        return None
    if any(
        value is not None and name != "valueQuantity"
        for name, value in resource.items()
        if name.startswith(("value", "_value"))
    ):
        return None
    pairs = codings(reason)
    standard = [code for system, code in pairs if system in ("", DATA_ABSENT_SYSTEM)]
    withheld = next((code for code in standard if code in VALUE_WITHHELD_REASONS), None)
    if withheld:
        return _result(kind, when, rid, None, "", None, f"no numeric value (data absent: {withheld})")
    named = standard[0] if standard else (pairs[0][1] if pairs else concept_text(reason) or "no reason given")
    return _result(kind, when, rid, None, "", None, f"{NOT_MEASURED} (data absent: {named})", "", named)


def _in_range(
    kind: str, when: datetime, rid: str, value: float | None, unit: str, quantity: dict[str, Any]
) -> Result:
    if value is None:
        return _result(kind, when, rid, None, unit, None, _value_problem(value, quantity))
    graded, problem, comparator = _bounded(kind, value, unit, quantity)
    if graded is None:
        return _result(kind, when, rid, None, unit, None, problem)
    return _result(kind, when, rid, graded, unit, None, "", "", "", comparator)


def _impossible(kind: str, value: float, unit: str) -> str:
    """Why a value, in the unit the rules read, cannot be a measurement of its kind; "" when it can.

    A 0 kg weight is a data-entry error that a dose in mg would be divided by (a 500 error before
    this), a negative one would give a negative mg/kg dose, a negative platelet count would grade as
    Grade 4, an LVEF above 100 % as normal. Such a value is unreadable, named, never used: the value
    is not kept, so nothing can divide or grade by it. A count or level of 0 can be measured (below
    detection) and stays readable.
    """
    if kind == "weight":
        return "" if value > 0 else f"{value:g} kg is not a body weight"
    if kind == "lvef":
        return "" if 0 <= value <= 100 else f"{value:g} % is not an LVEF (0 to 100 %)"
    if kind == "platelets":
        return "" if value >= 0 else f"{value:,.0f}/mm3 is not a platelet count"
    return "" if value >= 0 else f"{value:g} {unit} is below 0"


def _value_problem(value: float | None, quantity: dict[str, Any]) -> str:
    if value is not None:
        return ""
    # Said as it is: a weight of {"unit": "kg"} with no value is not a unit problem.
    return "no numeric value" if as_number(quantity.get("value")) is None else _unit_problem(quantity)


def _unit_problem(quantity: dict[str, Any]) -> str:
    unit = as_str(quantity.get("code")) or as_str(quantity.get("unit"))
    return f"unit {unit!r} not recognised" if unit else "no unit"


def _uln(resource: dict[str, Any], kind: str, quantity: dict[str, Any]) -> tuple[float | None, str]:
    """(ULN in the value's canonical unit, why a ULN that is there could not be used)."""
    ranges = resource.get("referenceRange")
    if ranges is None:
        return None, ""
    problem = ""
    text_only = ""
    for reference_range in ranges if isinstance(ranges, list) else (ranges,):
        high = reference_range.get("high") if isinstance(reference_range, dict) else None
        if not isinstance(high, dict) or high.get("value") is None:
            # A range printed as text ("0-40 U/L") is there, but gives no number to divide by: said
            # as it is, not as "no reference range", which the clinician can see is untrue.
            text = as_str(reference_range.get("text")) if isinstance(reference_range, dict) else None
            text_only = text_only or (text or "")
            continue
        # A range stated without a unit is in the result's unit: that is how labs print it.
        if not (high.get("code") or high.get("unit")):
            high = {**high, "code": quantity.get("code"), "unit": quantity.get("unit")}
        measured = units.comparable(kind, high)  # None too when high has no readable value
        if measured and measured[0] > 0:
            return measured[0], ""
        # A ULN in a unit we cannot convert must not be divided as if it were in the value's unit
        # (0.58 ukat/L read as 0.58 U/L made ALT 100 U/L "172 x ULN"): named, never graded. Nor
        # can a ULN of 0 or less be divided by: named too, rather than read as no ULN at all.
        value = as_number(high.get("value"))
        if value is not None and not problem:
            unit = as_str(high.get("code")) or as_str(high.get("unit"))
            stated = f"{value:g} {unit!r}" if unit else f"{value:g} with no readable unit"
            if measured is None:
                problem = (
                    f"its ULN (referenceRange.high {stated}) cannot be converted to {units.liver_unit(kind)}"
                )
            else:
                problem = f"its ULN (referenceRange.high {stated}) is not above 0"
    if not problem and text_only:
        problem = f"its reference range is given only as text ({text_only[:60]!r}), with no numeric ULN"
    return None, problem


def _her2_reading(resource: dict[str, Any], terminology: Terminology) -> Her2:
    concept = as_dict(resource.get("valueCodeableConcept"))
    pairs = codings(concept) + [p for i in as_list(resource.get("interpretation")) for p in codings(i)]
    if terminology.has_qualifier("positive", pairs) or any(code == "POS" for _s, code in pairs):
        return "positive"
    if terminology.has_qualifier("negative", pairs) or any(code == "NEG" for _s, code in pairs):
        return "negative"
    # Each element its own clause: a concept's text "IHC 2+" and a valueString "ISH positive".
    text = concept_text(concept) + "; " + (as_str(resource.get("valueString")) or "")
    return her2_text_reading(text, terminology)


# A clause ends at ; , a line break or a full stop (not a decimal point: "ratio 2.4").
_HER2_CLAUSES = re.compile(r"[;,\n]|\.(?!\d)")
# An IHC score: "3+", "(2+)", a digit after IHC or score ("IHC 0", "IHC score: 1"), or a text that is
# only the digit ("0"); not "HER2+", "ratio 2.4" or "IHC 10+".
_IHC_SCORE = re.compile(
    r"(?<![\w.])([0-3])\s*\+|(?<!\w)(?:ihc|score)(?:\s*score)?\s*[:=]?\s*([0-3])(?![\w.])|^[\s;]*([0-3])[\s;]*$"
)

# Without an ISH result: equivocal first (an IHC 2+ is no 1+), then negative, then positive.
_HER2_TEXT_ORDER: tuple[tuple[Her2, str], ...] = (
    ("unknown", "equivocal"),
    ("negative", "negative"),
    ("positive", "positive"),
)


def her2_text_reading(text: str, terminology: Terminology) -> Her2:
    """A HER2 result given as text, read as terminology.yaml `her2_text` says (ASCO/CAP): an ISH
    result settles an equivocal IHC 2+ ("IHC 2+ (equivocal); ISH positive" is positive, "IHC 2+;
    ISH not amplified" negative); without one, the IHC score and the words decide, equivocal before
    negative before positive. A negated phrase ("not positive") counts for nothing: no guess."""
    text = text.lower()
    clauses = [c for c in _HER2_CLAUSES.split(text) if c.strip()]
    ish = [c for c in clauses if terminology.her2_says("ish_words", c)]
    # Not amplified before amplified: "not amplified" holds "amplified", "negative for amplification"
    # "amplification".
    if any(terminology.her2_says("ish_negative", c) for c in ish):
        return "negative"
    if any(terminology.her2_says("ish_positive", c) for c in ish):
        return "positive"
    meanings = terminology.her2_text.get("ihc_scores", {})
    scores = {meanings.get(a or b or c) for a, b, c in _IHC_SCORE.findall(text)}
    for reading, name in _HER2_TEXT_ORDER:
        if name in scores or any(terminology.her2_says(name, c) for c in clauses):
            return reading
    return "unknown"


# The staging value (terminology.yaml `staging.values`) that makes each stage Observation kind
# metastatic evidence: stage group IV, M category M1; and how a note names it.
STAGE_VALUES = {"stage_group": "stage_iv", "distant_metastases": "m1"}
STAGE_NAMES = {"stage_group": "stage group IV", "distant_metastases": "M1"}


def _is_stage(
    concept: Any, name: str, terminology: Terminology, observation: dict[str, Any] | None = None
) -> bool:
    """Whether a stage value (a CodeableConcept, or an Observation's valueString) is the staging
    value `name`: by its code; uncoded, by its text or a coding's display, each taken whole."""
    concept = as_dict(concept)
    texts = [concept.get("text"), observation.get("valueString") if observation else None]
    texts += [as_dict(c).get("display") for c in as_list(concept.get("coding"))]
    return terminology.is_staging_value(name, codings(concept), [t for t in texts if as_str(t)])


def _condition_staged_iv(resource: dict[str, Any], terminology: Terminology) -> bool:
    """A Condition.stage.summary that is stage IV (mCODE PrimaryCancerCondition.stage)."""
    return any(
        _is_stage(as_dict(stage).get("summary"), "stage_iv", terminology)
        for stage in as_list(resource.get("stage"))
    )


def _is_breast_cancer(condition: ConditionFact, terminology: Terminology) -> bool:
    return terminology.in_condition_set("breast_cancer", condition.codes, condition.text)


def _assessed(resource: dict[str, Any]) -> list[str]:
    """The Observations a Condition's stage rests on (stage.assessment), as "Observation/id"."""
    keys = []
    for stage in as_list(resource.get("stage")):
        for reference in as_list(as_dict(stage).get("assessment")):
            rtype, rid = reference_parts(reference)
            if rtype == "Observation" and rid:
                keys.append(f"Observation/{rid}")
    return keys


def _focus_links(
    observation: dict[str, Any], breast_by_key: dict[str, bool], terminology: Terminology
) -> set[bool]:
    """For each Observation.focus naming a usable Condition, whether it is a breast cancer.

    "Condition/id", absolute or versioned, is looked up by type and id, as medication references
    are (the server's base is not compared); "#id" is a Condition contained in the Observation.
    A focus naming anything else (a tumour BodyStructure, a Condition not on record, one refuted
    or entered in error) tells nothing about which cancer is staged, and links nothing.
    """
    links = set()
    for reference in as_list(observation.get("focus")):
        rtype, rid = reference_parts(reference)
        if not rid:
            continue
        if rtype == "#":
            for contained in as_list(observation.get("contained")):
                contained = as_dict(contained)
                if contained.get("resourceType") == "Condition" and contained.get("id") == rid:
                    condition = _condition_fact(contained, "")  # None when refuted or in error
                    if condition:
                        links.add(_is_breast_cancer(condition, terminology))
        elif rtype == "Condition":
            breast = breast_by_key.get(f"Condition/{rid}")
            if breast is not None:
                links.add(breast)
    return links


def _stage_links(
    key: str | None,
    observation: dict[str, Any],
    breast_by_key: dict[str, bool],
    assessed_by: dict[str, set[bool]],
    groups_of: dict[str, list[tuple[str | None, dict[str, Any]]]],
    terminology: Terminology,
) -> set[bool]:
    """Which conditions a stage Observation stages: for each, whether it is a breast cancer.

    mCODE (STU1 CancerStageParent, STU2-4 CancerStageCommonRules) links a stage to its cancer by
    Observation.focus (PrimaryCancerCondition); PrimaryCancerCondition.stage.assessment points the
    other way; and an M category is a hasMember of its stage group, which may carry the focus for
    both. Those three are read; mCODE defines no relatedCondition extension on a stage.
    """
    links = _focus_links(observation, breast_by_key, terminology)
    if key:
        links |= assessed_by.get(key, set())
        for group_key, group in groups_of.get(key, ()):
            links |= _focus_links(group, breast_by_key, terminology)
            if group_key:
                links |= assessed_by.get(group_key, set())
    return links


def _is_current_condition(resource: dict[str, Any]) -> tuple[bool, bool]:
    """(usable, active): entered-in-error and refuted conditions are not usable at all."""
    verification = {code for _s, code in codings(resource.get("verificationStatus"))}
    if verification & EXCLUDED_VERIFICATION:
        return False, False
    clinical = {code for _s, code in codings(resource.get("clinicalStatus"))}
    return True, not (clinical & INACTIVE_CONDITION_STATUSES)


def _names_another_patient(resource: dict[str, Any], patient_id: str, seen: dict[str, bool]) -> bool:
    """about_another_patient, remembering the answer per reference text in `seen`."""
    subject, patient = resource.get("subject"), resource.get("patient")
    return (subject is not None and _names_other(subject, patient_id, seen)) or (
        patient is not None and _names_other(patient, patient_id, seen)
    )


def _names_other(reference: Any, patient_id: str, seen: dict[str, bool]) -> bool:
    text = reference.get("reference") if isinstance(reference, dict) else reference
    if not isinstance(text, str):
        return False  # reference_parts reads nothing from it: names no patient
    other = seen.get(text)
    if other is None:
        rtype, rid = reference_parts(text)
        other = seen[text] = rtype == "Patient" and bool(rid) and rid != patient_id
    return other


def about_another_patient(resource: dict[str, Any], patient_id: str) -> bool:
    """True when subject or patient names a different Patient; resources naming none are kept."""
    return _names_another_patient(resource, patient_id, {})


def _condition_fact(resource: dict[str, Any], rid: str) -> ConditionFact | None:
    usable, active = _is_current_condition(resource)
    if not usable:
        return None
    onset = (
        parse_datetime(resource.get("onsetDateTime"))
        or period_bounds(resource.get("onsetPeriod"))[0]
        or parse_datetime(resource.get("recordedDate"))
    )
    code = as_dict(resource.get("code"))
    return ConditionFact(rid, tuple(codings(code)), concept_text(code), onset, active)


def build(
    patient_id: str,
    resources: Iterable[dict[str, Any]],
    terminology: Terminology,
    available: frozenset[str] = ALL_CATEGORIES,
    *,
    excluding: frozenset[str] | set[str] = frozenset(),
) -> PatientRecord:
    """`excluding`: resource keys ("Type/id") left out, as if never sent: the draft orders of the
    call, which are orders being written, not history (a server may return them too)."""
    by_key: dict[str, dict[str, Any]] = {}
    anonymous: list[dict[str, Any]] = []
    foreign = 0
    # A history names its patient the same way in thousands of resources: parse each reference once.
    references_seen: dict[str, bool] = {}
    for resource in resources:
        key = resource_key(resource)
        if key in excluding:
            continue
        if _names_another_patient(resource, patient_id, references_seen):
            foreign += 1  # a misbehaving server or prefetch: never let it fire a card for this patient
            continue
        if key:
            by_key[key] = resource
        else:
            anonymous.append(resource)
    # (resource id, resource): the key is the id the facts cite, None for a resource without one.
    everything: list[tuple[str | None, dict[str, Any]]] = list(by_key.items())
    everything += [(None, resource) for resource in anonymous]
    medications = {k: v for k, v in by_key.items() if v.get("resourceType") == "Medication"}

    conditions: list[ConditionFact] = []
    therapy: list[TherapyEvent] = []
    progression: list[datetime] = []
    results: dict[str, list[Result]] = {}
    undated: dict[str, int] = {}
    her2_readings: list[tuple[datetime, Her2, str]] = []
    # Stage group IV / M1 results and Condition.stage summaries of the breast cancer: metastatic
    # evidence beside the metastatic conditions, each with its date (None: undated, as a condition
    # without onset). Which cancer a result stages is known only once every Condition is read, so
    # the results wait in stage_results: (key, kind, resource); the links are gathered on the way.
    staged_metastatic: list[datetime | None] = []
    stage_results: list[tuple[str | None, str, dict[str, Any]]] = []
    breast: list[ConditionFact] = []
    breast_by_key: dict[str, bool] = {}  # usable Conditions by key: is it a breast cancer?
    assessed_by: dict[str, set[bool]] = {}  # Observation key: the Conditions whose stage cites it
    groups_of: dict[str, list[tuple[str | None, dict[str, Any]]]] = {}  # M category key: its groups

    for key, resource in everything:
        rtype = resource.get("resourceType")
        if rtype == "Observation":
            status = resource.get("status")
            status_problem = None  # the problem of a status read but not graded (NAMED_STATUSES)
            if not isinstance(status, str) or status not in VALID_OBSERVATION_STATUSES:
                status_problem = NAMED_STATUSES.get(status) if isinstance(status, str) else None
                if status_problem is None:
                    continue
            kind = terminology.observation_kind(codings(resource.get("code")))
            if not kind or (status_problem and kind not in RESULT_NAMES):
                # HER2, disease status and stage are read from final results only: none is named.
                continue
            # HER2 and disease status are not results the rules read in a window, so they keep
            # their own dating (not _observation_result's unreadable-when-effective-garbled rule).
            if kind == "disease_status":
                # effective[x] only: a progression is placed against therapy starts (is this a
                # new line?), and a report's issued date could put it after a start it preceded.
                when, _ = effective_time(resource)
                if when and terminology.has_qualifier(
                    "progression", codings(resource.get("valueCodeableConcept"))
                ):
                    progression.append(when)
            elif kind == "her2":
                when, _ = effective_time(resource)
                # Pathology reports often carry only `issued`: an undated result would be lost. Used
                # also when effective[x] is there but unreadable: a HER2 result's date only picks the
                # newest reading, it never places the result before or after a dose.
                when = when or parse_datetime(resource.get("issued"))
                reading = _her2_reading(resource, terminology)
                if when and reading != "unknown":
                    her2_readings.append((when, reading, key or "Observation"))
            elif kind in STAGE_VALUES:
                if kind == "stage_group":  # its members (T, N, M categories) stage its cancer too
                    for reference in as_list(resource.get("hasMember")):
                        member_type, member_id = reference_parts(reference)
                        if member_type == "Observation" and member_id:
                            groups_of.setdefault(f"Observation/{member_id}", []).append((key, resource))
                if _is_stage(resource.get("valueCodeableConcept"), STAGE_VALUES[kind], terminology, resource):
                    stage_results.append((key, kind, resource))
            else:
                result = _observation_result(resource, kind, key or "")
                if result:
                    results.setdefault(kind, []).append(
                        _preliminary(result, status_problem) if status_problem else result
                    )
                else:  # counted, so that a card claiming no result at all can be corrected
                    undated[kind] = undated.get(kind, 0) + 1
        elif rtype in THERAPY_TYPES:
            event = _therapy_event(resource, rtype, key or "", terminology, medications)
            if event:
                therapy.append(event)
        elif rtype == "Condition":
            condition = _condition_fact(resource, key or "")
            if condition:
                conditions.append(condition)
                is_breast = _is_breast_cancer(condition, terminology)
                if is_breast:
                    breast.append(condition)
                if key:
                    breast_by_key[key] = is_breast
                if resource.get("stage") is not None:
                    for assessed in _assessed(resource):
                        assessed_by.setdefault(assessed, set()).add(is_breast)
                    # Only the breast cancer's own stage: a Hodgkin lymphoma staged IV in 2003
                    # says nothing about a breast cancer found in 2025.
                    if is_breast and _condition_staged_iv(resource, terminology):
                        # Undated: Condition.stage has no date, and the condition's onset is when the
                        # cancer was diagnosed, maybe years before it was restaged IV; dated by it, the
                        # (neo)adjuvant therapy between would read as given for metastatic disease.
                        # A staging Observation it points to (stage.assessment) is dated evidence itself.
                        staged_metastatic.append(None)

    unlinked: list[tuple[str, datetime | None]] = []
    for key, kind, resource in stage_results:
        # effective[x] only, as for disease status: the date places therapy before or after
        # metastatic disease, and issued may be weeks after the staging.
        when = effective_time(resource)[0]
        links = _stage_links(key, resource, breast_by_key, assessed_by, groups_of, terminology)
        if True in links:
            staged_metastatic.append(when)
        elif not links:
            # Linked to no condition: it may stage another cancer, and a problem list cannot tell
            # us there is none (a lymphoma coded in SNOMED is no "cancer" by any code we hold), so
            # it is not used: read as the breast cancer's, it would drop the end of an adjuvant
            # 14-cycle course and apply the laxer MBC tables. Kept, so the hook names it.
            unlinked.append((STAGE_NAMES[kind], when))
        # Linked only to other conditions: that cancer's stage, rightly not the breast cancer's.
    unlinked.sort(key=lambda stage: (stage[1] or FAR_FUTURE, stage[0]))

    metastatic = [c for c in conditions if terminology.in_condition_set("metastatic", c.codes, c.text)]
    tdm1_intents = {i for e in therapy if e.family == TDM1 for i in e.intents}
    setting: Setting
    if metastatic or staged_metastatic:
        setting = "metastatic"
    elif breast or tdm1_intents & terminology.qualifiers["intent_curative"]:
        setting = "early"
    else:
        setting = "unknown"
    onsets = [c.onset for c in metastatic if c.onset] + [when for when in staged_metastatic if when]
    metastatic_since = min(onsets) if onsets else None

    her2, evidence = _her2_status(her2_readings, conditions, terminology)
    therapy.sort(key=lambda e: e.start or FAR_FUTURE)
    for kind in results:
        results[kind].sort(key=_WHEN, reverse=True)
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
        unlinked_stages=tuple(unlinked),
    )


def notes_on(record: PatientRecord) -> list[str]:
    """What the record left out or could not use, for the data-unavailable card: said whether or not
    a rule looks at it, since a rule reads only the newest readable result and would otherwise pass
    over a newer one it could not date (a platelet count of 40,000 beside last week's normal one)."""
    notes = []
    if record.foreign_resources:
        notes.append(
            f"{record.foreign_resources} resource(s) about another patient were returned and ignored."
        )
    if record.undated_results:
        # Else a missing-lab card would say there is no platelet count while one exists, undated.
        kinds = ", ".join(RESULT_NAMES.get(k, k) for k in sorted(record.undated_results))
        notes.append(
            f"{sum(record.undated_results.values())} Observation(s) ({kinds}) had no readable date "
            "and were not used."
        )
    for kind in sorted(record.results):
        # An Observation recording no value has nothing to check, whenever it was drawn.
        misdated = [r for r in record.results[kind] if r.misdated and r.measured]
        if misdated:
            newest = misdated[0]  # results are newest first
            notes.append(
                f"{len(misdated)} {RESULT_NAMES.get(kind, kind)} result(s) with an effective date that "
                f"could not be read were not used; the newest, issued {newest.when.date().isoformat()}, "
                f"reads {_shown(newest)}: check when it was drawn."
            )
        if kind != "weight":  # dose-check names an unreadable newest weight on its own card
            notes.extend(_passed_over(kind, record.results[kind]))
    notes.extend(_bound_notes(record))
    notes.extend(_unlinked_stage_note(record))
    return notes


def _bound_notes(record: PatientRecord) -> list[str]:
    """bound_note for each result read as a bound that the rules grade: the newest readable one of
    its kind (what the hold rules read), those drawn since T-DM1 began (read for the "then reduce one
    dose level" and permanent-discontinuation rows), and the LVEF baseline (the newest before T-DM1
    began, as lvef_decline.baseline takes it). Said whether or not a rule looks at it this call, as
    the other notes here; older bounds, read by no rule, are not said: a note on every order for a
    two-year-old "<0.2" would teach the clinician to skip the card. Newest first, per kind."""
    first = record.first_tdm1_date()
    notes = []
    for kind in sorted(record.results):
        readable = [r for r in record.results[kind] if r.readable]  # newest first
        baseline = None
        if kind == "lvef" and first is not None:
            baseline = next((r for r in readable if r.when <= first), None)
        for index, result in enumerate(readable):
            if index == 0 or (first is not None and result.when > first) or result is baseline:
                note = bound_note(result)
                if note:
                    notes.append(note)
    return notes


def _unlinked_stage_note(record: PatientRecord) -> list[str]:
    """Stage IV / M1 results that were not used because they name no condition (build()).

    Said only where using one would have changed the record: the setting is not metastatic, or the
    result is dated before the metastatic date the record has (or it has none). A metastatic
    patient whose liver metastases date from 2025 gains nothing from an unlinked stage IV of 2026,
    and a note on every order would teach the clinician to skip the card.
    """
    since = record.metastatic_since
    unused = [
        (name, when)
        for name, when in record.unlinked_stages
        if record.setting != "metastatic" or (when is not None and (since is None or when < since))
    ]
    if not unused:
        return []
    shown = ", ".join(
        f"{name} on {when.date().isoformat() if when else 'an unknown date'}" for name, when in unused
    )
    read_as = {"early": "early breast cancer", "metastatic": "metastatic", "unknown": "unknown"}
    return [
        f"{len(unused)} stage IV / M1 result(s) ({shown}) linked to no condition on record "
        "(Observation.focus, Condition.stage.assessment) were not used to decide the setting, as they "
        f"may stage another cancer; the checks read the setting as {read_as[record.setting]}. If one "
        "stages the breast cancer, the disease is metastatic: link it to the breast cancer Condition, "
        "or record the metastases."
    ]


def _passed_over(kind: str, results: list[Result]) -> list[str]:
    """A newest result that cannot be read, behind an older readable one the rules read instead.

    Without this note the rules would grade last week's normal count while yesterday's, in a unit
    the service cannot convert, said nothing. With no readable result at all, the missing-lab card
    already names the unreadable one. Which results are newer: unread_newer.
    """
    unread, result = unread_newer(results)
    if result is None or not unread:
        return []
    return [
        f"The newest {RESULT_NAMES.get(kind, kind)} ({unread[0].when.date().isoformat()}) could "
        f"not be read ({unread[0].problem})"
        + (f", nor {len(unread) - 1} more after the one used" if len(unread) > 1 else "")
        + f"; the checks read the older one of {result.when.date().isoformat()} "
        f"({_shown(result)}). Check the newer result before the dose."
    ]


def unread_newer(results: Iterable[Result]) -> tuple[list[Result], Result | None]:
    """(the results that cannot be read and are newer than the newest readable one, newest first;
    that readable one, or None when there is none).

    Only placed results count: a misdated one cannot be the newest, and one recording no value (not
    performed) is no newer result. One drawn when the readable one was is no newer result either: a
    lab that sends the preliminary and the final result of one sample gives both its draw time."""
    unread: list[Result] = []
    for result in results:  # newest first; ties in the order received
        if not result.placed:
            continue
        if result.readable:
            return [r for r in unread if r.when > result.when], result
        unread.append(result)
    return unread, None


def _shown(result: Result, *, with_comparator: bool = True) -> str:
    """The value as the notes show it; a bound as reported, with its comparator ("<20,000/mm3")."""
    if result.value is None:
        return "no readable value"
    bound = result.comparator if with_comparator else ""
    value = reported(result)
    if result.kind == "platelets":
        return f"{bound}{value:,.0f}/mm3"
    return f"{bound}{value:g} {result.unit}".strip()


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
