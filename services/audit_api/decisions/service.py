"""Decision intake (signed webhooks). Reading decisions is ``shared.decisions.queries``."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as datetime_time
from typing import Any, Self

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.decisions.writer import DecisionWriter
from shared.core.db import is_connection_error
from shared.core.errors import BadRequest, DomainError, Unauthorized
from shared.core.errors import UnprocessableEntity as Unprocessable
from shared.core.signing import verify_signature
from shared.events import EventType, SourceRejectedBatch, record_event
from shared.models import RejectedBatch
from shared.models.base import utcnow
from shared.schemas.decisions import (
    MAX_BATCH_EVENTS,
    DecisionBatch,
    DecisionEvent,
    IntakeResult,
)
from shared.sources.service import SigningSource, SourceDirectory

logger = logging.getLogger(__name__)

_BATCH = TypeAdapter(DecisionBatch)
_EVENT = TypeAdapter(DecisionEvent)


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(error["loc"]), "msg": error["msg"]} for error in exc.errors()]


def _describe(error: dict[str, Any]) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    return f"{path.lstrip('.')}: {error['msg']}"


def _invalid(exc: ValidationError) -> DomainError:
    """The 400 (not JSON) or 422 (not valid) for a body that failed validation."""
    errors = _errors(exc)
    if exc.errors()[0]["type"] == "json_invalid":
        return BadRequest(f"body is not valid JSON: {errors[0]['msg']}")
    first = errors[0]
    if first["loc"][:1] == ["events"] and len(first["loc"]) > 1:
        detail = f"event {first['loc'][1]} is invalid: {_describe(first)}"
    elif first["loc"] == ["events"]:
        detail = f"'events' must be a list of 1 to {MAX_BATCH_EVENTS} events: {first['msg']}"
    elif not first["loc"]:
        detail = 'body must be a JSON object: one decision event, or {"events": [...]}'
    else:
        detail = f"invalid event: {_describe(first)}"
    return Unprocessable(detail, errors=errors)


def _is_batch_without_events(exc: ValidationError) -> bool:
    return any(
        error["type"] == "missing" and tuple(error["loc"]) == ("events",) for error in exc.errors()
    )


@dataclass(frozen=True, slots=True)
class DecidedAtWindow:
    """The ``decided_at`` times intake accepts: from ``earliest`` up to ``latest``.

    Every time inside it has a calendar day in UTC and in every market's time zone; outside
    it, a stored decision would break every read of the listing and the intake rollups.
    """

    earliest: datetime
    latest: datetime

    @classmethod
    def around(cls, now: datetime, *, earliest_date: date, future_tolerance: timedelta) -> Self:
        """From midnight UTC of ``earliest_date`` to ``future_tolerance`` after ``now``."""
        return cls(
            earliest=datetime.combine(earliest_date, datetime_time(), tzinfo=UTC),
            latest=now + future_tolerance,
        )


def parse_decision_events(
    body: bytes, *, max_events: int, window: DecidedAtWindow
) -> list[DecisionEvent]:
    """One event or ``{"events": [...]}``, all valid, or a 400/422 naming what is wrong.

    The raw bytes are validated by pydantic's own JSON parser (no intermediate Python
    objects). An ``event_id`` repeated inside one batch is refused (422 naming the later
    index): the sender has two different events under one idempotency key, and storing
    either would silently drop the other. So are a ``decided_at`` outside ``window`` and a
    NUL character anywhere (PostgreSQL text cannot hold it): both are found here, before
    anything is written, so that they are the sender's 422 and never a failed write.
    """
    # A batch names "events"; a single event does not (unless in its metadata: then the
    # batch attempt reports a missing "events" and the body is read as one event).
    if b'"events"' in body:
        try:
            events = _BATCH.validate_json(body).events
        except ValidationError as exc:
            if not _is_batch_without_events(exc):
                raise _invalid(exc) from exc
        else:
            if len(events) > max_events:
                raise Unprocessable(
                    f"'events' must be a list of 1 to {max_events} events",
                    errors=[{"loc": ["events"], "msg": f"must hold 1 to {max_events} events"}],
                )
            _refuse_repeated_event_ids(events)
            _refuse_unstorable(events, body=body, window=window, batch=True)
            return events
    try:
        events = [_EVENT.validate_json(body)]
    except ValidationError as exc:
        raise _invalid(exc) from exc
    _refuse_unstorable(events, body=body, window=window, batch=False)
    return events


def _refuse_repeated_event_ids(events: list[DecisionEvent]) -> None:
    first_index: dict[str, int] = {}
    for index, event in enumerate(events):
        seen = first_index.setdefault(event.event_id, index)
        if seen != index:
            raise Unprocessable(
                f"event {index} repeats the event_id of event {seen}",
                errors=[{"loc": ["events", index, "event_id"], "msg": "repeated in this batch"}],
            )


def _refuse_unstorable(
    events: list[DecisionEvent], *, body: bytes, window: DecidedAtWindow, batch: bool
) -> None:
    """The 422 for the first event holding a NUL, or else the first outside ``window``."""
    # JSON can carry a NUL only as this escape; a body without it (nearly every body) needs
    # no walk through its strings. "\\u0000" (an escaped backslash) also matches: the walk
    # then finds no NUL and the body passes.
    if b"\\u0000" in body:
        for index, event in enumerate(events):
            path = _nul_path(event)
            if path is not None:
                raise _event_problem(
                    index, path, "must not contain a NUL character (\\u0000)", batch=batch
                )
    # Comparing two times of one batch is cheap (pydantic gives all "Z" times one tzinfo), but
    # comparing each with a bound in another tzinfo costs a conversion per event: compare the
    # batch's earliest and latest only, and search for the index once one is out.
    decided = [event.decided_at for event in events]
    earliest, latest = window.earliest, window.latest
    if min(decided) < earliest or max(decided) > latest:
        index = next(i for i, at in enumerate(decided) if not earliest <= at <= latest)
        raise _event_problem(
            index,
            ["decided_at"],
            f"must lie between {earliest.isoformat()} and {latest.isoformat()} (the server "
            "clock plus its tolerance)",
            batch=batch,
        )


def _nul_path(event: DecisionEvent) -> list[str | int] | None:
    """Where in ``event`` a NUL character is, or None (only free-text fields can hold one)."""
    for name in ("event_id", "content_id", "content_type", "moderator_id"):
        if "\x00" in getattr(event, name):
            return [name]
    inner = _nul_path_in_json(event.metadata)
    return None if inner is None else ["metadata", *inner]


def _nul_path_in_json(value: object) -> list[str | int] | None:
    if isinstance(value, str):
        return [] if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return [_printable(key)]
            inner = _nul_path_in_json(item)
            if inner is not None:
                return [key, *inner]
    elif isinstance(value, list):
        for position, item in enumerate(value):
            inner = _nul_path_in_json(item)
            if inner is not None:
                return [position, *inner]
    return None


def _printable(text: str) -> str:
    """``text`` with each NUL written as its JSON escape, so that it can be stored and logged."""
    return text.replace("\x00", "\\u0000")


def _event_problem(index: int, path: list[str | int], msg: str, *, batch: bool) -> DomainError:
    """The 422 for event ``index`` (of a batch, or the single event), as pydantic's are."""
    loc: list[str | int] = ["events", index, *path] if batch else list(path)
    error = {"loc": loc, "msg": msg}
    if batch:
        return Unprocessable(f"event {index} is invalid: {_describe(error)}", errors=[error])
    return Unprocessable(f"invalid event: {_describe(error)}", errors=[error])


async def authenticate_source(
    directory: SourceDirectory,
    *,
    source_name: str | None,
    signature: str | None,
    body: bytes,
    tolerance: int,
) -> SigningSource:
    """The source whose secret signed this body within the tolerance window; 401 otherwise."""
    if not source_name or not signature:
        raise Unauthorized(
            "X-Plumbline-Source and X-Plumbline-Signature are required", scheme="HMAC"
        )
    source = await directory.get(source_name)
    if source is None:
        raise Unauthorized("unknown source", scheme="HMAC")
    now = int(time.time())
    if verify_signature(source.secrets_valid_at(utcnow()), signature, body, now, tolerance):
        return source
    # The cached secrets may predate a rotation made through another API process.
    fresh = await directory.get(source_name, fresh=True)
    if fresh is not None and verify_signature(
        fresh.secrets_valid_at(utcnow()), signature, body, now, tolerance
    ):
        return fresh
    raise Unauthorized("signature is missing, wrong or outside the time window", scheme="HMAC")


async def receive_decisions(
    *,
    source: SigningSource,
    body: bytes,
    max_events: int,
    window: DecidedAtWindow,
    writer: DecisionWriter,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> IntakeResult:
    """Validate a signed request and store its events: all of them, or none."""
    try:
        events = parse_decision_events(body, max_events=max_events, window=window)
        return await writer.write(source_id=source.id, events=events)
    except (BadRequest, Unprocessable) as exc:
        # Refused for what it holds, found in validation or (rarely) by the database.
        await record_rejection(sessionmaker, source=source, error=exc)
        raise


async def record_rejection(
    sessionmaker: async_sessionmaker[AsyncSession], *, source: SigningSource, error: DomainError
) -> None:
    """Keep a refused (but authentic) request's reason and tell the source's owners.

    Its own transaction: the request stores nothing, but its failure is worth knowing.
    """
    try:
        async with sessionmaker() as session, session.begin():
            # A refused request may have named a NUL (a JSON key holding one, say).
            errors = [
                {
                    "loc": [_printable(p) if isinstance(p, str) else p for p in item["loc"]],
                    "msg": _printable(str(item["msg"])),
                }
                for item in (error.errors or [])[:20]
            ]
            rejected = RejectedBatch(
                id=uuid.uuid4(),
                source_id=source.id,
                status=error.status,
                reason=_printable(error.detail),
                errors=errors,
                event_count=None,
            )
            session.add(rejected)
            await session.flush()
            await record_event(
                session,
                type=EventType.SOURCE_REJECTED_BATCH,
                data=SourceRejectedBatch(
                    id=rejected.id,
                    source=source.name,
                    status=error.status,
                    reason=rejected.reason,
                    errors=rejected.errors,
                    event_count=None,
                ),
            )
    except Exception as exc:
        if is_connection_error(exc):
            # The database is away: the client gets a 503 and sends again, meeting the same
            # refusal, recorded then; a 4xx now would leave the owners never hearing of it.
            raise
        # Losing this notice must not turn the client's 4xx into a 500.
        logger.exception("could not record a rejected batch", extra={"source": source.name})
