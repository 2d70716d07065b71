"""A small FHIR REST client for the data a hook call needs.

- The access token is used for this call only: never logged, never stored, sent only to the
  fhirServer of the request (paging links and redirects to another origin are refused; a redirect
  within the server is followed, three at most).
- All queries of a hook call run in parallel under one deadline; a query still running at the
  deadline is abandoned and reported, never waited for.
- Paging follows Bundle.link[next] up to a cap.
"""

from __future__ import annotations

import codecs
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import urllib3
from urllib3.exceptions import LocationParseError, NewConnectionError
from urllib3.util import parse_url

from service.clinical.resources import as_str, next_link, read_bundle, shortfall
from service.fhir.cache import Scope, token_fingerprint
from service.issuers import DEFAULT_PORTS

log = logging.getLogger("tdm1_cds.fhir")
# urllib3 logs each request line at DEBUG, and FHIR search URLs carry the patient id: whatever level
# an operator sets on the root logger, those lines must not be written.
logging.getLogger("urllib3.connectionpool").setLevel(logging.WARNING)
_URL_ARG = re.compile(r"(?P<origin>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\s]*)[/?#]\S*")


class _OriginOnly(logging.Filter):
    """urllib3's warnings name the URL ("Failed to parse headers (url=…)" for a server's malformed
    header): a search URL or a read (…/Patient/123) names the patient. The origin stays, to say
    which server misbehaved; the path and query go. A bare path argument goes too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_origin_only(a) if isinstance(a, str) else a for a in record.args)
        return True


def _origin_only(text: str) -> str:
    if text.startswith("/"):
        return "/…"
    return _URL_ARG.sub(r"\g<origin>/…", text)


for _name in ("urllib3.connection", "urllib3.connectionpool", "urllib3.poolmanager"):
    logging.getLogger(_name).addFilter(_OriginOnly())
ACCEPT = "application/fhir+json, application/json;q=0.9"
# gzip and nothing else, decoded by _read_body, which reads the body raw so that the deadline bounds
# every read (requests, used before, offered "gzip, deflate" and then could not read it). FHIR JSON
# shrinks ~10x, which a 2 MB history on a slow EHR network feels; the limit applies after decoding.
ACCEPT_ENCODING = "gzip"
MAX_RESPONSE_BYTES = 20 * 1024 * 1024

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """One query failed; the message is safe to show (no token, no patient data).

    `reason` is a short code for metrics: timeout, network, http_4xx, http_5xx, invalid, or
    incomplete (a last page short of its Bundle.total).
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class FetchResult:
    key: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    reason: str = ""  # metrics code when error is set
    pages: int = 0
    truncated: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error


def same_origin(url: str, base: str) -> bool:
    """Scheme, host and port alike, a default port written or not (HAPI writes https://host:443/...).

    Read by urllib.parse and by urllib3's parser (the one that picks where the connection goes), and
    alike by both: they disagree on some URLs, and a link the check reads one way must not connect
    the other. "http://evil:80\\@ehr/fhir" is host ehr to urllib.parse and host evil to urllib3.
    """
    try:
        return _origins(url) == _origins(base)
    except (ValueError, LocationParseError):  # a port that is not a number, a host urllib3 refuses
        return False


def _origins(url: str) -> tuple[tuple[str, str | None, int | None], ...]:
    a, b = urlsplit(url), parse_url(url)
    b_scheme = (b.scheme or "").lower()
    return (
        (a.scheme, a.hostname, a.port or DEFAULT_PORTS.get(a.scheme)),
        (b_scheme, (b.host or "").strip("[]").lower() or None, b.port or DEFAULT_PORTS.get(b_scheme)),
    )


def new_pool(size: int = 10) -> urllib3.PoolManager:
    """The connections a worker keeps to FHIR servers: `size` per server, one per concurrent query.

    urllib3 directly, not requests: on loopback a bare requests GET took ~1.4 ms of CPU and urllib3
    0.43 ms; a whole query here (read, parse, entries) went from ~1.1 to ~0.9 ms (bench/RESULTS.md).
    A connection goes back to the pool only once its body is read. No retries; redirects are
    get_json's to follow; urllib3 reads no proxy or netrc from the environment, so a query goes to
    the fhirServer and nowhere else.
    """
    return urllib3.PoolManager(num_pools=4, maxsize=size, block=False, retries=False)


class FhirClient:
    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        *,
        pool: urllib3.PoolManager | None = None,
        max_pages: int = 20,
        page_size: int = 0,
        check_total: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._token = access_token
        self._pool = pool or new_pool()
        self.max_pages = max_pages
        self.page_size = page_size
        self.check_total = check_total

    def cache_scope(self, patient_id: str) -> Scope:
        """Whose data this client reads, for the fetch cache: never the token, only its fingerprint."""
        return Scope(self.base_url, patient_id, token_fingerprint(self._token))

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def get_json(self, url: str, deadline: float) -> dict[str, Any]:
        """GET one FHIR document. A redirect is followed, up to MAX_REDIRECTS, only to the same
        server (a path or trailing-slash move); one elsewhere is refused before the token leaves."""
        for _ in range(MAX_REDIRECTS + 1):
            answer = self._get_once(url, deadline)
            if isinstance(answer, dict):
                return answer
            url = answer
        raise FetchError(f"more than {MAX_REDIRECTS} redirects", "invalid")

    def _get_once(self, url: str, deadline: float) -> dict[str, Any] | str:
        """The document, or the URL a redirect within the server points to."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("deadline reached", "timeout")
        if not same_origin(url, self.base_url):
            raise FetchError("refused a link to another server", "invalid")
        try:
            response = self._pool.request(
                "GET",
                url,
                headers=self._headers(),
                timeout=urllib3.Timeout(connect=min(remaining, 5.0), read=remaining),
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
            )
        except NewConnectionError as exc:  # refused, unreachable, no such host: before the timeouts,
            # which it subclasses
            raise FetchError(f"connection failed ({type(exc).__name__})", "network") from None
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise FetchError("timed out", "timeout") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError(f"connection failed ({type(exc).__name__})", "network") from None
        read = False
        try:
            location = response.headers.get("Location")
            if response.status in _REDIRECTS and location:
                target = urljoin(url, location)
                if not same_origin(target, self.base_url):
                    raise FetchError(f"HTTP {response.status} to another server", "invalid")
                return target  # the body of a redirect is not read: the connection is closed
            if response.status != 200:
                family = "http_4xx" if 400 <= response.status < 500 else "http_5xx"
                raise FetchError(f"HTTP {response.status}", family if response.status >= 400 else "invalid")
            body = _read_body(response, deadline)
            read = True
        finally:
            if not read:
                response.close()  # a body left unread (or half read) must not go back to the pool
            response.release_conn()
        if body.startswith(codecs.BOM_UTF8):  # .NET servers write one; RFC 8259 lets a parser ignore it
            body = body[len(codecs.BOM_UTF8) :]
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FetchError("response is not JSON", "invalid") from None
        if not isinstance(document, dict) or not as_str(document.get("resourceType")):
            raise FetchError("response is not a FHIR resource", "invalid")
        if document["resourceType"] == "OperationOutcome":
            raise FetchError("server answered with an OperationOutcome", "invalid")
        return document

    def search(self, key: str, query: str, deadline: float) -> FetchResult:
        """Read or search; for a searchset, follow next links up to max_pages."""
        return self._read_pages(
            key,
            None,
            urljoin(self.base_url, with_page_size(query, self.page_size)),
            deadline,
            query.split("?", 1)[0].split("/", 1)[0],
        )

    def continue_paging(
        self, key: str, bundle: dict[str, Any], deadline: float, resource_type: str | None = None
    ) -> FetchResult:
        """The rest of a paged Bundle a client prefetched, with the same token."""
        return self._read_pages(key, bundle, None, deadline, resource_type)

    def _read_pages(
        self,
        key: str,
        first: dict[str, Any] | None,
        url: str | None,
        deadline: float,
        resource_type: str | None,
    ) -> FetchResult:
        """From `first` (a page in hand) or `url`, every page up to max_pages. Read to its last page,
        a searchset must hold as many results as its total counts: a server that stops short without
        a next link has left some out, and the query fails rather than look complete. Its results
        must be of the type searched for (`resource_type`): an Observation query answered with
        Conditions has read no Observation, and fails rather than look like an empty list."""
        started = time.monotonic()
        result = FetchResult(key=key)
        pages = _Pages(self.check_total, resource_type)
        try:
            document = first if first is not None else self.get_json(str(url), deadline)
            while True:
                result.pages += 1
                result.resources += pages.add(document)
                link = next_link(document)
                if not link:
                    break
                if result.pages >= self.max_pages:
                    result.truncated = True
                    break
                # A relative link is read against the base.
                document = self.get_json(urljoin(self.base_url, link), deadline)
            if not result.truncated and (gap := pages.shortfall()):
                raise FetchError(gap, "incomplete")
        except FetchError as exc:
            result.error, result.reason = str(exc), exc.reason
        result.seconds = time.monotonic() - started
        return result


class _Pages:
    """The results of a search's pages so far: how many Bundle.total counts, and the largest total
    a page gave (pages that disagree: the answer is held to the larger count). With check_total
    off, no total is held against them. `resource_type`: what the query reads; a result of
    another type fails the query (BundleRead.wrong_type)."""

    def __init__(self, check_total: bool, resource_type: str | None = None) -> None:
        self.check_total = check_total
        self.resource_type = resource_type
        self.matches = 0
        self.total: int | None = None

    def add(self, document: dict[str, Any]) -> list[dict[str, Any]]:
        """The data of one page; FetchError if an entry makes the answer incomplete (why_incomplete)."""
        kind = document.get("resourceType")
        if kind != "Bundle":
            if self.resource_type and kind != self.resource_type:
                raise FetchError(f"the {self.resource_type} query returned a {str(kind)[:40]}", "invalid")
            return [document]
        read = read_bundle(document)
        if read.gap:
            raise FetchError(read.gap, "invalid")
        if wrong := read.wrong_type(self.resource_type):
            raise FetchError(wrong, "invalid")
        if read.short and self.check_total:
            raise FetchError(read.short, "incomplete")
        self.matches += read.matches
        total = document.get("total")
        if isinstance(total, int) and not isinstance(total, bool):
            self.total = total if self.total is None else max(self.total, total)
        # An OperationOutcome with warnings only is not data.
        return [r for r in read.resources if r["resourceType"] != "OperationOutcome"]

    def shortfall(self) -> str | None:
        """Why the pages read to the last are fewer than their total counts (resources.shortfall)."""
        return shortfall(self.total, self.matches) if self.check_total else None


def with_page_size(query: str, size: int) -> str:
    """A search asking for `size` results a page (0: the server's default).

    Servers default to 20 (HAPI, Medplum) or 50 (Oracle Health) a page: a patient with years of
    weekly labs needed more pages than TDM1_CDS_FETCH_MAX_PAGES or the deadline allowed, and the
    whole category was unavailable. A query that names its own _count keeps it; a server may return
    fewer. Reads (Patient/123) are left alone.
    """
    if not size or "?" not in query or "_count=" in query:
        return query
    return f"{query}&_count={size}"


def _read_body(response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
    """The body, read so that a server trickling bytes cannot hold this thread past the deadline.

    A read of fixed-size chunks (requests' iter_content()) waits until each 64 KiB has arrived: one
    byte every few hundred ms keeps every socket read under its timeout while the total grows
    without bound. read1() returns whatever one socket read gave, so the deadline is checked after
    every read and is overrun by one read timeout at most.

    read1() gives the bytes as sent (decode_content=False), so a gzip body is decoded here, never
    past MAX_RESPONSE_BYTES of output: a small compressed body that expands to gigabytes stops at
    the limit.
    """
    decoder = _decoder(response.headers.get("Content-Encoding"))
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            if time.monotonic() > deadline:
                raise FetchError("timed out", "timeout")
            chunk = response.read1(65536)
            if not chunk:
                break
            if decoder is not None:
                chunk = _inflate(decoder, chunk, MAX_RESPONSE_BYTES - size)
            parts.append(chunk)
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise FetchError("response too large", "invalid")
    except (urllib3.exceptions.TimeoutError, TimeoutError):
        raise FetchError("timed out", "timeout") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise FetchError(f"read failed ({type(exc).__name__})", "network") from None
    if decoder is not None and not decoder.eof:
        raise FetchError("compressed response cut short", "network")
    return b"".join(parts)


def _decoder(content_encoding: str | None) -> Any:
    """A zlib decoder for the body's Content-Encoding; None when it is sent as is."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    # Only gzip is asked for; anything else (br, deflate, a chain) is said, not guessed at.
    raise FetchError(f"response encoded as {encoding[:32]!r}, which was not asked for", "invalid")


def _inflate(decoder: Any, chunk: bytes, room: int) -> bytes:
    """Decode one chunk, producing at most room + 1 bytes: one more than fits says "too large"."""
    try:
        out = decoder.decompress(chunk, room + 1)
    except zlib.error:
        raise FetchError("compressed response is corrupt", "invalid") from None
    if decoder.unconsumed_tail:  # output stopped at the bound with input left: past the limit
        raise FetchError("response too large", "invalid")
    return out


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """One pool per worker process, made on first use (after gunicorn forks: threads do not fork)."""
    global _POOL
    with _POOL_LOCK:  # gthread: the first calls arrive together, and each would make its own pool
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir-fetch")
        return _POOL


def run_parallel(
    jobs: dict[str, Callable[[], FetchResult]], deadline: float, workers: int = 16
) -> dict[str, FetchResult]:
    """Run each job in the shared pool; at the deadline, whatever has not finished is reported late."""
    if not jobs:
        return {}
    futures: dict[str, Future[FetchResult]] = {key: _pool(workers).submit(job) for key, job in jobs.items()}
    wait(list(futures.values()), timeout=max(0.0, deadline - time.monotonic()), return_when=ALL_COMPLETED)
    results = {}
    for key, future in futures.items():
        if future.done() and future.exception() is None:
            results[key] = future.result()
        elif future.done():
            log.warning("fetch job failed", extra={"key": key, "error": type(future.exception()).__name__})
            results[key] = FetchResult(key=key, error="internal error while fetching", reason="invalid")
        else:
            future.cancel()
            results[key] = FetchResult(key=key, error="timed out", reason="timeout")
    return results
