"""Form handling for every console page: turning form text into the API's request models,
and a refused request into messages on the form.

A form's values are validated by the same pydantic model the API validates its JSON with,
and the domain function runs in a savepoint: when it refuses the request (422, 409) the
page shows why on the form and nothing of the request stays stored.

A form's messages are ``FieldErrors``: the messages per field, keyed by the API's ``loc``
path (without ``body``/``query`` and without list positions: an item's message belongs to
its list's field), and under ``""`` the messages for the form as a whole.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit_api.console.session import ConsoleContext
from services.audit_api.console.templating import render
from shared.core.errors import Conflict, DomainError, UnprocessableEntity

ModelT = TypeVar("ModelT", bound=BaseModel)
FieldErrors = dict[str, list[str]]
"""Messages per field; ``""`` holds the messages for the form as a whole."""

REFUSALS: tuple[type[DomainError], ...] = (UnprocessableEntity, Conflict)
"""The refusals a form shows on itself (the domain's 422 and 409)."""

_SEPARATORS = re.compile(r"[\s,;]+")
_OUTER = ("body", "query", "form")


@dataclass(frozen=True, slots=True)
class Problem:
    """One message and where it is: the API's ``loc`` path (``body``/``query`` left out)."""

    loc: tuple[str, ...]
    message: str

    @property
    def field(self) -> str:
        """The form field the message belongs to (list positions left out)."""
        return ".".join(part for part in self.loc if not part.isdigit())

    @property
    def line(self) -> str:
        """The message with where it is, as one line."""
        where = ".".join(self.loc)
        return f"{where}: {self.message}" if where else self.message


def _problem(loc: Iterable[Any], message: object) -> Problem:
    path = tuple(str(part) for part in loc if part not in _OUTER)
    return Problem(path, str(message).removeprefix("Value error, "))


def problems_of(exc: ValidationError | DomainError) -> list[Problem]:
    """A validation error's or a domain refusal's messages, each with its place."""
    if isinstance(exc, ValidationError):
        return [
            _problem(error.get("loc", ()), error.get("msg", "invalid"))
            for error in exc.errors(include_url=False, include_input=False)
        ]
    listed = [
        _problem(item.get("loc") or (), item.get("msg", ""))
        for item in exc.errors or []
        if isinstance(item, Mapping)
    ]
    return listed or [Problem((), exc.detail or exc.title)]


def field_errors(problems: Iterable[Problem]) -> FieldErrors:
    """Problems as messages per field."""
    errors: FieldErrors = {}
    for problem in problems:
        errors.setdefault(problem.field, []).append(problem.message)
    return errors


class FormRefused(Exception):
    """A form the page shows again, with the reasons and this status."""

    def __init__(
        self,
        errors: FieldErrors,
        *,
        status: int = 422,
        messages: list[str] | None = None,
        detail: str | None = None,
    ) -> None:
        lines = messages
        if lines is None:
            lines = [
                f"{field}: {message}" if field else message
                for field, listed in errors.items()
                for message in listed
            ]
        super().__init__("; ".join(lines))
        self.errors = errors
        self.messages = lines
        self.status = status
        self.detail = detail
        """A domain refusal's own sentence (None for a form's validation)."""

    @classmethod
    def of(cls, exc: ValidationError | DomainError, *, status: int = 422) -> FormRefused:
        """The refusal a validation error or a domain refusal makes of a form."""
        problems = problems_of(exc)
        return cls(
            field_errors(problems),
            status=exc.status if isinstance(exc, DomainError) else status,
            messages=[problem.line for problem in problems],
            detail=exc.detail if isinstance(exc, DomainError) else None,
        )


def parse(model: type[ModelT], data: Mapping[str, Any]) -> ModelT:
    """``data`` as ``model`` (the API's request model); ``FormRefused`` (422) otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FormRefused.of(exc) from None


def query(model: type[ModelT], **values: Any) -> ModelT:
    """A list's filters as the API's query model; an empty field is no filter; a bad one is
    422 (the console's error page)."""
    given = {name: value for name, value in values.items() if value not in (None, "")}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise UnprocessableEntity("; ".join(FormRefused.of(exc).messages)) from None


@asynccontextmanager
async def refusable(
    session: AsyncSession,
    *,
    show: tuple[type[DomainError], ...] = (UnprocessableEntity,),
) -> AsyncIterator[None]:
    """Run a domain function in a savepoint; a refusal of the kinds in ``show`` becomes
    ``FormRefused`` with its status (nothing of it stays stored), other errors propagate to
    the console's error page."""
    try:
        async with session.begin_nested():
            yield
    except show as exc:
        raise FormRefused.of(exc) from None


@dataclass(frozen=True, slots=True)
class FormPage:
    """A form's page: its template, the values it starts with, what else it always shows.
    Called with the values typed and the messages of a refusal (and its status) to show
    the form again."""

    template: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    shows: Mapping[str, Any] = field(default_factory=dict)

    def __call__(
        self,
        request: Request,
        context: ConsoleContext,
        *,
        values: Mapping[str, Any] | None = None,
        errors: FieldErrors | list[str] | None = None,
        status_code: int = 200,
        **more: Any,
    ) -> HTMLResponse:
        return render(
            request,
            self.template,
            context=context,
            status_code=status_code,
            values=values or self.defaults,
            errors=errors if errors is not None else {},
            **self.shows,
            **more,
        )


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
