"""The HTTP edge with the database up, down and back: hook calls always answer, feedback says 503."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from service.app import create_app
from service.settings import from_env
from service.store import Store
from tests import fhir_builders as fb

HOOK = "/cds-services/tdm1-order-sign"
FEEDBACK = "/cds-services/tdm1-order-sign/feedback"


def _app(database_url: str, **settings: object) -> Flask:
    app = create_app(
        from_env({}, dev=True, database_url=database_url, **settings),
        store=Store(database_url, retry_after_seconds=0),
    )
    app.config["CLOCK"] = lambda: fb.NOW
    return app


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    built = _app(database_url)
    yield built
    built.config["STORE"].close()


def _card_request() -> dict:
    return fb.hook_request(
        "order-sign", drafts=[fb.medication_request()], history=fb.metastatic_history(prior_her2=False)
    )


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _overridden(card: dict) -> dict:
    return {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": card["overrideReasons"][0]},
                "outcomeTimestamp": "2026-11-25T09:02:00Z",
            }
        ]
    }


def test_feedback_is_idempotent_through_the_api(app: Flask) -> None:
    client = app.test_client()
    (card,) = client.post(HOOK, json=_card_request()).get_json()["cards"]
    first = client.post(FEEDBACK, json=_overridden(card))
    again = client.post(FEEDBACK, json=_overridden(card))
    assert first.status_code == again.status_code == 200
    assert (first.get_json()["stored"], again.get_json()["stored"]) == (1, 0)
    assert len(app.config["STORE"].feedback_for(card["uuid"])) == 1


@pytest.mark.parametrize(
    "item",
    [
        {"card": "card\u0000x", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T09:02:00Z"},
        {"outcome": "overridden", "outcomeTimestamp": "2026-11-25T09:02:00\u0000Z"},
        {
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "s\u0000"}],
            "outcomeTimestamp": "2026-11-25T09:02:00Z",
        },
        {
            "outcome": "overridden",
            "overrideReason": {"reason": {"system": "urn:x\u0000", "code": "c"}},
            "outcomeTimestamp": "2026-11-25T09:02:00Z",
        },
        {
            "outcome": "overridden",
            "overrideReason": {"reason": {"system": "urn:x", "code": "c\u0000"}},
            "outcomeTimestamp": "2026-11-25T09:02:00Z",
        },
    ],
)
def test_a_nul_character_in_a_kept_feedback_field_is_400_not_a_503_to_retry(app: Flask, item: dict) -> None:
    """PostgreSQL text cannot hold U+0000: the write failed, and the EHR was told to retry forever."""
    client = app.test_client()
    (card,) = client.post(HOOK, json=_card_request()).get_json()["cards"]
    good = _overridden(card)["feedback"][0]
    response = client.post(FEEDBACK, json={"feedback": [good, {"card": card["uuid"], **item}]})
    assert response.status_code == 400 and response.is_json
    assert "feedback/1/" in response.get_data(as_text=True)
    assert client.post(FEEDBACK, json={"feedback": [good]}).get_json()["stored"] == 1


@pytest.mark.parametrize("flaky_database", ["sqlite", "postgresql"], indirect=True)
def test_database_down_hooks_answer_feedback_503_readyz_503(flaky_database) -> None:
    url, switch = flaky_database
    app = _app(url)
    client: FlaskClient = app.test_client()
    store: Store = app.config["STORE"]
    try:
        (card,) = client.post(HOOK, json=_card_request()).get_json()["cards"]
        assert client.get("/readyz").status_code == 200
        switch.down()
        store.engine.dispose()
        failures = _sample("tdm1_cds_card_log_write_failures_total", service="tdm1-order-sign")

        response = client.post(HOOK, json=_card_request())
        assert response.status_code == 200
        (late_card,) = response.get_json()["cards"]
        assert _sample("tdm1_cds_card_log_write_failures_total", service="tdm1-order-sign") == failures + 1

        refused = client.post(FEEDBACK, json=_overridden(card))
        assert refused.status_code == 503
        assert refused.is_json and refused.get_json()  # a JSON body the EHR can log
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.is_json
        assert client.get("/healthz").status_code == 200  # alive: do not restart, just do not route

        switch.up()
        assert client.get("/readyz").status_code == 200
        assert store.card(late_card["uuid"]) is not None  # the card issued while down was logged
        assert client.post(FEEDBACK, json=_overridden(card)).get_json()["stored"] == 1
    finally:
        store.close()


def test_metrics_count_requests_hooks_cards_and_prefetch(app: Flask) -> None:
    client = app.test_client()
    labels = {"service": "tdm1-order-sign", "route": "/cds-services/<service_id>", "status": "200"}
    before = {
        "requests": _sample("tdm1_cds_http_requests_total", **labels),
        "latency": _sample(
            "tdm1_cds_hook_duration_seconds_count", service="tdm1-order-sign", hook="order-sign"
        ),
        "cards": _sample("tdm1_cds_cards_issued_total", rule="first-line-use", indicator="warning"),
        "prefetched": _sample("tdm1_cds_prefetch_keys_total", key="conditions", source="prefetched"),
        "unknown": _sample(
            "tdm1_cds_http_requests_total", service="-", route="/cds-services/<service_id>", status="404"
        ),
    }
    (card,) = client.post(HOOK, json=_card_request()).get_json()["cards"]
    assert card["source"]["topic"]["code"] == "first-line-use"
    client.post("/cds-services/no-such-service", json=_card_request())
    assert _sample("tdm1_cds_http_requests_total", **labels) == before["requests"] + 1
    assert (
        _sample("tdm1_cds_hook_duration_seconds_count", service="tdm1-order-sign", hook="order-sign")
        == before["latency"] + 1
    )
    assert (
        _sample("tdm1_cds_cards_issued_total", rule="first-line-use", indicator="warning")
        == before["cards"] + 1
    )
    assert (
        _sample("tdm1_cds_prefetch_keys_total", key="conditions", source="prefetched")
        == before["prefetched"] + 1
    )
    # An unknown service id does not become a label of its own.
    assert (
        _sample("tdm1_cds_http_requests_total", service="-", route="/cds-services/<service_id>", status="404")
        == before["unknown"] + 1
    )
    scrape = client.get("/metrics")
    assert scrape.status_code == 200 and scrape.mimetype == "text/plain"
    text = scrape.get_data(as_text=True)
    assert "tdm1_cds_hook_duration_seconds_bucket" in text and "tdm1_cds_jwt_failures_total" in text
    assert "pat-1" not in text and "no-such-service" not in text


def test_admin_report_is_404_when_no_token_is_configured(app: Flask) -> None:
    response = app.test_client().get("/admin/report", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404 and response.is_json


def test_admin_report_needs_the_token(database_url: str) -> None:
    app = _app(database_url, admin_token="correct-horse-battery")
    client = app.test_client()
    try:
        (card,) = client.post(HOOK, json=_card_request()).get_json()["cards"]
        client.post(FEEDBACK, json=_overridden(card))
        assert client.get("/admin/report").status_code == 401
        assert (
            client.get("/admin/report", headers={"Authorization": "Bearer correct-horse"}).status_code == 401
        )
        assert (
            client.get("/admin/report", headers={"Authorization": "Basic correct-horse-battery"}).status_code
            == 401
        )
        page = client.get("/admin/report", headers={"Authorization": "Bearer correct-horse-battery"})
        assert page.status_code == 200 and page.mimetype == "text/html"
        html = page.get_data(as_text=True)
        assert "first-line-use" in html and card["overrideReasons"][0]["code"] in html
        assert "100.0%" in html  # one card, overridden
        bad = client.get(
            "/admin/report?since=yesterday", headers={"Authorization": "Bearer correct-horse-battery"}
        )
        assert bad.status_code == 400
    finally:
        app.config["STORE"].close()


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic correct-horse-battery"])
def test_admin_refusal_is_a_bare_json_outcome_as_documented(database_url: str, header: str | None) -> None:
    # It was an empty text/html 401, where /openapi.json promises an OperationOutcome.
    app = _app(database_url, admin_token="correct-horse-battery")
    try:
        response = app.test_client().get("/admin/report", headers={"Authorization": header} if header else {})
        assert response.status_code == 401 and response.is_json
        assert response.get_json() == {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "login"}],
        }
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    finally:
        app.config["STORE"].close()


@pytest.mark.parametrize("flaky_database", ["sqlite", "postgresql"], indirect=True)
def test_service_starts_and_answers_with_the_database_down(flaky_database) -> None:
    url, switch = flaky_database
    switch.down()
    app = _app(url)
    client = app.test_client()
    try:
        response = client.post(HOOK, json=_card_request())
        assert response.status_code == 200 and len(response.get_json()["cards"]) == 1
        assert client.get("/readyz").status_code == 503
        switch.up()
        assert client.get("/readyz").status_code == 200
        (card,) = response.get_json()["cards"]
        assert app.config["STORE"].card(card["uuid"]) is not None
    finally:
        app.config["STORE"].close()


def test_a_feedback_post_that_fails_midway_stores_and_counts_nothing(app: Flask) -> None:
    """All or nothing: the first item's insert went through, the second's failed, the transaction
    rolled back and the EHR was told 503. The counter had already counted the first as stored."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    client = app.test_client()
    store: Store = app.config["STORE"]
    cards = [client.post(HOOK, json=_card_request()).get_json()["cards"][0] for _ in range(2)]
    body = {"feedback": [_overridden(card)["feedback"][0] for card in cards]}
    inserts: list[str] = []

    def second_insert_fails(_conn, _cursor, statement: str, *_args) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO FEEDBACK"):
            inserts.append(statement)
            if len(inserts) == 2:
                raise OperationalError(statement, {}, Exception("database is locked"))

    new = {"outcome": "overridden", "stored": "new"}
    before = _sample("tdm1_cds_feedback_items_total", **new)
    event.listen(store.engine, "before_cursor_execute", second_insert_fails)
    try:
        refused = client.post(FEEDBACK, json=body)
    finally:
        event.remove(store.engine, "before_cursor_execute", second_insert_fails)
    assert len(inserts) == 2  # the failure was where the test put it: after one row was written
    assert refused.status_code == 503 and refused.is_json
    assert [store.feedback_for(card["uuid"]) for card in cards] == [[], []]
    assert _sample("tdm1_cds_feedback_items_total", **new) == before

    retried = client.post(FEEDBACK, json=body)
    assert retried.status_code == 200 and retried.get_json() == {"received": 2, "stored": 2}
    assert _sample("tdm1_cds_feedback_items_total", **new) == before + 2
