"""Console test support for the lead's pages (calibrations, quizzes and training,
escalations): people signed in, and what the pages' tables say."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support.console import ConsoleClient, Person, make_person

Sessionmaker = async_sessionmaker[AsyncSession]
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


@asynccontextmanager
async def signed_in(base_url: str, person: Person) -> AsyncIterator[ConsoleClient]:
    """A console client signed in as ``person`` (with the session's CSRF token)."""
    async with ConsoleClient(base_url) as console:
        response = await console.sign_in(person)
        assert response.status_code == 303, response.text
        yield console


async def people(
    sessionmaker: Sessionmaker, **roles: tuple[str, str | None] | str
) -> dict[str, Person]:
    """Several people at once: ``name=role`` or ``name=(role, reviewer id)``."""
    made: dict[str, Person] = {}
    for name, spec in roles.items():
        role, reviewer_id = (spec, None) if isinstance(spec, str) else spec
        made[name] = await make_person(sessionmaker, role, reviewer_id=reviewer_id)
    return made


def text_of(html: str) -> str:
    """A page's visible text, tags removed and spaces collapsed (for phrase checks)."""
    return _SPACE.sub(" ", _TAG.sub(" ", html)).strip()


def cells(html: str) -> list[str]:
    """Every table cell's text (th and td), in page order."""
    found = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", html, flags=re.S)
    return [text_of(cell) for cell in found]


def rows(html: str, table_id: str | None = None) -> list[list[str]]:
    """The body rows of a table (the one with ``id=table_id``, else every table), as texts."""
    if table_id is not None:
        match = re.search(rf'<table[^>]*id="{table_id}"[^>]*>(.*?)</table>', html, flags=re.S)
        assert match is not None, f"no table #{table_id} on the page"
        html = match.group(1)
    body = "".join(re.findall(r"<tbody>(.*?)</tbody>", html, flags=re.S))
    return [cells(row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)]


def location(response: httpx.Response) -> str:
    """Where a 303 sends the browser."""
    assert response.status_code == 303, (response.status_code, response.text[:2000])
    return response.headers["location"]


def form_fields(**values: Any) -> dict[str, str]:
    """Form values as a browser posts them (text)."""
    return {name: "" if value is None else str(value) for name, value in values.items()}
