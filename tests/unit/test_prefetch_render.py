"""Prefetch templates rendered into the queries the service sends when nothing was prefetched."""

from __future__ import annotations

import pytest

from service.protocol import prefetch


@pytest.mark.parametrize("patient_id", ["pat-1", "123", "a.b-C9", "x" * 64])
def test_a_fhir_id_is_put_in_unchanged(patient_id: str) -> None:
    assert prefetch.render("Condition?patient={{context.patientId}}", {"patientId": patient_id}) == (
        f"Condition?patient={patient_id}"
    )


@pytest.mark.parametrize(
    ("patient_id", "query"),
    [
        ("a&b", "Condition?patient=a%26b"),  # no second parameter
        ("a#b", "Condition?patient=a%23b"),  # the query is not cut at a fragment
        ("../metadata", "Condition?patient=..%2Fmetadata"),
        ("a b+c", "Condition?patient=a%20b%2Bc"),
    ],
)
def test_anything_else_is_percent_encoded(patient_id: str, query: str) -> None:
    assert prefetch.render("Condition?patient={{context.patientId}}", {"patientId": patient_id}) == query


def test_a_read_cannot_climb_the_servers_path() -> None:
    assert (
        prefetch.render("Patient/{{context.patientId}}", {"patientId": "../metadata"})
        == "Patient/..%2Fmetadata"
    )


@pytest.mark.parametrize("value", [None, "", True, 1.5, {"id": "x"}])
def test_a_token_without_a_primitive_value_renders_nothing(value: object) -> None:
    assert prefetch.render("Patient/{{context.patientId}}", {"patientId": value}) is None


@pytest.mark.parametrize("code", ["21908-9", "21902-2", "21907-1", "21901-4"])
def test_the_observations_template_asks_for_stage_group_and_m_category(code: str) -> None:
    # A stage IV or M1 result is evidence of metastatic disease: a server must be asked for it.
    assert (
        f"http://loinc.org|{code}" in prefetch.templates()["observations"].split("code=", 1)[1].split("&")[0]
    )
