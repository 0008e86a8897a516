"""The audit log: every change made through the API, with who, when, before and after."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.observability import request_id_var
from shared.models import AuditLogEntry


class Actor(Protocol):
    """Who made a change (the API's ``Principal`` is one)."""

    @property
    def key_id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def reviewer_id(self) -> str | None: ...


def snapshot(model: BaseModel | None) -> dict[str, Any] | None:
    """A JSON-ready picture of an entity for ``before`` / ``after`` (secrets left out)."""
    return None if model is None else model.model_dump(mode="json")


async def record_change(
    session: AsyncSession,
    *,
    actor: Actor | None,
    action: str,
    entity_type: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLogEntry:
    """Add an audit-log entry in the caller's transaction: it exists iff the change does."""
    entry = AuditLogEntry(
        **change_values(
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            before=before,
            after=after,
        )
    )
    session.add(entry)
    await session.flush()
    return entry


# The audit-log columns ``change_values`` gives, for the statements that bind them by name.
CHANGE_COLUMNS = (
    "actor_key_id",
    "actor_role",
    "actor_reviewer_id",
    "action",
    "entity_type",
    "entity_id",
    "before",
    "after",
    "request_id",
)


def change_values(
    *,
    actor: Actor | None,
    action: str,
    entity_type: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of an audit-log entry, for a hot path that writes the entry with
    the change itself in one statement (what ``record_change`` stores)."""
    return {
        "actor_key_id": actor.key_id if actor else None,
        "actor_role": actor.role if actor else None,
        "actor_reviewer_id": actor.reviewer_id if actor else None,
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "before": before,
        "after": after,
        "request_id": request_id_var.get(),
    }
