"""Conventions every endpoint shares: problem details and pages (paged by
``shared.core.pagination``)."""

from __future__ import annotations

from typing import Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.core.pagination import MAX_CURSOR_LENGTH

ItemT = TypeVar("ItemT")

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
    """Query parameters: unknown ones are refused rather than silently ignored.

    A query with a period (fields ``from_``, aliased ``from``, and ``to``) must not end before
    it starts: that is a 422 on every endpoint, not an empty answer.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _period_in_order(self) -> Self:
        start, end = getattr(self, "from_", None), getattr(self, "to", None)
        if start is not None and end is not None and start > end:
            raise ValueError("'from' must not be after 'to'")
        return self


class PageQuery(StrictQuery):
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=MAX_CURSOR_LENGTH)
