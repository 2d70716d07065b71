"""Prefetch templates, and how to read what a client prefetched.

Templates use only CDS Hooks 2.0 tokens and the recommended query subset: instance reads, type
searches on the patient, token equality (comma = OR), _count and _sort. No date filter is used
because a template cannot compute "three days ago"; recency is applied in the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from service.clinical import terminology as terms
from service.clinical.record import (
    CONDITIONS,
    MEDICATION_ADMINISTRATIONS,
    MEDICATION_REQUESTS,
    MEDICATION_STATEMENTS,
    OBSERVATIONS,
    PATIENT,
)
from service.clinical.resources import BundleRead, as_dict, as_str, prefetch_gap, read_bundle

_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


def _observation_codes() -> str:
    terminology = terms.default()
    # stage_group and distant_metastases: a stage IV or M1 result is evidence of metastatic disease.
    kinds = ("platelets", "alt", "ast", "bilirubin", "weight", "lvef", "her2", "disease_status")
    kinds = (*kinds, "stage_group", "distant_metastases")
    return ",".join(
        f"{system}|{code}" for kind in kinds for system, code in sorted(terminology.observations[kind])
    )


@dataclass(frozen=True)
class PrefetchKey:
    key: str
    template: str
    category: str

    @property
    def resource_type(self) -> str:
        """What the query reads: "Patient" for Patient/{{id}}, "Observation" for Observation?..."""
        return self.template.split("?", 1)[0].split("/", 1)[0]


def specs() -> tuple[PrefetchKey, ...]:
    patient = "{{context.patientId}}"
    return (
        PrefetchKey("patient", f"Patient/{patient}", PATIENT),
        PrefetchKey("conditions", f"Condition?patient={patient}", CONDITIONS),
        PrefetchKey(
            "observations",
            f"Observation?patient={patient}&code={_observation_codes()}&_sort=-date",
            OBSERVATIONS,
        ),
        PrefetchKey("medicationRequests", f"MedicationRequest?patient={patient}", MEDICATION_REQUESTS),
        PrefetchKey(
            "medicationAdministrations",
            f"MedicationAdministration?patient={patient}",
            MEDICATION_ADMINISTRATIONS,
        ),
        PrefetchKey("medicationStatements", f"MedicationStatement?patient={patient}", MEDICATION_STATEMENTS),
    )


def templates() -> dict[str, str]:
    return {k.key: k.template for k in specs()}


def render(template: str, context: dict[str, Any]) -> str | None:
    """The query with tokens replaced from the context; None if a token has no primitive value."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        path = match.group(1)
        name = path.split(".", 1)[1] if path.startswith("context.") else path
        value = context.get(name)
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            missing = True
            return ""
        # Percent-encoded: a FHIR id ([A-Za-z0-9-.]) is unchanged, while "a&b", "a#b" or "../x" can no
        # longer add a parameter, cut the query or climb the server's path.
        return quote(str(value), safe="-._~")

    query = _TOKEN.sub(substitute, template)
    return None if missing else query


def usable(
    value: Any,
    read: BundleRead | None = None,
    resource_type: str | None = None,
    *,
    check_total: bool = True,
) -> bool:
    """A prefetched value counts unless it is absent, null or an OperationOutcome (a failed prefetch),
    a resource that is not what the key reads (`resource_type`: an Observation prefetch that is a
    lone Patient, or has no resourceType, would pass for "no Observations"; a Bundle of Conditions
    too), or a Bundle that is not the whole answer (prefetch_gap: an error OperationOutcome entry, an entry that is not a resource,
    a last page short of its total). A check for a missing lab must not run on part of a list, nor
    on a list never read. `read` is read_bundle(value) when the caller has walked it already."""
    value = as_dict(value)
    kind = as_str(value.get("resourceType"))
    if kind is None or kind == "OperationOutcome":
        return False
    if kind != "Bundle":
        return resource_type is None or kind == resource_type
    read = read or read_bundle(value)
    return (
        read.wrong_type(resource_type) is None and prefetch_gap(value, read, check_total=check_total) is None
    )
