"""The notifier's HTTP transport: httpx over httpcore, on asyncio's own transports.

httpcore's default network backend (anyio) costs more CPU than the rest of a delivery's
send: a cancel scope around every read and write, a ``poll`` system call and a dictionary
of socket attributes for each "is this idle connection still usable" check, and one
``send`` system call for a request's head and another for its body. This backend keeps
httpx and httpcore (pooling, HTTP/1.1 parsing, proxies, TLS verification) and replaces
only the byte streams under them:

- the bytes of a request are written in one ``send`` when the response is first read
  (httpcore always reads the answer after writing the whole request);
- a connection is "readable" when its protocol holds received bytes or has seen the peer
  close, which asyncio already knows without a system call;
- a timeout is armed only when a read has to wait.

Failures are httpcore's exceptions, as anyio's backend raises them, so httpx maps them to
its own (``httpx.ConnectError``, ``httpx.ReadTimeout``...).
"""

# The ``timeout`` parameters are httpcore's network-backend interface.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Coroutine, Iterable
from typing import Any

import httpcore
import httpx

# What httpcore passes for each socket option (``httpcore._backends.base.SOCKET_OPTION``).
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)

# Writes are held back for one ``send`` until the answer is read, or until this many bytes
# wait (a large body goes out while it is being written).
WRITE_COALESCE_BYTES = 64 * 1024
# Received bytes held before the transport stops reading from the socket (backpressure).
READ_HIGH_WATER_BYTES = 256 * 1024


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class ConnectionProtocol(asyncio.Protocol):
    """A client connection as asyncio reports it: its end (closed by the peer, or lost with
    an error), write flow control, and a waiter woken by whatever arrives next. Subclasses
    take the bytes (``data_received``) and call ``wake_reader``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.error: BaseException | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def eof_received(self) -> bool:
        self.closed = True
        self.wake_reader()
        # False: the transport closes itself (HTTP/1.1 has no half-closed use here).
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self.wake_reader()
        self._write_paused = False
        _wake(self._drain_waiter)
        self._drain_waiter = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        _wake(self._drain_waiter)
        self._drain_waiter = None

    def hold_reading(self, held_bytes: int) -> None:
        """Backpressure on received bytes not yet taken: the transport stops reading from
        the socket above ``READ_HIGH_WATER_BYTES`` and reads again at half of it."""
        if self.transport is None:
            return
        if not self._reading_paused and held_bytes > READ_HIGH_WATER_BYTES:
            self._reading_paused = True
            self.transport.pause_reading()
        elif self._reading_paused and held_bytes <= READ_HIGH_WATER_BYTES // 2:
            self._reading_paused = False
            self.transport.resume_reading()

    def wake_reader(self) -> None:
        """Wake ``wait_readable``."""
        _wake(self._read_waiter)
        self._read_waiter = None

    async def wait_readable(self) -> None:
        """Until something arrives or the connection ends."""
        waiter = asyncio.get_running_loop().create_future()
        self._read_waiter = waiter
        try:
            await waiter
        finally:
            self._read_waiter = None

    async def drain(self) -> None:
        """Until the transport's write buffer is below its high-water mark."""
        while self._write_paused and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiter = waiter
            await waiter


class _StreamProtocol(ConnectionProtocol):
    """A connection's received bytes, for httpcore to read."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.hold_reading(len(self.buffer))
        self.wake_reader()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection (plain or TLS) as httpcore reads and writes it."""

    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        self._transport.write(data)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if self._pending:
            if self._transport.is_closing():
                raise httpcore.WriteError("the connection is closed")
            self._flush()
        if not protocol.buffer and not protocol.closed:
            try:
                async with asyncio.timeout(timeout):
                    await protocol.wait_readable()
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        if protocol.buffer:
            data = bytes(protocol.buffer[:max_bytes])
            del protocol.buffer[:max_bytes]
            protocol.hold_reading(len(protocol.buffer))
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._pending.append(buffer)
        self._pending_bytes += len(buffer)
        if self._pending_bytes < WRITE_COALESCE_BYTES:
            return
        self._flush()
        try:
            async with asyncio.timeout(timeout):
                await self._protocol.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        if self._protocol.closed:
            raise httpcore.WriteError("the connection was closed while writing")

    async def aclose(self) -> None:
        self._pending.clear()
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self._flush()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls_transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.abort()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc)) from exc
        if tls_transport is None:  # the loop has closed the connection meanwhile
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        assert isinstance(tls_transport, asyncio.Transport)
        # The application protocol stays; it now hears the decrypted stream.
        self._protocol.transport = tls_transport
        return AsyncioStream(tls_transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle keep-alive connection that received bytes or an end of stream can no
            # longer carry a request: httpcore drops it instead.
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.closed or self._transport.is_closing()
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


async def _opened_stream(
    connecting: Coroutine[Any, Any, tuple[asyncio.BaseTransport, _StreamProtocol]],
    *,
    connect_timeout: float | None,
    socket_options: Iterable[SocketOption] | None,
) -> AsyncioStream:
    """The stream of a connection being opened by ``connecting``, with httpcore's errors."""
    try:
        async with asyncio.timeout(connect_timeout):
            transport, protocol = await connecting
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(str(exc) or "connect timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    assert isinstance(transport, asyncio.Transport)
    if socket_options:
        sock: socket.socket = transport.get_extra_info("socket")
        for option in socket_options:
            sock.setsockopt(*option)
    return AsyncioStream(transport, protocol)


class AsyncioNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio's transports (see the module's docstring)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        # asyncio sets TCP_NODELAY on the connections it opens.
        connecting = loop.create_connection(
            _StreamProtocol, host, port, local_addr=(local_address, 0) if local_address else None
        )
        return await _opened_stream(
            connecting, connect_timeout=timeout, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        connecting = asyncio.get_running_loop().create_unix_connection(_StreamProtocol, path)
        return await _opened_stream(
            connecting, connect_timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def asyncio_http_transport(
    *,
    limits: httpx.Limits,
    proxy: str | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport (one connection pool) whose connections are asyncio's own
    transports (``AsyncioNetworkBackend``); otherwise httpx's ``AsyncHTTPTransport``."""
    transport = httpx.AsyncHTTPTransport(limits=limits, proxy=proxy, verify=verify)
    # httpx does not pass a network backend through to its pool; the pool (httpcore's
    # AsyncConnectionPool, or a proxy pool, its subclass) takes one and opens every
    # connection with it.
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    pool._network_backend = AsyncioNetworkBackend()
    return transport
