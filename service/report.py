"""Override analytics: per rule id and indicator, what clinicians did with the cards.

A card's outcome is its latest feedback (by outcomeTimestamp, then arrival): a card overridden and
later accepted counts as accepted. A card with no feedback is "no response" — per CDS Hooks an EHR
does not report ignored cards, so this also holds cards the EHR never showed.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import func, select

from service.store import Feedback, IssuedCard, Store

NO_REASON = "(no reason given)"


@dataclass
class RuleRow:
    rule_id: str
    indicator: str
    issued: int = 0
    accepted: int = 0
    overridden: int = 0
    override_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def no_response(self) -> int:
        return self.issued - self.accepted - self.overridden

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.issued if self.issued else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.issued if self.issued else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "indicator": self.indicator,
            "issued": self.issued,
            "accepted": self.accepted,
            "overridden": self.overridden,
            "no_response": self.no_response,
            "acceptance_rate": _round(self.acceptance_rate),
            "override_rate": _round(self.override_rate),
            "override_reasons": dict(self.override_reasons.most_common()),
        }


@dataclass
class Report:
    since: datetime | None
    rows: list[RuleRow]
    feedback_for_unknown_cards: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "rules": [row.as_dict() for row in self.rows],
            "totals": totals(self.rows).as_dict(),
            "feedback_for_unknown_cards": self.feedback_for_unknown_cards,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def totals(rows: list[RuleRow]) -> RuleRow:
    total = RuleRow("(all)", "")
    for row in rows:
        total.issued += row.issued
        total.accepted += row.accepted
        total.overridden += row.overridden
        total.override_reasons.update(row.override_reasons)
    return total


def parse_since(value: str | None) -> datetime | None:
    """A date (UTC midnight) or an ISO 8601 instant; ValueError with a readable message otherwise."""
    if not value:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {value!r}: expected a date (YYYY-MM-DD) or an ISO 8601 instant") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _outcome_key(timestamp: str, row_id: int) -> tuple[datetime, int]:
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except ValueError:
        moment = datetime.min.replace(tzinfo=UTC)  # an unreadable timestamp loses to any readable one
    return moment, row_id


def build(store: Store, since: datetime | None = None) -> Report:
    rows: dict[tuple[str, str], RuleRow] = {}
    issued_filter = [IssuedCard.issued_at >= since] if since else []
    with store.engine.connect() as connection:
        counts = connection.execute(
            select(IssuedCard.rule_id, IssuedCard.indicator, func.count())
            .where(*issued_filter)
            .group_by(IssuedCard.rule_id, IssuedCard.indicator)
        )
        for rule_id, indicator, count in counts:
            rows[(rule_id, indicator)] = RuleRow(rule_id, indicator, issued=int(count))
        # Only cards with feedback are read one by one; there are far fewer of those than cards.
        feedback = connection.execute(
            select(
                IssuedCard.rule_id,
                IssuedCard.indicator,
                Feedback.card_uuid,
                Feedback.outcome,
                Feedback.outcome_timestamp,
                Feedback.id,
                Feedback.override_code,
            )
            .join(IssuedCard, IssuedCard.uuid == Feedback.card_uuid)
            .where(*issued_filter)
        )
        latest: dict[str, tuple[tuple[datetime, int], str, str, str, str | None]] = {}
        for rule_id, indicator, card_uuid, outcome, timestamp, row_id, code in feedback:
            key = _outcome_key(timestamp, row_id)
            if card_uuid not in latest or key > latest[card_uuid][0]:
                latest[card_uuid] = (key, rule_id, indicator, outcome, code)
        unknown = connection.execute(
            select(func.count())
            .select_from(Feedback)
            .outerjoin(IssuedCard, IssuedCard.uuid == Feedback.card_uuid)
            .where(IssuedCard.uuid.is_(None))
        ).scalar_one()
    reasons: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for _, rule_id, indicator, outcome, code in latest.values():
        row = rows[(rule_id, indicator)]
        if outcome == "accepted":
            row.accepted += 1
        elif outcome == "overridden":
            row.overridden += 1
            reasons[(rule_id, indicator)][code or NO_REASON] += 1
    for key, counter in reasons.items():
        rows[key].override_reasons = counter
    return Report(since, sorted(rows.values(), key=lambda r: (r.rule_id, r.indicator)), int(unknown))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _reasons_text(reasons: Counter[str]) -> str:
    return "; ".join(f"{code}={count}" for code, count in reasons.most_common())


COLUMNS = (
    "rule_id",
    "indicator",
    "issued",
    "accepted",
    "overridden",
    "no_response",
    "acceptance_rate",
    "override_rate",
    "override_reasons",
)


def _flat(row: RuleRow) -> list[str]:
    return [
        row.rule_id,
        row.indicator,
        str(row.issued),
        str(row.accepted),
        str(row.overridden),
        str(row.no_response),
        _percent(row.acceptance_rate),
        _percent(row.override_rate),
        _reasons_text(row.override_reasons),
    ]


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in report.rows:
            values = _flat(row)
            # Rates as plain fractions in CSV, so a spreadsheet can compute with them.
            values[6] = "" if row.acceptance_rate is None else f"{row.acceptance_rate:.4f}"
            values[7] = "" if row.override_rate is None else f"{row.override_rate:.4f}"
            writer.writerow(values)
        return buffer.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    header = ["rule", "indicator", "issued", "accepted", "overridden", "no resp.", "accept %", "override %"]
    lines = [_flat(row)[:8] for row in [*report.rows, totals(report.rows)]]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines, strict=False)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [
        f"T-DM1 CDS card outcomes{' since ' + report.since.isoformat() if report.since else ''}",
        line(header),
        line(["-" * w for w in widths]),
    ]
    out += [line(cells) for cells in lines[:-1]]
    out += [line(["-" * w for w in widths]), line(lines[-1])]
    reasons = [row for row in report.rows if row.override_reasons]
    if reasons:
        out.append("")
        out.append("Override reasons:")
        for row in reasons:
            out.append(f"  {row.rule_id} ({row.indicator}): {_reasons_text(row.override_reasons)}")
    if report.feedback_for_unknown_cards:
        out.append(f"\nFeedback for cards not in this log: {report.feedback_for_unknown_cards}")
    return "\n".join(out) + "\n"
