"""Fuzzing harness: a production-mode app (real JWTs), no outbound network, and a count of cases run.

`make test` runs a fast, derandomised slice (TDM1_CDS_FUZZ_EXAMPLES unset: a few hundred cases in
all, no timing checks); `make fuzz` sets TDM1_CDS_FUZZ_EXAMPLES high, randomises, and adds a
per-call deadline (TDM1_CDS_FUZZ_DEADLINE_MS).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# The security fixtures (keys, loopback JWKS and FHIR servers, production app factory) are shared.
from tests.security.conftest import (  # noqa: F401
    elsewhere,
    es_key,
    fhir_stub,
    issuer_entry,
    jwks_server,
    make_app,
    prod_app,
    prod_client,
    rs_key,
)

CASES: Counter[str] = Counter()
LONG_RUN = bool(os.environ.get("TDM1_CDS_FUZZ_EXAMPLES"))
EXAMPLES = int(os.environ.get("TDM1_CDS_FUZZ_EXAMPLES", "0")) or None
DEADLINE_MS = int(os.environ.get("TDM1_CDS_FUZZ_DEADLINE_MS", "0")) or None


def fuzz_settings(fast_examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or fast_examples,
        deadline=DEADLINE_MS if LONG_RUN else None,  # no timing assertions in CI
        derandomize=not LONG_RUN,  # CI: the same cases every run; make fuzz: new ones each time
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


def count(name: str) -> None:
    CASES[name] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CASES:
        cases = sum(n for name, n in CASES.items() if not name.startswith(" "))
        terminalreporter.write_sep("-", f"fuzz cases run: {cases}")
        for name, n in sorted(CASES.items()):
            terminalreporter.write_line(f"{n:>8}  {name}")


class OutboundAttempt(AssertionError):
    pass


@pytest.fixture
def no_outbound_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any name lookup or connection to a non-loopback host fails the test: we must call nobody else."""
    attempts: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            attempts.append(name)
            raise OutboundAttempt(f"outbound lookup of {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield attempts
    assert attempts == [], f"the service tried to reach {sorted(set(attempts))}"
