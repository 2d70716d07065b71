"""tdm1-cds serve | evaluate | report | migrate | knowledge.

`serve` runs gunicorn (the production server, also in dev); `evaluate` answers one request file
offline, the way the service would; `knowledge` lists the clinical entries for sign-off.
"""

from __future__ import annotations

import argparse
import codecs
import gc
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from service.settings import SettingsError, from_env

HOOK_SERVICES = {
    "order-select": "tdm1-order-select",
    "order-sign": "tdm1-order-sign",
    "patient-view": "tdm1-patient-view",
}


def _serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from service import metrics_dir

    settings = from_env(dev=True if args.dev else None, host=args.host, port=args.port, workers=args.workers)
    if settings.dev and not _is_loopback_host(settings.host):
        print("tdm1-cds: --dev accepts unsigned requests; it only listens on loopback.", file=sys.stderr)
        return 2
    # Before service.app imports prometheus_client, which picks multi-process mode on import.
    metrics_directory, owner_pid = metrics_dir.prepare(settings.workers), os.getpid()
    from service.app import create_app

    app = create_app(settings)  # fail here, with a clear message, before gunicorn forks

    class Application(BaseApplication):
        def load_config(self) -> None:
            config_file = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"
            if config_file.exists():
                for key, value in runpy.run_path(str(config_file)).items():
                    if key in self.cfg.settings and value is not None:
                        self.cfg.set(key, value)
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.workers)

        def load(self) -> Any:
            return app

    print(
        f"tdm1-cds serving on http://{settings.host}:{settings.port} ({'dev mode' if settings.dev else 'production'})",
        file=sys.stderr,
    )
    # CPython's advice for a server that forks without exec: freeze what the master built, so the
    # workers' collections neither walk it nor write to its pages (which copy-on-write would copy).
    gc.freeze()
    try:
        Application().run()
    finally:
        metrics_dir.remove(metrics_directory, owner_pid)
    return 0


def _is_loopback_host(host: str) -> bool:
    return host in {"127.0.0.1", "localhost", "::1"} or host.startswith("127.")


def _evaluate(args: argparse.Namespace) -> int:
    from service.api.body import syntax_message
    from service.app import create_app
    from service.settings import MAX_JSON_DEPTH_PARSER
    from service.store import Store

    path = Path(args.request)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        print(f"tdm1-cds evaluate: {path}: no such file", file=sys.stderr)
        return 2
    except OSError as exc:  # a directory, no permission: a message, not a traceback
        print(
            f"tdm1-cds evaluate: {path}: cannot be read ({exc.strerror or type(exc).__name__})",
            file=sys.stderr,
        )
        return 2
    try:
        # The service's own parser (service/api/body.py): NaN is refused as it is over HTTP, and a
        # deeply nested file is a JSONDecodeError where json.loads raised RecursionError.
        document = orjson.loads(raw.removeprefix(codecs.BOM_UTF8))
    except orjson.JSONDecodeError as exc:
        reason = syntax_message(raw, exc, MAX_JSON_DEPTH_PARSER).removeprefix("Request body is ")
        print(f"tdm1-cds evaluate: {path}: {reason}", file=sys.stderr)
        return 2
    if not isinstance(document, dict) or document.get("hook") not in HOOK_SERVICES:
        print(
            f"tdm1-cds evaluate: {path}: not a CDS Hooks request for {', '.join(HOOK_SERVICES)}",
            file=sys.stderr,
        )
        return 2
    # Offline: whatever is not prefetched stays unavailable; no network call is made.
    document.pop("fhirServer", None)
    document.pop("fhirAuthorization", None)
    with tempfile.TemporaryDirectory() as scratch:
        settings = from_env(
            dev=True, database_url=f"sqlite:///{scratch}/evaluate.sqlite3", fixed_now=args.now
        )
        store = Store(settings.database_url)
        try:
            client = create_app(settings, store=store).test_client()
            response = client.post(f"/cds-services/{HOOK_SERVICES[document['hook']]}", json=document)
        finally:
            store.close()
    print(json.dumps(response.get_json(), indent=2, ensure_ascii=False))
    if response.status_code != 200:
        print(f"tdm1-cds evaluate: the service answered {response.status_code}", file=sys.stderr)
        return 1
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from service.store import StoreUnavailable, migrate_url

    settings = from_env()
    try:
        revision = migrate_url(settings.database_url)
    except StoreUnavailable as exc:
        print(f"tdm1-cds migrate: {exc}", file=sys.stderr)  # never the URL: it may hold a password
        return 1
    print(f"database schema at revision {revision}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from service import report
    from service.store import Store

    settings = from_env()
    try:
        since = report.parse_since(args.since)
    except ValueError as exc:
        print(f"tdm1-cds report: {exc}", file=sys.stderr)
        return 2
    store = Store(settings.database_url, settings.hash_key, migrate_on_open=False)  # read only
    try:
        built = report.build(store, since)
    except SQLAlchemyError as exc:
        print(
            f"tdm1-cds report: the card log cannot be read ({type(exc).__name__}); is the database up "
            "and migrated (tdm1-cds migrate)?",
            file=sys.stderr,
        )
        return 1
    finally:
        store.close()
    sys.stdout.write(report.render(built, args.format))
    return 0


def _knowledge(args: argparse.Namespace) -> int:
    from service.clinical import knowledge

    entries = sorted(knowledge.default().entries.values(), key=lambda e: (e.status == "confirmed", e.id))
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], indent=2, ensure_ascii=False, default=str))
        return 0
    unverified = [e for e in entries if e.status != "confirmed"]
    for entry in entries:
        flag = "!! " + entry.status.upper() if entry.status != "confirmed" else "confirmed"
        print(f"{entry.id:<42} {flag:<16} [{entry.setting}] {entry.title}")
        print(f"{'':<42} source: {entry.source}")
        if entry.note:
            print(f"{'':<42} note: {entry.note}")
    print(
        f"\n{len(entries)} entries; {len(unverified)} NOT confirmed: review them against the current DailyMed SPL before clinical use."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tdm1-cds", description="CDS Hooks service for T-DM1 (Kadcyla)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve with gunicorn")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=None)
    serve.add_argument("--dev", action="store_true", help="unsigned requests, loopback FHIR, CORS *")
    serve.set_defaults(run=_serve)

    evaluate = commands.add_parser("evaluate", help="print the response for a request file (no network)")
    evaluate.add_argument("request")
    evaluate.add_argument("--now", default=None, help="evaluate as of this ISO 8601 instant (dated fixtures)")
    evaluate.set_defaults(run=_evaluate)

    analytics = commands.add_parser(
        "report", help="cards issued, accepted, overridden (by reason) and unanswered, per rule"
    )
    analytics.add_argument("--since", default=None, help="only cards issued from this date (YYYY-MM-DD, UTC)")
    analytics.add_argument("--format", choices=("table", "csv", "json"), default="table")
    analytics.set_defaults(run=_report)

    migration = commands.add_parser("migrate", help="upgrade the database schema to this version's head")
    migration.set_defaults(run=_migrate)

    listing = commands.add_parser(
        "knowledge", help="list the clinical knowledge entries with source and status"
    )
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_knowledge)

    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except SettingsError as exc:
        print(f"tdm1-cds: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
