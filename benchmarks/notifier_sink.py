"""The notifier benchmark's local sink: a minimal HTTP/1.1 server that answers 200 and
records each request, run as its own process (``python -m benchmarks.notifier_sink``).

It stands in for every channel target (webhook receivers and Slack-like incoming webhooks
alike) so that what is measured is the notifier, not a receiver: a raw asyncio server (uvloop
when installed) that reads a request, records ``(arrival time, path, event id)`` and answers
``200 ok`` on the same keep-alive connection. Arrival times are ``time.monotonic()``
(CLOCK_MONOTONIC, one clock for every process on the machine), so the benchmark compares them
with the commit times its generator took. The event id is the ``X-Plumbline-Event-Id``
header when the request has one (webhooks); otherwise (Slack bodies carry no header) the
UUIDs found in the body, which the benchmark maps back to its events.

Control paths, for the benchmark only: ``GET /_bench/count`` (requests recorded),
``GET /_bench/records`` (one line per request: ``<t>\\t<path>\\t<event id>\\t<uuids>``),
``GET /_bench/bodies`` (one line per request: ``<path>\\t<event id>\\t<SHA-256 of the body>``,
so a benchmark can tell a retry that sent the same bytes from one that did not) and
``POST /_bench/reset`` (forget them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import re
import signal
import sys
import time
from collections.abc import Sequence

EVENT_ID_HEADER = b"x-plumbline-event-id"
CONTROL_PREFIX = "/_bench/"
MAX_HEAD_BYTES = 65_536
MAX_BODY_BYTES = 8 * 1024 * 1024
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"code":0}'
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

Record = tuple[float, str, str, str]


class Sink:
    """The recorded requests, and the connection handler that records them."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        # (path, event id, body digest) per request, in the order of ``records``.
        self.bodies: list[tuple[str, str, str]] = []

    def _control(self, method: str, path: str) -> bytes:
        if path == CONTROL_PREFIX + "count":
            body = str(len(self.records)).encode()
        elif path == CONTROL_PREFIX + "records":
            body = "".join(f"{t:.6f}\t{p}\t{e}\t{u}\n" for t, p, e, u in self.records).encode()
        elif path == CONTROL_PREFIX + "bodies":
            body = "".join(f"{p}\t{e}\t{d}\n" for p, e, d in self.bodies).encode()
        elif path == CONTROL_PREFIX + "reset" and method == "POST":
            self.records = []
            self.bodies = []
            body = b"reset"
        else:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: requests one after another until the client closes it."""
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                if len(parts) < 3:
                    writer.write(_BAD)
                    return
                method, path = parts[0].decode("latin-1"), parts[1].decode("latin-1")
                length = 0
                event_id = b""
                close = False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value.strip() or b"0")
                    elif name == EVENT_ID_HEADER:
                        event_id = value.strip()
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                    elif name == b"transfer-encoding":
                        # Every adapter sends a sized body; anything else is not a client of ours.
                        writer.write(_BAD)
                        return
                if length > MAX_BODY_BYTES:
                    writer.write(_BAD)
                    return
                body = await reader.readexactly(length) if length else b""
                arrived = time.monotonic()
                if path.startswith(CONTROL_PREFIX):
                    writer.write(self._control(method, path))
                else:
                    uuids = "" if event_id else ",".join(u.decode() for u in _UUID.findall(body))
                    event = event_id.decode("latin-1")
                    self.records.append((arrived, path, event, uuids))
                    self.bodies.append((path, event, hashlib.sha256(body).hexdigest()))
                    writer.write(_OK)
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    sink = Sink()
    server = await asyncio.start_server(
        sink.handle, host, port, limit=MAX_HEAD_BYTES, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"sink listening on {host}:{port}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink on ``--host``/``--port``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.notifier_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
