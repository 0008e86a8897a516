"""Form handling shared by the lead's console pages (calibrations, training, escalations):
turning form text into the API's request models, and a refused request into messages for
the form.

A form's values are validated by the same pydantic model the API validates its JSON with,
and the domain function runs in a savepoint: when it refuses the request (422, 409) the
page shows why on the form and nothing of the request stays stored.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.errors import DomainError, UnprocessableEntity

ModelT = TypeVar("ModelT", bound=BaseModel)
_SEPARATORS = re.compile(r"[\s,;]+")


class FormRefused(Exception):
    """A form the page shows again, with the reasons and this status."""

    def __init__(self, messages: list[str], *, status: int = 422) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages
        self.status = status


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in loc if part not in ("body",)]
    return ".".join(parts)


def validation_messages(exc: ValidationError) -> list[str]:
    """One line per problem: where (the API's field path) and what."""
    messages = []
    for error in exc.errors():
        where = _location(error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        messages.append(f"{where}: {message}" if where else message)
    return messages


def domain_messages(exc: DomainError) -> list[str]:
    """The domain's reasons: each listed error, else its detail."""
    if exc.errors:
        return [
            (f"{_location(error['loc'])}: {error['msg']}" if error.get("loc") else error["msg"])
            for error in exc.errors
        ]
    return [exc.detail]


def parse(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """``data`` as ``model`` (the API's request model); ``FormRefused`` (422) otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FormRefused(validation_messages(exc)) from None


def query(model: type[ModelT], **values: Any) -> ModelT:
    """A list's filters as the API's query model; an empty field is no filter; a bad one is
    422 (the console's error page)."""
    given = {name: value for name, value in values.items() if value not in (None, "")}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        messages = validation_messages(exc)
        raise UnprocessableEntity("; ".join(messages)) from None


@asynccontextmanager
async def refusable(
    session: AsyncSession, *, show: tuple[type[DomainError], ...] = (UnprocessableEntity,)
) -> AsyncIterator[None]:
    """Run a domain function in a savepoint; a refusal of the kinds in ``show`` becomes
    ``FormRefused`` with its status (nothing of it stays stored), other errors propagate to
    the console's error page."""
    try:
        async with session.begin_nested():
            yield
    except show as exc:
        raise FormRefused(domain_messages(exc), status=exc.status) from None


def words(text: str | None) -> list[str]:
    """A list typed into one field: separated by commas, semicolons, spaces or lines."""
    return [part for part in _SEPARATORS.split(text or "") if part]


def lines(text: str | None) -> list[str]:
    """A list typed one entry a line (blank lines left out, spaces trimmed)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def utc_instant(text: str | None) -> datetime | str | None:
    """A ``datetime-local`` field's value read as UTC; None when empty. Text that is no date
    and time is returned as is, for the model to refuse with its message."""
    if not text or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def day_or_text(text: str | None) -> date | str | None:
    """A ``date`` field's value; None when empty, the text itself when it is no date."""
    if not text or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return text


def or_none(text: str | None, convert: Callable[[str], Any] = str) -> Any:
    """An optional field: None when empty, else ``convert(text)`` (its text when that fails)."""
    if text is None or not text.strip():
        return None
    try:
        return convert(text.strip())
    except ValueError:
        return text.strip()
