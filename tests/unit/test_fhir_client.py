"""FhirClient against a loopback FHIR server: paging, the token, what it refuses, kept connections."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest

from service.fhir.client import FhirClient, new_pool
from tests import fhir_builders as fb
from tests.resilience.fhir_stub import loopback_server, refused_url

TOKEN = "opaque-access-token-42"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    """Answers GET path?query from `routes` (404 otherwise) and records what it was sent."""

    base: str = ""
    routes: dict[str, Reply] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    peers: set[int] = field(default_factory=set)  # client ports: one per TCP connection

    def json(self, path: str, document: dict, status: int = 200) -> None:
        self.routes[path] = Reply(
            status, json.dumps(document).encode(), {"Content-Type": "application/fhir+json"}
        )


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.calls.append((self.path, dict(self.headers)))
            state.peers.add(self.client_address[1])
            reply = state.routes.get(self.path, Reply(404, b'{"resourceType": "OperationOutcome"}'))
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    with loopback_server(Handler) as base_url:
        state.base = base_url
        yield state


def page(server: Server, resources: list[dict], next_url: str | None) -> dict:
    bundle = fb.searchset(resources)
    bundle["link"] = [{"relation": "self", "url": f"{server.base}/Observation"}]
    if next_url:
        bundle["link"].append({"relation": "next", "url": next_url})
    return bundle


def deadline(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def test_follows_next_links_with_the_same_token(server: Server) -> None:
    labs = [fb.observation("platelets", 200 + i, fb.ago(days=i)) for i in range(45)]
    base = server.base
    server.json(
        "/fhir/Observation?patient=pat-1",
        page(server, labs[:20], f"{base}/Observation?patient=pat-1&_offset=20"),
    )
    server.json(
        "/fhir/Observation?patient=pat-1&_offset=20",
        page(server, labs[20:40], f"{base}/Observation?patient=pat-1&_offset=40"),
    )
    server.json("/fhir/Observation?patient=pat-1&_offset=40", page(server, labs[40:], None))
    result = FhirClient(base, TOKEN).search("observations", "Observation?patient=pat-1", deadline())
    assert result.ok and result.pages == 3 and len(result.resources) == 45
    assert {headers["Authorization"] for _path, headers in server.calls} == {f"Bearer {TOKEN}"}
    assert {headers["Accept-Encoding"] for _path, headers in server.calls} == {"gzip"}
    assert len(server.peers) == 1  # one kept-alive connection for the three pages


def test_page_cap_marks_the_result_truncated(server: Server) -> None:
    base = server.base
    server.json(
        "/fhir/Observation?patient=pat-1",
        page(server, [fb.observation("alt", 20, fb.ago(days=1))], f"{base}/Observation?patient=pat-1&p=2"),
    )
    server.json(
        "/fhir/Observation?patient=pat-1&p=2",
        page(server, [fb.observation("alt", 21, fb.ago(days=2))], f"{base}/Observation?patient=pat-1&p=3"),
    )
    result = FhirClient(base, TOKEN, max_pages=2).search(
        "observations", "Observation?patient=pat-1", deadline()
    )
    assert result.truncated and result.pages == 2


def test_a_next_link_to_another_server_is_not_followed(server: Server) -> None:
    server.json(
        "/fhir/Condition?patient=pat-1",
        page(server, [fb.breast_cancer()], "https://attacker.example.net/fhir/Condition?page=2"),
    )
    result = FhirClient(server.base, TOKEN).search("conditions", "Condition?patient=pat-1", deadline())
    assert not result.ok and "another server" in result.error
    assert len(server.calls) == 1  # the token never went to the other host


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(401, b'{"resourceType": "OperationOutcome"}'), "HTTP 401"),
        (Reply(500, b"oops"), "HTTP 500"),
        (Reply(302, b"", {"Location": "https://elsewhere.example.net/"}), "HTTP 302"),
        (Reply(200, b"<html>login</html>"), "not JSON"),
        (Reply(200, b'{"entry": ['), "not JSON"),
        (Reply(200, b'{"hello": "world"}'), "not a FHIR resource"),
        (Reply(200, b'{"resourceType": "OperationOutcome", "issue": []}'), "OperationOutcome"),
    ],
)
def test_failures_are_reported_not_raised(server: Server, reply: Reply, error: str) -> None:
    server.routes["/fhir/MedicationRequest?patient=pat-1"] = reply
    result = FhirClient(server.base, TOKEN).search(
        "medicationRequests", "MedicationRequest?patient=pat-1", deadline()
    )
    assert not result.ok and error in result.error
    assert TOKEN not in result.error
    assert len(server.calls) == 1  # no redirect followed, no retry


def test_a_failed_answer_does_not_spoil_the_kept_connection(server: Server) -> None:
    server.routes["/fhir/Condition?patient=pat-1"] = Reply(500, b"x" * 100_000)  # a body left unread
    server.json("/fhir/Observation?patient=pat-1", fb.searchset([fb.observation("alt", 20, fb.ago(days=1))]))
    pool = new_pool(2)
    client = FhirClient(server.base, TOKEN, pool=pool)
    assert client.search("conditions", "Condition?patient=pat-1", deadline()).error == "HTTP 500"
    for _ in range(3):
        result = client.search("observations", "Observation?patient=pat-1", deadline())
        assert result.ok and len(result.resources) == 1


def test_a_refused_connection_is_a_network_failure() -> None:
    result = FhirClient(refused_url(), TOKEN).search("conditions", "Condition?patient=p", deadline())
    assert not result.ok and result.reason == "network" and "connection failed" in result.error


def test_a_spent_deadline_makes_no_call(server: Server) -> None:
    result = FhirClient(server.base, TOKEN).search(
        "conditions", "Condition?patient=pat-1", time.monotonic() - 1
    )
    assert not result.ok and server.calls == []


def test_a_relative_next_link_is_read_against_the_base(server: Server) -> None:
    server.json(
        "/fhir/Observation?patient=pat-1",
        page(server, [fb.observation("alt", 20, fb.ago(days=1))], "Observation?patient=pat-1&page=2"),
    )
    server.json(
        "/fhir/Observation?patient=pat-1&page=2",
        page(server, [fb.observation("alt", 21, fb.ago(days=2))], None),
    )
    result = FhirClient(server.base, TOKEN).search("observations", "Observation?patient=pat-1", deadline())
    assert result.ok and result.pages == 2 and len(result.resources) == 2


@pytest.mark.parametrize(
    ("url", "base", "same"),
    [
        ("https://ehr.example.org:443/fhir?_getpages=1", "https://ehr.example.org/fhir/", True),
        ("https://ehr.example.org/fhir?page=2", "https://ehr.example.org:443/fhir/", True),
        ("http://ehr.example.org:80/fhir", "http://EHR.example.org/fhir/", True),
        ("https://ehr.example.org:8443/fhir", "https://ehr.example.org/fhir/", False),
        ("http://ehr.example.org/fhir", "https://ehr.example.org/fhir/", False),
        ("https://ehr.example.org:abc/fhir", "https://ehr.example.org/fhir/", False),
        ("https://other.example.org/fhir", "https://ehr.example.org/fhir/", False),
        # urllib.parse reads host ehr.example.org, urllib3 (which connects) evil.example.net.
        ("https://evil.example.net\\@ehr.example.org/fhir", "https://ehr.example.org/fhir/", False),
        ("https://ehr.example.org:443\\@evil.example.net/fhir", "https://ehr.example.org/fhir/", False),
        ("http://[::1]:8080/fhir?page=2", "http://[::1]:8080/fhir/", True),
    ],
)
def test_same_origin_reads_default_ports_as_written_or_not(url: str, base: str, same: bool) -> None:
    from service.fhir.client import same_origin

    assert same_origin(url, base) is same


def test_an_error_outcome_inside_the_results_fails_the_query(server: Server) -> None:
    bundle = fb.searchset([fb.observation("alt", 20, fb.ago(days=1))])
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}
    bundle["entry"].append({"resource": outcome, "search": {"mode": "outcome"}})
    server.json("/fhir/Observation?patient=pat-1", bundle)
    result = FhirClient(server.base, TOKEN).search("observations", "Observation?patient=pat-1", deadline())
    assert not result.ok and "OperationOutcome" in result.error and result.reason == "invalid"


def test_a_redirect_within_the_server_is_followed_with_the_token(server: Server) -> None:
    bundle = fb.searchset([fb.observation("alt", 20, fb.ago(days=1))])
    server.routes["/fhir/Observation?patient=pat-1"] = Reply(
        301, b"", {"Location": f"{server.base}/r4/Observation?patient=pat-1"}
    )
    server.routes["/fhir/r4/Observation?patient=pat-1"] = Reply(
        302, b"moved", {"Location": "/fhir/r4b/Observation?patient=pat-1"}
    )
    server.json("/fhir/r4b/Observation?patient=pat-1", bundle)
    result = FhirClient(server.base, TOKEN).search("observations", "Observation?patient=pat-1", deadline())
    assert result.ok and len(result.resources) == 1
    assert [path for path, _headers in server.calls] == [
        "/fhir/Observation?patient=pat-1",
        "/fhir/r4/Observation?patient=pat-1",
        "/fhir/r4b/Observation?patient=pat-1",
    ]
    assert {headers["Authorization"] for _path, headers in server.calls} == {f"Bearer {TOKEN}"}


def test_a_link_the_url_parsers_read_apart_does_not_reach_another_server(server: Server) -> None:
    # "http://127.0.0.1:OTHER\\@127.0.0.1:OURS/..." is our server to urllib.parse and the other one to
    # urllib3: the next link, and a redirect, would have taken the token there.
    other = Server()

    class Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            other.calls.append((self.path, dict(self.headers)))
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with loopback_server(Other) as other_base:
        ours, theirs = urlsplit(server.base).netloc, urlsplit(other_base).netloc
        crafted = f"http://{theirs}\\@{ours}/fhir/Observation?p=2"
        server.json("/fhir/Observation?patient=pat-1", page(server, [], crafted))
        server.routes["/fhir/Condition?patient=pat-1"] = Reply(302, b"", {"Location": crafted})
        client = FhirClient(server.base, TOKEN)
        paged = client.search("observations", "Observation?patient=pat-1", deadline())
        moved = client.search("conditions", "Condition?patient=pat-1", deadline())
    assert not paged.ok and "another server" in paged.error
    assert not moved.ok and "another server" in moved.error
    assert other.calls == []


def test_redirects_stop_after_three(server: Server) -> None:
    server.routes["/fhir/Condition?patient=pat-1"] = Reply(
        307, b"", {"Location": "/fhir/Condition?patient=pat-1"}
    )
    result = FhirClient(server.base, TOKEN).search("conditions", "Condition?patient=pat-1", deadline())
    assert not result.ok and "redirects" in result.error and result.reason == "invalid"
    assert len(server.calls) == 4


def _search(server: Server) -> object:
    return FhirClient(server.base, TOKEN).search("observations", "Observation?patient=pat-1", deadline())


def test_a_last_page_short_of_its_total_fails_the_query(server: Server) -> None:
    # A server that stops at its own limit without a next link: the labs it left out may be the
    # pre-dose ones, so the list must not pass for the whole of them.
    bundle = fb.searchset([fb.observation("platelets", 200, fb.ago(days=i)) for i in range(2)])
    bundle["total"] = 5
    server.json("/fhir/Observation?patient=pat-1", bundle)
    result = _search(server)
    assert not result.ok and result.reason == "incomplete"
    assert result.error == "the server counted 5 results and sent 2"
    bundle["total"] = 2  # the other side: exactly as many as counted
    server.json("/fhir/Observation?patient=pat-1", bundle)
    assert _search(server).ok


def test_the_total_is_held_against_every_page_read(server: Server) -> None:
    labs = [fb.observation("platelets", 200 + i, fb.ago(days=i)) for i in range(4)]
    first = page(server, labs[:2], f"{server.base}/Observation?patient=pat-1&_offset=2")
    first["total"] = 4  # as HAPI writes it: the whole result set, on each page
    server.json("/fhir/Observation?patient=pat-1", first)
    last = page(server, labs[2:], None)
    last["total"] = 4
    server.json("/fhir/Observation?patient=pat-1&_offset=2", last)
    result = _search(server)
    assert result.ok and len(result.resources) == 4
    last = page(server, labs[2:3], None)
    last["total"] = 4
    server.json("/fhir/Observation?patient=pat-1&_offset=2", last)
    result = _search(server)
    assert not result.ok and result.error == "the server counted 4 results and sent 3"


def test_included_resources_and_outcomes_are_not_counted_against_the_total(server: Server) -> None:
    bundle = fb.searchset([fb.observation("alt", 20, fb.ago(days=1))])
    medication = {"resourceType": "Medication", "id": "med-1", "code": {"text": "Kadcyla"}}
    warning = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "informational"}],
    }
    bundle["entry"] += [
        {"resource": medication, "search": {"mode": "include"}},
        {"resource": warning, "search": {"mode": "outcome"}},
    ]
    bundle["total"] = 1
    server.json("/fhir/Observation?patient=pat-1", bundle)
    result = _search(server)
    assert result.ok and [r["resourceType"] for r in result.resources] == ["Observation", "Medication"]
    bundle["total"] = 2  # the include does not make up for a missing match
    server.json("/fhir/Observation?patient=pat-1", bundle)
    assert _search(server).error == "the server counted 2 results and sent 1"


@pytest.mark.parametrize("total", [None, "5", 5.0, True, -1])
def test_a_total_that_is_absent_or_not_an_integer_is_not_held_against_the_page(
    server: Server, total: object
) -> None:
    bundle = fb.searchset([fb.observation("alt", 20, fb.ago(days=1))])
    if total is None:
        del bundle["total"]
    else:
        bundle["total"] = total
    server.json("/fhir/Observation?patient=pat-1", bundle)
    assert _search(server).ok


def test_pages_that_disagree_on_the_total_are_held_to_the_larger(server: Server) -> None:
    labs = [fb.observation("platelets", 200 + i, fb.ago(days=i)) for i in range(3)]
    for first_total, last_total in ((4, 3), (3, 4)):
        first = page(server, labs[:2], f"{server.base}/Observation?patient=pat-1&_offset=2")
        first["total"] = first_total
        last = page(server, labs[2:], None)
        last["total"] = last_total
        server.json("/fhir/Observation?patient=pat-1", first)
        server.json("/fhir/Observation?patient=pat-1&_offset=2", last)
        result = _search(server)
        assert result.error == "the server counted 4 results and sent 3", (first_total, last_total)


def test_an_outcome_without_a_search_mode_is_not_counted_as_a_result(server: Server) -> None:
    bundle = fb.searchset([fb.observation("alt", 20, fb.ago(days=1))])
    warning = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "informational"}],
    }
    bundle["entry"].append({"resource": warning})  # no search element at all
    bundle["total"] = 2
    server.json("/fhir/Observation?patient=pat-1", bundle)
    assert _search(server).error == "the server counted 2 results and sent 1"


@pytest.mark.parametrize("mode", [[], {}, ["include"], 7, None, "match"])
def test_a_search_mode_that_is_not_a_string_counts_as_unstated(server: Server, mode: object) -> None:
    bundle = fb.searchset([fb.observation("alt", 20, fb.ago(days=1))])
    bundle["entry"][0]["search"] = {"mode": mode}
    server.json("/fhir/Observation?patient=pat-1", bundle)
    result = _search(server)
    assert result.ok and len(result.resources) == 1


def test_a_prefetched_first_page_continued_short_of_its_total_fails(server: Server) -> None:
    labs = [fb.observation("platelets", 200 + i, fb.ago(days=i)) for i in range(3)]
    first = page(server, labs[:2], f"{server.base}/Observation?patient=pat-1&_offset=2")
    first["total"] = 4
    last = page(server, labs[2:], None)
    del last["total"]
    server.json("/fhir/Observation?patient=pat-1&_offset=2", last)
    client = FhirClient(server.base, TOKEN)
    result = client.continue_paging("observations", first, deadline())
    assert result.reason == "incomplete" and result.error == "the server counted 4 results and sent 3"
    first["total"] = 3
    assert client.continue_paging("observations", first, deadline()).ok


def test_the_total_check_can_be_turned_off_for_a_server_that_miscounts(server: Server) -> None:
    bundle = fb.searchset([fb.observation("alt", 20, fb.ago(days=1))])
    bundle["total"] = 3
    server.json("/fhir/Observation?patient=pat-1", bundle)
    client = FhirClient(server.base, TOKEN, check_total=False)
    result = client.search("observations", "Observation?patient=pat-1", deadline())
    assert result.ok and len(result.resources) == 1


def test_results_of_another_type_than_the_query_reads_fail_it(server: Server) -> None:
    # Conditions in the Observation query: no Observation was read, and an empty-looking lab list
    # would fire the missing-lab checks. An included resource (search.mode include) is not a result.
    server.json("/fhir/Observation?patient=pat-1", fb.searchset([fb.breast_cancer()]))
    result = _search(server)
    assert (
        result.reason == "invalid" and result.error == "the Observation search returned Condition resources"
    )
    odd = fb.searchset(
        [{"resourceType": "[x](https://example.net)", "id": "x"}, {"resourceType": "Basic", "id": "b"}]
    )
    server.json("/fhir/Observation?patient=pat-1", odd)  # the message may reach a card: names only
    assert _search(server).error == "the Observation search returned Basic resources"
    server.json("/fhir/Medication/med-1", {"resourceType": "Patient", "id": "pat-1"})
    read = FhirClient(server.base, TOKEN).search("Medication/med-1", "Medication/med-1", deadline())
    assert read.reason == "invalid" and read.error == "the Medication query returned a Patient"
    # A prefetched first page continued: its next pages are held to the key's type too.
    first = page(server, [fb.observation("alt", 20, fb.ago(days=1))], f"{server.base}/Observation?p=2")
    server.json("/fhir/Observation?p=2", fb.searchset([fb.breast_cancer()]))
    client = FhirClient(server.base, TOKEN)
    assert not client.continue_paging("observations", first, deadline(), "Observation").ok


def test_urllib3s_warnings_name_the_server_not_the_search(caplog: pytest.LogCaptureFixture) -> None:
    # urllib3 warns "Failed to parse headers (url=…)" with the whole search URL, patient id and
    # all, when a server sends a malformed header: written by any handler on the root logger.
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps(fb.searchset([])).encode()
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                b"Content-Length: %d\r\nnot a header line\r\n\r\n%s" % (len(body), body)
            )

    caplog.set_level("DEBUG")
    with loopback_server(Handler) as base:
        result = FhirClient(base, TOKEN).search(
            "observations", "Observation?patient=pat-71qz&code=777-3", time.monotonic() + 5
        )
        origin = base.removesuffix("/fhir")
    assert result.ok  # urllib3 reads on; only its warning was the problem
    warnings = [r for r in caplog.records if r.name.startswith("urllib3") and r.levelname == "WARNING"]
    assert warnings and origin in warnings[0].getMessage()  # still says which server misbehaved
    assert "pat-71qz" not in caplog.text and "/Observation" not in caplog.text
