"""GET /admin/report: the override analytics as an HTML page, for whoever holds the admin token.

Off unless TDM1_CDS_ADMIN_TOKEN is set: then the page does not exist (404), so a scanner learns
nothing. With a token, anything but `Authorization: Bearer <token>` is a bare 401.
"""

from __future__ import annotations

import hmac
from html import escape

from flask import Blueprint, Response, current_app, request

from service import report
from service.api.errors import ApiError, error_response

blueprint = Blueprint("admin", __name__)


def _authorised(expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    # Constant time: a byte-by-byte comparison would tell an attacker how much of a guess was right.
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


@blueprint.get("/admin/report")
def admin_report() -> Response:
    expected = current_app.config["SETTINGS"].admin_token
    if not expected:
        raise ApiError(404, "Not found.")
    if not _authorised(expected):
        # Bare like every 401 here, but JSON like every error (and as /openapi.json documents it).
        response = error_response(401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="tdm1-cds admin"'
        return response
    try:
        since = report.parse_since(request.args.get("since"))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    try:
        built = report.build(current_app.config["STORE"], since)
    except Exception:
        raise ApiError(503, "The card log is unavailable; please retry.") from None
    return Response(
        _html(built),
        status=200,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _html(built: report.Report) -> str:
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value * 100:.1f}%"

    rows = []
    for row in [*built.rows, report.totals(built.rows)]:
        reasons = "<br>".join(
            f"{escape(code)}: {count}" for code, count in row.override_reasons.most_common()
        )
        rows.append(
            "<tr>"
            f"<td>{escape(row.rule_id)}</td><td>{escape(row.indicator)}</td>"
            f"<td>{row.issued}</td><td>{row.accepted}</td><td>{row.overridden}</td><td>{row.no_response}</td>"
            f"<td>{pct(row.acceptance_rate)}</td><td>{pct(row.override_rate)}</td><td>{reasons}</td>"
            "</tr>"
        )
    since = f" since {escape(built.since.isoformat())}" if built.since else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>tdm1-cds card outcomes</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:.3em .6em;text-align:right;vertical-align:top}"
        "td:nth-child(-n+2),td:last-child{text-align:left}tr:last-child{font-weight:bold}</style></head><body>"
        f"<h1>T-DM1 CDS card outcomes{since}</h1>"
        "<table><thead><tr><th>Rule</th><th>Indicator</th><th>Issued</th><th>Accepted</th><th>Overridden</th>"
        "<th>No response</th><th>Acceptance</th><th>Override</th><th>Override reasons</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        f"<p>Feedback for cards not in this log: {built.feedback_for_unknown_cards}</p>"
        "</body></html>"
    )
