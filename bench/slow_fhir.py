"""A loopback FHIR server that answers every query after a fixed delay (workload 3).

    python -m bench.slow_fhir --port 0 --delay-ms 100 --data DIR

Answers GET /fhir/<Type>[/...] with DIR/<Type>.json after the delay; prints `LISTENING <port>`.
Each request sleeps on its own thread, so concurrent queries overlap as they would on a real server.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args(argv)
    bodies = {path.stem: path.read_bytes() for path in args.data.glob("*.json")}
    delay = args.delay_ms / 1000.0

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle on, the second waits for a delayed ACK
        # (~40 ms), a delay no real FHIR server adds.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *items: Any) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(delay)
            segments = self.path.split("?", 1)[0].strip("/").split("/")
            body = bodies.get(segments[1] if len(segments) > 1 else "")
            status = 200 if body is not None else 404
            body = body or b'{"resourceType": "OperationOutcome", "issue": []}'
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    print(f"LISTENING {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
