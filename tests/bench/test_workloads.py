"""The benchmark's request bodies are what bench/RESULTS.md says they are, and the service takes them."""

from __future__ import annotations

from collections import Counter

from bench import workloads
from tests import fhir_builders as fb


def _types(history: list[dict]) -> Counter[str]:
    return Counter(r["resourceType"] for r in history)


def test_realistic_patient_has_the_documented_size() -> None:
    counts = _types(workloads.realistic_history())
    assert 28 <= counts["Observation"] <= 32
    assert counts["Condition"] == 5
    assert counts["MedicationRequest"] + counts["MedicationAdministration"] == 20


def test_large_history_has_2000_resources() -> None:
    assert len(workloads.large_history()) == 2000


def test_each_workload_answers_with_its_card(client, frozen_now) -> None:
    realistic = workloads.realistic_history()
    cases = [
        ("tdm1-order-sign", workloads.order_sign(realistic), "fixed-duration-stop"),
        ("tdm1-patient-view", workloads.patient_view(realistic), "treatment-summary"),
        ("tdm1-order-sign", workloads.order_sign(workloads.large_history()), "fixed-duration-stop"),
    ]
    for service, body, expected in cases:
        response = client.post(f"/cds-services/{service}", json=body)
        assert response.status_code == 200, response.get_json()
        assert expected in [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]


def test_slow_server_data_is_the_prefetch_data() -> None:
    history = workloads.realistic_history()
    answers = workloads.fhir_responses(history)
    assert set(answers) == {"Patient", *fb.PREFETCH_KEYS}


def test_interleaved_rounds_add_requests_and_take_median_percentiles(monkeypatch, tmp_path) -> None:
    from argparse import Namespace

    from bench import run

    body = tmp_path / "body.json"
    body.write_text("{}")
    order: list[str] = []
    p99s = iter([10_000, 90_000, 30_000, 1_000, 2_000, 3_000])  # µs, as wrk reports them

    def fake_wrk(url: str, _body, *, duration: float, connections: int) -> dict[str, int]:
        order.append(url.rsplit("/", 1)[-1])
        p99 = next(p99s) if duration == 1.0 else 0  # warm-ups (2 s here) take none
        return dict.fromkeys(("connect", "read", "write", "status", "timeout"), 0) | {
            "requests": 100,
            "duration_us": 1_000_000,
            "p50": p99 // 2,
            "p95": p99,
            "p99": p99,
        }

    monkeypatch.setattr(run, "wrk", fake_wrk)
    monkeypatch.setattr(run, "check_response", lambda _url, _body: [])
    monkeypatch.setattr(run, "peak_rss_mb", lambda _master: [1.0])
    cpu = iter(range(0, 100, 1))  # each reading one CPU second later than the one before

    monkeypatch.setattr(run, "cpu_seconds", lambda _master: float(next(cpu)))
    splits = iter([[8, 8], [1, 15], [7, 9], [4, 12], [6, 10], [5, 11]])
    monkeypatch.setattr(run, "connections_per_worker", lambda _master, _port: next(splits))
    items = [run.Workload(n, "http://127.0.0.1:1", 0, f"/{n}", body, []) for n in ("a", "b")]
    a, b = run.interleaved(items, Namespace(warmup=2.0, duration=3.0, rounds=3, connections=16))
    assert order == ["a", "b", "a", "b", "a", "b", "a", "b"]  # warm-ups, then rounds in alternation
    # Rounds alternate, so a had the 1st, 3rd and 5th p99s (10, 30, 2 ms) and b the others (90, 1, 3).
    assert (a.requests, a.seconds, a.p99_ms) == (300, 3.0, 10.0)
    assert (b.requests, b.p99_ms) == (300, 3.0)
    # one CPU second per round (read before and after each round, warm-ups not counted), 300 requests
    assert a.cpu_seconds == b.cpu_seconds == 3.0
    assert round(a.cpu_ms_per_request, 3) == 10.0
    # one split per round (none for the warm-ups), in each workload's own rounds
    assert a.splits == [[8, 8], [7, 9], [6, 10]] and b.splits == [[1, 15], [4, 12], [5, 11]]
    assert "8/8 7/9 6/10" in run.table([a, b]).splitlines()[2]


def test_connections_per_worker_counts_the_sockets_each_child_holds() -> None:
    """A child process accepts three loopback connections and holds them: it is the worker holding 3."""
    import os
    import socket
    import subprocess
    import sys

    from bench import run

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)\n"
            "print(s.getsockname()[1], flush=True)\n"
            "held = [s.accept()[0] for _ in range(3)]\n"
            "print('held', flush=True); sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    clients = []
    try:
        port = int(holder.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        assert holder.stdout.readline().strip() == "held"
        counts = run.connections_per_worker(os.getpid(), port)
        # Other children of the test process hold none of this port's connections.
        assert max(counts) == 3 and sum(counts) == 3
    finally:
        for client in clients:
            client.close()
        holder.kill()
        holder.wait()


def test_cpu_seconds_reads_the_process_and_its_children() -> None:
    import os
    import subprocess
    import sys

    from bench import run

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(5)",
        ]
    )
    try:
        import time

        time.sleep(1.0)
        assert child.pid in run.worker_pids(os.getpid())
        assert run.cpu_seconds(child.pid) >= 0.25  # its busy 0.3 s, read from /proc
    finally:
        child.kill()
        child.wait()
    assert run.worker_pids(2**22 + 12345) == [] and run.cpu_seconds(2**22 + 12345) == 0.0


def test_cpu_seconds_keeps_the_cpu_of_a_worker_already_replaced() -> None:
    """A master whose child burned 0.3 s of CPU and was reaped (as gunicorn replaces a worker after
    max_requests): that CPU is still the server's."""
    import subprocess
    import sys
    import time

    from bench import run

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    master = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {burn!r}])\n"
            "print('reaped', flush=True)\ntime.sleep(5)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert master.stdout.readline().strip() == "reaped"
        time.sleep(0.1)
        assert run.worker_pids(master.pid) == []  # the child is gone
        assert run.cpu_seconds(master.pid) >= 0.25
    finally:
        master.kill()
        master.wait()
