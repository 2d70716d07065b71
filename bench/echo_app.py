"""The baseline: a Flask app that reads and parses the same JSON body and answers no cards.

Served by the same gunicorn settings (deploy/gunicorn.conf.py, same workers and threads), it is what
the HTTP stack, JSON parsing and the machine cost without any CDS work: the hook's figures are read
against it, measured in the same run.

`app` parses as Flask does by default (the standard library's json): the floor the framework sets,
the baseline of the summary line. `orjson_app` parses with the service's own parser (orjson), so the
report can also show how much of the gap the faster parser closed, and what is left without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask, jsonify, request


def _echo_app(name: str, parse: Callable[[bytes], Any]) -> Flask:
    echo_app = Flask(name)

    @echo_app.post("/cds-services/<service_id>")
    def echo(service_id: str):
        document = parse(request.get_data(cache=False))
        if not isinstance(document, dict):
            return jsonify({"error": "not an object"}), 400
        return jsonify({"cards": []})

    @echo_app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    return echo_app


app = _echo_app("tdm1_cds_bench_echo", json.loads)
orjson_app = _echo_app("tdm1_cds_bench_echo_orjson", orjson.loads)
