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


def test_a_request_the_service_rejects_exits_1_and_shows_why(tmp_path: Path, capsys) -> None:
    request = json.loads((FIXTURES / "first-line-metastatic.json").read_text())
    del request["context"]["draftOrders"]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    assert main(["evaluate", "--now", NOW, str(path)]) == 1
    captured = capsys.readouterr()
    assert "draftOrders" in captured.out and "400" in captured.err
