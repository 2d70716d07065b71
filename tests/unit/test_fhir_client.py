"""FhirClient against a mocked FHIR server (responses): paging, the token, what it refuses."""

from __future__ import annotations

import time

import pytest
import responses

from service.fhir.client import FhirClient
from tests import fhir_builders as fb

BASE = "https://ehr.example.org/fhir"
TOKEN = "opaque-access-token-42"


def page(resources: list[dict], next_url: str | None) -> dict:
    bundle = fb.searchset(resources)
    bundle["link"] = [{"relation": "self", "url": f"{BASE}/Observation"}]
    if next_url:
        bundle["link"].append({"relation": "next", "url": next_url})
    return bundle


def deadline(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


@responses.activate
def test_follows_next_links_with_the_same_token() -> None:
    labs = [fb.observation("platelets", 200 + i, fb.ago(days=i)) for i in range(45)]
    responses.get(
        f"{BASE}/Observation?patient=pat-1",
        json=page(labs[:20], f"{BASE}/Observation?patient=pat-1&_offset=20"),
    )
    responses.get(
        f"{BASE}/Observation?patient=pat-1&_offset=20",
        json=page(labs[20:40], f"{BASE}/Observation?patient=pat-1&_offset=40"),
    )
    responses.get(f"{BASE}/Observation?patient=pat-1&_offset=40", json=page(labs[40:], None))
    result = FhirClient(BASE, TOKEN).search("observations", "Observation?patient=pat-1", deadline())
    assert result.ok and result.pages == 3 and len(result.resources) == 45
    assert {call.request.headers["Authorization"] for call in responses.calls} == {f"Bearer {TOKEN}"}


@responses.activate
def test_page_cap_marks_the_result_truncated() -> None:
    responses.get(
        f"{BASE}/Observation?patient=pat-1",
        json=page([fb.observation("alt", 20, fb.ago(days=1))], f"{BASE}/Observation?patient=pat-1&p=2"),
    )
    responses.get(
        f"{BASE}/Observation?patient=pat-1&p=2",
        json=page([fb.observation("alt", 21, fb.ago(days=2))], f"{BASE}/Observation?patient=pat-1&p=3"),
    )
    result = FhirClient(BASE, TOKEN, max_pages=2).search(
        "observations", "Observation?patient=pat-1", deadline()
    )
    assert result.truncated and result.pages == 2


@responses.activate
def test_a_next_link_to_another_server_is_not_followed() -> None:
    responses.get(
        f"{BASE}/Condition?patient=pat-1",
        json=page([fb.breast_cancer()], "https://attacker.example.net/fhir/Condition?page=2"),
    )
    result = FhirClient(BASE, TOKEN).search("conditions", "Condition?patient=pat-1", deadline())
    assert not result.ok and "another server" in result.error
    assert len(responses.calls) == 1  # the token never went to the other host


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"status": 401, "json": {"resourceType": "OperationOutcome"}}, "HTTP 401"),
        ({"status": 500, "body": "oops"}, "HTTP 500"),
        ({"status": 302, "headers": {"Location": "https://elsewhere.example.net/"}}, "HTTP 302"),
        ({"status": 200, "body": "<html>login</html>"}, "not JSON"),
        ({"status": 200, "body": '{"entry": ['}, "not JSON"),
        ({"status": 200, "json": {"hello": "world"}}, "not a FHIR resource"),
        ({"status": 200, "json": {"resourceType": "OperationOutcome", "issue": []}}, "OperationOutcome"),
    ],
)
@responses.activate
def test_failures_are_reported_not_raised(kwargs: dict, error: str) -> None:
    responses.get(f"{BASE}/MedicationRequest?patient=pat-1", **kwargs)
    result = FhirClient(BASE, TOKEN).search(
        "medicationRequests", "MedicationRequest?patient=pat-1", deadline()
    )
    assert not result.ok and error in result.error
    assert TOKEN not in result.error


def test_a_spent_deadline_makes_no_call() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        result = FhirClient(BASE, TOKEN).search("conditions", "Condition?patient=pat-1", time.monotonic() - 1)
        assert not result.ok and len(mock.calls) == 0
