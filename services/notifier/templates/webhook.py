"""The body a ``webhook`` channel receives."""

from __future__ import annotations

from datetime import UTC

import orjson

from shared.models import Event

WEBHOOK_CONTENT_TYPE = "application/json"


def render_webhook_body(event: Event) -> bytes:
    """``{"id", "type", "occurred_at", "data"}`` as JSON bytes. No I/O.

    ``id`` is the event's id, so a receiver can drop a message that arrives twice. The
    result is stored with the delivery and sent as is on every attempt: render once.
    """
    return orjson.dumps(
        {
            "id": str(event.id),
            "type": event.type,
            "occurred_at": event.occurred_at.astimezone(UTC),
            "data": event.data,
        },
        option=orjson.OPT_UTC_Z,
    )
