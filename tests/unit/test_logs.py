"""The JSON log line: one valid JSON object per record, whatever the extras, exceptions by type only."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from service.logs import JsonFormatter


def _line(message: str = "hook call", exc_info=None, **extra) -> dict:
    record = logging.makeLogRecord({"name": "tdm1_cds.api", "levelname": "INFO", "msg": message})
    record.__dict__.update(extra)
    record.exc_info = exc_info
    return json.loads(JsonFormatter().format(record))


def test_extras_are_fields_and_the_record_internals_are_not():
    line = _line(service="tdm1-order-sign", cards=["first-line-use"], ms=2.5)
    assert line["event"] == "hook call"
    assert line["level"] == "INFO" and line["logger"] == "tdm1_cds.api"
    assert line["service"] == "tdm1-order-sign" and line["cards"] == ["first-line-use"] and line["ms"] == 2.5
    assert "args" not in line and "msg" not in line and "levelno" not in line
    datetime.fromisoformat(line["time"])


def test_what_json_cannot_write_still_makes_a_line():
    when = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    line = _line(when=when, keyed={1: "a"}, odd=object())
    assert line["when"].startswith("2026-12-01")
    assert line["keyed"] == {"1": "a"}
    assert line["odd"].startswith("<object object")
    assert _line(huge=2**70, keyed={1: "a"})["huge"] == 2**70  # past 64 bits: written all the same


def test_an_exception_is_logged_by_type_never_by_message():
    try:
        raise ValueError("patient 123 platelets 74999")
    except ValueError:
        line = _line("failed", exc_info=sys.exc_info())
    assert line["exception"] == "ValueError"
    assert "74999" not in json.dumps(line)
