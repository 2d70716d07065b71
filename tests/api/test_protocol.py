"""The CDS Hooks 2.0.1 contract at the HTTP edge: discovery, requests, errors, cards, CORS."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.app import create_app
from service.settings import from_env
from tests import fhir_builders as fb

SERVICES = {
    "tdm1-order-select": "order-select",
    "tdm1-order-sign": "order-sign",
    "tdm1-patient-view": "patient-view",
}
ALLOWED_TOKENS = {
    "context.patientId",
    "context.userId",
    "context.encounterId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}


def post(client: FlaskClient, service: str, body: Any, **kwargs: Any):
    return client.post(f"/cds-services/{service}", json=body, **kwargs)


def first_line_request(hook: str = "order-sign") -> dict:
    return fb.hook_request(
        hook, drafts=[fb.medication_request()], history=fb.metastatic_history(prior_her2=False)
    )


def assert_outcome(response, status: int, text: str = "") -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    if text:
        assert text in json.dumps(body)


# --- discovery -------------------------------------------------------------------------------


def test_discovery_lists_the_three_services(client: FlaskClient) -> None:
    services = client.get("/cds-services").get_json()["services"]
    assert {s["id"]: s["hook"] for s in services} == SERVICES
    for service in services:
        assert service["title"] and service["description"]


def test_prefetch_templates_use_only_2_0_tokens_and_the_recommended_subset(client: FlaskClient) -> None:
    for service in client.get("/cds-services").get_json()["services"]:
        for template in service["prefetch"].values():
            assert set(re.findall(r"\{\{\s*([^}]+?)\s*\}\}", template)) <= ALLOWED_TOKENS
            query = template.split("?", 1)[1] if "?" in template else ""
            for parameter in filter(None, query.split("&")):
                name = parameter.split("=", 1)[0]
                assert name in {"patient", "code", "_sort", "_count"}, template
                assert ":" not in name  # no modifiers


# --- errors --------------------------------------------------------------------------------


def test_unknown_service_is_404(client: FlaskClient) -> None:
    assert_outcome(post(client, "no-such-service", first_line_request()), 404, "Unknown CDS service")


def test_get_on_a_service_is_405(client: FlaskClient) -> None:
    assert_outcome(client.get("/cds-services/tdm1-order-sign"), 405)


def test_wrong_hook_is_400(client: FlaskClient) -> None:
    assert_outcome(
        post(client, "tdm1-order-sign", first_line_request("order-select")),
        400,
        "answers the order-sign hook",
    )


@pytest.mark.parametrize("missing", ["hook", "hookInstance", "context"])
def test_missing_required_field_is_400_and_named(client: FlaskClient, missing: str) -> None:
    body = first_line_request()
    del body[missing]
    assert_outcome(post(client, "tdm1-order-sign", body), 400, missing)


@pytest.mark.parametrize("missing", ["patientId", "draftOrders", "userId"])
def test_missing_context_field_is_400_and_named(client: FlaskClient, missing: str) -> None:
    body = first_line_request()
    del body["context"][missing]
    assert_outcome(post(client, "tdm1-order-sign", body), 400, missing)


def test_order_select_needs_selections(client: FlaskClient) -> None:
    body = first_line_request("order-select")
    del body["context"]["selections"]
    assert_outcome(post(client, "tdm1-order-select", body), 400, "selections")


def test_fhir_authorization_without_fhir_server_is_400(client: FlaskClient) -> None:
    body = first_line_request()
    body["fhirAuthorization"] = {
        "access_token": "t",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "s",
        "subject": "x",
    }
    assert_outcome(post(client, "tdm1-order-sign", body), 400, "fhirServer")


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"hook": NaN}', "NaN is not a JSON value"),
        (b'{"hook": -Infinity}', "-Infinity is not a JSON value"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe", "UTF-8"),
        (b'{"hook": "order-sign"} {', "not valid JSON"),
        (b'{"hook": "\\ud800"}', "not valid JSON"),  # a lone surrogate is no Unicode text
        (b"", "not valid JSON"),
        (b"[" * 2000 + b"]" * 2000, "nested deeper than"),  # past the parser's own 1,024 levels
    ],
)
def test_malformed_bodies_are_400(client: FlaskClient, payload: bytes, text: str) -> None:
    response = client.post("/cds-services/tdm1-order-sign", data=payload, content_type="application/json")
    assert_outcome(response, 400, text)


def test_deep_nesting_is_400(client: FlaskClient) -> None:
    body = first_line_request()
    body["context"]["draftOrders"]["entry"][0]["resource"]["extension"] = json.loads("[" * 100 + "]" * 100)
    assert_outcome(post(client, "tdm1-order-sign", body), 400, "nested deeper")


def test_not_json_is_415(client: FlaskClient) -> None:
    response = client.post("/cds-services/tdm1-order-sign", data="hook=order-sign", content_type="text/plain")
    assert_outcome(response, 415)


def test_body_over_the_limit_is_413(tmp_path) -> None:
    app = create_app(
        from_env({}, dev=True, database_url=f"sqlite:///{tmp_path}/db.sqlite3", max_body_bytes=10_000)
    )
    body = first_line_request()
    body["context"]["padding"] = "x" * 20_000
    assert_outcome(app.test_client().post("/cds-services/tdm1-order-sign", json=body), 413)


def test_no_prefetch_and_no_fhir_server_is_412(client: FlaskClient) -> None:
    body = first_line_request()
    del body["prefetch"]
    assert_outcome(post(client, "tdm1-order-sign", body), 412)


def test_412_in_dev_mode_says_a_remote_fhir_server_was_set_aside(client: FlaskClient) -> None:
    # The sandbox's own server with no prefetch: the 412 said "no fhirServer was given".
    body = {**first_line_request(), "fhirServer": "https://launch.smarthealthit.org/v/r4/fhir"}
    del body["prefetch"]
    response = post(client, "tdm1-order-sign", body)
    assert_outcome(response, 412, "dev mode calls a fhirServer on loopback only")
    assert "no fhirServer was given" not in response.get_data(as_text=True)


def test_patient_view_without_any_data_is_412(client: FlaskClient) -> None:
    body = fb.hook_request("patient-view", history=[])
    del body["prefetch"]
    assert_outcome(post(client, "tdm1-patient-view", body), 412)


def test_unrelated_order_needs_no_data_and_gets_no_cards(client: FlaskClient) -> None:
    body = fb.hook_request("order-sign", drafts=[fb.medication_request("docetaxel", dose=75, unit="mg/m2")])
    del body["prefetch"]
    response = post(client, "tdm1-order-sign", body)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


# --- the card contract ------------------------------------------------------------------------


def no_empty_values(value: Any, path: str = "") -> None:
    assert value is not None, f"null at {path}"
    if isinstance(value, dict | list | str):
        assert len(value) > 0 or path.endswith("cards"), f"empty at {path}"
    if isinstance(value, dict):
        for key, item in value.items():
            no_empty_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            no_empty_values(item, f"{path}[{index}]")


@pytest.mark.parametrize("service", ["tdm1-order-select", "tdm1-order-sign"])
def test_cards_follow_the_spec_to_the_letter(client: FlaskClient, frozen_now, service: str) -> None:
    response = post(client, service, first_line_request(SERVICES[service]))
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert {c["source"]["topic"]["code"] for c in cards} == {"first-line-use"}
    for card in cards:
        no_empty_values(card, "card")
        assert len(card["summary"]) < 140
        assert card["indicator"] in {"info", "warning", "critical"}
        assert card["source"]["label"]
        assert card["source"]["topic"]["system"] == "urn:tdm1-cds:rule"
        assert re.fullmatch(r"[0-9a-f-]{36}", card["uuid"])
        if "suggestions" in card:
            assert card["selectionBehavior"] in {"at-most-one", "any"}
            for suggestion in card["suggestions"]:
                assert re.fullmatch(r"[0-9a-f-]{36}", suggestion["uuid"]) and suggestion["label"]
                for action in suggestion["actions"]:
                    assert action["type"] in {"create", "update", "delete"} and action["description"]
                    if action["type"] == "delete":
                        assert action["resourceId"]
                    else:
                        assert action["resource"]["resourceType"]
        for reason in card.get("overrideReasons", []):
            assert reason["display"] and reason["system"] == "urn:tdm1-cds:override-reason"
        for link in card.get("links", []):
            assert link["type"] in {"absolute", "smart"} and link["url"].startswith("https://")


def test_every_card_has_a_fresh_uuid(client: FlaskClient, frozen_now) -> None:
    body = fb.hook_request(
        "order-sign",
        drafts=[fb.medication_request()],
        history=fb.metastatic_history(prior_her2=False, labs=False),
    )
    cards = post(client, "tdm1-order-sign", body).get_json()["cards"]
    uuids = [c["uuid"] for c in cards] + [s["uuid"] for c in cards for s in c.get("suggestions", [])]
    assert len(cards) >= 3 and len(set(uuids)) == len(uuids)


# --- what real clients send -------------------------------------------------------------------


def test_sandbox_style_draft_without_bundle_type_or_intent(client: FlaskClient, frozen_now) -> None:
    body = first_line_request()
    del body["context"]["draftOrders"]["type"]
    del body["context"]["draftOrders"]["entry"][0]["resource"]["intent"]
    assert "first-line-use" in codes(post(client, "tdm1-order-sign", body))


def codes(response) -> set[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return {c["source"]["topic"]["code"] for c in response.get_json()["cards"]}


def test_resigned_order_is_not_its_own_history(client: FlaskClient, frozen_now) -> None:
    draft = fb.medication_request(status="active")
    body = fb.hook_request(
        "order-sign", drafts=[draft], history=[*fb.metastatic_history(prior_her2=False), dict(draft)]
    )
    assert "first-line-use" in codes(post(client, "tdm1-order-sign", body))


def test_medication_reference_to_contained_medication(client: FlaskClient, frozen_now) -> None:
    draft = fb.medication_request()
    del draft["medicationCodeableConcept"]
    draft["contained"] = [
        {"resourceType": "Medication", "id": "kad", "code": fb.medication_concept("tdm1-scd")}
    ]
    draft["medicationReference"] = {"reference": "#kad"}
    body = fb.hook_request("order-sign", drafts=[draft], history=fb.metastatic_history(prior_her2=False))
    assert "first-line-use" in codes(post(client, "tdm1-order-sign", body))


def test_medication_reference_to_prefetched_medication(client: FlaskClient, frozen_now) -> None:
    draft = fb.medication_request()
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = {"reference": "Medication/kadcyla-160"}
    body = fb.hook_request("order-sign", drafts=[draft], history=fb.metastatic_history(prior_her2=False))
    body["prefetch"]["medicationRequests"]["entry"].append(
        {
            "resource": {
                "resourceType": "Medication",
                "id": "kadcyla-160",
                "code": fb.medication_concept("tdm1"),
            },
            "search": {"mode": "include"},
        }
    )
    assert "first-line-use" in codes(post(client, "tdm1-order-sign", body))


def test_medication_reference_to_a_medication_sent_in_draft_orders(client: FlaskClient, frozen_now) -> None:
    """The Medication beside the order in draftOrders: read as a contained one. It was neither
    prefetched nor on the server, so the T-DM1 draft was never identified and no card fired."""
    draft = fb.medication_request()
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = {"reference": "Medication/kadcyla-160"}
    medication = {"resourceType": "Medication", "id": "kadcyla-160", "code": fb.medication_concept("tdm1")}
    body = fb.hook_request(
        "order-sign", drafts=[draft, medication], history=fb.metastatic_history(prior_her2=False)
    )
    assert codes(post(client, "tdm1-order-sign", body)) == {"first-line-use"}  # nothing said missing


def test_an_order_for_another_drug_named_in_draft_orders_needs_no_data(client: FlaskClient) -> None:
    draft = fb.medication_request()
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = {"reference": "Medication/ondansetron"}
    medication = {
        "resourceType": "Medication",
        "id": "ondansetron",
        "code": {"coding": [{"system": fb.RXNORM, "code": "26225", "display": "ondansetron"}]},
    }
    body = fb.hook_request("order-sign", drafts=[draft, medication], prefetch={})
    response = client.post("/cds-services/tdm1-order-sign", json=body)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


@pytest.mark.parametrize(
    "bad", [None, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}]
)
def test_null_or_failed_prefetch_key_is_missing_data_said_in_a_card(
    client: FlaskClient, frozen_now, bad
) -> None:
    body = first_line_request()
    body["prefetch"]["observations"] = bad
    found = codes(post(client, "tdm1-order-sign", body))
    assert "data-unavailable" in found
    assert not found & {"platelets-missing", "liver-tests-missing"}  # never fire on data we could not read


def test_prefetch_key_the_client_chose_not_to_send(client: FlaskClient, frozen_now) -> None:
    body = first_line_request()
    del body["prefetch"]["medicationStatements"]
    body["prefetch"]["somethingElse"] = {"resourceType": "Bundle", "type": "searchset"}
    found = codes(post(client, "tdm1-order-sign", body))
    assert "data-unavailable" in found and "first-line-use" not in found


def test_empty_bundles_are_data_not_failure(client: FlaskClient, frozen_now) -> None:
    body = first_line_request()
    body["prefetch"]["medicationStatements"] = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    assert "data-unavailable" not in codes(post(client, "tdm1-order-sign", body))


def test_order_select_looks_at_the_selected_orders_only(client: FlaskClient, frozen_now) -> None:
    kadcyla = fb.medication_request()
    other = fb.medication_request("docetaxel", dose=75, unit="mg/m2")
    body = fb.hook_request(
        "order-select",
        drafts=[kadcyla, other],
        history=fb.metastatic_history(prior_her2=False),
        selections=[f"MedicationRequest/{other['id']}"],
    )
    assert codes(post(client, "tdm1-order-select", body)) == set()
    body["context"]["selections"] = [f"MedicationRequest/{kadcyla['id']}"]
    assert "first-line-use" in codes(post(client, "tdm1-order-select", body))


# --- CORS --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/cds-services", "/cds-services/tdm1-order-sign", "/cds-services/tdm1-order-sign/feedback", "/anything"],
)
def test_preflight_on_every_path(client: FlaskClient, path: str) -> None:
    response = client.options(
        path,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_private_network_preflight_in_dev_mode(client: FlaskClient) -> None:
    headers = {
        "Origin": "https://sandbox.cds-hooks.org",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Private-Network": "true",
    }
    response = client.options("/cds-services/tdm1-order-sign", headers=headers)
    assert response.headers["Access-Control-Allow-Private-Network"] == "true"


def test_actual_post_carries_cors_headers(client: FlaskClient, frozen_now) -> None:
    response = post(
        client, "tdm1-order-sign", first_line_request(), headers={"Origin": "https://sandbox.cds-hooks.org"}
    )
    assert response.headers["Access-Control-Allow-Origin"] == "*"


# --- the card log ---------------------------------------------------------------------------------


def test_issued_cards_are_logged_without_identifiers(client: FlaskClient, app, frozen_now) -> None:
    body = first_line_request()
    cards = post(client, "tdm1-order-sign", body).get_json()["cards"]
    rows = app.config["STORE"].issued()
    assert {r.uuid for r in rows} == {c["uuid"] for c in cards}
    for row in rows:
        assert row.rule_id == "first-line-use" and row.service_id == "tdm1-order-sign"
        assert "pat-1" not in json.dumps({k: str(v) for k, v in vars(row).items()})
        assert row.patient_hash != "pat-1" and len(row.patient_hash) == 64


def test_logs_carry_no_patient_id_or_token(client: FlaskClient, frozen_now, caplog) -> None:
    body = first_line_request()
    body["context"]["patientId"] = "pat-very-identifying-7731"
    for key, value in body["prefetch"].items():
        if key != "patient":
            for entry in value.get("entry", []):
                entry["resource"]["subject"] = {"reference": "Patient/pat-very-identifying-7731"}
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {
        "access_token": "secret-token-991",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "s",
        "subject": "x",
    }
    with caplog.at_level("DEBUG"):
        assert post(client, "tdm1-order-sign", body).status_code == 200
    text = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    assert "hook call" in text
    assert (
        "pat-very-identifying-7731" not in text
        and "secret-token-991" not in text
        and "Testpatient" not in text
    )


def test_another_patients_data_never_fires_a_card(client: FlaskClient, frozen_now) -> None:
    body = first_line_request()
    foreign = fb.observation("platelets", 20, fb.ago(days=1), patient_id="someone-else")
    body["prefetch"]["observations"]["entry"].append({"resource": foreign})
    response = post(client, "tdm1-order-sign", body)
    found = codes(response)
    assert "thrombocytopenia-hold" not in found
    (note,) = [c for c in response.get_json()["cards"] if c["source"]["topic"]["code"] == "data-unavailable"]
    assert "another patient" in note["detail"]


@pytest.mark.parametrize("hook", ["order-sign", "patient-view"])
def test_a_result_with_no_readable_date_is_said_beside_the_missing_lab_card(
    client: FlaskClient, frozen_now, hook: str
) -> None:
    # A CBC drawn and released, but neither date can be read: the missing-platelets card fires (no
    # count can be placed before the dose) and the notes say that a count exists, undated.
    undated = fb.platelet_count(150, effective="garbage", issued="2026-11-24T25:00:00Z")
    history = [
        *fb.metastatic_history(labs=False),
        *[lab for lab in fb.fresh_labs() if lab["code"]["coding"][0]["code"] != "777-3"],
        fb.administration("tdm1", fb.ago(days=21)),
        undated,
    ]
    drafts = [fb.medication_request("tdm1")] if hook == "order-sign" else []
    response = post(client, f"tdm1-{hook}", fb.hook_request(hook, drafts=drafts, history=history))
    cards = {c["source"]["topic"]["code"]: c for c in response.get_json()["cards"]}
    assert "platelets-missing" in cards, list(cards)
    note = cards["data-unavailable"]["detail"]
    assert "1 Observation(s) (platelet count) had no readable date and were not used." in note


def test_a_stage_iv_linked_to_no_condition_is_said_and_leaves_the_adjuvant_course_alone(
    client: FlaskClient, frozen_now
) -> None:
    # KATHERINE patient with a Hodgkin lymphoma on record and a stage IV result naming no condition:
    # it may be the lymphoma's, so the course stays adjuvant (EBC bilirubin hold, no
    # fixed-duration-stop) and the data-unavailable card says the result was not used.
    stage = fb.staging("clinical-stage", fb.stage_value(fb.AJCC, "4", "Stage IV"), fb.ago(days=30))
    history = fb.katherine_history(fb.hodgkin_lymphoma(), stage, bilirubin=1.45)
    body = fb.hook_request("order-sign", drafts=[fb.medication_request(count=14)], history=history)
    cards = {
        c["source"]["topic"]["code"]: c for c in post(client, "tdm1-order-sign", body).get_json()["cards"]
    }
    assert "fixed-duration-stop" not in cards and cards["hepatotoxicity"]["indicator"] == "critical"
    assert "(stage group IV on 2026-10-26) linked to no condition" in cards["data-unavailable"]["detail"]


def _with_date(resource: dict, element: str, when: str) -> dict:
    resource[element] = when
    return resource


# Each dated element the record reads, with a date Python's calendar cannot shift or convert.
EXTREME_DATES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31", "0001-01-01"]


@pytest.mark.parametrize("when", EXTREME_DATES)
@pytest.mark.parametrize("service", ["tdm1-order-sign", "tdm1-patient-view"])
def test_a_date_at_the_calendars_ends_is_unreadable_not_a_500(
    client: FlaskClient, frozen_now, service: str, when: str
) -> None:
    platelets = _with_date(fb.observation("platelets", 40.0, fb.ago(days=1)), "effectiveDateTime", when)
    del platelets["issued"]  # else it is dated by issued, kept as unreadable (effective date unreadable)
    history = [
        *fb.metastatic_history(),
        platelets,
        _with_date(fb.administration("tdm1", fb.ago(days=21)), "effectiveDateTime", when),
        _with_date(
            fb.medication_request("tdm1", status="completed", authored=fb.ago(days=22)), "authoredOn", when
        ),
        _with_date(fb.breast_cancer(onset=fb.ago(days=400)), "onsetDateTime", when),
    ]
    hook = "order-sign" if service == "tdm1-order-sign" else "patient-view"
    drafts = {"drafts": [fb.medication_request("tdm1")]} if hook == "order-sign" else {}
    response = post(client, service, fb.hook_request(hook, history=history, **drafts))
    assert response.status_code == 200, response.get_json()
    # An undated platelet count of 40,000 cannot be placed before the dose: it never fires a hold.
    codes = [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]
    assert "thrombocytopenia-hold" not in codes


def test_a_request_body_with_a_utf8_byte_order_mark_is_read(client) -> None:
    # RFC 8259 §8.1 lets a parser ignore it, and .NET clients write one.
    body = json.dumps(fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")])).encode()
    plain = client.post("/cds-services/tdm1-order-sign", data=body, content_type="application/json")
    marked = client.post(
        "/cds-services/tdm1-order-sign", data=b"\xef\xbb\xbf" + body, content_type="application/json"
    )
    assert plain.status_code == marked.status_code == 200
    assert [c["source"]["topic"]["code"] for c in marked.get_json()["cards"]] == [
        c["source"]["topic"]["code"] for c in plain.get_json()["cards"]
    ]


def test_the_dstu2_media_type_is_read_as_json(client) -> None:
    body = json.dumps(fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")]))
    response = client.post("/cds-services/tdm1-order-sign", data=body, content_type="application/json+fhir")
    assert response.status_code == 200 and "cards" in response.get_json()


@pytest.mark.parametrize("hook", ["order-sign", "patient-view"])
@pytest.mark.parametrize("element", ["effectiveDateTime", "_effectiveDateTime"])
def test_a_newer_result_that_cannot_be_dated_is_said_beside_an_older_normal_one(
    client: FlaskClient, frozen_now, hook: str, element: str
) -> None:
    # Normal labs yesterday; a count of 40,000/mm3 released 20 hours ago whose collection time is
    # garbled (or only a data-absent-reason). It is not graded (it may predate the last dose), and
    # the rules, reading the newest readable count, say nothing of it: the note must.
    absent = {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
    garbled = "2026-13-45" if element == "effectiveDateTime" else {"extension": [absent]}
    low = fb.platelet_count(40, effective=garbled, issued=fb.ago(hours=20), element=element)
    history = [*fb.metastatic_history(), fb.administration("tdm1", fb.ago(days=21)), low]
    drafts = [fb.medication_request("tdm1")] if hook == "order-sign" else []
    response = post(client, f"tdm1-{hook}", fb.hook_request(hook, drafts=drafts, history=history))
    cards = {c["source"]["topic"]["code"]: c for c in response.get_json()["cards"]}
    assert "thrombocytopenia-hold" not in cards  # never graded on a date that could not be read
    note = cards["data-unavailable"]["detail"]
    issued = fb.ago(hours=20).date().isoformat()
    assert (
        "1 platelet count result(s) with an effective date that could not be read were not used; "
        f"the newest, issued {issued}, reads 40,000/mm3: check when it was drawn."
    ) in note
    # The other side: dated, the same count is graded and no note is needed.
    low = fb.platelet_count(40, effective=fb.ago(hours=20), issued=fb.ago(hours=20))
    history[-1] = low
    response = post(client, f"tdm1-{hook}", fb.hook_request(hook, drafts=drafts, history=history))
    codes = {c["source"]["topic"]["code"] for c in response.get_json()["cards"]}
    assert "thrombocytopenia-hold" in codes and "data-unavailable" not in codes


@pytest.mark.parametrize("path", ["/cds-services/tdm1-order-sign", "/cds-services/tdm1-order-sign/feedback"])
def test_a_compressed_body_is_415_naming_the_content_encoding(client: FlaskClient, path: str) -> None:
    # It was read as raw bytes and refused as "not UTF-8", which sent the integrator the wrong way.
    body = json.dumps(fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")])).encode()
    response = client.post(
        path, data=gzip.compress(body), content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    assert_outcome(response, 415, "Content-Encoding 'gzip'")


def test_identity_content_encoding_is_read_as_is(client: FlaskClient) -> None:
    body = json.dumps(fb.hook_request("order-sign", drafts=[fb.medication_request("tdm1")]))
    response = client.post(
        "/cds-services/tdm1-order-sign",
        data=body,
        content_type="application/json",
        headers={"Content-Encoding": "identity"},
    )
    assert response.status_code == 200 and "cards" in response.get_json()


def _draft_by_reference(reference: dict[str, Any], rid: str = "d1") -> dict[str, Any]:
    draft = fb.medication_request(rid=rid)
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = reference
    return draft


def test_an_order_whose_unread_medication_is_named_by_display_as_another_drug_gets_no_card(
    client: FlaskClient, frozen_now
) -> None:
    """The Medication was not sent, but the reference's display names the drug: ondansetron, no
    T-DM1 or look-alike, so no card at all (the card contract), as for history entries so named."""
    draft = _draft_by_reference({"reference": "Medication/ond", "display": "ondansetron 8 mg tablet"})
    body = fb.hook_request("order-sign", drafts=[draft], history=fb.metastatic_history(prior_her2=False))
    assert post(client, "tdm1-order-sign", body).get_json() == {"cards": []}


@pytest.mark.parametrize("code", [None, {}, {"text": ""}])
def test_a_draft_whose_medication_carries_no_code_is_said(client: FlaskClient, frozen_now, code) -> None:
    """The Medication was sent (beside the order in draftOrders) but names no drug: it may be T-DM1."""
    medication: dict = {"resourceType": "Medication", "id": "m-blank"}
    if code is not None:
        medication["code"] = code
    draft = _draft_by_reference({"reference": "Medication/m-blank"})
    body = fb.hook_request(
        "order-sign", drafts=[draft, medication], history=fb.metastatic_history(prior_her2=False)
    )
    response = post(client, "tdm1-order-sign", body)
    assert codes(response) == {"data-unavailable"}
    assert "carries no code" in response.get_json()["cards"][0]["detail"]


def test_a_draft_whose_medication_names_another_drug_gets_no_card(client: FlaskClient, frozen_now) -> None:
    medication = {"resourceType": "Medication", "id": "m-ond", "code": {"text": "ondansetron 8 mg tablet"}}
    draft = _draft_by_reference({"reference": "Medication/m-ond"})
    body = fb.hook_request(
        "order-sign", drafts=[draft, medication], history=fb.metastatic_history(prior_her2=False)
    )
    assert post(client, "tdm1-order-sign", body).get_json() == {"cards": []}


def test_a_draft_naming_a_contained_medication_that_is_not_there_is_said(
    client: FlaskClient, frozen_now
) -> None:
    """medicationReference #kad with no contained Medication kad: the drug cannot be told, and it
    may be T-DM1; the answer was {"cards": []}, as for an order that had been checked."""
    draft = _draft_by_reference({"reference": "#kad"})
    body = fb.hook_request("order-sign", drafts=[draft], history=fb.metastatic_history(prior_her2=False))
    response = post(client, "tdm1-order-sign", body)
    assert codes(response) == {"data-unavailable"}
    assert (
        "The drug of MedicationRequest/d1 could not be identified"
        in response.get_json()["cards"][0]["detail"]
    )
