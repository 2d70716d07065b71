"""FHIR R4 resources and CDS Hooks requests shaped the way EHRs send them, for tests.

Codes, units (UCUM), reference ranges and dates as a real lab or pharmacy system writes them.
Each builder returns a plain dict; tests change what they need.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
EHR_BASE = "https://ehr.example.org/fhir"

DRUGS = {
    "tdm1": ("1371046", "Kadcyla"),
    "tdm1-scd": ("1658084", "ado-trastuzumab emtansine 100 MG Injection"),
    "tdxd": ("2267576", "fam-trastuzumab deruxtecan-nxki 100 MG Injection"),
    "trastuzumab": ("1922509", "trastuzumab 150 MG Injection"),
    "pertuzumab": ("1298944", "pertuzumab"),
    "docetaxel": ("72962", "docetaxel"),
    "paclitaxel": ("56946", "paclitaxel"),
    "lapatinib": ("480167", "lapatinib"),
}
LABS = {
    "platelets": ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL"),
    "alt": ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L"),
    "ast": ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L"),
    "bilirubin": ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL"),
    "weight": ("29463-7", "Body weight", "kg"),
    "lvef": ("10230-1", "Left ventricular Ejection fraction", "%"),
}
ULN = {"alt": 40.0, "ast": 40.0, "bilirubin": 1.2}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ago(days: float = 0, hours: float = 0, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days, hours=hours)


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def patient(patient_id: str = "pat-1") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "name": [{"family": "Testpatient", "given": ["Alice"]}],
        "gender": "female",
        "birthDate": "1968-04-12",
    }


def condition(
    code: str,
    display: str,
    *,
    patient_id: str = "pat-1",
    system: str = SNOMED,
    onset: datetime | None = None,
    clinical_status: str = "active",
    verification: str = "confirmed",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": new_id(),
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical_status,
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if onset:
        resource["onsetDateTime"] = iso(onset)
        resource["recordedDate"] = iso(onset)
    return resource


def breast_cancer(**kwargs: Any) -> dict[str, Any]:
    return condition("427685000", "HER2-positive carcinoma of breast", **kwargs)


def liver_metastases(**kwargs: Any) -> dict[str, Any]:
    return condition("94381002", "Secondary malignant neoplasm of liver", **kwargs)


def observation(
    kind: str,
    value: float,
    when: datetime,
    *,
    patient_id: str = "pat-1",
    unit: str | None = None,
    uln: float | str | None = "default",
    status: str = "final",
    code: str | None = None,
) -> dict[str, Any]:
    loinc, display, default_unit = LABS[kind]
    unit = unit or default_unit
    category = "vital-signs" if kind == "weight" else ("imaging" if kind == "lvef" else "laboratory")
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": new_id(),
        "status": status,
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code or loinc, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": iso(when),
        "issued": iso(when + timedelta(hours=2)),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    high = ULN.get(kind) if uln == "default" else uln
    if high is not None:
        resource["referenceRange"] = [
            {
                "low": {"value": 0, "unit": unit, "system": UCUM, "code": unit},
                "high": {"value": high, "unit": unit, "system": UCUM, "code": unit},
            }
        ]
    return resource


DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def absent_observation(
    kind: str, when: datetime, reason: str = "not-performed", **kwargs: Any
) -> dict[str, Any]:
    """An Observation of `kind` with no value and a dataAbsentReason (e.g. not-performed, masked), as
    EHRs chart a vital sign or lab that was ordered but not obtained."""
    resource = observation(kind, 0, when, **kwargs)
    del resource["valueQuantity"]
    resource.pop("referenceRange", None)
    resource["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": reason}]}
    return resource


def platelet_count(
    thousands_per_ul: float,
    *,
    effective: Any,
    issued: Any,
    patient_id: str = "pat-1",
    element: str = "effectiveDateTime",
) -> dict[str, Any]:
    """A CBC platelet count as a lab system sends it (LOINC 777-3, 10*3/uL, reference range 150-400),
    with its collection time (`element`, e.g. effectiveDateTime) and its release time (issued) given
    as they are to be written: a datetime, any other JSON value, or None for leaving it out."""
    resource = observation("platelets", thousands_per_ul, NOW, patient_id=patient_id)
    del resource["effectiveDateTime"], resource["issued"]
    quantity = {"unit": "10*3/uL", "system": UCUM, "code": "10*3/uL"}
    resource["referenceRange"] = [
        {"low": {"value": 150, **quantity}, "high": {"value": 400, **quantity}, "text": "150-400 10*3/uL"}
    ]
    for name, value in ((element, effective), ("issued", issued)):
        if value is not None:
            resource[name] = iso(value) if isinstance(value, datetime) else value
    return resource


def fresh_labs(when: datetime | None = None, **values: float) -> list[dict[str, Any]]:
    """Normal pre-dose labs (platelets 210, ALT 22, AST 25, bilirubin 0.6), overridable."""
    when = when or ago(days=1)
    defaults = {"platelets": 210.0, "alt": 22.0, "ast": 25.0, "bilirubin": 0.6}
    defaults.update(values)
    return [observation(kind, value, when) for kind, value in defaults.items()]


def medication_concept(drug: str) -> dict[str, Any]:
    code, display = DRUGS[drug]
    return {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display}


def dosage(
    dose_mg_per_kg: float | None = 3.6, *, unit: str = "mg/kg", count: int | None = None
) -> dict[str, Any]:
    instruction: dict[str, Any] = {
        "text": f"{dose_mg_per_kg} {unit} IV every 21 days" if dose_mg_per_kg else "IV every 21 days",
        "timing": {"repeat": {"frequency": 1, "period": 21, "periodUnit": "d"}},
        "route": {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]},
    }
    if count is not None:
        instruction["timing"]["repeat"]["count"] = count
    if dose_mg_per_kg is not None:
        instruction["doseAndRate"] = [
            {"doseQuantity": {"value": dose_mg_per_kg, "unit": unit, "system": UCUM, "code": unit}}
        ]
    return instruction


def medication_request(
    drug: str = "tdm1",
    *,
    patient_id: str = "pat-1",
    status: str = "draft",
    dose: float | None = 3.6,
    unit: str = "mg/kg",
    authored: datetime | None = None,
    count: int | None = None,
    intent: str | None = "order",
    rid: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid or new_id(),
        "status": status,
        "medicationCodeableConcept": medication_concept(drug),
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": iso(authored or NOW),
        "dosageInstruction": [dosage(dose, unit=unit, count=count)],
    }
    if intent:
        resource["intent"] = intent
    return resource


def administration(
    drug: str,
    when: datetime,
    *,
    dose: float | None = 3.6,
    unit: str = "mg/kg",
    patient_id: str = "pat-1",
    status: str = "completed",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": new_id(),
        "status": status,
        "medicationCodeableConcept": medication_concept(drug),
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": iso(when),
    }
    if dose is not None:
        resource["dosage"] = {
            "route": {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]},
            "dose": {"value": dose, "unit": unit, "system": UCUM, "code": unit},
        }
    return resource


def statement(
    drug: str,
    start: datetime,
    end: datetime | None = None,
    *,
    status: str = "completed",
    patient_id: str = "pat-1",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": new_id(),
        "status": status,
        "medicationCodeableConcept": medication_concept(drug),
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectivePeriod": {"start": iso(start), **({"end": iso(end)} if end else {})},
    }
    return resource


def draft_lab_order(loinc: str, rid: str, patient_id: str = "pat-1") -> dict[str, Any]:
    """A draft ServiceRequest for one LOINC test or panel, as an EHR puts it in draftOrders."""
    return {
        "resourceType": "ServiceRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def searchset(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    entries = [
        {"fullUrl": f"{EHR_BASE}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in resources
    ]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


PREFETCH_KEYS = {
    "Condition": "conditions",
    "Observation": "observations",
    "MedicationRequest": "medicationRequests",
    "MedicationAdministration": "medicationAdministrations",
    "MedicationStatement": "medicationStatements",
}


def prefetch_for(history: Iterable[dict[str, Any]], patient_id: str = "pat-1") -> dict[str, Any]:
    """Complete prefetch: every key present, history sorted into its searchset."""
    grouped: dict[str, list[dict[str, Any]]] = {key: [] for key in PREFETCH_KEYS.values()}
    for resource in history:
        key = PREFETCH_KEYS.get(resource["resourceType"])
        if key:
            grouped[key].append(resource)
    return {"patient": patient(patient_id), **{key: searchset(items) for key, items in grouped.items()}}


def fhir_authorization(token: str, scope: str = "patient/*.read") -> dict[str, Any]:
    """CDS Hooks fhirAuthorization as an EHR sends it: a short-lived bearer token for this service."""
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": scope,
        "subject": "tdm1-cds",
    }


def hook_request(
    hook: str,
    *,
    drafts: Iterable[dict[str, Any]] = (),
    history: Iterable[dict[str, Any]] = (),
    patient_id: str = "pat-1",
    prefetch: dict[str, Any] | None = None,
    selections: list[str] | None = None,
) -> dict[str, Any]:
    drafts = list(drafts)
    context: dict[str, Any] = {
        "userId": "Practitioner/onc-1",
        "patientId": patient_id,
        "encounterId": "enc-1",
    }
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": d} for d in drafts],
        }
    if hook == "order-select":
        context["selections"] = (
            selections if selections is not None else [f"{d['resourceType']}/{d['id']}" for d in drafts]
        )
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "prefetch": prefetch if prefetch is not None else prefetch_for(history, patient_id),
    }


def metastatic_history(*, prior_her2: bool = True, labs: bool = True) -> list[dict[str, Any]]:
    """A patient with liver metastases since 2025-03, first-line THP given, fresh normal labs and LVEF."""
    history: list[dict[str, Any]] = [
        breast_cancer(onset=datetime(2023, 5, 2, tzinfo=UTC)),
        liver_metastases(onset=datetime(2025, 3, 14, tzinfo=UTC)),
        observation("weight", 70.0, ago(days=2)),
        observation("lvef", 60.0, ago(days=40)),
    ]
    if prior_her2:
        history += [
            statement("trastuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC)),
            statement("pertuzumab", datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC)),
            statement("docetaxel", datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC)),
        ]
    if labs:
        history += fresh_labs()
    return history


AJCC = "http://cancerstaging.org"
STAGING = {
    "clinical-stage": ("21908-9", "Stage group.clinical Cancer"),
    "pathological-stage": ("21902-2", "Stage group.pathology Cancer"),
    "clinical-m": ("21907-1", "Distant metastases.clinical [Class] Cancer"),
    "pathological-m": ("21901-4", "Distant metastases.pathology [Class] Cancer"),
}


def staging(
    kind: str,
    value: dict[str, Any] | str,
    when: datetime | None,
    *,
    patient_id: str = "pat-1",
    status: str = "final",
    focus: dict[str, Any] | str | None = None,
) -> dict[str, Any]:
    """An mCODE TNM staging Observation (stage group or M category, clinical or pathological), as a
    tumour registry or oncology EHR sends it: value a CodeableConcept, or a string (valueString).

    `focus` is the cancer it stages (mCODE: Observation.focus, the PrimaryCancerCondition): a
    Condition resource, or a reference string as written ("Condition/x", an absolute URL, "#x").
    None leaves it out, as some EHRs do."""
    code, display = STAGING[kind]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": new_id(),
        "meta": {"profile": ["http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-stage"]},
        "status": status,
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "method": {
            "coding": [
                {
                    "system": SNOMED,
                    "code": "897275008",
                    "display": "American Joint Commission on Cancer, Cancer Staging Manual, 8th edition "
                    "neoplasm staging system (tumor staging)",
                }
            ]
        },
    }
    if focus is not None:
        reference = focus if isinstance(focus, str) else f"{focus['resourceType']}/{focus['id']}"
        resource["focus"] = [{"reference": reference}]
    if when is not None:
        resource["effectiveDateTime"] = iso(when)
    if isinstance(value, str):
        resource["valueString"] = value
    else:
        resource["valueCodeableConcept"] = value
    return resource


def stage_value(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def hodgkin_lymphoma(*, stage_iv: bool = False, **kwargs: Any) -> dict[str, Any]:
    """A Hodgkin lymphoma treated in 2003 and in remission since 2004 (SNOMED 118599009), staged IV
    on the Condition itself (mCODE PrimaryCancerCondition.stage.summary) when `stage_iv`."""
    kwargs.setdefault("onset", datetime(2003, 2, 10, tzinfo=UTC))
    kwargs.setdefault("clinical_status", "remission")
    resource = condition("118599009", "Hodgkin's disease", **kwargs)
    resource["abatementDateTime"] = "2004-06-30"
    if stage_iv:
        resource["stage"] = [{"summary": stage_value(AJCC, "4", "Stage IV")}]
    return resource


def katherine_history(*extra: dict[str, Any], bilirubin: float = 0.6) -> list[dict[str, Any]]:
    """Early HER2-positive breast cancer after neoadjuvant trastuzumab, pertuzumab and docetaxel
    (Oct 2025 to Feb 2026), residual disease, now starting the 14-cycle adjuvant T-DM1 course
    (KATHERINE); fresh labs (bilirubin overridable, ULN 1.2 mg/dL), weight and LVEF. The breast
    cancer is the first resource, for tests that link a stage to it."""
    neoadjuvant = (datetime(2025, 10, 6, tzinfo=UTC), datetime(2026, 2, 9, tzinfo=UTC))
    return [
        breast_cancer(onset=datetime(2025, 9, 15, tzinfo=UTC)),
        *(statement(drug, *neoadjuvant) for drug in ("trastuzumab", "pertuzumab", "docetaxel")),
        observation("weight", 70.0, ago(days=2)),
        observation("lvef", 60.0, ago(days=40)),
        *fresh_labs(bilirubin=bilirubin),
        *extra,
    ]
