"""Reminders to the readers of a policy update who have not acknowledged it, before it
takes effect: ``policy_update.reminder``, once per update."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.events import EventType, PolicyUpdateReminder, PolicyUpdateText, record_event
from shared.models import PolicyUpdate
from shared.policy_updates.queries import acknowledged_at, readers_by_market

BATCH = 200


async def remind_pending_readers(
    session: AsyncSession, *, now: datetime, lead_hours: int, limit: int = BATCH
) -> int:
    """Remind the pending readers of published updates taking effect within ``lead_hours``.

    Per update not reminded yet with at least one pending reader: one
    ``policy_update.reminder`` per market that has pending readers, naming them as
    recipients (a reader of several of its markets under the first), and the update marked
    reminded, so it is reminded once. Updates another run holds right now are skipped
    (``SKIP LOCKED``), and one marked meanwhile no longer matches: two runs at once remind
    each update once. An update with nobody pending stays unmarked: a reviewer who joins
    one of its markets before it takes effect is still reminded. Returns the updates reminded.
    """
    updates = list(
        await session.scalars(
            select(PolicyUpdate)
            .where(
                PolicyUpdate.status == "published",
                PolicyUpdate.reminder_sent_at.is_(None),
                PolicyUpdate.effective_at > now,
                PolicyUpdate.effective_at <= now + timedelta(hours=lead_hours),
            )
            .order_by(PolicyUpdate.effective_at, PolicyUpdate.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    reminded = 0
    for update in updates:
        readers = await readers_by_market(session, markets=list(update.markets))
        done = await acknowledged_at(session, update_id=update.id)
        pending = {
            market: [reviewer_id for reviewer_id in group if reviewer_id not in done]
            for market, group in readers.items()
        }
        pending_count = sum(len(group) for group in pending.values())
        if pending_count == 0:
            continue
        acknowledged = sum(
            1 for group in readers.values() for reviewer_id in group if reviewer_id in done
        )
        payload = PolicyUpdateReminder(
            id=update.id,
            language=update.language,
            texts={lang: PolicyUpdateText(**text) for lang, text in update.texts.items()},
            policy_codes=list(update.policy_codes),
            markets=list(update.markets),
            effective_at=update.effective_at,
            pending=pending_count,
            acknowledged=acknowledged,
        )
        for market, reviewer_ids in pending.items():
            if reviewer_ids:
                await record_event(
                    session,
                    type=EventType.POLICY_UPDATE_REMINDER,
                    data=payload,
                    market=market,
                    recipients=reviewer_ids,
                )
        update.reminder_sent_at = now
        await record_change(
            session,
            actor=None,
            action="policy_update.reminder_sent",
            entity_type="policy_update",
            entity_id=update.id,
            before={"reminder_sent_at": None},
            after={
                "reminder_sent_at": now.isoformat(),
                "pending": {market: ids for market, ids in pending.items() if ids},
            },
        )
        reminded += 1
    await session.flush()
    return reminded
