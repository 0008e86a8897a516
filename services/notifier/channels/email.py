"""E-mail over SMTP (aiosmtplib): multipart text and HTML, files attached.

The stored body is the message's parts (``templates.email``); each attempt builds the MIME
message from them: ``multipart/alternative`` (text, then HTML), inside ``multipart/mixed``
when files are attached. ``Message-ID`` is ``<delivery id@sender's domain>``, the same on
every attempt and redrive, so a mail client shows a message sent twice once.

The SMTP server comes from the settings (``PLUMBLINE_SMTP_HOST``, ``_PORT``, ``_USERNAME``,
``_PASSWORD``, ``_FROM``, ``_STARTTLS``: STARTTLS is used exactly when that is set, never
guessed, and a server that does not offer it fails the attempt; ``_CA_FILE`` for a private
CA). Results carry the SMTP reply code as ``status_code``: 250 delivered; a 5xx reply
(address unknown, message refused) is permanent, a 4xx reply (mailbox busy, greylisting),
a timeout or a refused connection is retried.
"""

from __future__ import annotations

import asyncio
import base64
import time
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, parseaddr
from typing import ClassVar

import aiosmtplib

from services.notifier.channels.base import (
    ChannelAdapterBase,
    OutgoingMessage,
    RenderedMessage,
    elapsed_ms,
)
from services.notifier.templates.email import EMAIL_CONTENT_TYPE, read_email, render_email
from services.notifier.templates.parts import MessageParts
from shared.deliveries.lifecycle import SendResult

SMTP_OK = 250
DEFAULT_MESSAGE_ID_DOMAIN = "plumbline.invalid"


class EmailAdapter(ChannelAdapterBase):
    """The ``email`` channel kind."""

    kind: ClassVar[str] = "email"

    @classmethod
    def render_parts(cls, parts: MessageParts) -> RenderedMessage:
        return RenderedMessage(body=render_email(parts), content_type=EMAIL_CONTENT_TYPE)

    def build_mime(self, message: OutgoingMessage) -> MimeMessage:
        """The MIME message of this attempt."""
        stored = read_email(message.body)
        sender = self._settings.smtp_from
        domain = parseaddr(sender)[1].rpartition("@")[2] or DEFAULT_MESSAGE_ID_DOMAIN
        mime = MimeMessage()
        mime["Subject"] = stored.subject
        mime["From"] = sender
        mime["To"] = message.target
        mime["Date"] = formatdate(usegmt=True)
        mime["Message-ID"] = f"<{message.delivery_id}@{domain}>"
        mime["X-Plumbline-Event-Id"] = str(message.event_id)
        mime.set_content(stored.text)
        mime.add_alternative(stored.html, subtype="html")
        for attachment in stored.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            mime.add_attachment(
                base64.b64decode(attachment.content_base64),
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
        return mime

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Hand the message to the SMTP server; its reply decides."""
        settings = self._settings
        mime = self.build_mime(message)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                _, reply = await aiosmtplib.send(
                    mime,
                    hostname=settings.smtp_host,
                    port=settings.smtp_port,
                    username=settings.smtp_username,
                    password=(
                        settings.smtp_password.get_secret_value()
                        if settings.smtp_password is not None
                        else None
                    ),
                    start_tls=settings.smtp_starttls,
                    use_tls=False,
                    cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
                    timeout=self._timeout,
                )
        except (TimeoutError, aiosmtplib.SMTPTimeoutError):
            return SendResult(
                status_code=None,
                error=f"no answer from the SMTP server within {self._timeout:g} s",
                duration_ms=elapsed_ms(started),
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            [refusal, *_] = exc.recipients
            return _refused(refusal.code, refusal.message, started)
        except aiosmtplib.SMTPResponseException as exc:
            return _refused(exc.code, exc.message, started)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return SendResult(
                status_code=None,
                error=f"{type(exc).__name__}: {exc}"[:500],
                duration_ms=elapsed_ms(started),
            )
        return SendResult(
            status_code=SMTP_OK,
            error=None,
            duration_ms=elapsed_ms(started),
            response_excerpt=reply[:256] or None,
        )


def _refused(code: int, text: str, started: float) -> SendResult:
    return SendResult(
        status_code=code,
        error=f"SMTP {code}: {text}"[:500],
        duration_ms=elapsed_ms(started),
        refused="permanent" if code >= 500 else "retryable",
        response_excerpt=text[:256] or None,
    )
