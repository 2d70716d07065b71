"""Schemathesis against GET /openapi.json, in-process (WSGI), production mode with signed calls.

Checks: no 5xx, every status documented, every body of the documented type and shape. Positive
(schema-valid) and negative (schema-violating) cases are both generated from the document.
(schemathesis.pytest.from_fixture does not run under pytest 9, so the strategy is used directly.)
"""

from __future__ import annotations

from typing import Any

import schemathesis
from flask import Flask
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.conftest import count, fuzz_settings
from tests.security import support
from tests.security.support import PUBLIC_URL, SigningKey

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def load(app: Flask) -> Any:
    # The preview UI and the admin page are HTML for people, switched off in production.
    return schemathesis.openapi.from_wsgi("/openapi.json", app).exclude(tag="auxiliary")


def run_cases(app: Flask, key: SigningKey, mode: GenerationMode, examples: int) -> None:
    @fuzz_settings(examples)
    @given(case=load(app).as_strategy(mode))
    def run(case: Any) -> None:
        count(f"schemathesis {mode.value} cases")
        headers = {}
        if case.path.startswith("/cds-services"):
            headers = support.bearer(support.mint(key, PUBLIC_URL + case.formatted_path))
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_schema_valid_requests_conform(
    prod_app: Flask, es_key: SigningKey, elsewhere, no_outbound_network
) -> None:
    run_cases(prod_app, es_key, GenerationMode.POSITIVE, 100)
    assert elsewhere.requests == []


def test_schema_violating_requests_conform(prod_app: Flask, es_key: SigningKey, no_outbound_network) -> None:
    run_cases(prod_app, es_key, GenerationMode.NEGATIVE, 60)
