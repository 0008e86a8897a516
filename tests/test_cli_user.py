"""``plumbline user create``, as a subprocess against the test database: a person with a
one-time link on stdout, or a password read from stdin (never from argv); the API's rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.core.settings import Settings
from shared.models import AuditLogEntry, User
from tests.conftest import LiveServer
from tests.support.console import ConsoleClient, Person

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a password from stdin only"


def plumbline(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLUMBLINE_")}
    assert settings.database_url is not None
    env.update(
        PLUMBLINE_DATABASE_URL=settings.database_url,
        PLUMBLINE_PUBLIC_URL="https://qa.example.com",
        PLUMBLINE_DATA_DIR=str(settings.data_dir),
    )
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "user", "create", *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def users(sessionmaker: async_sessionmaker[AsyncSession]) -> list[User]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(User).order_by(User.email)))


async def test_user_create_prints_only_the_one_time_link(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], live_server: LiveServer
) -> None:
    done = plumbline(
        settings,
        "--email", "Lead@Example.com",
        "--role", "manager",
        "--market", "de", "--market", "AT",
        "--language", "de",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert "\n" not in link
    assert link.startswith("https://qa.example.com/console/password?token=")
    assert "one-time link" in done.stderr
    [user] = await users(sessionmaker)
    assert (user.email, user.role, user.markets, user.language) == (
        "lead@example.com",
        "manager",
        ["AT", "DE"],
        "de",
    )
    assert user.password_hash is None
    async with sessionmaker() as session:
        assert (
            await session.scalar(
                select(func.count())
                .select_from(AuditLogEntry)
                .where(AuditLogEntry.action == "user.created")
            )
            == 1
        )
    # The link opens the page that sets the password.
    async with ConsoleClient(live_server.url) as anonymous:
        opened = await anonymous.http.get(f"{urlsplit(link).path}?{urlsplit(link).query}")
        assert opened.status_code == 200
        assert "lead@example.com" in opened.text


async def test_user_create_sets_the_password_read_from_stdin(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], live_server: LiveServer
) -> None:
    done = plumbline(
        settings,
        "--email", "auditor@example.com",
        "--role", "qa_auditor",
        "--reviewer-id", "aud-1",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert PASSWORD not in done.stderr
    [user] = await users(sessionmaker)
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    async with ConsoleClient(live_server.url) as console:
        person = Person(user.id, "auditor@example.com", PASSWORD, "qa_auditor", "aud-1")
        signed_in = await console.sign_in(person)
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/console/workbench"


def test_the_password_cannot_be_given_on_the_command_line(settings: Settings) -> None:
    done = plumbline(
        settings, "--email", "x@example.com", "--role", "manager", "--password", PASSWORD
    )
    assert done.returncode == 2
    assert "unrecognized arguments" in done.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("--email", "not-an-address", "--role", "manager"), "", "email"),
        (("--email", "m@example.com", "--role", "moderator"), "", "reviewer_id"),
        (("--email", "m@example.com", "--role", "manager", "--market", "XX1"), "", "markets"),
        (
            ("--email", "m@example.com", "--role", "manager", "--password-stdin"),
            "short\n",
            "password",
        ),
    ],
)
async def test_user_create_applies_the_api_rules(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    args: tuple[str, ...],
    stdin: str,
    message: str,
) -> None:
    done = plumbline(settings, *args, stdin=stdin)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "refused" in done.stderr
    assert message in done.stderr
    assert "short" not in done.stderr
    assert await users(sessionmaker) == []


async def test_user_create_refuses_an_address_that_has_an_account(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = plumbline(settings, "--email", "dup@example.com", "--role", "admin")
    assert first.returncode == 0, first.stderr
    again = plumbline(settings, "--email", "DUP@example.com", "--role", "manager")
    assert again.returncode == 1
    assert "exists already" in again.stderr
    assert again.stdout == ""
    assert len(await users(sessionmaker)) == 1
