"""Slack, Teams, Lark, Standard Webhooks and e-mail channels end to end: real local servers
stand in for each target (an HTTP server checking payloads and signatures, an aiosmtpd SMTP
server checking the MIME structure), the real notifier delivers, and the lifecycle's retry
rules apply to each kind's answers. The layout limits of each kind are checked on the pure
templates."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import standardwebhooks
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import render_message, render_parts
from services.notifier.templates.lark import MAX_BYTES as LARK_MAX_BYTES
from services.notifier.templates.parts import MessageField, MessageLink, MessageParts
from services.notifier.templates.slack import slack_payload
from services.notifier.templates.teams import MAX_BYTES as TEAMS_MAX_BYTES
from services.notifier.worker import WorkerSettings
from shared.core.queue import ArqRedis, enqueue, run_and_wait
from shared.core.settings import Settings
from shared.jobs import FanOutEvent, SendTestMessage
from shared.models import Delivery, DeliveryAttempt, Event
from tests.conftest import _free_port, auth, run_worker_burst
from tests.support.mail import (
    RecordingMailServer,
    decoded,
    mail_settings,
    subparts,
)
from tests.support.tls import self_signed_certificate
from tests.support.webhooks import (
    ReceivedRequest,
    Reply,
    WebhookReceiver,
    create_channel,
    emit_rejected_batch,
    notifier_running,
    notify,
)

LARK_SECRET = "lark-bot-signing-secret-42"
PUBLIC_URL = "http://127.0.0.1:8000"

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def token_endpoint() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()


async def delivery_of(sessionmaker: Sessions, event_id: uuid.UUID) -> Delivery:
    async with sessionmaker() as session:
        [delivery] = await session.scalars(select(Delivery).where(Delivery.event_id == event_id))
    return delivery


async def attempts_of(sessionmaker: Sessions, delivery_id: uuid.UUID) -> list[DeliveryAttempt]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.number)
            )
        )


def json_of(request: ReceivedRequest) -> dict[str, Any]:
    assert request.headers["content-type"] == "application/json"
    loaded: dict[str, Any] = orjson.loads(request.body)
    return loaded


def long_parts(*, text_chars: int = 40_000, fields: int = 30) -> MessageParts:
    """A message far over every kind's limits."""
    return MessageParts(
        event_type="calibration.closed",
        language="en",
        title="T" * 400,
        text=("word <&> " * (text_chars // 9 + 1))[:text_chars],
        fields=tuple(MessageField(f"Field {n}", "v" * 2500) for n in range(fields)),
        context="Plumbline · calibration.closed · 2026-11-30 12:00 UTC",
        link=MessageLink("Open in Plumbline", f"{PUBLIC_URL}/v1/calibrations/abc"),
    )


# --- Slack ----------------------------------------------------------------------------------


async def test_slack_gets_block_kit_linking_to_the_object(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url, kind="slack", secret=None)
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    [request] = receiver.requests
    body = json_of(request)
    assert body["text"].startswith("Intake request from acme rejected: Source acme")
    blocks = body["blocks"]
    assert [block["type"] for block in blocks] == [
        "header",
        "section",
        "section",
        "actions",
        "context",
    ]
    assert blocks[0]["text"] == {
        "type": "plain_text",
        "text": "Intake request from acme rejected",
        "emoji": True,
    }
    assert "rejected with HTTP 422: event 0 is invalid" in blocks[1]["text"]["text"]
    # The event type's fields, labelled in the channel's language.
    assert blocks[2]["fields"][:2] == [
        {"type": "mrkdwn", "text": "*Source*\nacme"},
        {"type": "mrkdwn", "text": "*HTTP status*\n422"},
    ]
    [button] = blocks[3]["elements"]
    assert button["type"] == "button"
    assert button["url"] == f"{PUBLIC_URL}/v1/sources"
    assert "source.rejected_batch" in blocks[4]["elements"][0]["text"]
    delivery = await delivery_of(sessionmaker, event.id)
    assert (delivery.status, delivery.body) == ("delivered", request.body)


async def test_slack_429_waits_for_retry_after(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url, kind="slack", secret=None)
    receiver.answer(Reply(429, headers={"Retry-After": "1"}, body=b"rate_limited"))
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    first, second = receiver.requests
    assert first.body == second.body
    delivery = await delivery_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    throttled, delivered = await attempts_of(sessionmaker, delivery.id)
    assert (throttled.status_code, throttled.error) == (429, "HTTP 429: rate_limited")
    # The backoff alone is 0.05 s here; the second attempt waited for Slack's second.
    assert (delivered.attempted_at - throttled.attempted_at).total_seconds() >= 1.0


async def test_a_hanging_chat_target_is_retried(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url, kind="slack", secret=None)
    receiver.answer(Reply(200, hang_seconds=10.0))
    event = await emit_rejected_batch(sessionmaker)
    # Long enough for an answered request on a loaded machine, far shorter than the hang.
    await notify(settings.model_copy(update={"delivery_timeout_seconds": 2.0}), sessionmaker, queue)

    assert len(receiver.requests) == 2
    delivery = await delivery_of(sessionmaker, event.id)
    assert delivery.status == "delivered"
    hung, answered = await attempts_of(sessionmaker, delivery.id)
    assert (hung.status_code, hung.error) == (None, "no response within 2 s")
    assert answered.status_code == 200


def test_slack_blocks_stay_within_slacks_limits() -> None:
    payload = slack_payload(long_parts())
    blocks = payload["blocks"]
    assert len(blocks) <= 50
    texts: list[str] = []
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
            texts.append(block["text"]["text"])
        elif block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= 3000
                texts.append(block["text"]["text"])
            for item in block.get("fields", []):
                assert len(item["text"]) <= 2000
                texts.append(item["text"])
            assert len(block.get("fields", [])) <= 10
        elif block["type"] == "context":
            texts += [element["text"] for element in block["elements"]]
        elif block["type"] == "actions":
            texts += [element["text"]["text"] for element in block["elements"]]
    assert sum(len(text) for text in texts) <= 12_000
    # The cut text ends with a link to the whole object; Slack's control characters escaped.
    section = blocks[1]["text"]["text"]
    assert section.endswith(f"<{PUBLIC_URL}/v1/calibrations/abc|more in Plumbline>")
    assert "&lt;&amp;&gt;" in section
    assert "<&>" not in section
    assert len(payload["text"]) <= 3000
    assert "<&>" not in payload["text"]


# --- Teams ----------------------------------------------------------------------------------


async def test_teams_gets_an_adaptive_card(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url, kind="teams", secret=None, language="de")
    receiver.answer(Reply(500), Reply(502))
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    first, second, third = receiver.requests
    assert first.body == second.body == third.body
    assert "authorization" not in third.headers
    body = json_of(third)
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, text, facts, context = card["body"]
    assert title["text"] == "Anfrage von acme abgelehnt"
    assert text["text"].startswith("Quelle acme: Eine signierte Anfrage wurde mit HTTP 422")
    assert facts["type"] == "FactSet"
    assert facts["facts"][:2] == [
        {"title": "Quelle", "value": "acme"},
        {"title": "HTTP-Status", "value": "422"},
    ]
    assert context["isSubtle"] is True
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "In Plumbline öffnen",
            "url": f"{PUBLIC_URL}/v1/sources",
        }
    ]
    delivery = await delivery_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [a.status_code for a in await attempts_of(sessionmaker, delivery.id)] == [500, 502, 200]


def test_teams_card_stays_under_20_kb_with_a_link_to_the_rest() -> None:
    rendered = render_parts("teams", long_parts(fields=3))
    assert len(rendered.body) <= TEAMS_MAX_BYTES
    card = orjson.loads(rendered.body)["attachments"][0]["content"]
    text = card["body"][1]["text"]
    assert text.endswith(f"[Read more in Plumbline]({PUBLIC_URL}/v1/calibrations/abc)")
    assert len(text) > 10_000  # cut to fit, not emptied
    # Multi-byte text is measured in bytes, not characters.
    umlauts = render_parts("teams", dataclasses.replace(long_parts(fields=0), text="ä" * 30_000))
    assert len(umlauts.body) <= TEAMS_MAX_BYTES


async def test_teams_oauth_token_is_fetched_once_cached_and_sent(
    receiver: WebhookReceiver,
    token_endpoint: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    token_endpoint.responder = lambda request: Reply(
        200,
        headers={"Content-Type": "application/json"},
        body=orjson.dumps({"token_type": "Bearer", "access_token": "tok-1", "expires_in": 3599}),
    )
    client_secret = "entra-client-secret-value"
    await create_channel(
        client,
        admin_key,
        receiver.url,
        kind="teams",
        secret=None,
        oauth={
            "token_url": token_endpoint.url,
            "client_id": "plumbline-app",
            "client_secret": client_secret,
            "scope": "https://service.flow.microsoft.com//.default",
        },
    )
    first = await emit_rejected_batch(sessionmaker)
    second = await emit_rejected_batch(sessionmaker, reason="event 1 is invalid")
    await notify(settings, sessionmaker, queue)

    # One worker process: one token for both messages.
    [token_request] = token_endpoint.requests
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(token_request.body.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "plumbline-app",
        "client_secret": client_secret,
        "scope": "https://service.flow.microsoft.com//.default",
    }
    assert len(receiver.requests) == 2
    assert {r.headers["authorization"] for r in receiver.requests} == {"Bearer tok-1"}
    for event in (first, second):
        assert (await delivery_of(sessionmaker, event.id)).status == "delivered"


async def test_teams_token_is_refreshed_near_expiry_and_after_a_401(
    receiver: WebhookReceiver,
    token_endpoint: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    issued: list[str] = []

    def issue(request: ReceivedRequest) -> Reply:
        issued.append(f"tok-{len(issued) + 1}")
        # 30 s to live is inside the refresh margin (60 s): never reused.
        return Reply(200, body=orjson.dumps({"access_token": issued[-1], "expires_in": 30}))

    token_endpoint.responder = issue
    oauth = {"token_url": token_endpoint.url, "client_id": "app", "client_secret": "s3cret"}
    await create_channel(client, admin_key, receiver.url, kind="teams", secret=None, oauth=oauth)
    # The first message's token is refused once (revoked): a fresh one is fetched at once.
    receiver.answer(Reply(401, body=b"token revoked"))
    first = await emit_rejected_batch(sessionmaker)
    second = await emit_rejected_batch(sessionmaker, reason="event 1 is invalid")
    await notify(settings, sessionmaker, queue)

    # Three tokens for two messages (one each, one more after the 401), each used once; the
    # two deliveries may run side by side, so the order is not fixed.
    assert issued == ["tok-1", "tok-2", "tok-3"]
    assert sorted(r.headers["authorization"] for r in receiver.requests) == [
        "Bearer tok-1",
        "Bearer tok-2",
        "Bearer tok-3",
    ]
    for event in (first, second):
        delivery = await delivery_of(sessionmaker, event.id)
        assert (delivery.status, delivery.attempts) == ("delivered", 1)


async def test_teams_token_endpoint_refusing_the_credentials_is_permanent(
    receiver: WebhookReceiver,
    token_endpoint: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    token_endpoint.responder = lambda request: Reply(401, body=b'{"error":"invalid_client"}')
    await create_channel(
        client,
        admin_key,
        receiver.url,
        kind="teams",
        secret=None,
        oauth={"token_url": token_endpoint.url, "client_id": "app", "client_secret": "wrong"},
    )
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    assert receiver.requests == []
    delivery = await delivery_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("dead", 1, 401)
    assert delivery.last_error == 'token endpoint: HTTP 401: {"error":"invalid_client"}'


# --- Lark -----------------------------------------------------------------------------------


def lark_signature_per_docs(timestamp: str, secret: str) -> str:
    """Lark's custom-bot signature, written from its documentation's Python sample:
    ``string_to_sign = '{}\\n{}'.format(timestamp, secret)``, then ``hmac.new(string_to_sign
    .encode("utf-8"), digestmod=hashlib.sha256).digest()`` (the key is the string, the
    message empty), base64-encoded."""
    string_to_sign = f"{timestamp}\n{secret}"
    hmac_code = hmac.new(string_to_sign.encode("utf-8"), digestmod=hashlib.sha256).digest()
    return base64.b64encode(hmac_code).decode("utf-8")


def lark_bot(secret: str) -> Any:
    """A stand-in Lark bot: checks the signature and the card, answers with Lark's codes."""

    def answer(request: ReceivedRequest) -> Reply:
        body = json_of(request)
        fresh = abs(int(body["timestamp"]) - time.time()) < 3600
        if not fresh or body["sign"] != lark_signature_per_docs(body["timestamp"], secret):
            verdict = {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}
        elif body["msg_type"] != "interactive" or "elements" not in body["card"]:
            verdict = {"code": 9499, "msg": "Bad Request"}
        else:
            verdict = {"StatusCode": 0, "StatusMessage": "success", "code": 0, "msg": "success"}
        return Reply(200, headers={"Content-Type": "application/json"}, body=orjson.dumps(verdict))

    return answer


async def test_lark_gets_a_signed_interactive_card_and_throttling_is_retried(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    receiver.responder = lark_bot(LARK_SECRET)
    throttled = orjson.dumps({"code": 11232, "msg": "frequency limited psm"})
    receiver.answer(Reply(200, body=throttled))
    await create_channel(client, admin_key, receiver.url, kind="lark", secret=LARK_SECRET)
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    first, second = receiver.requests
    body = json_of(second)
    assert body["sign"] == lark_signature_per_docs(body["timestamp"], LARK_SECRET)
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["title"] == {
        "tag": "plain_text",
        "content": "Intake request from acme rejected",
    }
    [text, fields, action, note] = card["elements"]
    assert text["text"]["content"].startswith("Source acme: a signed request was rejected")
    assert fields["fields"][0]["text"]["content"] == "**Source**\nacme"
    assert action["actions"][0]["url"] == f"{PUBLIC_URL}/v1/sources"
    assert note["tag"] == "note"
    # Each attempt signs anew; the card itself is the same.
    assert json_of(first)["card"] == card

    delivery = await delivery_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    first_attempt, _ = await attempts_of(sessionmaker, delivery.id)
    assert (first_attempt.status_code, first_attempt.error) == (
        200,
        "Lark code 11232: frequency limited psm",
    )


async def test_lark_bad_signature_is_dead_at_once(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    receiver.responder = lark_bot(LARK_SECRET)
    await create_channel(
        client, admin_key, receiver.url, kind="lark", secret="not-the-bots-secret-000"
    )
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    assert len(receiver.requests) == 1
    delivery = await delivery_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("dead", 1, 200)
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("Lark code 19021: sign match fail")


def test_lark_card_stays_under_the_request_limit() -> None:
    rendered = render_parts("lark", long_parts(fields=3))
    assert len(rendered.body) <= LARK_MAX_BYTES
    text = orjson.loads(rendered.body)["card"]["elements"][0]["text"]["content"]
    assert text.endswith(f"[Read more in Plumbline]({PUBLIC_URL}/v1/calibrations/abc)")


# --- Standard Webhooks ----------------------------------------------------------------------


async def test_standard_webhooks_headers_verify_with_the_standards_library(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    response = await client.post(
        "/v1/channels",
        json={
            "name": "standard",
            "kind": "webhook",
            "target": receiver.url,
            "language": "en",
            "events": ["source.rejected_batch"],
            "standard_webhooks": True,
        },
        headers=auth(admin_key),
    )
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    receiver.answer(Reply(503))
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    first, second = receiver.requests
    delivery = await delivery_of(sessionmaker, event.id)
    verifier = standardwebhooks.Webhook(secret)
    for request in (first, second):
        # The reference library accepts the generated secret as is, and our signature.
        assert verifier.verify(request.body, request.headers)["id"] == str(event.id)
        # webhook-id is the delivery's: the same on the retry.
        assert request.headers["webhook-id"] == str(delivery.id)
        # Our own signature is still there, beside the standard's.
        assert request.headers["x-plumbline-signature"].startswith("t=")
    tampered = dict(second.headers, **{"webhook-id": str(uuid.uuid4())})
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verifier.verify(second.body, tampered)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(
            second.body, second.headers
        )


async def test_plain_webhooks_carry_no_standard_headers(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)
    [request] = receiver.requests
    assert not {"webhook-id", "webhook-signature", "webhook-timestamp"} & set(request.headers)


# --- E-mail ---------------------------------------------------------------------------------


async def emit_report_with_files(sessionmaker: Sessions, queue: ArqRedis) -> Event:
    """A calibration closed, carrying two files in the shape report events attach them."""
    async with sessionmaker() as session, session.begin():
        event = Event(
            id=uuid.uuid4(),
            type="calibration.closed",
            occurred_at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
            market="DE",
            data={
                "id": str(uuid.uuid4()),
                "title": "Hate speech <Q4>",
                "market": "DE",
                "krippendorff_alpha": 0.71,
                "percent_agreement": 0.84,
                "flagged_items": 3,
                "n_items": 40,
                "participants": 7,
                "attachments": [
                    {
                        "filename": "calibration.pdf",
                        "content_type": "application/pdf",
                        "content_base64": base64.b64encode(b"%PDF-1.7 report").decode(),
                    },
                    {
                        "filename": "items.csv",
                        "content_type": "text/csv",
                        "content_base64": base64.b64encode(b"item,label\n1,hate\n").decode(),
                    },
                ],
            },
        )
        session.add(event)
    await enqueue(queue, FanOutEvent(event_id=event.id), job_id=f"fan-out-test:{event.id}")
    return event


async def test_email_is_multipart_text_and_html_with_the_files_attached(
    mail_server: tuple[RecordingMailServer, int],
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    handler, port = mail_server
    await create_channel(
        client,
        admin_key,
        "qa-leads@example.com",
        kind="email",
        secret=None,
        events=("calibration.closed",),
    )
    handler.replies = ["451 4.3.0 Try again later"]
    event = await emit_report_with_files(sessionmaker, queue)
    await run_worker_burst(WorkerSettings, mail_settings(settings, port))

    delivery = await delivery_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    refused, accepted = await attempts_of(sessionmaker, delivery.id)
    assert (refused.status_code, refused.error) == (451, "SMTP 451: 4.3.0 Try again later")
    assert accepted.status_code == 250

    (_, first), (envelope, message) = handler.messages
    assert envelope.mail_from == "qa@plumbline.example"
    assert envelope.rcpt_tos == ["qa-leads@example.com"]
    # The Message-ID comes from the delivery id: the retry carries the same one.
    assert message["Message-ID"] == f"<{delivery.id}@plumbline.example>"
    assert first["Message-ID"] == message["Message-ID"]
    assert message["Subject"] == "Calibration closed: Hate speech <Q4>"
    assert message["To"] == "qa-leads@example.com"
    assert message["X-Plumbline-Event-Id"] == str(event.id)

    assert message.get_content_type() == "multipart/mixed"
    alternative, pdf, csv = subparts(message)
    assert alternative.get_content_type() == "multipart/alternative"
    text, html = subparts(alternative)
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    plain = decoded(text).decode()
    assert "The calibration session “Hate speech <Q4>” (DE) is closed" in plain
    assert "/v1/calibrations/" in plain
    markup = decoded(html).decode()
    assert "Hate speech &lt;Q4&gt;" in markup
    assert "<Q4>" not in markup
    assert '<a href="http://127.0.0.1:8000/v1/calibrations/' in markup
    assert (pdf.get_content_type(), pdf.get_filename()) == ("application/pdf", "calibration.pdf")
    assert decoded(pdf) == b"%PDF-1.7 report"
    assert (csv.get_content_type(), csv.get_filename()) == ("text/csv", "items.csv")
    assert decoded(csv) == b"item,label\n1,hate\n"


async def test_email_refused_by_the_server_is_dead_at_once(
    mail_server: tuple[RecordingMailServer, int],
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    handler, port = mail_server
    handler.replies = ["550 5.1.1 No such mailbox"]
    await create_channel(client, admin_key, "nobody@example.com", kind="email", secret=None)
    event = await emit_rejected_batch(sessionmaker)
    await notify(mail_settings(settings, port), sessionmaker, queue)

    delivery = await delivery_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("dead", 1, 550)
    assert delivery.last_error == "SMTP 550: 5.1.1 No such mailbox"


async def test_email_goes_over_starttls_with_smtp_auth(
    tmp_path: Path,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    certificate_file, key_file = self_signed_certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate_file, key_file)
    logins: list[tuple[bytes, bytes]] = []

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data == (b"plumbline", b"smtp-password-123"))

    handler = RecordingMailServer()
    port = _free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        await create_channel(client, admin_key, "qa@example.com", kind="email", secret=None)
        secure = mail_settings(settings, port).model_copy(
            update={
                "smtp_starttls": True,
                "smtp_ca_file": certificate_file,
                "smtp_username": "plumbline",
                "smtp_password": SecretStr("smtp-password-123"),
            }
        )
        event = await emit_rejected_batch(sessionmaker)
        await notify(secure, sessionmaker, queue)
        delivered = await delivery_of(sessionmaker, event.id)

        plain = secure.model_copy(update={"smtp_starttls": False, "delivery_max_attempts": 1})
        refused_event = await emit_rejected_batch(sessionmaker, reason="second")
        await notify(plain, sessionmaker, queue)
        refused = await delivery_of(sessionmaker, refused_event.id)
    finally:
        controller.stop()

    assert delivered.status == "delivered", delivered.last_error
    assert logins == [(b"plumbline", b"smtp-password-123")]
    [(envelope, message)] = handler.messages
    assert envelope.rcpt_tos == ["qa@example.com"]
    assert message["Message-ID"] == f"<{delivered.id}@plumbline.example>"
    # Without STARTTLS the server offers no AUTH, and the client never sends the password in
    # the clear: the attempt fails (and, as the last, dead-letters) with nothing sent.
    assert (refused.status, refused.last_status_code) == ("dead", None)
    assert refused.last_error is not None
    assert "AUTH extension is not supported" in refused.last_error


# --- the channel test endpoint --------------------------------------------------------------


async def test_channel_test_reports_what_the_target_answered(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
) -> None:
    slack = await create_channel(
        client, admin_key, receiver.url, name="slack", kind="slack", secret=None
    )
    receiver.responder = lark_bot(LARK_SECRET)
    lark = await create_channel(
        client, admin_key, receiver.url, name="lark", kind="lark", secret="a-wrong-secret-0000"
    )
    receiver.answer(Reply(200, body=b"ok"))
    async with notifier_running(settings):
        tested = await client.post(f"/v1/channels/{slack}/test", headers=auth(admin_key))
        refused = await client.post(f"/v1/channels/{lark}/test", headers=auth(admin_key))

    assert tested.status_code == 200, tested.text
    assert tested.json() | {"duration_ms": 0} == {
        "delivered": True,
        "status_code": 200,
        "response_excerpt": "ok",
        "error": None,
        "duration_ms": 0,
    }
    sent = json_of(receiver.requests[0])
    assert sent["blocks"][0]["text"]["text"] == "Plumbline test message"
    assert "channel 'slack'" in sent["blocks"][1]["text"]["text"]
    [actions] = [block for block in sent["blocks"] if block["type"] == "actions"]
    assert actions["elements"][0]["url"] == f"{PUBLIC_URL}/v1/channels/{slack}"

    assert refused.status_code == 200, refused.text
    answer = refused.json()
    assert (answer["delivered"], answer["status_code"]) == (False, 200)
    assert answer["error"].startswith("Lark code 19021")
    assert '"code":19021' in answer["response_excerpt"]
    # A test message is not a delivery.
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Delivery)) == 0

    assert_missing = await client.post(f"/v1/channels/{uuid.uuid4()}/test", headers=auth(admin_key))
    assert assert_missing.status_code == 404


async def test_waiting_for_a_notifier_that_is_not_running_times_out(settings: Settings) -> None:
    from redis.asyncio import Redis

    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    try:
        with pytest.raises(TimeoutError):
            await run_and_wait(
                redis, SendTestMessage(channel_id=uuid.uuid4()), job_id="t", wait_seconds=0.3
            )
    finally:
        await redis.aclose()


def test_an_event_type_without_texts_still_renders_for_every_kind() -> None:
    # A policy update without its texts (data its template cannot show): its chat messages
    # must not fail.
    event = Event(
        id=uuid.uuid4(),
        type="policy_update.published",
        occurred_at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        market="DE",
        data={"id": "3f0c0a56-0000-4000-8000-000000000001", "market": "DE"},
    )
    for kind in ("slack", "teams", "lark", "email"):
        for language in ("en", "de"):
            rendered = render_message(kind, event, language=language, public_url=PUBLIC_URL)
            assert b"policy_update.published" in rendered.body
            assert b"/v1/policy-updates/3f0c0a56-0000-4000-8000-000000000001" in rendered.body
