"""Reading the audit log (entries are written by ``shared.audit_log.record.record_change``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.errors import Forbidden
from shared.core.pagination import Keyset, KeysetPage
from shared.models import AuditLogEntry
from shared.schemas.audit_log import AuditLogQuery

ENTRY_ORDER = Keyset(AuditLogEntry.created_at, AuditLogEntry.id, descending=True)


async def list_entries(
    session: AsyncSession,
    *,
    filters: AuditLogQuery,
    viewer_markets: Sequence[str] | None,
) -> KeysetPage[AuditLogEntry]:
    """A page of the entries matching every filter, newest first.

    Entries are not attributed to markets, so a market-scoped viewer may not read them (403).

    Ordered by (created_at, id) descending: created_at is the transaction's time, so id
    alone could disagree with it across concurrent requests; id breaks ties.
    """
    if viewer_markets is not None:
        raise Forbidden("the audit log spans every market: a market-scoped key may not read it")
    entry = AuditLogEntry
    query = select(entry)
    if filters.actor is not None:
        query = query.where(entry.actor_key_id == filters.actor)
    if filters.actor_reviewer_id is not None:
        query = query.where(entry.actor_reviewer_id == filters.actor_reviewer_id)
    if filters.entity_type is not None:
        query = query.where(entry.entity_type == filters.entity_type)
    if filters.entity_id is not None:
        query = query.where(entry.entity_id == filters.entity_id)
    if filters.action is not None:
        query = query.where(entry.action == filters.action)
    if filters.from_ is not None:
        query = query.where(entry.created_at >= filters.from_)
    if filters.to is not None:
        query = query.where(entry.created_at < filters.to)
    entries = list(await session.scalars(ENTRY_ORDER.apply(query, filters)))
    return ENTRY_ORDER.page(entries, filters)
