"""The real server reading a real FHIR server: no prefetch, partial prefetch, paging, the token.

gunicorn-served tdm1-cds (dev mode, loopback fhirServer allowed) against the Medplum FHIR router
with an in-memory repository loaded from fhir_fixtures/patients, which pages at 20 entries like
real servers do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import fhir_builders as fb
from tests.integration.conftest import start_server, stop_server
from tests.medplum import fetch_requests, medplum_server, reset_requests

pytestmark = pytest.mark.integration
PATIENTS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "patients"
TOKEN = "fhir-access-token-for-tests-5521"


@pytest.fixture(scope="module")
def fhir_base() -> Iterator[str]:
    with medplum_server([PATIENTS], token=TOKEN) as base:
        yield base


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose fetch deadline is generous: these tests are about what is fetched, not how fast
    (the deadline itself is tested in tests/resilience, the speed in make bench)."""
    # No fetch cache: each test here asserts which queries reach the FHIR server. Pages of 20, the
    # server's own default, so the seeded 31 Observations take two pages and paging is exercised
    # on a real FHIR server (the default of 200 is tested in tests/resilience).
    env = {
        "TDM1_CDS_FETCH_DEADLINE_SECONDS": "20",
        "TDM1_CDS_FETCH_CACHE_TTL_SECONDS": "0",
        "TDM1_CDS_FETCH_PAGE_SIZE": "20",
    }
    process, base = start_server(tmp_path_factory.mktemp("fhir-live"), env)
    yield base
    stop_server(process)


def kadcyla_request(fhir_base: str, token: str = TOKEN, prefetch: dict | None = None) -> dict:
    request = fb.hook_request(
        "order-sign",
        drafts=[fb.medication_request(patient_id="fhir-pat-1")],
        patient_id="fhir-pat-1",
        prefetch={},
    )
    request["fhirServer"] = fhir_base
    request["fhirAuthorization"] = fb.fhir_authorization(
        token, scope="user/Patient.read user/Observation.read user/Condition.read user/MedicationRequest.read"
    )
    if prefetch is None:
        del request["prefetch"]
    else:
        request["prefetch"] = prefetch
    return request


def call(live_server: str, request: dict) -> list[dict]:
    response = requests.post(f"{live_server}/cds-services/tdm1-order-sign", json=request, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def test_no_prefetch_everything_fetched_with_the_token_and_pages_followed(
    live_server: str, fhir_base: str
) -> None:
    reset_requests(fhir_base)
    cards = call(live_server, kadcyla_request(fhir_base))
    codes = {c["source"]["topic"]["code"] for c in cards}
    # second line after THP with fresh labs: only the T-DXd advisory; the labs were found on page 1
    assert "first-line-use" not in codes and "data-unavailable" not in codes
    assert not codes & {"platelets-missing", "liver-tests-missing"}
    seen = fetch_requests(fhir_base)
    assert seen and all(r["authorization_ok"] for r in seen)
    paths = [r["url"] for r in seen]
    for resource in (
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationAdministration",
        "MedicationStatement",
    ):
        assert any(p.startswith(f"/fhir/{resource}?") for p in paths), (resource, paths)
    # 25 platelet counts + 6 other observations > 20 per page: the next link was followed
    observation_pages = [p for p in paths if p.startswith("/fhir/Observation?")]
    assert len(observation_pages) >= 2 and any("_offset=20" in p for p in observation_pages)


def test_partial_prefetch_fetches_only_what_is_missing(live_server: str, fhir_base: str) -> None:
    conditions = requests.get(
        f"{fhir_base}/Condition?patient=fhir-pat-1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).json()
    reset_requests(fhir_base)
    call(
        live_server,
        kadcyla_request(fhir_base, prefetch={"conditions": conditions, "medicationStatements": None}),
    )
    paths = [r["url"] for r in fetch_requests(fhir_base)]
    assert not any(p.startswith("/fhir/Condition?") for p in paths)
    assert any(p.startswith("/fhir/MedicationStatement?") for p in paths)  # sent as null: fetched


def test_first_line_patient_found_through_the_server(
    live_server: str, fhir_base: str, tmp_path: Path
) -> None:
    # the same patient without the THP statements is first line: proves the fetched history is used
    statements = requests.get(
        f"{fhir_base}/MedicationStatement?patient=fhir-pat-1",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ).json()
    prefetch = {"medicationStatements": {"resourceType": "Bundle", "type": "searchset", "total": 0}}
    assert statements["total"] == 2
    codes = {
        c["source"]["topic"]["code"] for c in call(live_server, kadcyla_request(fhir_base, prefetch=prefetch))
    }
    assert "first-line-use" in codes


def test_draft_naming_a_medication_only_the_server_has(live_server: str, fhir_base: str) -> None:
    request = kadcyla_request(fhir_base)
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = {"reference": "Medication/kadcyla-100-vial"}
    reset_requests(fhir_base)
    codes = {c["source"]["topic"]["code"] for c in call(live_server, request)}
    assert "/fhir/Medication/kadcyla-100-vial" in [r["url"] for r in fetch_requests(fhir_base)]
    assert "tdxd-preferred" in codes  # recognised as T-DM1, second line after THP


def test_rejected_token_gives_data_unavailable_not_an_error(live_server: str, fhir_base: str) -> None:
    cards = call(live_server, kadcyla_request(fhir_base, token="wrong-token"))
    (unavailable,) = [c for c in cards if c["source"]["topic"]["code"] == "data-unavailable"]
    assert unavailable["indicator"] == "warning"
    assert "Observations" in unavailable["summary"] or "Observations" in unavailable["detail"]
    codes = {c["source"]["topic"]["code"] for c in cards}
    assert not codes & {
        "first-line-use",
        "platelets-missing",
        "liver-tests-missing",
    }  # nothing fired on unread data


def test_patient_record_fixture_is_real_fhir() -> None:
    from fhir.resources.R4B.bundle import Bundle

    for path in PATIENTS.glob("*.json"):
        Bundle.model_validate(json.loads(path.read_text()))
