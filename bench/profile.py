"""Where a hook call spends its time: pyinstrument over N in-process calls of a bench workload.

    pip install -e '.[bench]'
    python -m bench.profile [order-sign | patient-view | order-sign-2000] [--calls 200]

In-process (Flask test client, no gunicorn, no network) so the profile shows the service's own code;
bench/run.py measures the real server. The first call is made before profiling: warm-up is
measured by the benchmark, not here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench import workloads
from tests import fhir_builders

SERVICES = {
    "order-sign": "tdm1-order-sign",
    "patient-view": "tdm1-patient-view",
    "order-sign-2000": "tdm1-order-sign",
}


def main(argv: list[str] | None = None) -> int:
    try:
        from pyinstrument import Profiler
    except ImportError:
        sys.exit("bench.profile needs pyinstrument: pip install -e '.[bench]'")
    from service.app import create_app
    from service.settings import from_env

    parser = argparse.ArgumentParser(prog="bench.profile")
    parser.add_argument("workload", nargs="?", default="order-sign", choices=sorted(SERVICES))
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tdm1-profile-") as tmp:
        body = workloads.write(Path(tmp) / "bodies")[args.workload].read_bytes()
        settings = from_env(
            {},
            dev=True,
            database_url=f"sqlite:///{tmp}/profile.sqlite3",
            fixed_now=fhir_builders.iso(fhir_builders.NOW),
            log_level="WARNING",
        )
        app = create_app(settings)
        client = app.test_client()
        path = f"/cds-services/{SERVICES[args.workload]}"
        first = client.post(path, data=body, content_type="application/json")
        assert first.status_code == 200, first.get_data(as_text=True)[:500]
        print(f"cards: {[c['source']['topic']['code'] for c in json.loads(first.data)['cards']]}")
        profiler = Profiler(interval=0.0005)
        started = time.perf_counter()
        profiler.start()
        for _ in range(args.calls):
            client.post(path, data=body, content_type="application/json")
        profiler.stop()
        elapsed = time.perf_counter() - started
        print(f"{args.calls} calls, {elapsed / args.calls * 1000:.2f} ms each (profiler on)")
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        app.config["STORE"].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
