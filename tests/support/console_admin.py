"""Console admin test support: an admin signed in to the console, and deliveries to look at."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import SUPPORTED_KINDS
from services.notifier.deliveries import fan_out_event
from shared.events import EventType, SourceSecretRotated, record_event
from shared.models import Delivery
from shared.models.base import utcnow
from tests.support.console import ConsoleClient, make_person

_SECRET_VALUE = re.compile(r'id="secret-value" type="text" readonly value="([^"]+)"')


@asynccontextmanager
async def signed_in(
    base_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str = "admin",
    **kwargs: object,
) -> AsyncIterator[ConsoleClient]:
    """A console client signed in as a new person of ``role``."""
    person = await make_person(sessionmaker, role, **kwargs)  # type: ignore[arg-type]
    async with ConsoleClient(base_url) as console:
        response = await console.sign_in(person)
        assert response.status_code == 303, response.text
        yield console


def shown_secret(page: str) -> str:
    """The one-time secret (link, key, signing secret) a page shows."""
    found = _SECRET_VALUE.search(page)
    assert found is not None, "no secret on the page"
    return found.group(1).replace("&amp;", "&")


async def make_deliveries(
    sessionmaker: async_sessionmaker[AsyncSession], *, channel_id: str, events: int, dead: int = 0
) -> list[uuid.UUID]:
    """``events`` deliveries to a channel subscribed to ``source.secret_rotated`` (fanned
    out, not sent), the first ``dead`` of them dead-lettered; oldest first."""
    delivery_ids: list[uuid.UUID] = []
    for _ in range(events):
        async with sessionmaker() as session, session.begin():
            data = SourceSecretRotated(
                id=uuid.uuid4(), source="acme", previous_secret_expires_at=None
            )
            event = await record_event(session, type=EventType.SOURCE_SECRET_ROTATED, data=data)
            delivery_ids += await fan_out_event(
                session, event_id=event.id, now=utcnow(), supported_kinds=SUPPORTED_KINDS
            )
    if dead:
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(delivery_ids[:dead]))
                .values(
                    status="dead", dead_at=utcnow(), last_error="HTTP 500", last_status_code=500
                )
            )
    return [d for d in delivery_ids if d is not None]
