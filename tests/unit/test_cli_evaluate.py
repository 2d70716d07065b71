"""tdm1-cds evaluate: the response for a request file, offline; clear errors for bad files."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from service.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "requests"
NOW = "2026-11-25T09:00:00Z"


def test_prints_the_cds_hooks_response(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--now", NOW, str(FIXTURES / "first-line-metastatic.json")]) == 0
    response = json.loads(capsys.readouterr().out)
    assert [c["source"]["topic"]["code"] for c in response["cards"]] == ["first-line-use"]


def test_makes_no_network_call_even_if_the_file_names_a_server(tmp_path: Path, capsys) -> None:
    hits: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request = json.loads((FIXTURES / "first-line-metastatic.json").read_text())
        request["fhirServer"] = f"http://127.0.0.1:{server.server_port}/fhir"
        request["prefetch"]["observations"] = None  # missing: the service would fetch it if it could
        path = tmp_path / "request.json"
        path.write_text(json.dumps(request))
        assert main(["evaluate", "--now", NOW, str(path)]) == 0
    finally:
        server.shutdown()
    assert hits == []
    codes = {c["source"]["topic"]["code"] for c in json.loads(capsys.readouterr().out)["cards"]}
    assert "data-unavailable" in codes


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ('{"resourceType": "Patient"}', "not a CDS Hooks request"),
    ],
)
def test_bad_files_exit_non_zero_with_a_reason(
    tmp_path: Path, capsys, content: str | None, message: str
) -> None:
    path = tmp_path / "request.json"
    if content is not None:
        path.write_text(content)
    assert main(["evaluate", str(path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),  # was a RecursionError traceback
        ('{"hook": "order-sign", "hookInstance": "h", "context": {}, "prefetch": {"x": NaN}}', "NaN"),
    ],
)
def test_what_the_service_would_refuse_as_json_exits_2(
    tmp_path: Path, capsys, content: str, message: str
) -> None:
    # json.loads reads NaN, which the HTTP edge refuses: evaluate answered 200 for a file no EHR could send.
    path = tmp_path / "request.json"
    path.write_text(content)
    assert main(["evaluate", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_a_path_that_cannot_be_read_exits_2_without_a_traceback(tmp_path: Path, capsys) -> None:
    assert main(["evaluate", str(tmp_path)]) == 2  # a directory: IsADirectoryError escaped
    assert "cannot be read" in capsys.readouterr().err


def test_a_request_file_with_a_utf8_byte_order_mark_is_read_as_the_service_reads_it(
    tmp_path: Path, capsys
) -> None:
    path = tmp_path / "request.json"
    path.write_bytes(b"\xef\xbb\xbf" + (FIXTURES / "first-line-metastatic.json").read_bytes())
    assert main(["evaluate", "--now", NOW, str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["cards"]


def test_a_request_the_service_rejects_exits_1_and_shows_why(tmp_path: Path, capsys) -> None:
    request = json.loads((FIXTURES / "first-line-metastatic.json").read_text())
    del request["context"]["draftOrders"]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    assert main(["evaluate", "--now", NOW, str(path)]) == 1
    captured = capsys.readouterr()
    assert "draftOrders" in captured.out and "400" in captured.err
