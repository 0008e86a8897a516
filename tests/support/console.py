"""Console test support: people to sign in as, an HTTP client that signs in like a browser,
and Debian's Chromium for the browser tests."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.users import service

PASSWORD = "correct horse battery staple"
_HIDDEN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    email: str
    password: str
    role: str
    reviewer_id: str | None


async def make_person(
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
    *,
    email: str | None = None,
    reviewer_id: str | None = None,
    markets: list[str] | None = None,
    language: str = "en",
    password: str = PASSWORD,
) -> Person:
    """A console account with a password set (the admin API's path, without the link)."""
    email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    if reviewer_id is None and role in ("moderator", "qa_auditor"):
        reviewer_id = f"{role}-{uuid.uuid4().hex[:6]}"
    async with sessionmaker() as session, session.begin():
        user, _ = await service.create_user(
            session,
            email=email,
            role=role,
            reviewer_id=reviewer_id,
            markets=markets,
            language=language,
            password=password,
            password_link_ttl=timedelta(hours=1),
        )
    return Person(user.id, email, password, role, reviewer_id)


def csrf_of(page: str) -> str:
    """The CSRF token a console page hands its forms (session meta tag, else form field)."""
    found = _META_CSRF.search(page) or _HIDDEN_CSRF.search(page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


class ConsoleClient:
    """A browser-like HTTP client: cookies, the sign-in form, the CSRF token of each page."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30, follow_redirects=False)
        self.csrf = ""

    async def __aenter__(self) -> ConsoleClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def sign_in(self, person: Person, *, password: str | None = None) -> httpx.Response:
        form = await self.http.get("/console/sign-in")
        response = await self.http.post(
            "/console/sign-in",
            data={
                "email": person.email,
                "password": password or person.password,
                "csrf_token": csrf_of(form.text),
            },
        )
        if response.status_code == 303:
            # Every role may open its account page: it hands out the session's CSRF token.
            await self.page("/console/account")
        return response

    async def page(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET a page and keep its CSRF token for the next post."""
        response = await self.http.get(path, **kwargs)
        if response.status_code == 200 and "csrf-token" in response.text:
            self.csrf = csrf_of(response.text)
        return response

    async def post(
        self, path: str, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """POST a form with the current CSRF token (as a browser's form would)."""
        return await self.http.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)


def chromium_path() -> str | None:
    """Debian's Chromium (``PLUMBLINE_CHROMIUM`` overrides); None when there is none."""
    configured = os.environ.get("PLUMBLINE_CHROMIUM")
    if configured:
        return configured if os.path.exists(configured) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")
