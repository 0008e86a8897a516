"""Secrets never reach a log (issue 7, section 3).

Found on the landed code: httpx logged every delivery's target URL in full at INFO, and for
Slack, Teams and Lark channels the URL is the credential. The test runs real work (keys,
sources, a rotation, channels, a correction target, deliveries that succeed, fail and retry)
through the API and the notifier while every log record of the process is captured at
DEBUG, then looks for each secret it created in the captured text.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import OutgoingMessage, SendResult
from services.notifier.deliveries import send_claimed
from shared.core.encryption import secret_box
from shared.core.observability import JsonFormatter
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.deliveries.lifecycle import ClaimedDelivery
from shared.models.base import utcnow
from tests.conftest import SignedSender, _free_port, auth
from tests.support.webhooks import (
    ReceivedRequest,
    Reply,
    WebhookReceiver,
    create_channel,
    notifier_running,
    notify,
)

Sessions = async_sessionmaker[AsyncSession]


class CapturedLogs:
    """Every log record created in the process, formatted with all its fields.

    A record factory rather than a handler: each service's start-up replaces the root
    logger's handlers (``configure_logging``), which would drop a test's handler.
    """

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self._formatter = JsonFormatter("test")

    def text(self) -> str:
        return "\n".join(self._formatter.format(record) for record in self.records)


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    captured = CapturedLogs()
    original_factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    original_level = root.level

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original_factory(*args, **kwargs)
        captured.records.append(record)
        return record

    logging.setLogRecordFactory(factory)
    root.setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        logging.setLogRecordFactory(original_factory)
        root.setLevel(original_level)


def secret_path() -> str:
    """A URL path that is itself a credential, as in a Slack incoming-webhook URL."""
    return f"/services/T{secrets.token_hex(4)}/B{secrets.token_hex(4)}/{secrets.token_urlsafe(18)}"


async def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def test_no_secret_reaches_a_log(
    captured_logs: CapturedLogs,
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    debug_settings = settings.model_copy(update={"log_level": "DEBUG"})
    found: list[str] = [admin_key]
    admin = auth(admin_key)

    key = await created(
        await client.post("/v1/api-keys", json={"name": "tool", "role": "manager"}, headers=admin)
    )
    found.append(key["key"])
    source = await created(await client.post("/v1/sources", json={"name": "acme"}, headers=admin))
    found.append(source["secret"])
    rotated = await created(
        await client.post(
            f"/v1/sources/{source['id']}/rotate-secret",
            json={"grace_period_seconds": 60},
            headers=admin,
        )
    )
    found.append(rotated["secret"])
    correction_url = f"http://127.0.0.1:{receiver.port}{secret_path()}"
    correction = await created(
        await client.put(
            f"/v1/sources/{source['id']}/correction-target",
            json={"url": correction_url},
            headers=admin,
        )
    )
    found += [correction_url, correction_url.split("/", 3)[3]]
    if correction.get("secret"):
        found.append(correction["secret"])

    # A channel delivering to the receiver (its first attempt fails and is retried), one
    # with a generated secret, and one whose target does not answer at all.
    delivered_url = f"http://127.0.0.1:{receiver.port}{secret_path()}"
    channel_secret = "whsec_" + secrets.token_urlsafe(24)
    await create_channel(client, admin_key, delivered_url, secret=channel_secret)
    generated = await created(
        await client.post(
            "/v1/channels",
            json={
                "name": "generated",
                "kind": "webhook",
                "target": f"http://127.0.0.1:{receiver.port}{secret_path()}",
                "language": "en",
                "events": ["source.rejected_batch"],
            },
            headers=admin,
        )
    )
    found.append(generated["secret"])
    dead_url = f"http://127.0.0.1:{_free_port()}{secret_path()}"
    await create_channel(client, admin_key, dead_url, name="nobody home", secret=None)
    for url in (delivered_url, dead_url):
        found += [url, url.split("/", 3)[3]]
    found.append(channel_secret)
    receiver.answer(Reply(status=503, body=b"busy"))

    # A signed request that is refused: the source.rejected_batch event every channel gets.
    sender = SignedSender(client, "acme", rotated["secret"])
    refused = await sender.post_raw(b'{"events": "not a list"}')
    assert refused.status_code == 422, refused.text
    for _ in range(3):
        await notify(debug_settings, sessionmaker, queue)
    paths = {request.path for request in receiver.requests}
    assert delivered_url.split("/", 3)[3] in {p.lstrip("/") for p in paths}
    assert len(receiver.requests) >= 3  # the failed attempt, its retry, the generated channel

    text = captured_logs.text()
    assert len(captured_logs.records) > 10  # the capture saw the run
    leaked = [secret for secret in found if secret in text]
    assert leaked == []


async def test_an_unexpected_delivery_error_never_quotes_its_target(
    captured_logs: CapturedLogs, settings: Settings
) -> None:
    box = secret_box(settings)
    target = f"https://hooks.slack.example{secret_path()}"

    class ExplodingAdapter:
        """A channel adapter with a bug that puts its target into the exception."""

        kind: ClassVar[str] = "slack"

        async def send(self, message: OutgoingMessage) -> SendResult:
            raise ValueError(f"cannot send to {message.target}")

    claim = ClaimedDelivery(
        delivery_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        attempt=1,
        claimed_at=utcnow(),
        body=b"{}",
        content_type="application/json",
        channel_kind="slack",
        target_encrypted=box.encrypt(target),
        secret_encrypted=None,
        channel_id=uuid.uuid4(),
    )
    result = await send_claimed(claim, adapters={"slack": ExplodingAdapter()}, box=box)
    assert result.status_code is None
    assert result.error is not None
    assert "[redacted]" in result.error
    assert target not in result.error
    assert "delivery attempt failed unexpectedly" in captured_logs.text()
    assert target not in captured_logs.text()


async def test_chat_channel_credentials_never_reach_a_log(
    captured_logs: CapturedLogs,
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    debug_settings = settings.model_copy(update={"log_level": "DEBUG"})
    slack_url = f"http://127.0.0.1:{receiver.port}{secret_path()}"
    teams_url = f"http://127.0.0.1:{receiver.port}{secret_path()}"
    lark_url = f"http://127.0.0.1:{receiver.port}{secret_path()}"
    token_url = f"http://127.0.0.1:{receiver.port}/oauth2/token"
    client_secret = "entra-" + secrets.token_urlsafe(24)
    access_token = "eyJ-" + secrets.token_urlsafe(32)
    lark_secret = "lark-" + secrets.token_urlsafe(18)
    found = [slack_url, teams_url, lark_url, client_secret, access_token, lark_secret]
    found += [url.split("/", 3)[3] for url in (slack_url, teams_url, lark_url)]

    def answer(request: ReceivedRequest) -> Reply:
        if request.path == "/oauth2/token":
            # A careless token endpoint echoing the request it refused, then a token.
            if not any(r.path == "/oauth2/token" for r in receiver.requests[:-1]):
                return Reply(500, body=b"bad request: " + request.body)
            token = {"access_token": access_token, "expires_in": 3600}
            return Reply(200, body=orjson.dumps(token))
        if lark_url.endswith(request.path):
            return Reply(200, body=b'{"code": 11232, "msg": "frequency limited"}')
        return Reply(503, body=request.headers.get("authorization", "").encode())

    receiver.responder = answer
    await create_channel(client, admin_key, slack_url, name="slack", kind="slack", secret=None)
    teams = await create_channel(
        client,
        admin_key,
        teams_url,
        name="teams",
        kind="teams",
        secret=None,
        oauth={"token_url": token_url, "client_id": "app", "client_secret": client_secret},
    )
    await create_channel(client, admin_key, lark_url, name="lark", kind="lark", secret=lark_secret)
    sender = SignedSender(client, "acme", await _source_secret(client, admin_key))
    assert (await sender.post_raw(b'{"events": "not a list"}')).status_code == 422
    for _ in range(3):
        await notify(
            debug_settings.model_copy(update={"delivery_max_attempts": 2}), sessionmaker, queue
        )
    async with notifier_running(debug_settings):
        tested = await client.post(f"/v1/channels/{teams}/test", headers=auth(admin_key))
    assert tested.status_code == 200, tested.text
    assert tested.json()["error"] == "HTTP 503: Bearer [redacted]"
    # The Teams target echoes the bearer token back in its errors, the token endpoint the
    # client secret: neither the test's answer nor a log may quote them.
    assert {request.path for request in receiver.requests} >= {"/oauth2/token"}
    assert len(receiver.requests) >= 5

    text = captured_logs.text() + tested.text
    leaked = [secret for secret in found if secret in text]
    assert leaked == []


async def _source_secret(client: httpx.AsyncClient, admin_key: str) -> str:
    source = await created(
        await client.post("/v1/sources", json={"name": "acme"}, headers=auth(admin_key))
    )
    secret: str = source["secret"]
    return secret
