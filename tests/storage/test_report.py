"""`tdm1-cds report` on a seeded card log, on both databases."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from service.cli import main
from service.store import IssuedCard, Store


def _card(uuid: str, rule: str, indicator: str) -> dict:
    return {"uuid": uuid, "indicator": indicator, "source": {"topic": {"code": rule}}}


def _feedback(card: str, outcome: str, at: str, code: str | None = None) -> dict:
    item: dict = {"card": card, "outcome": outcome, "outcomeTimestamp": at}
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": f"{card}-s"}]
    if code:
        item["overrideReason"] = {"reason": {"system": "urn:tdm1-cds:override-reason", "code": code}}
    return item


@pytest.fixture
def seeded(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """10 platelets-missing warnings, 4 dose-check (2 critical, 2 warning), 2 old first-line-use."""
    store = Store(database_url)
    cards = (
        [_card(f"p{n}", "platelets-missing", "warning") for n in range(10)]
        + [_card(f"dc{n}", "dose-check", "critical") for n in range(2)]
        + [_card(f"dw{n}", "dose-check", "warning") for n in range(2)]
        + [_card(f"old{n}", "first-line-use", "warning") for n in range(2)]
    )
    store.log_cards("tdm1-order-sign", "order-sign", "pat-1", "hook-1", cards)
    with store.engine.begin() as connection:
        connection.execute(
            update(IssuedCard)
            .where(IssuedCard.uuid.like("old%"))
            .values(issued_at=datetime(2026, 1, 5, tzinfo=UTC))
        )
    store.save_feedback(
        "tdm1-order-sign",
        [
            _feedback("p0", "accepted", "2026-11-25T09:00:00Z"),
            _feedback("p1", "accepted", "2026-11-25T09:00:00Z"),
            _feedback("p2", "overridden", "2026-11-25T09:00:00Z", "labs-drawn-elsewhere"),
            _feedback("p3", "overridden", "2026-11-25T09:00:00Z", "labs-drawn-elsewhere"),
            _feedback("p4", "overridden", "2026-11-25T09:00:00Z"),
            # Overridden, then accepted later: the latest outcome counts, once.
            _feedback("p5", "overridden", "2026-11-25T09:00:00Z", "not-relevant"),
            _feedback("p5", "accepted", "2026-11-25T09:30:00+00:00"),
            _feedback("dc0", "overridden", "2026-11-25T09:00:00Z", "benefit-outweighs-risk"),
            _feedback("old0", "overridden", "2026-01-05T10:00:00Z", "not-relevant"),
            _feedback("unknown-card", "overridden", "2026-11-25T09:00:00Z"),
        ],
    )
    store.close()
    monkeypatch.setenv("TDM1_CDS_DATABASE_URL", database_url)
    return database_url


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["report", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_report_counts_per_rule_and_indicator(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = _json(capsys)
    rows = {(r["rule_id"], r["indicator"]): r for r in report["rules"]}
    assert set(rows) == {
        ("platelets-missing", "warning"),
        ("dose-check", "critical"),
        ("dose-check", "warning"),
        ("first-line-use", "warning"),
    }
    platelets = rows[("platelets-missing", "warning")]
    assert (
        platelets["issued"],
        platelets["accepted"],
        platelets["overridden"],
        platelets["no_response"],
    ) == (
        10,
        3,
        3,
        4,
    )
    assert platelets["acceptance_rate"] == 0.3 and platelets["override_rate"] == 0.3
    assert platelets["override_reasons"] == {"labs-drawn-elsewhere": 2, "(no reason given)": 1}
    critical = rows[("dose-check", "critical")]
    assert (critical["issued"], critical["overridden"], critical["override_reasons"]) == (
        2,
        1,
        {"benefit-outweighs-risk": 1},
    )
    assert rows[("dose-check", "warning")]["no_response"] == 2
    assert report["totals"]["issued"] == 16 and report["totals"]["accepted"] == 3
    assert report["feedback_for_unknown_cards"] == 1


def test_report_since(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    recent = _json(capsys, "--since", "2026-06-01")
    assert "first-line-use" not in {r["rule_id"] for r in recent["rules"]}
    assert recent["totals"]["issued"] == 14
    everything = _json(capsys, "--since", "2026-01-01")
    assert everything["totals"]["issued"] == 16


def test_report_csv_and_table(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    platelets = next(r for r in rows if r["rule_id"] == "platelets-missing")
    assert platelets["issued"] == "10" and platelets["acceptance_rate"] == "0.3000"
    assert "labs-drawn-elsewhere=2" in platelets["override_reasons"]
    assert main(["report"]) == 0
    table = capsys.readouterr().out
    assert "platelets-missing" in table and "30.0%" in table and "labs-drawn-elsewhere=2" in table


def test_report_bad_since_and_unreadable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    monkeypatch.setenv("TDM1_CDS_DATABASE_URL", f"sqlite:///{tmp_path}/empty.sqlite3")
    assert main(["report", "--since", "last week"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["report"]) == 1  # no card log in an empty database: said, not a traceback
    assert "tdm1-cds migrate" in capsys.readouterr().err
