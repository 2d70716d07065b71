"""The benchmark's request bodies are what bench/RESULTS.md says they are, and the service takes them."""

from __future__ import annotations

from collections import Counter

from bench import workloads
from tests import fhir_builders as fb


def _types(history: list[dict]) -> Counter[str]:
    return Counter(r["resourceType"] for r in history)


def test_realistic_patient_has_the_documented_size() -> None:
    counts = _types(workloads.realistic_history())
    assert 28 <= counts["Observation"] <= 32
    assert counts["Condition"] == 5
    assert counts["MedicationRequest"] + counts["MedicationAdministration"] == 20


def test_large_history_has_2000_resources() -> None:
    assert len(workloads.large_history()) == 2000


def test_each_workload_answers_with_its_card(client, frozen_now) -> None:
    realistic = workloads.realistic_history()
    cases = [
        ("tdm1-order-sign", workloads.order_sign(realistic), "fixed-duration-stop"),
        ("tdm1-patient-view", workloads.patient_view(realistic), "treatment-summary"),
        ("tdm1-order-sign", workloads.order_sign(workloads.large_history()), "fixed-duration-stop"),
    ]
    for service, body, expected in cases:
        response = client.post(f"/cds-services/{service}", json=body)
        assert response.status_code == 200, response.get_json()
        assert expected in [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]


def test_slow_server_data_is_the_prefetch_data() -> None:
    history = workloads.realistic_history()
    answers = workloads.fhir_responses(history)
    assert set(answers) == {"Patient", *fb.PREFETCH_KEYS}
