"""make soak: a long run at 70% of the measured maximum; zero errors and flat memory. Not CI.

    python -m bench.soak [--minutes 10] [--load 0.7] [--connections 16] [--workers 2]

Measures the maximum order-sign throughput (workload 1) on a fresh server, then holds 70% of it:
every connection waits between requests so the total rate is the target. Load is applied in
30-second rounds; after each, the RSS of each worker is read. Passes when no request failed and
no worker grew more than 10% from the end of the first round (allocator warm-up) to the last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench import run, workloads

ROUND_SECONDS = 30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.7, help="fraction of the measured maximum")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    run.ensure_wrk()
    print(run.machine())
    with tempfile.TemporaryDirectory(prefix="tdm1-soak-") as tmp:
        scratch = Path(tmp)
        body = workloads.write(scratch / "bodies")["order-sign"]
        with run.serve(scratch, "soak", args.workers) as (base, master):
            url = base + "/cds-services/tdm1-order-sign"
            run.check_response(url, body)
            run.wrk(url, body, duration=5, connections=args.connections)
            peak = run.wrk(url, body, duration=15, connections=args.connections)
            maximum = peak["requests"] / (peak["duration_us"] / 1e6)
            target = maximum * args.load
            started = time.perf_counter()
            requests.post(
                url, data=body.read_bytes(), headers={"Content-Type": "application/json"}, timeout=30
            )
            service_ms = (time.perf_counter() - started) * 1000
            # Per connection: one request every connections/target seconds, minus the time it takes.
            delay_ms = max(0.0, args.connections / target * 1000 - service_ms)
            print(
                f"soak: maximum {maximum:.1f} req/s; holding {target:.1f} req/s "
                f"({args.load:.0%}) for {args.minutes:g} min, {delay_ms:.0f} ms between requests per connection"
            )
            rounds = max(1, round(args.minutes * 60 / ROUND_SECONDS))
            errors = 0
            pids = run.worker_pids(master)
            recycled = False
            first: list[float] = []
            last: list[float] = []
            print(f"{'round':>5} {'req/s':>8} {'p99 ms':>8} {'errors':>7}  RSS/worker MB")
            for index in range(rounds):
                figures = run.wrk(
                    url, body, duration=ROUND_SECONDS, connections=args.connections, delay_ms=delay_ms
                )
                failed = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
                errors += failed
                rss = run.rss_mb(master)
                # gunicorn replaces a worker after max_requests: a new process, a new baseline.
                if run.worker_pids(master) != pids:
                    pids, recycled, first = run.worker_pids(master), True, rss
                first = first or rss
                last = rss
                rate = figures["requests"] / (figures["duration_us"] / 1e6)
                print(
                    f"{index + 1:>5} {rate:>8.1f} {figures['p99'] / 1000:>8.1f} {failed:>7}  "
                    f"{', '.join(f'{v:.1f}' for v in rss)}"
                )
    growth = max((b / a - 1) * 100 for a, b in zip(first, last, strict=False)) if first else 0.0
    flat = growth <= 10 and len(first) == len(last)
    print(
        f"soak: {rounds * ROUND_SECONDS / 60:g} min, errors {errors}, worker RSS growth {growth:+.1f}% "
        f"after the first round{' (since the last worker recycle)' if recycled else ''}: "
        f"{'PASS' if errors == 0 and flat else 'FAIL'}"
    )
    return 0 if errors == 0 and flat else 1


if __name__ == "__main__":
    sys.exit(main())
