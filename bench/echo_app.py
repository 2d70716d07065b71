"""The baseline: a Flask app that reads and parses the same JSON body and answers no cards.

Served by the same gunicorn settings (deploy/gunicorn.conf.py, same workers and threads), it is what
the HTTP stack, JSON parsing (with the parser the service uses, orjson) and the machine cost
without any CDS work: the hook's figures are read against it, measured in the same run.
"""

from __future__ import annotations

import orjson
from flask import Flask, jsonify, request

app = Flask("tdm1_cds_bench_echo")


@app.post("/cds-services/<service_id>")
def echo(service_id: str):
    document = orjson.loads(request.get_data(cache=False))  # the service's parser
    if not isinstance(document, dict):
        return jsonify({"error": "not an object"}), 400
    return jsonify({"cards": []})


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})
