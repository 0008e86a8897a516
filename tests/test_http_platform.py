"""The API's HTTP layer: answers to the unexpected, outages, limits before work, rate limits,
probes, docs, and an OpenAPI document that lists every status an operation really returns.

Outages are real: the tests start their own embedded PostgreSQL or Redis and stop it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from services.audit_api.rate_limits import logger as rate_limits_logger
from shared.core.db import create_engine, create_sessionmaker
from shared.core.embedded import start_embedded_postgres, start_embedded_redis
from shared.core.migrate import upgrade_to_head
from shared.core.settings import MIN_BOOTSTRAP_ADMIN_KEY_LENGTH, Settings
from tests.conftest import (
    LiveServer,
    SignedSender,
    auth,
    decision_event,
    make_key,
    scratch_database,
)
from tests.support.problems import assert_problem

# ------------------------------------------------------------------------------ helpers

# Only a bound so that a missing answer fails the test instead of hanging it.
_WAIT = 15.0


@asynccontextmanager
async def running_api(
    settings: Settings, *, configure: Callable[[FastAPI], None] | None = None
) -> AsyncIterator[LiveServer]:
    """A second API process-in-the-loop with its own settings (the session one keeps running)."""
    previous = LiveServer.running
    # A small pool: these APIs serve a handful of requests, and the server is shared.
    small = settings.model_copy(update={"database_pool_size": 2, "database_max_overflow": 2})
    server = LiveServer(small)
    if configure is not None:
        configure(server.app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        LiveServer.running = previous


class RawHttp:
    """One keep-alive HTTP/1.1 connection driven by hand: what is sent, and when, is exact."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str) -> AsyncIterator[RawHttp]:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            yield cls(reader, writer)
        finally:
            writer.close()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), _WAIT)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        body = await asyncio.wait_for(
            self.reader.readexactly(int(headers.get("content-length", "0"))), _WAIT
        )
        return int(status_line.split()[1]), headers, body


@pytest.fixture
def server_directory() -> Iterator[Path]:
    """A data directory for a test's own embedded server (the embedded PostgreSQL runs as
    another user, so it lives outside pytest's private temporary tree)."""
    with tempfile.TemporaryDirectory(prefix="plumbline-outage-") as directory:
        yield Path(directory)


def request_head(method: str, path: str, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: plumbline"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def problem_of(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"].startswith("application/problem+json"), headers
    problem: dict[str, Any] = orjson.loads(body)
    assert problem["status"] == status
    return problem


async def new_sender(client: httpx.AsyncClient, admin_key: str, name: str) -> SignedSender:
    response = await client.post("/v1/sources", json={"name": name}, headers=auth(admin_key))
    assert response.status_code == 201, response.text
    return SignedSender(client, name, response.json()["secret"])


# ------------------------------------------------------------------ unexpected errors


async def test_a_500_carries_a_request_id_and_keeps_the_connection(settings: Settings) -> None:
    def add_failing_route(app: FastAPI) -> None:
        async def fail() -> None:
            raise RuntimeError("a bug")

        app.add_api_route("/test-only/fail", fail, include_in_schema=False)

    async with (
        running_api(settings, configure=add_failing_route) as api,
        RawHttp.connect(api.url) as connection,
    ):
        await connection.send(request_head("GET", "/test-only/fail", X_Request_ID="boom-1"))
        status, headers, body = await connection.response()
        assert status == 500
        assert headers["x-request-id"] == "boom-1"
        assert headers.get("connection") != "close"
        problem = problem_of(500, headers, body)
        assert "a bug" not in body.decode()
        assert "Traceback" not in body.decode()
        assert problem["detail"] == "An unexpected error occurred."

        # Same socket: before, uvicorn closed it after the 500 (connection reset).
        await connection.send(request_head("GET", "/healthz"))
        status, headers, body = await connection.response()
        assert status == 200
        assert orjson.loads(body) == {"status": "ok"}
        assert headers["x-request-id"]


async def test_every_error_carries_a_request_id(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/v1/nothing-here"),
        await client.get("/v1/decisions"),
        await client.get("/v1/decisions", headers=auth("not-a-key")),
    ):
        assert response.status_code >= 400
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


# --------------------------------------------------------------------------- outages


async def test_database_outage_is_503_with_retry_after_on_every_endpoint(
    settings: Settings, server_directory: Path
) -> None:
    database = await asyncio.to_thread(start_embedded_postgres, server_directory)
    stopped = False
    try:
        await asyncio.to_thread(upgrade_to_head, database.url)
        engine = create_engine(database.url)
        try:
            admin_key = await make_key(create_sessionmaker(engine), "admin")
            # Used only once the database is down: no API process has it cached (a key read
            # before is kept for a few seconds), so its lookup is a query that fails.
            outage_key = await make_key(create_sessionmaker(engine), "admin")
        finally:
            await engine.dispose()
        # A long source cache: intake reaches the decision writer's own connections.
        own = settings.model_copy(
            update={"database_url": database.url, "source_cache_seconds": 600}
        )
        async with running_api(own) as api, httpx.AsyncClient(base_url=api.url) as client:
            sender = await new_sender(client, admin_key, "outage-src")
            assert (await sender.post(decision_event(1))).status_code == 202
            assert (await client.get("/readyz")).status_code == 200
            schema = (await client.get("/openapi.json")).json()

            await asyncio.to_thread(database.stop)
            stopped = True

            body = assert_problem(await sender.post(decision_event(2)), 503)
            assert "send again" in str(body["detail"])
            ready = assert_problem(await client.get("/readyz"), 503)
            assert "database" in str(ready["detail"])

            answered: dict[str, int] = {}
            for path, operations in schema["paths"].items():
                url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000001", path)
                for method in operations:
                    if path == "/healthz" or (method, path) == ("get", "/metrics"):
                        continue
                    if path == "/v1/webhooks/decisions":
                        response = await sender.post(decision_event(3))
                    else:
                        response = await client.request(
                            method.upper(), url, json={}, headers=auth(outage_key)
                        )
                    answered[f"{method.upper()} {path}"] = response.status_code
                    if response.status_code == 503:
                        assert int(response.headers["retry-after"]) > 0
                        assert response.headers["x-request-id"]
            assert len(answered) >= 50
            not_503 = {name: status for name, status in answered.items() if status != 503}
            # The appeals webhook names no source we have: refused (401) before any query; the
            # acknowledgement link's confirm page without its token is bad input (422), also
            # refused before any query.
            assert not_503 == {
                "POST /v1/webhooks/appeals": 401,
                "GET /v1/policy-updates/{update_id}/acknowledge": 422,
            }, not_503

            # Back up: the same API serves again, the writer's connections included.
            database = await asyncio.to_thread(start_embedded_postgres, server_directory)
            stopped = False
            for _ in range(50):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get("/v1/sources", headers=auth(admin_key))).status_code == 200
            accepted = await sender.post(decision_event(4))
            if accepted.status_code == 503:  # a pooled connection that died with the server
                accepted = await sender.post(decision_event(4))
            assert accepted.status_code == 202, accepted.text
    finally:
        if not stopped:
            await asyncio.to_thread(database.stop)


async def test_readyz_degrades_but_intake_works_while_redis_is_down(
    settings: Settings, server_directory: Path, admin_key: str
) -> None:
    redis = await asyncio.to_thread(start_embedded_redis, server_directory)
    try:
        own = settings.model_copy(update={"redis_url": redis.url})
        async with running_api(own) as api, httpx.AsyncClient(base_url=api.url) as client:
            sender = await new_sender(client, admin_key, "redis-outage")
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["degraded"] == []

            await asyncio.to_thread(redis.stop)
            warnings: list[str] = []

            class Capture(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    warnings.append(record.getMessage())

            handler = Capture(logging.WARNING)
            rate_limits_logger.addHandler(handler)
            try:
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["degraded"] == ["redis"]
                # Rate limits fail open: intake, reads and plain 401s go on.
                assert (await sender.post(decision_event(1))).status_code == 202
                listed = await client.get("/v1/decisions", headers=auth(admin_key))
                assert listed.status_code == 200
                assert len(listed.json()["items"]) == 1
                assert_problem(await client.get("/v1/sources", headers=auth("bad")), 401)
            finally:
                rate_limits_logger.removeHandler(handler)
            assert warnings == ["rate limits are off while Redis is unreachable"]

        # An API started while Redis is down starts, and serves intake.
        async with running_api(own) as late, httpx.AsyncClient(base_url=late.url) as client:
            assert (await client.get("/readyz")).json()["degraded"] == ["redis"]
            late_sender = SignedSender(client, sender.name, sender.secret)
            assert (await late_sender.post(decision_event(2))).status_code == 202
    finally:
        redis.stop()


async def test_readyz_is_503_when_migrations_are_not_current(
    settings: Settings, server_database_url: str
) -> None:
    database = scratch_database(server_database_url, "plumbline_stale")
    url = await asyncio.to_thread(database.__enter__)  # it runs its own event loop
    try:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.exec_driver_sql(
                    "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"
                )
                await connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('0001')")
        finally:
            await engine.dispose()
        stale = settings.model_copy(update={"database_url": url})
        async with running_api(stale) as api, httpx.AsyncClient(base_url=api.url) as client:
            body = assert_problem(await client.get("/readyz"), 503)
        assert "migrate" in str(body["detail"])
    finally:
        await asyncio.to_thread(database.__exit__, None, None, None)


# ---------------------------------------------------------------- limits before work


async def test_an_oversized_body_is_refused_before_it_is_read(live_server: LiveServer) -> None:
    async with RawHttp.connect(live_server.url) as connection:
        # 63 MiB announced, unauthenticated: refused on the headers alone.
        await connection.send(
            request_head(
                "POST",
                "/v1/sources",
                Content_Type="application/json",
                Content_Length=str(63 * 1024 * 1024),
            )
            + b'{"name": "'
        )
        status, headers, body = await connection.response()
        assert status == 413
        assert headers["connection"] == "close"
        assert headers["x-request-id"]
        problem_of(413, headers, body)

    async with RawHttp.connect(live_server.url) as connection:
        await connection.send(
            request_head(
                "POST",
                "/v1/webhooks/decisions",
                Content_Type="application/json",
                Content_Length=str(1024 * 1024 + 1),
            )
        )
        status, headers, body = await connection.response()
        assert status == 413
        problem_of(413, headers, body)


async def test_a_chunked_body_is_counted_as_it_streams(live_server: LiveServer) -> None:
    chunk = b"x" * 65536
    async with RawHttp.connect(live_server.url) as connection:
        await connection.send(
            request_head(
                "POST",
                "/v1/sources",
                Content_Type="application/json",
                Transfer_Encoding="chunked",
            )
        )
        # 1 MiB + 64 KiB sent, and the body never ends: the answer comes anyway.
        for _ in range(17):
            await connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, headers, body = await connection.response()
        assert status == 413
        assert headers["connection"] == "close"
        problem_of(413, headers, body)


async def test_a_slow_body_times_out(settings: Settings) -> None:
    own = settings.model_copy(update={"request_body_timeout_seconds": 0.5})
    async with running_api(own) as api:
        for path in ("/v1/sources", "/v1/webhooks/decisions"):
            async with RawHttp.connect(api.url) as connection:
                await connection.send(
                    request_head(
                        "POST", path, Content_Type="application/json", Content_Length="100"
                    )
                    + b'{"name": '
                )
                status, headers, body = await connection.response()
                assert status == 408, path
                assert headers["connection"] == "close"
                problem = problem_of(408, headers, body)
                assert "did not arrive" in problem["detail"]


# ----------------------------------------------------------------------- rate limits


async def test_failed_authentications_are_limited_per_client_across_replicas(
    settings: Settings, admin_key: str
) -> None:
    # Fixed windows: a test straddling a window's end would start counting afresh.
    own = settings.model_copy(
        update={"auth_failures_per_client": 3, "rate_limit_window_seconds": 3600}
    )
    async with (
        running_api(own) as first,
        running_api(own) as second,
        # Two servers and the suite's other workers share the machine: httpx's 5 s default
        # timed out once under a load of 13.
        httpx.AsyncClient(base_url=first.url, timeout=30) as one,
        httpx.AsyncClient(base_url=second.url, timeout=30) as other,
    ):
        assert_problem(await one.get("/v1/sources", headers=auth("guess-1")), 401)
        assert_problem(await other.get("/v1/sources", headers=auth("guess-2")), 401)
        assert_problem(await one.get("/v1/sources"), 401)
        # Three failures across both replicas: both refuse this client now, a valid key
        # included, before looking at it.
        for client in (one, other):
            blocked = await client.get("/v1/sources", headers=auth(admin_key))
            refused = assert_problem(blocked, 429)
            assert "failed authentications" in str(refused["detail"])
            retry_after = int(blocked.headers["retry-after"])
            assert 1 <= retry_after <= own.rate_limit_window_seconds
        # Probes are never limited.
        assert (await one.get("/healthz")).status_code == 200


async def test_the_client_behind_a_trusted_load_balancer_is_the_forwarded_one(
    settings: Settings, admin_key: str
) -> None:
    """Limits count the client the load balancer names, and only a named balancer is believed."""
    own = settings.model_copy(
        update={"auth_failures_per_client": 2, "rate_limit_window_seconds": 3600}
    )
    behind = own.model_copy(update={"api_forwarded_allow_ips": "127.0.0.1"})
    one, other = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    async with running_api(behind) as server, httpx.AsyncClient(base_url=server.url) as client:
        for guess in ("guess-1", "guess-2"):
            assert_problem(await client.get("/v1/sources", headers=auth(guess) | one), 401)
        assert_problem(await client.get("/v1/sources", headers=auth(admin_key) | one), 429)
        # Another client behind the same balancer is not held back by the first one's failures.
        allowed = await client.get("/v1/sources", headers=auth(admin_key) | other)
        assert allowed.status_code == 200, allowed.text
    async with running_api(own) as server, httpx.AsyncClient(base_url=server.url) as client:
        # Not configured: the header is the client's say-so, and the peer address counts.
        for guess in ("guess-3", "guess-4"):
            assert_problem(await client.get("/v1/sources", headers=auth(guess) | one), 401)
        assert_problem(await client.get("/v1/sources", headers=auth(admin_key) | other), 429)


async def test_failed_signatures_are_limited_per_source_and_per_client(
    settings: Settings, admin_key: str
) -> None:
    own = settings.model_copy(
        update={
            "signature_failures_per_source": 3,
            "auth_failures_per_client": 5,
            # Fixed windows: a test straddling a window's end would start counting afresh.
            "rate_limit_window_seconds": 3600,
        }
    )
    async with running_api(own) as api, httpx.AsyncClient(base_url=api.url) as client:
        acme = await new_sender(client, admin_key, "acme-limited")
        other = await new_sender(client, admin_key, "other-source")
        forged = SignedSender(client, "acme-limited", "not-the-secret")
        for n in range(3):
            assert_problem(await forged.post(decision_event(n)), 401)
        refused = assert_problem(await acme.post(decision_event(10)), 429)
        assert int((await acme.post(decision_event(10))).headers["retry-after"]) >= 1
        assert "source" in str(refused["detail"])
        # Another source from the same client is not that source's failures.
        assert (await other.post(decision_event(11))).status_code == 202

        # Two more failures make five for this client: now everything from it waits.
        forged_other = SignedSender(client, "other-source", "not-the-secret")
        for n in range(2):
            assert_problem(await forged_other.post(decision_event(20 + n)), 401)
        assert_problem(await other.post(decision_event(12)), 429)
        assert_problem(await client.get("/v1/sources", headers=auth(admin_key)), 429)


async def test_requests_per_key_are_limited(settings: Settings, admin_key: str) -> None:
    # A long fixed window: a test straddling a window's end would start counting afresh.
    own = settings.model_copy(update={"requests_per_key": 3, "rate_limit_window_seconds": 3600})
    async with running_api(own) as api, httpx.AsyncClient(base_url=api.url) as client:
        for _ in range(3):
            assert (await client.get("/v1/sources", headers=auth(admin_key))).status_code == 200
        response = await client.get("/v1/sources", headers=auth(admin_key))
        body = assert_problem(response, 429)
        assert "API key" in str(body["detail"])
        assert 1 <= int(response.headers["retry-after"]) <= own.rate_limit_window_seconds
    # The session's API has the default limit: the same key is not limited there.


# ------------------------------------------------------------- settings and the docs


def test_a_short_bootstrap_admin_key_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match=f"at least {MIN_BOOTSTRAP_ADMIN_KEY_LENGTH} char"):
        Settings(bootstrap_admin_key="admin")
    assert Settings(bootstrap_admin_key="").bootstrap_admin_key is not None  # empty = unset
    Settings(bootstrap_admin_key="k" * MIN_BOOTSTRAP_ADMIN_KEY_LENGTH)

    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        env={"PLUMBLINE_BOOTSTRAP_ADMIN_KEY": "admin", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "plumbline: refusing to start: PLUMBLINE_BOOTSTRAP_ADMIN_KEY must be at least "
        f"{MIN_BOOTSTRAP_ADMIN_KEY_LENGTH} characters"
    )
    assert "Traceback" not in result.stderr
    assert "input_value" not in result.stderr  # the refused key is not echoed


async def test_metrics_can_need_a_token_or_be_off(settings: Settings) -> None:
    token = "metrics-token-0123456789"
    guarded = settings.model_copy(update={"metrics_token": SecretStr(token)})
    async with running_api(guarded) as api, httpx.AsyncClient(base_url=api.url) as client:
        assert_problem(await client.get("/metrics"), 401)
        assert_problem(await client.get("/metrics", headers=auth("wrong")), 401)
        scraped = await client.get("/metrics", headers=auth(token))
        assert scraped.status_code == 200
        assert "plumbline_http_requests_total" in scraped.text
    off = settings.model_copy(update={"metrics_enabled": False, "docs_enabled": False})
    async with running_api(off) as api, httpx.AsyncClient(base_url=api.url) as client:
        assert_problem(await client.get("/metrics"), 404)
        assert_problem(await client.get("/docs"), 404)
        assert_problem(await client.get("/openapi.json"), 404)


async def test_docs_load_no_third_party_script(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "swagger" in page.text.lower()
    assert "://" not in page.text, "the docs page references another host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {asset.rsplit("/", 1)[-1] for asset in assets} >= {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    }
    for asset in assets:
        fetched = await client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 100
    assert (await client.get("/redoc")).status_code == 404


# --------------------------------------------------------------------------- OpenAPI


PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/webhooks/decisions",
    "/v1/webhooks/appeals",
    # A reviewer's signed acknowledgement link: its token, not a key, is the credential.
    "/v1/policy-updates/{update_id}/acknowledge",
}


async def test_openapi_documents_every_status_an_operation_returns(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    schema = (await client.get("/openapi.json")).json()
    moderator_key = await make_key(sessionmaker, "moderator", reviewer_id="mod-openapi")
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            documented = operation["responses"]
            for status, response in documented.items():
                if status.startswith(("4", "5")):
                    content = response["content"]["application/problem+json"]["schema"]
                    assert content == {"$ref": "#/components/schemas/Problem"}, name
                if status in ("429", "503"):
                    assert "Retry-After" in response["headers"], name
            expected = {"408", "413"}
            if path not in ("/healthz", "/readyz"):
                expected.add("429")
            if path not in PUBLIC:
                expected |= {"401", "503"}
            parameters = operation.get("parameters", [])
            if parameters:
                expected.add("422")
            if any(parameter["in"] == "path" for parameter in parameters):
                expected.add("404")
            if any(parameter["name"] == "cursor" for parameter in parameters):
                expected.add("400")
            if "requestBody" in operation:
                expected |= {"413", "415", "422"}
            assert expected <= set(documented), f"{name}: {expected - set(documented)}"

            # What the operation really answers without a key, and to the least trusted
            # role, is documented.
            url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000001", path)
            if path in PUBLIC:
                continue
            for headers in ({}, auth(moderator_key)):
                response = await client.request(method.upper(), url, json={}, headers=headers)
                assert str(response.status_code) in documented, (
                    f"{name} answered an undocumented {response.status_code}: {response.text}"
                )
            checked += 1
    assert checked >= 40
