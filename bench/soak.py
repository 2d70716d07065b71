"""make soak: a long run at 70% of the measured maximum; zero errors and flat memory. Not CI.

    python -m bench.soak [--minutes 10] [--load 0.7] [--connections 16] [--workers 2]

Measures the maximum order-sign throughput (workload 1) on a fresh server, then holds 70% of it:
every connection waits between requests so the total rate is the target, and the wait is
corrected after each round by the rate that round held. Load is applied in 30-second rounds;
after each, the RSS of each worker is read. Passes when no request failed and
no worker grew more than 10% from the end of the first round (allocator warm-up) to the last.
Workers are not recycled during the soak (gunicorn's max_requests is off), so a leak cannot hide.
"""

from __future__ import annotations

import argparse
import os
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
        # No recycling after max_requests: the same workers serve the whole soak, so a leak shows.
        # MALLOC_ARENA_MAX as the image sets it (deploy/Dockerfile), unless the caller chose one.
        env = {"TDM1_CDS_MAX_REQUESTS": "0", "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
        with run.serve(scratch, "soak", args.workers, env=env) as (base, master):
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
            # Per worker process: gunicorn replaces a worker after max_requests, and a process
            # being replaced as RSS is read shows none. Growth is each process's own, from the end
            # of the first round it served (allocator warm-up) to its last.
            first: dict[int, float] = {}
            last: dict[int, float] = {}
            seen: dict[int, int] = {}
            serving = set(run.worker_pids(master))  # the processes there when the round began
            rates: list[float] = []
            print(f"{'round':>5} {'req/s':>8} {'p99 ms':>8} {'errors':>7}  RSS/worker MB")
            for index in range(rounds):
                figures = run.wrk(
                    url, body, duration=ROUND_SECONDS, connections=args.connections, delay_ms=delay_ms
                )
                failed = run.errors_in(figures)
                errors += failed
                rss = _rss_by_pid(master)
                for pid, megabytes in rss.items():
                    if pid in serving:  # served the whole round: past its allocator warm-up
                        first.setdefault(pid, megabytes)
                        last[pid] = megabytes
                        seen[pid] = seen.get(pid, 0) + 1
                serving = set(rss)
                rate = figures["requests"] / (figures["duration_us"] / 1e6)
                rates.append(rate)
                # Under load a response takes longer than the one timed alone: correct the pause by
                # the gap between the cycle each connection had and the one the target needs.
                if rate > 0:
                    cycle_ms, wanted_ms = args.connections / rate * 1000, args.connections / target * 1000
                    # Half the gap a round: the latency moves with the rate, and a full step overshoots.
                    delay_ms = max(0.0, delay_ms + (wanted_ms - cycle_ms) / 2)
                print(
                    f"{index + 1:>5} {rate:>8.1f} {figures['p99'] / 1000:>8.1f} {failed:>7}  "
                    f"{', '.join(f'{v:.1f}' for v in rss.values())}"
                )
    lived = [pid for pid, rounds_seen in seen.items() if rounds_seen > 1]
    growth = max(((last[pid] / first[pid] - 1) * 100 for pid in lived), default=0.0)
    flat = growth <= 10 and bool(lived)
    held = sum(rates[1:]) / len(rates[1:]) if len(rates) > 1 else (rates[0] if rates else 0.0)
    print(f"soak: held {held:.1f} req/s after the first round ({held / maximum:.0%} of the maximum)")
    print(
        f"soak: {rounds * ROUND_SECONDS / 60:g} min, errors {errors}, worker RSS growth {growth:+.1f}% "
        f"at most, each worker from the end of its first whole round ({len(seen)} worker processes "
        f"measured): "
        f"{'PASS' if errors == 0 and flat else 'FAIL'}"
    )
    return 0 if errors == 0 and flat else 1


def _rss_by_pid(master: int) -> dict[int, float]:
    """RSS of each live worker; a process exiting (no VmRSS any more) is left out."""
    readings = {pid: run.rss_mb_of(pid) for pid in run.worker_pids(master)}
    return {pid: mb for pid, mb in readings.items() if mb > 0}


if __name__ == "__main__":
    sys.exit(main())
