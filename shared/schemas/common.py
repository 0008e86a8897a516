"""Conventions every endpoint shares: problem details, pages and opaque cursors."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from shared.core.errors import BadRequest

ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT")
IdT = TypeVar("IdT")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class ProblemError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[ProblemError] | None = None


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None


class StrictQuery(BaseModel):
    """Query parameters: unknown ones are refused rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PageQuery(StrictQuery):
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=512)


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor for the position after the last item of a page."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def page_rows(
    rows: Sequence[RowT], *, limit: int, position: Callable[[RowT], dict[str, Any]]
) -> tuple[list[RowT], str | None]:
    """Cut a ``limit + 1`` fetch to a page, with the cursor after its last row (None: no more).

    List queries fetch one row more than the page holds: its presence says another page
    exists, without a count.
    """
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    return page, encode_cursor(position(page[-1]))


def time_position(
    when: datetime, row_id: object, *, time_key: str = "created_at"
) -> dict[str, str]:
    """The cursor position of a row in a list ordered by a time and then its id."""
    return {time_key: when.isoformat(), "id": str(row_id)}


def decode_time_cursor(
    cursor: str, *, id_type: Callable[[str], IdT], time_key: str = "created_at"
) -> tuple[datetime, IdT]:
    """The (time, id) a ``time_position`` cursor stands for; one we did not make is a 400."""
    position = decode_cursor(cursor, keys={time_key, "id"})
    try:
        return datetime.fromisoformat(position[time_key]), id_type(position["id"])
    except (TypeError, ValueError) as exc:
        raise BadRequest("cursor is not valid") from exc


def decode_cursor(cursor: str, *, keys: set[str]) -> dict[str, Any]:
    """The position a cursor stands for; a cursor we did not make is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequest("cursor is not valid") from exc
    if not isinstance(position, dict) or set(position) != keys:
        raise BadRequest("cursor is not valid")
    return position
