"""FHIR R4 resources the cards suggest, built here and validated with fhir.resources (R4B models).

Incoming FHIR is read as dicts; what we send back for a client to write into its record is checked
against the models, because an invalid suggestion fails at the worst moment: when a clinician clicks it.
R4 payloads of these types fit the R4B models.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from service.ids import random_uuid

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"


class InvalidSuggestion(ValueError):
    """A resource we built does not validate: a bug in the service, never the client's fault."""


@cache
def _model(resource_type: str) -> Any:
    if resource_type == "ServiceRequest":
        from fhir.resources.R4B.servicerequest import ServiceRequest

        return ServiceRequest
    if resource_type == "MedicationRequest":
        from fhir.resources.R4B.medicationrequest import MedicationRequest

        return MedicationRequest
    raise InvalidSuggestion(f"no model for {resource_type}")


def warm() -> None:
    """Import the models now: the first import takes over a second, which the first call to suggest
    an order would otherwise pay. Called at app start, before gunicorn forks, so workers share it."""
    for resource_type in ("ServiceRequest", "MedicationRequest"):
        _model(resource_type)


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as given, once the R4B model has accepted it."""
    try:
        _model(str(resource.get("resourceType"))).model_validate(resource)
    except InvalidSuggestion:
        raise
    except Exception as exc:  # pydantic.ValidationError and friends
        raise InvalidSuggestion(f"{resource.get('resourceType')}: {exc}") from exc
    return resource


def new_id() -> str:
    return random_uuid()


LABORATORY = {"system": "http://snomed.info/sct", "code": "108252007", "display": "Laboratory procedure"}
IMAGING = {"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}


def service_request(
    patient_reference: str, loinc_code: str, display: str, reason: str, category: dict[str, str]
) -> dict[str, Any]:
    """A draft ServiceRequest for one LOINC-coded test, with the reason the card gives."""
    return validated(
        {
            "resourceType": "ServiceRequest",
            "id": new_id(),
            "status": "draft",
            "intent": "order",
            "category": [{"coding": [category]}],
            "code": {"coding": [{"system": LOINC, "code": loinc_code, "display": display}], "text": display},
            "subject": {"reference": patient_reference},
            "reasonCode": [{"text": reason}],
        }
    )


def lab_order(patient_reference: str, loinc_code: str, display: str, reason: str) -> dict[str, Any]:
    return service_request(patient_reference, loinc_code, display, reason, LABORATORY)


def imaging_order(patient_reference: str, loinc_code: str, display: str, reason: str) -> dict[str, Any]:
    """An imaging ServiceRequest (e.g. the echocardiogram for LVEF), category SNOMED Imaging."""
    return service_request(patient_reference, loinc_code, display, reason, IMAGING)


def new_medication_request(patient_reference: str, rxnorm_code: str, name: str, note: str) -> dict[str, Any]:
    return validated(
        {
            "resourceType": "MedicationRequest",
            "id": new_id(),
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": rxnorm_code, "display": name}],
                "text": name,
            },
            "subject": {"reference": patient_reference},
            "note": [{"text": note}],
        }
    )
