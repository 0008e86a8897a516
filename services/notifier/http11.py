"""The notifier's HTTP/1.1 transport: httpx's requests and responses, sent on kept-alive
asyncio connections and parsed by httptools (llhttp, the parser uvicorn serves with).

A delivery is one small POST to a known target, sent by one task, and answered by a short
body that is read and dropped. httpcore, under httpx's default transport, spends about a
millisecond of CPU on each: a connection pool that rescans every connection on each request,
locks and cancellation shields around each step, and h11's event machine. This transport
does the same exchange in a fraction of that (``docs/benchmarks.md``, "Notifier fan-out"):

- one idle-connection list per origin (scheme, host, port), newest first; a connection is
  reused only when nothing arrived on it since its last answer and it has been idle for
  less than ``keepalive_expiry``;
- the request's head and body in one write;
- the answer parsed in C as it arrives: status, headers, then the body streamed to the
  caller; a connection goes back to the pool only when its answer was read to the end and
  the server keeps it alive;
- at most ``max_connections`` requests at once (waiting at most the pool timeout), at most
  ``max_keepalive_connections`` idle connections kept.

Requests through a proxy, and any method but the usual ones with a body, go to httpx's own
transport (on asyncio streams, ``network_backend``), so every HTTP feature stays available.
Failures are httpx's exceptions (``httpx.ConnectError``, ``httpx.ReadTimeout``...). A
failed request is not retried here: the delivery's retry policy decides.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httptools
import httpx

from services.notifier.network_backend import ConnectionProtocol, asyncio_http_transport

# Methods sent here; others (HEAD, whose answer has no body, CONNECT...) go to httpx's.
DIRECT_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {b"http": 80, b"https": 443}
# httpx's default: an idle connection older than this is closed, not reused.
KEEPALIVE_EXPIRY_SECONDS = 5.0

Origin = tuple[bytes, str, int]


class _Connection(ConnectionProtocol):
    """One HTTP/1.1 connection and the answer it is receiving."""

    def __init__(self, origin: Origin) -> None:
        super().__init__()
        self.origin = origin
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._begin_answer()

    def _begin_answer(self) -> None:
        self.received = False
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.parse_error: str | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self.parse_error is not None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.parse_error = "the server switched protocols"
        except httptools.HttpParserError as exc:
            self.parse_error = f"invalid HTTP answer: {exc}"
        if self.parse_error is not None and self.transport is not None:
            self.transport.close()
        self.wake_reader()

    # --- httptools callbacks ------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self.reason = b""
            self.headers = []
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.body_bytes += len(body)
        self.hold_reading(self.body_bytes)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True

    # --- used by the transport ----------------------------------------------------------

    async def wait_within(self, read_timeout: float | None) -> None:
        """Until something arrives or the connection ends (``httpx.ReadTimeout`` after
        ``read_timeout`` seconds)."""
        try:
            async with asyncio.timeout(read_timeout):
                await self.wait_readable()
        except TimeoutError as exc:
            raise httpx.ReadTimeout("no answer in time") from exc

    async def drain_within(self, write_timeout: float | None) -> None:
        """Until the write buffer is below its high-water mark (``httpx.WriteTimeout``
        after ``write_timeout`` seconds)."""
        try:
            async with asyncio.timeout(write_timeout):
                await self.drain()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("the request could not be written in time") from exc

    def take_body(self) -> bytes:
        """The body bytes received so far, handed over (and reading resumed)."""
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        self.body_bytes = 0
        self.hold_reading(0)
        return data

    def ended_by_close(self) -> bool:
        """Whether the answer's body ends where the connection ended (no length given)."""
        if not self.headers_done or self.parse_error is not None:
            return False
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def reusable(self, now: float, expiry: float) -> bool:
        """An idle connection that can carry the next request."""
        return (
            not self.closed
            and not self.received
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < expiry
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _AnswerStream(httpx.AsyncByteStream):
    """An answer's body as it arrives; closing it gives the connection back (or closes
    it) and frees the request's slot."""

    def __init__(
        self, transport: Http11Transport, connection: _Connection, read_timeout: float | None
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._read_timeout = read_timeout
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            if connection.body:
                yield connection.take_body()
                continue
            if connection.complete:
                return
            if connection.parse_error is not None:
                raise httpx.RemoteProtocolError(connection.parse_error)
            if connection.closed:
                if connection.ended_by_close():
                    return
                raise httpx.ReadError("the server closed the connection during the answer")
            await connection.wait_within(self._read_timeout)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._transport._release(self._connection)


class Http11Transport(httpx.AsyncBaseTransport):
    """httpx's transport interface over kept-alive HTTP/1.1 connections (see the module's
    docstring); requests it does not send itself go to ``fallback``."""

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext,
        fallback: httpx.AsyncBaseTransport,
        send_directly: bool = True,
    ) -> None:
        self._ssl_context = ssl_context
        self._fallback = fallback
        self._send_directly = send_directly
        self._slots = asyncio.Semaphore(limits.max_connections or 1_000_000)
        self._max_idle = (
            limits.max_keepalive_connections
            if limits.max_keepalive_connections is not None
            else 1_000_000
        )
        self._expiry = (
            limits.keepalive_expiry
            if limits.keepalive_expiry is not None
            else KEEPALIVE_EXPIRY_SECONDS
        )
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if (
            not self._send_directly
            or request.method not in DIRECT_METHODS
            or url.raw_scheme not in DEFAULT_PORTS
        ):
            return await self._fallback.handle_async_request(request)
        if self._closed:
            raise RuntimeError("the transport is closed")
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        origin: Origin = (
            url.raw_scheme,
            url.raw_host.decode("ascii"),
            url.port or DEFAULT_PORTS[url.raw_scheme],
        )
        body = await request.aread()
        head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), url.raw_path)]
        head.extend(b"%s: %s\r\n" % pair for pair in request.headers.raw)
        head.append(b"\r\n")
        head.append(body)

        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free connection in time", request=request) from exc
        connection: _Connection | None = None
        try:
            connection = self._idle_connection(origin)
            if connection is None:
                connection = await self._connect(origin, request, timeouts.get("connect"))
            connection._begin_answer()
            assert connection.transport is not None
            connection.transport.write(b"".join(head))
            await connection.drain_within(timeouts.get("write"))
            read_timeout = timeouts.get("read")
            while not connection.headers_done:
                if connection.parse_error is not None:
                    raise httpx.RemoteProtocolError(connection.parse_error, request=request)
                if connection.closed:
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection without an answer", request=request
                    )
                await connection.wait_within(read_timeout)
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        return httpx.Response(
            connection.status,
            headers=connection.headers,
            stream=_AnswerStream(self, connection, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason},
            request=request,
        )

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if idle is None:
            return None
        now = time.monotonic()
        found = None
        while idle and found is None:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.reusable(now, self._expiry):
                found = connection
            else:
                connection.close()
        if not idle:
            # Targets come and go with channels: no empty list is kept per origin.
            del self._idle[origin]
        return found

    async def _connect(
        self, origin: Origin, request: httpx.Request, connect_timeout: float | None
    ) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(origin),
                    host,
                    port,
                    ssl=self._ssl_context if scheme == b"https" else None,
                    server_hostname=host if scheme == b"https" else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("could not connect in time", request=request) from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return connection

    def _release(self, connection: _Connection) -> None:
        """A response was closed: keep its connection for the next request to its origin
        when the answer was complete and the server keeps it alive."""
        self._slots.release()
        if (
            self._closed
            or not connection.complete
            or not connection.keep_alive
            or connection.closed
            or connection.body
            or self._idle_count >= self._max_idle
        ):
            connection.close()
            return
        connection.received = False
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1

    async def aclose(self) -> None:
        """Close every idle connection and the fallback transport."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        self._idle_count = 0
        await self._fallback.aclose()


def notifier_http_transport(
    *,
    limits: httpx.Limits,
    proxy: str | None = None,
    verify: ssl.SSLContext | bool = True,
) -> Http11Transport:
    """The notifier's one HTTP transport: ``Http11Transport``, or with ``proxy`` set, httpx's
    own transport through that proxy for every request."""
    return Http11Transport(
        limits=limits,
        ssl_context=verify
        if isinstance(verify, ssl.SSLContext)
        else httpx.create_ssl_context(verify=verify),
        fallback=asyncio_http_transport(limits=limits, proxy=proxy, verify=verify),
        send_directly=proxy is None,
    )
