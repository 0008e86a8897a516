"""The intake statement: its events travel as one JSON array per column (store_arguments), and
every field of every event comes back from PostgreSQL as it was sent, in its own row; it
inserts the keys plainly first and, when one is stored already, again skipping those, so that
duplicates count exactly as before."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.decisions.writer import DecisionWriter
from shared.core.settings import Settings
from shared.models import Decision
from shared.schemas.decisions import DecisionEvent, IntakeResult
from tests.conftest import decision_event

# Policy labels that an array literal would misread unquoted or unescaped. Validation allows
# none of them; the statement must not depend on it.
AWKWARD_LABELS = ["NULL", 'say "no"', "back\\slash", "{braced,comma}", " spaced ", "ß✓"]


def _events() -> list[DecisionEvent]:
    offsets = [timezone(timedelta(hours=5, minutes=30)), UTC, timezone(timedelta(hours=-8))]
    events = [
        DecisionEvent.model_validate(
            decision_event(
                n,
                content_id=f'vid-{n}/ä "quoted" \\ {{x}}',
                moderator_id=f"mod-{n % 3}",
                policy_labels=[] if n % 4 == 0 else ["hate_speech", "spam.v2"][: n % 3],
                decided_at=datetime(2026, 11, 24, 10, n, 0, 123456, tzinfo=offsets[n % 3]),
                handling_time_ms=None if n % 5 == 0 else 1000 + n,
                metadata={} if n % 2 else {"n": n, "ünï": ["ß", None, 1.5, {"deep": True}]},
            )
        )
        for n in range(40)
    ]
    # Built around validation, as the statement must hold for any label it is given.
    events.append(
        DecisionEvent.model_construct(
            **{**dict(events[0]), "event_id": "evt-awkward", "policy_labels": AWKWARD_LABELS}
        )
    )
    return sorted(events, key=lambda event: event.event_id)


def _row(event: DecisionEvent) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.content_id,
        event.content_type,
        event.queue,
        event.market,
        event.language,
        event.moderator_id,
        event.action,
        list(event.policy_labels),
        event.decided_at.astimezone(UTC),
        event.handling_time_ms,
        event.metadata,
    )


async def test_every_field_of_every_event_is_stored_as_sent(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    events = _events()
    assert settings.database_url is not None
    writer = DecisionWriter(settings.database_url.replace("+asyncpg", ""), flushers=1)
    await writer.start()
    try:
        result = await writer.write(source_id=uuid.uuid4(), events=events)
    finally:
        await writer.stop()
    assert result == IntakeResult(accepted=len(events), duplicates=0)

    async with sessionmaker() as session:
        stored = (await session.scalars(select(Decision).order_by(Decision.id))).all()
    assert [
        (
            d.event_id,
            d.content_id,
            d.content_type,
            d.queue,
            d.market,
            d.language,
            d.moderator_id,
            d.action,
            d.policy_labels,
            d.decided_at.astimezone(UTC),
            d.handling_time_ms,
            d.metadata_,
        )
        for d in stored
    ] == [_row(event) for event in events]  # ids are drawn in event id order


async def test_duplicates_anywhere_in_a_statement_are_counted_and_stored_once(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    def events(*numbers: int) -> list[DecisionEvent]:
        return [
            DecisionEvent.model_validate(decision_event(n, event_id=f"evt-{n:03d}"))
            for n in numbers
        ]

    source = uuid.uuid4()
    assert settings.database_url is not None
    writer = DecisionWriter(settings.database_url.replace("+asyncpg", ""), flushers=2)
    # A second API process's writer, storing the same events at the same time.
    other = DecisionWriter(settings.database_url.replace("+asyncpg", ""), flushers=2)
    await writer.start()
    await other.start()
    try:
        first = await writer.write(source_id=source, events=events(*range(10, 20)))
        # Stored keys last, first and in the middle of the statement's (sorted) keys.
        last = await writer.write(source_id=source, events=events(1, 2, 19))
        leading = await writer.write(source_id=source, events=events(10, 30, 31))
        middle = await writer.write(source_id=source, events=events(5, 15, 40))
        resent = await writer.write(source_id=source, events=events(*range(10, 20)))
        # A source that resent goes straight to the statement that skips stored keys, until
        # one of its statements meets none; then it is tried plainly again.
        assert source in writer._resending_sources
        fresh = await writer.write(source_id=source, events=events(90, 91))
        assert source not in writer._resending_sources
        fresh_again = await writer.write(source_id=source, events=events(92, 93))
        resent_again = await writer.write(source_id=source, events=events(93, 94))
        assert source in writer._resending_sources
        # The same batch from two processes at once: one statement meets the other's keys
        # committed or in flight.
        racing = await asyncio.gather(
            *(w.write(source_id=source, events=events(*range(50, 80))) for w in (other, writer))
        )
    finally:
        await writer.stop()
        await other.stop()

    assert first == IntakeResult(accepted=10, duplicates=0)
    assert last == IntakeResult(accepted=2, duplicates=1)
    assert leading == IntakeResult(accepted=2, duplicates=1)
    assert middle == IntakeResult(accepted=2, duplicates=1)
    assert resent == IntakeResult(accepted=0, duplicates=10)
    assert sum(result.accepted for result in racing) == 30
    assert sum(result.duplicates for result in racing) == 30
    assert fresh == fresh_again == IntakeResult(accepted=2, duplicates=0)
    assert resent_again == IntakeResult(accepted=1, duplicates=1)
    async with sessionmaker() as session:
        stored = (await session.scalars(select(Decision.event_id))).all()
    expected = [1, 2, 5, *range(10, 20), 30, 31, 40, *range(50, 80), *range(90, 95)]
    assert sorted(stored) == [f"evt-{n:03d}" for n in expected]
