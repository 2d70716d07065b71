"""Shared fixtures: an app built per test with its own settings and database (as flaskr does)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.settings import Settings, from_env
from tests import fhir_builders


@pytest.fixture
def settings(tmp_path) -> Settings:
    return from_env({}, dev=True, database_url=f"sqlite:///{tmp_path}/test.sqlite3")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.config["STORE"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def frozen_now(app: Flask) -> datetime:
    """Hook calls evaluate at the builders' NOW, so dates in fixtures mean what they say."""
    app.config["CLOCK"] = lambda: fhir_builders.NOW
    return fhir_builders.NOW
