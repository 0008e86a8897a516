"""Test harness: a real PostgreSQL and Redis, the real API over real HTTP, real arq workers.

With PLUMBLINE_TEST_DATABASE_URL / PLUMBLINE_TEST_REDIS_URL set (CI), those servers are used
(a fresh database is created for the run); otherwise embedded servers are started.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.audit_api.app import create_app
from services.cli import api_server_options
from shared.api_keys.service import create_api_key
from shared.core.db import create_engine, create_sessionmaker
from shared.core.migrate import upgrade_to_head
from shared.core.outbox import relay_batch
from shared.core.queue import ArqRedis, create_queue_pool, redis_settings
from shared.core.settings import Settings, to_asyncpg_url
from shared.core.signing import sign_payload
from tests.support.console import chromium_path
from tests.support.mail import RecordingMailServer, running_mail_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

    # tests.support.webhooks imports this module's helpers: imported where it is used.
    from tests.support.webhooks import WebhookReceiver

pytest_plugins: list[str] = []

# The fault suite (tests/faults) starts its own servers and kills them under load for
# minutes: `make test-faults` runs it (PLUMBLINE_FAULT_SUITE=1), plain `make test` does not.
collect_ignore = [] if os.environ.get("PLUMBLINE_FAULT_SUITE") else ["faults"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="plumbline-test-") as directory:
        yield Path(directory)


@pytest.fixture(scope="session")
def server_database_url(data_dir: Path) -> Iterator[str]:
    """A PostgreSQL server URL (any database on it): CI's, or an embedded one."""
    given = os.environ.get("PLUMBLINE_TEST_DATABASE_URL")
    if given:
        yield to_asyncpg_url(given)
        return
    from shared.core.embedded import start_embedded_postgres

    server = start_embedded_postgres(data_dir / "postgres")
    try:
        yield server.url
    finally:
        server.stop()


def _with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (keeps query parameters such as host=)."""
    base, _, query = url.partition("?")
    prefix = base.rsplit("/", 1)[0]
    return f"{prefix}/{name}" + (f"?{query}" if query else "")


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server at ``server_url``, dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(_plain(_with_database(server_url, "postgres")))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server_url, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url(server_database_url: str) -> Iterator[str]:
    """A fresh database, migrated to head, dropped after the run."""
    with scratch_database(server_database_url, "plumbline_test") as url:
        upgrade_to_head(url)
        yield url


def xdist_worker_number() -> int:
    """This process's pytest-xdist worker number (``gw3`` is 3); 0 when not run by xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") else 0


def redis_url_of_worker(given: str, worker: int) -> str:
    """``given`` with its database index moved up by ``worker``: each xdist worker flushes a
    Redis database of its own before every test, so two workers must never share one."""
    parts = urlsplit(given)
    base = int(parts.path.strip("/") or 0)
    index = base + worker
    if index > 15:
        raise pytest.UsageError(
            f"PLUMBLINE_TEST_REDIS_URL names Redis database {base}: with worker gw{worker} that "
            f"is database {index}, past Redis's 16 (0-15); give a lower database or fewer "
            "workers (-n)"
        )
    return urlunsplit(parts._replace(path=f"/{index}"))


@pytest.fixture(scope="session")
def redis_url(data_dir: Path) -> Iterator[str]:
    """A Redis URL of this session's own: CI's (one database per xdist worker), or an
    embedded server (one per worker)."""
    given = os.environ.get("PLUMBLINE_TEST_REDIS_URL")
    if given:
        yield redis_url_of_worker(given, xdist_worker_number())
        return
    from shared.core.embedded import start_embedded_redis

    server = start_embedded_redis(data_dir / "redis")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=data_dir,
        encryption_key=Fernet.generate_key().decode(),
        insecure_target_hosts="127.0.0.1,localhost",
        log_json=True,
        source_cache_seconds=0.2,
        delivery_base_delay_seconds=0.05,
        delivery_max_delay_seconds=0.5,
        delivery_timeout_seconds=2.0,
        # The role matrix calls every operation without a key from one client: more than the
        # default 100 failed authentications a minute (the limit's own tests set theirs).
        auth_failures_per_client=1000,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_queue_pool(settings)
    yield pool
    await pool.aclose()


# Truncating all 60 tables costs ~120 ms a test (PostgreSQL makes new files for each); a test
# fills a few, so only those are truncated (with CASCADE, as before): ~2 ms when all are empty.
_EMPTY_FILLED_TABLES = """
DO $$
DECLARE
    name text;
    found boolean;
    filled text[] := '{}';
BEGIN
    FOR name IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname <> 'alembic_version'
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', name) INTO found;
        IF found THEN
            filled := filled || quote_ident(name);
        END IF;
    END LOOP;
    IF cardinality(filled) > 0 THEN
        EXECUTE 'TRUNCATE ' || array_to_string(filled, ', ') || ' CASCADE';
    END IF;
END
$$
"""


@pytest.fixture(autouse=True)
async def clean_state(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[None]:
    """Each test starts with empty tables (reference data too) and an empty Redis."""
    if request.node.get_closest_marker("no_db"):
        yield
        return
    if LiveServer.running is not None:
        # The previous test's accepted writes must not land in this test's tables.
        await LiveServer.running.app.state.decision_writer.quiesce()
    assert settings.database_url is not None
    connection = await asyncpg.connect(_plain(settings.database_url))
    try:
        await connection.execute(_EMPTY_FILLED_TABLES)
    finally:
        await connection.close()
    assert settings.redis_url is not None
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    yield


class LiveServer:
    """The real app served by uvicorn on a free local port, in the test's event loop."""

    running: LiveServer | None = None

    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            lifespan="on",
            **api_server_options(settings),
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        deadline = time.monotonic() + 20
        while not self.server.started:
            if self.task.done():
                self.task.result()
            if time.monotonic() > deadline:
                raise RuntimeError("API did not start")
            await asyncio.sleep(0.02)
        LiveServer.running = self

    async def stop(self) -> None:
        LiveServer.running = None
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@pytest.fixture(scope="session")
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    server = LiveServer(settings)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        yield client


async def make_key(sessionmaker: async_sessionmaker[AsyncSession], role: str, **kwargs: Any) -> str:
    async with sessionmaker() as session, session.begin():
        _, key = await create_api_key(session, name=f"{role} test key", role=role, **kwargs)
    return key


@pytest.fixture
async def admin_key(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    return await make_key(sessionmaker, "admin")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class SignedSender:
    """A moderation platform: posts signed decision webhooks as DESIGN.md specifies."""

    def __init__(self, client: httpx.AsyncClient, name: str, secret: str) -> None:
        self.client = client
        self.name = name
        self.secret = secret

    def headers(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        stamp = int(time.time()) if timestamp is None else timestamp
        return {
            "Content-Type": "application/json",
            "X-Plumbline-Source": self.name,
            "X-Plumbline-Signature": sign_payload(self.secret, body, stamp),
        }

    async def post_raw(self, body: bytes, **kwargs: Any) -> httpx.Response:
        return await self.client.post(
            "/v1/webhooks/decisions", content=body, headers=self.headers(body, **kwargs)
        )

    async def post(self, payload: Any, **kwargs: Any) -> httpx.Response:
        return await self.post_raw(orjson.dumps(payload), **kwargs)


@pytest.fixture
async def sender(client: httpx.AsyncClient, admin_key: str) -> SignedSender:
    response = await client.post("/v1/sources", json={"name": "acme"}, headers=auth(admin_key))
    assert response.status_code == 201, response.text
    return SignedSender(client, "acme", response.json()["secret"])


def decision_event(n: int = 1, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"evt-{n}",
        "content_id": f"vid-{n}",
        "content_type": "video",
        "queue": "de-video-standard",
        "market": "DE",
        "language": "de",
        "moderator_id": "mod-42",
        "action": "remove",
        "policy_labels": ["hate_speech"],
        "decided_at": "2026-11-24T10:00:00Z",
        "handling_time_ms": 5400,
        "metadata": {},
    }
    event.update(overrides)
    return event


async def wait_for_outbox(
    sessionmaker: async_sessionmaker[AsyncSession], *, count: int = 1, seconds: float = 5.0
) -> None:
    """Wait until ``count`` jobs wait in the outbox (the intake writer queues them shortly)."""
    from sqlalchemy import func, select

    from shared.models import OutboxJob

    deadline = time.monotonic() + seconds
    while True:
        async with sessionmaker() as session:
            pending = await session.scalar(
                select(func.count()).select_from(OutboxJob).where(OutboxJob.enqueued_at.is_(None))
            )
        if (pending or 0) >= count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending} outbox jobs after {seconds} s, expected {count}")
        await asyncio.sleep(0.02)


async def relay_all(sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis) -> int:
    """Run the outbox relay until nothing is pending; returns how many jobs it moved."""
    moved = 0
    while count := await relay_batch(sessionmaker, queue, limit=500):
        moved += count
    return moved


async def run_worker_burst(worker_settings: type, settings: Settings, **overrides: Any) -> Any:
    """Run an arq worker (the real WorkerSettings) until its queue is empty.

    Its scheduled jobs are left out (a test calls those itself): one firing mid-test at its
    second of the minute would make the test depend on the clock.
    """
    from arq.worker import Worker

    options = {
        name: getattr(worker_settings, name)
        for name in (
            "functions", "queue_name", "on_startup", "on_shutdown", "job_timeout", "max_tries",
            "keep_result", "max_jobs", "job_serializer", "job_deserializer",
        )
        if hasattr(worker_settings, name)
    }  # fmt: skip
    options["cron_jobs"] = []
    options.update(overrides)
    worker = Worker(
        redis_settings=redis_settings(settings),
        burst=True,
        handle_signals=False,
        poll_delay=0.05,
        ctx={"settings": settings},
        **options,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker


# --- local receivers: the HTTP and SMTP servers standing in for chat services and mail ---


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A local HTTP server recording what it receives (a webhook, Slack, Teams, Lark...)."""
    from tests.support.webhooks import WebhookReceiver

    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def other_receiver() -> AsyncIterator[WebhookReceiver]:
    """A second such server, for a test that needs two targets."""
    from tests.support.webhooks import WebhookReceiver

    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def mail_server() -> Iterator[tuple[RecordingMailServer, int]]:
    """A local SMTP server recording every message: ``(handler, port)``."""
    with running_mail_server() as server:
        yield server


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium driven by Playwright (its own browser download cannot work here).

    Skips, saying so, on a machine without Chromium; ``.ci/run`` installs it.
    """
    path = chromium_path()
    if path is None:
        pytest.skip(
            "console browser tests skipped: no Chromium found (apt-get install chromium, "
            "or set PLUMBLINE_CHROMIUM to its path)"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # Root in CI: Chromium's sandbox needs user namespaces that containers often lack.
        launched = await playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser, live_server: LiveServer) -> AsyncIterator[Page]:
    """A fresh browser context (no cookies) on the live API, laptop-sized; fails the test on
    any Content-Security-Policy violation or script error the page reports."""
    context = await browser.new_context(
        base_url=live_server.url, viewport={"width": 1366, "height": 768}, locale="en-GB"
    )
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield opened
    await context.close()
    assert not problems, problems
