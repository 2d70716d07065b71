"""A loopback FHIR server that answers every query after a fixed delay (workload 3).

    python -m bench.slow_fhir --port 0 --delay-ms 100 --data DIR

Answers GET /fhir/<Type>[/...] with DIR/<Type>.json after the delay; prints `LISTENING <port>`.
Queries wait concurrently (each on its own timer), as they would on a real server.

It shares the machine's two cores with the service being measured, at several hundred queries a
second in workload 3. A real FHIR server's CPU is not the service's, so this one spends as little
as it can: asyncio with no thread per connection, HTTP/1.1 keep-alive, a request line and headers
read but not parsed beyond what routing needs, and prebuilt responses. (The first version, on
http.server, spent about a millisecond of CPU a query parsing headers.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

NOT_FOUND = b'{"resourceType": "OperationOutcome", "issue": []}'


def _response(status: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/fhir+json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def _route(request_line: bytes, responses: dict[str, bytes], missing: bytes) -> bytes:
    parts = request_line.split(b" ")
    path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
    segments = path.split("?", 1)[0].strip("/").split("/")
    return responses.get(segments[1] if len(segments) > 1 else "", missing)


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    responses: dict[str, bytes],
    missing: bytes,
    delay: float,
) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")  # GET only: no request body to read
            await asyncio.sleep(delay)
            writer.write(_route(head.split(b"\r\n", 1)[0], responses, missing))
            await writer.drain()
    writer.close()


async def _main(port: int, delay: float, data: Path) -> None:
    responses = {path.stem: _response("200 OK", path.read_bytes()) for path in data.glob("*.json")}
    missing = _response("404 Not Found", NOT_FOUND)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(reader, writer, responses, missing, delay)

    # asyncio sets TCP_NODELAY on each connection, and a response leaves in one write: no
    # delayed-ACK wait (~40 ms) is added, as none would be by a real server.
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.port, args.delay_ms / 1000.0, args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
