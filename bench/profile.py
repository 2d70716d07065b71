"""Where a hook call spends its time, in process: pyinstrument over N calls of a bench workload, or
(--stages) the wall time of each stage of a call without a profiler's overhead.

    pip install -e '.[bench]'
    python -m bench.profile [order-sign | patient-view | order-sign-2000] [--calls 200] [--stages]

In-process (Flask test client, no gunicorn, no network) so the figures show the service's own code;
bench/run.py measures the real server. The first calls are made before measuring: warm-up is
measured by the benchmark, not here. The collector is set as deploy/gunicorn.conf.py sets it.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import runpy
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import workloads
from bench.run import GUNICORN_CONF
from tests import fhir_builders

SERVICES = {
    "order-sign": "tdm1-order-sign",
    "patient-view": "tdm1-patient-view",
    "order-sign-2000": "tdm1-order-sign",
}


def _timed_stages(spent: Counter[str]) -> None:
    """Wrap each stage of a hook call (service/api/hooks.py) so its wall time adds up in `spent`."""
    from service.api import hooks

    stages: list[tuple[Any, str, str]] = [
        (hooks, "_evaluate", "the whole evaluation (below, and the rest)"),
        (hooks.body, "read_json", "read and parse the body, depth check"),
        (hooks, "resolve", "prefetch resolved (fetch nothing)"),
        (hooks, "parse_draft_orders", "draft orders read"),
        (hooks.records, "build", "patient record built"),
        (hooks.engine, "evaluate_orders", "rules (order hooks)"),
        (hooks.engine, "evaluate_patient_view", "rules (patient-view)"),
        (hooks, "render", "cards rendered"),
        (hooks, "_record_cards", "card log written"),
        (hooks, "_log_call", "log line and metrics"),
        (hooks, "jsonify", "answer written"),
    ]
    for module, name, label in stages:
        original: Callable[..., Any] = getattr(module, name)

        def timed(
            *args: Any, _original: Callable[..., Any] = original, _label: str = label, **kwargs: Any
        ) -> Any:
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - started

        setattr(module, name, functools.wraps(original)(timed))


def main(argv: list[str] | None = None) -> int:
    from service.app import create_app
    from service.settings import from_env

    parser = argparse.ArgumentParser(prog="bench.profile")
    parser.add_argument("workload", nargs="?", default="order-sign", choices=sorted(SERVICES))
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--stages", action="store_true", help="time each stage, no profiler")
    args = parser.parse_args(argv)
    if not args.stages:
        try:
            from pyinstrument import Profiler
        except ImportError:
            sys.exit("bench.profile needs pyinstrument: pip install -e '.[bench]'")
    spent: Counter[str] = Counter()
    if args.stages:
        _timed_stages(spent)
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
        for _ in range(10):
            client.post(path, data=body, content_type="application/json")
        gc.freeze()
        gc.set_threshold(*runpy.run_path(str(GUNICORN_CONF))["GC_THRESHOLDS"])  # as each worker sets it
        spent.clear()
        profiler = None if args.stages else Profiler(interval=0.0005)
        started = time.perf_counter()
        if profiler:
            profiler.start()
        for _ in range(args.calls):
            client.post(path, data=body, content_type="application/json")
        elapsed = time.perf_counter() - started
        print(
            f"{args.calls} calls, {elapsed / args.calls * 1000:.2f} ms each ({'profiler on' if profiler else 'test client included'})"
        )
        if profiler:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        for label, seconds in spent.most_common():
            print(f"  {seconds / args.calls * 1e6:8.0f} us  {label}")
        app.config["STORE"].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
