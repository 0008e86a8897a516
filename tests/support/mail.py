"""A real SMTP server for e-mail tests (aiosmtpd) and ways to read what it received."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from shared.core.settings import Settings


class RecordingMailServer:
    """An aiosmtpd handler that keeps every message and answers with scripted replies."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message]] = []
        self.replies: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        assert isinstance(envelope.content, bytes)
        self.messages.append((envelope, email.message_from_bytes(envelope.content)))
        return self.replies.pop(0) if self.replies else "250 Message accepted for delivery"


@contextmanager
def running_mail_server() -> Iterator[tuple[RecordingMailServer, int]]:
    """A recording SMTP server on a free local port: ``(handler, port)``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    handler = RecordingMailServer()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def subparts(message: Message) -> list[Message]:
    """The parts of a multipart message."""
    payload = message.get_payload()
    assert isinstance(payload, list)
    assert all(isinstance(part, Message) for part in payload)
    return list(payload)


def decoded(part: Message) -> bytes:
    """A leaf part's content, transfer encoding undone."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def mail_settings(settings: Settings, port: int) -> Settings:
    """``settings`` sending e-mail through the local server on ``port`` (no STARTTLS)."""
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_from": "Plumbline QA <qa@plumbline.example>",
            "smtp_starttls": False,
        }
    )
