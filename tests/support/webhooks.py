"""A real local HTTP server standing in for a customer's webhook receiver, channels that
deliver to it, and running the notifier until its queue is empty."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import SUPPORTED_KINDS
from services.notifier.deliveries import fan_out_event
from services.notifier.worker import WorkerSettings
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.events import EventType, SourceRejectedBatch, record_event
from shared.models import Event
from shared.models.base import utcnow
from tests.conftest import _free_port, auth, relay_all, run_worker_burst

SECRET = "whsec_test-channel-secret-0123456789"


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang_seconds: float = 0.0


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the receiver got."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """Records every request and answers with the scripted replies in order, then with
    ``responder``'s reply to the request (a stand-in checking what it got), or 200."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/plumbline"
        self.requests: list[ReceivedRequest] = []
        self.replies: list[Reply] = []
        self.responder: Callable[[ReceivedRequest], Reply] | None = None
        self._stopping = asyncio.Event()
        config = uvicorn.Config(
            self, host="127.0.0.1", port=self.port, log_config=None, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    def answer(self, *replies: Reply) -> None:
        self.replies = list(replies)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = ReceivedRequest(
            at=time.monotonic(),
            method=scope["method"],
            path=scope["path"],
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
        )
        self.requests.append(request)
        if self.replies:
            reply = self.replies.pop(0)
        elif self.responder is not None:
            reply = self.responder(request)
        else:
            reply = Reply()
        if reply.hang_seconds:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), reply.hang_seconds)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._stopping.set()
        self.server.should_exit = True
        if self.task is not None:
            await self.task


async def create_channel(
    client: httpx.AsyncClient,
    admin_key: str,
    target: str,
    *,
    name: str = "ops webhook",
    kind: str = "webhook",
    events: tuple[str, ...] = ("source.rejected_batch",),
    markets: list[str] | None = None,
    secret: str | None = SECRET,
    language: str = "en",
    **options: Any,
) -> str:
    """Create a channel to ``target`` with ``admin_key`` (``options``: more fields of the
    request, e.g. ``oauth``); its id."""
    payload: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "target": target,
        "language": language,
        "events": list(events),
        **options,
    }
    if markets is not None:
        payload["markets"] = markets
    if secret is not None:
        payload["secret"] = secret
    response = await client.post("/v1/channels", json=payload, headers=auth(admin_key))
    assert response.status_code == 201, response.text
    channel_id: str = response.json()["id"]
    return channel_id


async def notify(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    """Relay the outbox, then run the notifier until its queue is empty."""
    await relay_all(sessionmaker, queue)
    await run_worker_burst(WorkerSettings, settings)


@contextlib.asynccontextmanager
async def notifier_running(settings: Settings) -> AsyncIterator[None]:
    """A notifier worker running in the background (not burst) while the block runs: for
    calls that wait on it, such as a channel's test message."""
    from arq.worker import Worker

    from shared.core.queue import redis_settings

    worker = Worker(
        functions=WorkerSettings.functions,
        queue_name=WorkerSettings.queue_name,
        on_startup=WorkerSettings.on_startup,
        on_shutdown=WorkerSettings.on_shutdown,
        job_serializer=WorkerSettings.job_serializer,
        job_deserializer=WorkerSettings.job_deserializer,
        cron_jobs=[],
        redis_settings=redis_settings(settings),
        burst=False,
        handle_signals=False,
        poll_delay=0.05,
        ctx={"settings": settings},
    )
    task = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A job still running (a retry of a failing target, on a slow machine) may end
        # cancelled with the worker; the block's checks are done by then.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()


def rejected_batch_data(
    reason: str = "event 0 is invalid", *, errors: list[dict[str, Any]] | None = None
) -> SourceRejectedBatch:
    """The payload of a ``source.rejected_batch`` event: the notifier tests' usual message."""
    return SourceRejectedBatch(
        id=uuid.uuid4(),
        source="acme",
        status=422,
        reason=reason,
        errors=errors or [],
        event_count=None,
    )


async def emit_rejected_batch(
    sessionmaker: async_sessionmaker[AsyncSession],
    reason: str = "event 0 is invalid",
    *,
    market: str | None = None,
) -> Event:
    """Record a ``source.rejected_batch`` event (and its fan-out job) in its own transaction."""
    async with sessionmaker() as session, session.begin():
        return await record_event(
            session,
            type=EventType.SOURCE_REJECTED_BATCH,
            data=rejected_batch_data(reason),
            market=market,
        )


async def fan_out(sessionmaker: async_sessionmaker[AsyncSession], event_id: uuid.UUID) -> uuid.UUID:
    """Create an event's one delivery as the notifier does; its id."""
    async with sessionmaker() as session, session.begin():
        [delivery_id] = await fan_out_event(
            session, event_id=event_id, now=utcnow(), supported_kinds=SUPPORTED_KINDS
        )
    return delivery_id
