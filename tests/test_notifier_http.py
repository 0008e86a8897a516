"""The notifier's HTTP transports, against a real HTTP/1.1 server in a thread of its own
(blocking sockets, so it sees each TCP read as the kernel hands it over): its own
(``http11``), and httpx's on asyncio's transports (``network_backend``), which it falls
back to for proxies."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.abc
import importlib.machinery
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from services.notifier.http11 import notifier_http_transport
from services.notifier.network_backend import asyncio_http_transport
from tests.support.tls import self_signed_certificate

LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)
# The one path the recording server answers.
PATH = "/hook"


@dataclass
class RecordingServer:
    """An HTTP/1.1 server: answers each request with ``answer`` (200), keeps the connection
    open unless ``close_after_answer``, or never answers when ``silent``."""

    answer: bytes = b"ok"
    # Sent as it is instead of a 200 with ``answer``.
    raw_answer: bytes | None = None
    close_after_answer: bool = False
    silent: bool = False
    tls: ssl.SSLContext | None = None
    # Connections that carried a request for the served path. A stray client that found this
    # port (another test's process probing a port it had chosen) is not counted.
    connections: int = 0
    # Connections this server has closed.
    closed: int = 0
    # Per request: the bytes of its first read, and the whole request.
    first_reads: list[bytes] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def serve(self) -> Iterator[str]:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        scheme = "https" if self.tls is not None else "http"
        try:
            yield f"{scheme}://127.0.0.1:{self.port}{PATH}"
        finally:
            self.stopping.set()
            thread.join(5)
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        connection = raw
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(raw, server_side=True)
            connection.settimeout(0.1)
            counted = False
            while not self.stopping.is_set():
                request = self._read_request(connection)
                if request is None:
                    return
                if not counted:
                    counted = True
                    self.connections += 1
                if self.silent:
                    self.stopping.wait()
                    return
                connection.sendall(
                    self.raw_answer
                    if self.raw_answer is not None
                    else b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.answer)
                    + self.answer
                )
                if self.close_after_answer:
                    # No "Connection: close": the client learns of it as of an idle
                    # keep-alive connection the server dropped.
                    time.sleep(0.05)
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            connection.close()
            self.closed += 1

    def _read_request(self, connection: socket.socket) -> bytes | None:
        data = b""
        first_read: bytes | None = None
        while True:
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                head = data[:head_end].lower()
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name == b"content-length":
                        length = int(value)
                if len(data) >= head_end + 4 + length:
                    assert first_read is not None
                    if data.split(b" ", 2)[1] != PATH.encode():
                        return None
                    self.first_reads.append(first_read)
                    self.requests.append(data)
                    return data
            try:
                chunk = connection.recv(1 << 20)
            except TimeoutError:
                if self.stopping.is_set():
                    return None
                continue
            if not chunk:
                return None
            if first_read is None:
                first_read = chunk
            data += chunk


@pytest.fixture
def server() -> RecordingServer:
    return RecordingServer()


MakeTransport = Callable[..., httpx.AsyncBaseTransport]


@pytest.fixture(params=["http11", "httpcore-on-asyncio"])
def make_transport(request: pytest.FixtureRequest) -> MakeTransport:
    """Each test runs on both transports the notifier uses."""
    if request.param == "http11":
        return notifier_http_transport
    return asyncio_http_transport


async def _post(
    transport: httpx.AsyncBaseTransport, url: str, body: bytes, *, read_timeout: float = 5.0
) -> httpx.Response:
    request = httpx.Request(
        "POST", url, content=body, extensions={"timeout": httpx.Timeout(read_timeout).as_dict()}
    )
    response = await transport.handle_async_request(request)
    await response.aread()
    await response.aclose()
    return response


async def test_a_request_goes_out_in_one_write_on_a_kept_alive_connection(
    server: RecordingServer, make_transport: MakeTransport
) -> None:
    # httpcore writes a request's head and its body separately; on anyio each write was its
    # own send(2), so the receiver's first read held only the head.
    body = b'{"event": "x", "data": "' + b"y" * 2_000 + b'"}'
    transport = make_transport(limits=LIMITS)
    for url in server.serve():
        for _ in range(20):
            response = await _post(transport, url, body)
            assert (response.status_code, response.content) == (200, b"ok")
        await transport.aclose()
    assert server.connections == 1
    assert len(server.requests) == 20
    assert server.first_reads == server.requests
    assert all(request.endswith(body) for request in server.requests)


async def test_an_idle_connection_the_server_dropped_is_not_used_again(
    make_transport: MakeTransport,
) -> None:
    server = RecordingServer(close_after_answer=True)
    transport = make_transport(limits=LIMITS)
    for url in server.serve():
        for sent in range(1, 4):
            response = await _post(transport, url, b"{}")
            assert response.status_code == 200
            # Once the server has closed the connection (on a loaded machine its thread may
            # take a while), the pool must notice before it sends the next request on it.
            deadline = time.monotonic() + 10
            while server.closed < sent:
                assert time.monotonic() < deadline, "the server did not close the connection"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
        await transport.aclose()
    assert server.connections == 3
    assert len(server.requests) == 3


async def test_large_bodies_go_out_and_come_back_whole(make_transport: MakeTransport) -> None:
    answer = bytes(range(256)) * 8_192  # 2 MiB: more than the read high-water mark
    server = RecordingServer(answer=answer)
    body = b"z" * (3 << 20)  # 3 MiB: written in more than one flush
    transport = make_transport(limits=LIMITS)
    for url in server.serve():
        response = await _post(transport, url, body)
        await transport.aclose()
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(answer).digest()
    assert server.requests[0].endswith(body)


async def test_a_silent_server_is_a_read_timeout(make_transport: MakeTransport) -> None:
    server = RecordingServer(silent=True)
    transport = make_transport(limits=LIMITS)
    for url in server.serve():
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await _post(transport, url, b"{}", read_timeout=0.3)
        assert time.monotonic() - started < 3
        await transport.aclose()


async def test_a_refused_connection_is_a_connect_error(make_transport: MakeTransport) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    transport = make_transport(limits=LIMITS)
    with pytest.raises(httpx.ConnectError):
        await _post(transport, f"http://127.0.0.1:{port}/hook", b"{}")
    await transport.aclose()


async def test_tls_to_a_trusted_certificate_and_not_to_an_unknown_one(
    tmp_path: Path, make_transport: MakeTransport
) -> None:
    certificate_file, key_file = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificate_file, key_file)
    server = RecordingServer(tls=server_tls)
    trusting = make_transport(
        limits=LIMITS, verify=ssl.create_default_context(cafile=str(certificate_file))
    )
    default = make_transport(limits=LIMITS)
    for url in server.serve():
        for _ in range(2):
            response = await _post(trusting, url, b'{"a": 1}')
            assert (response.status_code, response.content) == (200, b"ok")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await _post(default, url, b'{"a": 1}')
        await trusting.aclose()
        await default.aclose()
    assert len(server.requests) == 2
    # Both requests went over one TLS connection (the refused handshake carried no request).
    assert server.connections == 1


class _RecordingFinder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.looked_up: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        self.looked_up.append(fullname)
        return None


async def test_sending_looks_up_no_module(
    server: RecordingServer, make_transport: MakeTransport
) -> None:
    # httpcore asks sniffio which event loop runs; without sniffio installed it retried the
    # failed import (a search of sys.path) several times per request.
    transport = make_transport(limits=LIMITS)
    finder = _RecordingFinder()
    for url in server.serve():
        await _post(transport, url, b"{}")
        sys.meta_path.insert(0, finder)
        try:
            for _ in range(3):
                await _post(transport, url, b"{}")
        finally:
            sys.meta_path.remove(finder)
        await transport.aclose()
    assert finder.looked_up == []


@pytest.mark.parametrize(
    ("raw_answer", "status", "body", "reused"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            200,
            b"hello world",
            True,
            id="chunked",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            201,
            b"ok",
            True,
            id="interim-100-then-201",
        ),
        pytest.param(
            b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.example/\r\n"
            b"Content-Length: 0\r\n\r\n",
            302,
            b"",
            True,
            id="redirect-returned-not-followed",
        ),
        pytest.param(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nConnection: close\r\n"
            b"Content-Length: 4\r\n\r\nbusy",
            503,
            b"busy",
            False,
            id="connection-close",
        ),
        pytest.param(
            b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
            200,
            b"until the end",
            False,
            id="body-ended-by-close",
        ),
    ],
)
async def test_answers_of_every_shape_are_read(
    make_transport: MakeTransport, raw_answer: bytes, status: int, body: bytes, reused: bool
) -> None:
    server = RecordingServer(raw_answer=raw_answer, close_after_answer=not reused)
    transport = make_transport(limits=LIMITS)
    for url in server.serve():
        for _ in range(2):
            response = await _post(transport, url, b"{}")
            assert (response.status_code, response.content) == (status, body)
            await asyncio.sleep(0.1)
        await transport.aclose()
    assert len(server.requests) == 2
    assert server.connections == (1 if reused else 2)


async def test_an_invalid_answer_is_a_protocol_error(make_transport: MakeTransport) -> None:
    server = RecordingServer(raw_answer=b"HTTP/1.1 2xx Bad\r\n\r\n")
    transport = make_transport(limits=LIMITS)
    for url in server.serve():
        with pytest.raises(httpx.RemoteProtocolError):
            await _post(transport, url, b"{}")
        await transport.aclose()


async def test_requests_beyond_the_connection_limit_wait_for_a_free_one(
    make_transport: MakeTransport,
) -> None:
    server = RecordingServer(silent=True)
    transport = make_transport(limits=httpx.Limits(max_connections=1))
    for url in server.serve():
        first = asyncio.create_task(_post(transport, url, b"{}", read_timeout=2.0))
        await asyncio.sleep(0.2)
        request = httpx.Request(
            "POST",
            url,
            content=b"{}",
            extensions={"timeout": httpx.Timeout(5.0, pool=0.2).as_dict()},
        )
        with pytest.raises(httpx.PoolTimeout):
            await transport.handle_async_request(request)
        with pytest.raises(httpx.ReadTimeout):
            await first
        await transport.aclose()
    assert len(server.requests) == 1
