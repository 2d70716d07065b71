"""make bench: the real server under load, against a baseline measured in the same run.

Each workload gets its own `tdm1-cds serve --dev` (gunicorn, deploy/gunicorn.conf.py, production
settings apart from unsigned requests) on loopback, all started first, and wrk drives them with 16
connections, in turn, in short interleaved rounds (see interleaved()). The baseline is
bench/echo_app.py under the same gunicorn settings: parse the same JSON, answer no cards (with
Flask's default parser, json; a second echo with the service's parser, orjson, is shown too).
Ratios, not absolute figures, are the result: this machine is shared and its speed varies.

    python -m bench.run [--duration 10] [--rounds 5] [--connections 16] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench import workloads
from tests import fhir_builders

REPO = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "post.lua"
GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"
FHIR_DELAY_MS = 100
ECHO = "baseline: echo (parse JSON, no cards)"
ECHO_ORJSON = "baseline': echo, parsed with orjson"
ECHO_LARGE = "4' echo (orjson), 2,000-resource body"


@dataclass
class Figures:
    name: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    peak_rss_mb: list[float]
    cpu_seconds: float = 0.0  # the server's processes (master and workers), user + system
    splits: list[list[int]] = field(default_factory=list)  # connections per worker, each round

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds * 1000 / self.requests if self.requests else 0.0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: installing wrk (apt-get install -y wrk)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("bench: the load generator wrk is missing: install it (Debian/Ubuntu: apt-get install -y wrk)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(process: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or a busy machine answering late
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"server did not become healthy in 60 s: {log}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def serve(
    scratch: Path,
    name: str,
    workers: int,
    *,
    echo: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, int]]:
    """A gunicorn server on a free loopback port; yields (base URL, master pid)."""
    port = free_port()
    log = scratch / f"{name}.log"
    if echo:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            f"bench.echo_app:{echo}",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--dev",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    full_env = {
        **os.environ,
        "TDM1_CDS_DATABASE_URL": f"sqlite:///{scratch}/{name}.sqlite3",
        "TDM1_CDS_FIXED_NOW": fhir_builders.iso(fhir_builders.NOW),
        **(env or {}),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(process, base, log)
            yield base, process.pid
        finally:
            _stop(process)


@contextmanager
def slow_fhir_server(scratch: Path, delay_ms: int) -> Iterator[str]:
    data = scratch / "fhir-data"
    data.mkdir(exist_ok=True)
    for resource_type, body in workloads.fhir_responses(workloads.realistic_history()).items():
        (data / f"{resource_type}.json").write_bytes(body)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.slow_fhir",
            "--port",
            "0",
            "--delay-ms",
            str(delay_ms),
            "--data",
            str(data),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("LISTENING "):
            raise RuntimeError("the slow FHIR server did not start")
        yield f"http://127.0.0.1:{int(line.split()[1])}/fhir"
    finally:
        _stop(process)


def worker_pids(master: int) -> list[int]:
    pids: list[int] = []
    try:
        tasks = list(Path(f"/proc/{master}/task").iterdir())
    except OSError:  # the server is gone
        return []
    for task in tasks:
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(pids)


def _status_kb(pid: int, field: str) -> float:
    """0.0 when the process is gone, or exiting (a zombie has no VmRSS)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return 0.0


def cpu_seconds(master: int) -> float:
    """User + system CPU of the server: master and workers (wrk's own CPU is not in it).

    CPU per request moves less than req/s on this host: queueing and the other servers' turns do
    not enter it, so it says what a call costs the machine."""
    total = 0
    for pid in [master, *worker_pids(master)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14 and 15)
        if pid == master:
            # cutime, cstime (fields 16 and 17): the workers already reaped. gunicorn replaces a
            # worker every ~10,000 requests (max_requests), and without these a worker recycled in
            # a round took its CPU with it: the orjson echo once read 0.29 ms a request.
            total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def _established_inodes(port: int) -> set[int]:
    """Socket inodes of the established TCP connections whose local port is `port` (/proc/net/tcp)."""
    inodes: set[int] = set()
    for table_path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table_path).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def connections_per_worker(master: int, port: int) -> list[int]:
    """How many of the clients' connections each worker holds, fewest first.

    gunicorn's workers race to accept, and a keepalive connection stays with the worker that won it
    for the whole round: wrk's 16 came out anywhere from 8/8 to 1/15. The heavier worker's calls
    queue longer, so the split moves a round's p99 (bench/RESULTS.md, "Session 6")."""
    established = _established_inodes(port)
    counts = []
    for pid in worker_pids(master):
        held = 0
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:[") and int(link[8:-1]) in established:
                held += 1
        counts.append(held)
    return sorted(counts)


def rss_mb_of(pid: int) -> float:
    return round(_status_kb(pid, "VmRSS") / 1024, 1)


def peak_rss_mb(master: int) -> list[float]:
    return [round(_status_kb(pid, "VmHWM") / 1024, 1) for pid in worker_pids(master)]


def rss_mb(master: int) -> list[float]:
    return [rss_mb_of(pid) for pid in worker_pids(master)]


def wrk(
    url: str,
    body: Path,
    *,
    duration: float,
    connections: int,
    threads: int = 2,
    delay_ms: float = 0,
) -> dict[str, int]:
    env = {
        **os.environ,
        "BENCH_BODY": str(body),
        "BENCH_DELAY_MS": str(int(delay_ms)),
    }
    command = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, int(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    raise RuntimeError(f"wrk printed no figures: {done.stdout[-1000:]} {done.stderr[-1000:]}")


# What wrk counts as failed requests (socket errors by kind, and non-2xx answers).
ERROR_KEYS = ("connect", "read", "write", "status", "timeout")


def errors_in(figures: dict[str, int]) -> int:
    return sum(figures[key] for key in ERROR_KEYS)


def check_response(url: str, body: Path) -> list[str]:
    """One request before the load: the workload must answer 200 with the cards it is meant to."""
    response = requests.post(
        url, data=body.read_bytes(), headers={"Content-Type": "application/json"}, timeout=30
    )
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:500]}")
    return [card["source"]["topic"]["code"] for card in response.json()["cards"]]


@dataclass
class Workload:
    name: str
    base: str
    master: int
    path: str
    body: Path
    rounds: list[dict[str, int]] = field(default_factory=list)  # wrk's figures, one per round
    splits: list[list[int]] = field(default_factory=list)  # connections per worker, mid-round

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        return self.base + self.path


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def interleaved(items: list[Workload], args: argparse.Namespace) -> list[Figures]:
    """Every workload in turn, `args.rounds` times, `args.duration / args.rounds` seconds each.

    This machine's speed drifts within minutes (a shared host): measured one after the other, the
    echo and a workload ran at different speeds and their ratio moved by 2x between runs. Taken in
    alternation, a drift slows all of them alike. Requests and errors add up over the rounds;
    each percentile is the median of the rounds' percentiles.
    """
    for item in items:
        cards = check_response(item.url, item.body)
        print(f"bench: {item.name}: cards {cards or '(none)'}", file=sys.stderr)
        wrk(item.url, item.body, duration=args.warmup, connections=args.connections)
    slice_seconds = max(1.0, args.duration / args.rounds)
    for _ in range(args.rounds):
        for item in items:
            before = cpu_seconds(item.master)
            # Halfway through, once wrk's connections are all open and spread over the workers.
            sampler = threading.Timer(
                slice_seconds / 2,
                lambda item=item: item.splits.append(connections_per_worker(item.master, item.port)),
            )
            sampler.start()
            figures = wrk(item.url, item.body, duration=slice_seconds, connections=args.connections)
            sampler.join()
            figures["cpu_seconds"] = cpu_seconds(item.master) - before
            item.rounds.append(figures)
    figures = []
    for item in items:
        raws = item.rounds
        errors = sum(errors_in(r) for r in raws)
        figures.append(
            Figures(
                name=item.name,
                requests=sum(r["requests"] for r in raws),
                seconds=sum(r["duration_us"] for r in raws) / 1e6,
                errors=errors,
                p50_ms=_median([r["p50"] for r in raws]) / 1000,
                p95_ms=_median([r["p95"] for r in raws]) / 1000,
                p99_ms=_median([r["p99"] for r in raws]) / 1000,
                peak_rss_mb=peak_rss_mb(item.master),
                cpu_seconds=sum(r["cpu_seconds"] for r in raws),
                splits=item.splits,
            )
        )
    return figures


def sequential_p50_ms(url: str, body: Path, calls: int = 20) -> float:
    """One call at a time: what a single EHR user waits, without the queue 16 connections build."""
    data = body.read_bytes()
    times = []
    with requests.Session() as session:
        for _ in range(calls):
            started = time.perf_counter()
            session.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=30)
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def memory_growth(
    base: str, master: int, body: Path, args: argparse.Namespace
) -> tuple[tuple[int, list[float]], tuple[int, list[float]]]:
    """RSS per worker after 1,000 requests and after 10,000 (workload 1, fresh workers).

    wrk runs for a duration, not a count, so the load comes in short rounds until the count is
    reached; the figures say how many requests had been answered when RSS was read.
    """
    url = base + "/cds-services/tdm1-order-sign"
    answered = 0
    readings: list[tuple[int, list[float]]] = []
    for target in (1_000, 10_000):
        while answered < target:
            figures = wrk(url, body, duration=2, connections=args.connections)
            answered += figures["requests"]
        readings.append((answered, rss_mb(master)))
    return readings[0], readings[1]


def table(rows: list[Figures]) -> str:
    header = (
        f"{'workload':<38} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'CPU ms/req':>10}  {'peak RSS/worker MB':<18}  connections per worker, by round"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.name:<38} {row.rps:>8.1f} {row.p50_ms:>8.1f} {row.p95_ms:>8.1f} {row.p99_ms:>8.1f} "
            f"{row.errors:>7} {row.cpu_ms_per_request:>10.2f}  {', '.join(f'{v:.0f}' for v in row.peak_rss_mb):<18}  "
            f"{' '.join('/'.join(map(str, split)) for split in row.splits)}"
        )
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    load = os.getloadavg()[0]
    return f"machine: {os.cpu_count()} CPUs, {model}; load average {load:.2f}; commit {commit or 'unknown'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per workload")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the duration is split into")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unrecorded load first")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true", help="skip the 10,000-request memory phase")
    parser.add_argument(
        "--quick", action="store_true", help="3 s per workload, no memory phase (a smoke run)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.skip_memory, args.rounds = 3.0, 1.0, True, 3
    ensure_wrk()
    print(machine(), file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tdm1-bench-") as tmp:
        scratch = Path(tmp)
        bodies = workloads.write(scratch / "bodies")
        with ExitStack() as servers:
            echo_srv = servers.enter_context(serve(scratch, "echo", args.workers, echo="app"))
            echo_orjson_srv = servers.enter_context(
                serve(scratch, "echo-orjson", args.workers, echo="orjson_app")
            )
            # Its own server, so the baseline's peak RSS stays that of the small body.
            echo_large_srv = servers.enter_context(
                serve(scratch, "echo-orjson-2000", args.workers, echo="orjson_app")
            )
            w1 = servers.enter_context(serve(scratch, "w1", args.workers))
            w2 = servers.enter_context(serve(scratch, "w2", args.workers))
            fhir_url = servers.enter_context(slow_fhir_server(scratch, FHIR_DELAY_MS))
            # The fetch cache is off here: every call must wait for its own (parallel) queries.
            w3 = servers.enter_context(
                serve(scratch, "w3", args.workers, env={"TDM1_CDS_FETCH_CACHE_TTL_SECONDS": "0"})
            )
            w4 = servers.enter_context(serve(scratch, "w4", args.workers))
            no_prefetch_body = scratch / "bodies" / "order-sign-no-prefetch.json"
            no_prefetch_body.write_text(
                json.dumps(workloads.order_sign_no_prefetch(fhir_url)), encoding="utf-8"
            )
            sign_path = "/cds-services/tdm1-order-sign"
            rows = interleaved(
                [
                    Workload(ECHO, *echo_srv, "/cds-services/echo", bodies["order-sign"]),
                    Workload(ECHO_ORJSON, *echo_orjson_srv, "/cds-services/echo", bodies["order-sign"]),
                    Workload("1 order-sign, full prefetch", *w1, sign_path, bodies["order-sign"]),
                    Workload(
                        "2 patient-view, full prefetch",
                        *w2,
                        "/cds-services/tdm1-patient-view",
                        bodies["patient-view"],
                    ),
                    Workload(
                        f"3 order-sign, no prefetch, FHIR {FHIR_DELAY_MS} ms",
                        *w3,
                        sign_path,
                        no_prefetch_body,
                    ),
                    Workload(
                        "4 order-sign, 2,000-resource history", *w4, sign_path, bodies["order-sign-2000"]
                    ),
                    # What reading and parsing workload 4's body costs before the service does anything.
                    Workload(ECHO_LARGE, *echo_large_srv, "/cds-services/echo", bodies["order-sign-2000"]),
                ],
                args,
            )
            alone = sequential_p50_ms(w3[0] + sign_path, no_prefetch_body)
        echo, echo_orjson, sign, _view, no_prefetch, large, echo_large = rows
        print(table(rows))
        print(
            f"no prefetch, one call at a time: p50 {alone:.0f} ms for six {FHIR_DELAY_MS} ms queries "
            f"(their sum would be {6 * FHIR_DELAY_MS} ms)"
        )
        if not args.skip_memory:
            with serve(scratch, "memory", args.workers) as (base, master):
                (count_1k, after_1k), (count_10k, after_10k) = memory_growth(
                    base, master, bodies["order-sign"], args
                )
            growth = (
                max((b / a - 1) * 100 for a, b in zip(after_1k, after_10k, strict=False)) if after_1k else 0.0
            )
            verdict = "within 10%" if growth <= 10 else "MORE than 10%"
            print(
                f"memory: RSS per worker after {count_1k:,} requests {after_1k} MB, after {count_10k:,} "
                f"{after_10k} MB: largest growth {growth:+.1f}% ({verdict})"
            )
    print(machine())
    # The service parses with orjson, the framework's floor with json: how much of R that is.
    print(
        f"against the orjson echo (baseline'): throughput ratio {sign.rps / echo_orjson.rps:.2f}, "
        f"p99 ratio {sign.p99_ms / echo_orjson.p99_ms:.2f}"
    )
    # S's floor: a server that only parses workload 4's body (orjson, no cards) against workload 1.
    # Above 4, no server that reads the whole prefetch into Python objects can meet S (RESULTS.md).
    print(
        f"2,000-resource body through the orjson echo: p99 {echo_large.p99_ms:.0f} ms, "
        f"{echo_large.p99_ms / sign.p99_ms:.2f}x workload 1's p99 (the floor under S for parsing alone)"
    )
    # R in machine time: at 2 cores fully used, throughput is CPU per request inverted.
    if sign.cpu_ms_per_request:
        print(
            f"CPU per request: echo {echo.cpu_ms_per_request:.2f} ms, workload 1 {sign.cpu_ms_per_request:.2f} ms "
            f"(ratio {echo.cpu_ms_per_request / sign.cpu_ms_per_request:.2f}; R >= 0.6 needs workload 1 at most "
            f"{echo.cpu_ms_per_request / 0.6:.2f} ms)"
        )
    ratio_r = sign.rps / echo.rps if echo.rps else 0.0
    ratio_l = sign.p99_ms / echo.p99_ms if echo.p99_ms else float("inf")
    ratio_s = large.p99_ms / sign.p99_ms if sign.p99_ms else float("inf")
    print(
        f"bench: order-sign/echo throughput ratio {ratio_r:.2f}, p99 ratio {ratio_l:.2f}, "
        f"no-prefetch p50 {no_prefetch.p50_ms:.0f} ms, 2000-resource p99 ratio {ratio_s:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
