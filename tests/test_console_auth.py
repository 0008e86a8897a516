"""Console sign-in, sessions and their protections, over real HTTP.

DESIGN.md, "Web console": e-mail and password (argon2), HttpOnly SameSite cookie sessions,
CSRF on every form, each role lands on its daily page.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import ConsoleSession, User
from shared.models.base import utcnow
from tests.conftest import LiveServer, auth
from tests.support.console import ConsoleClient, csrf_of, make_person


@pytest.mark.parametrize(
    ("role", "landing"),
    [
        ("qa_auditor", "/console/workbench"),
        ("moderator", "/console/my-audits"),
        ("policy_poc", "/console/arbitration"),
        ("manager", "/console/overview"),
        ("admin", "/console/admin/people"),
    ],
)
async def test_each_role_lands_on_its_daily_page(
    live_server: LiveServer,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
    landing: str,
) -> None:
    person = await make_person(sessionmaker, role)
    async with ConsoleClient(live_server.url) as console:
        response = await console.sign_in(person)
        assert response.status_code == 303
        assert response.headers["location"] == landing
        # The landing page itself redirects there too.
        again = await console.http.get("/console/")
        assert again.status_code == 303
        assert again.headers["location"] == landing


async def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        wrong = await console.sign_in(person, password="not the password at all")
        assert wrong.status_code == 401
        assert "not right" in wrong.text
        assert "plumbline_session" not in wrong.cookies
    async with ConsoleClient(live_server.url) as console:
        unknown = await console.sign_in(
            type(person)(person.id, "nobody@example.com", person.password, "manager", None)
        )
        assert unknown.status_code == 401
        assert unknown.text.count("not right") == wrong.text.count("not right")


async def test_the_password_is_stored_as_an_argon2id_hash(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with sessionmaker() as session:
        stored = await session.scalar(select(User.password_hash).where(User.id == person.id))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert person.password not in stored


async def test_the_session_cookie_is_httponly_and_samesite(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        response = await console.sign_in(person)
    header = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith("plumbline_session=")
    )
    attributes = {part.strip().lower() for part in header.split(";")}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/console" in attributes
    # Plain-HTTP localhost is the one place a cookie may go without Secure.
    assert "secure" not in attributes


async def test_a_page_without_a_session_redirects_to_sign_in_and_back(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        response = await console.http.get("/console/?from=mail")
        assert response.status_code == 303
        assert response.headers["location"] == "/console/sign-in?next=/console/%3Ffrom%3Dmail"
        form = await console.http.get(response.headers["location"])
        signed_in = await console.http.post(
            "/console/sign-in",
            data={
                "email": person.email,
                "password": person.password,
                "csrf_token": csrf_of(form.text),
                "next": "/console/?from=mail",
            },
        )
        assert signed_in.headers["location"] == "/console/?from=mail"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/v1/api-keys"])
async def test_sign_in_never_redirects_off_the_console(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession], target: str
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        form = await console.http.get("/console/sign-in")
        response = await console.http.post(
            "/console/sign-in",
            data={
                "email": person.email,
                "password": person.password,
                "csrf_token": csrf_of(form.text),
                "next": target,
            },
        )
    assert response.headers["location"] == "/console/overview"


async def test_sign_in_without_the_csrf_token_is_refused(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.http.get("/console/sign-in")
        response = await console.http.post(
            "/console/sign-in", data={"email": person.email, "password": person.password}
        )
    assert response.status_code == 403
    assert "plumbline_session" not in response.cookies


async def test_session_fixation_a_planted_cookie_is_replaced_at_sign_in(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    planted = "attacker-chosen-session-token"
    async with ConsoleClient(live_server.url) as console:
        console.http.cookies.set("plumbline_session", planted, path="/console")
        response = await console.sign_in(person)
        issued = response.cookies.get("plumbline_session")
        assert issued is not None
        assert issued != planted
    # The planted value opens nothing, before or after the victim signs in.
    async with httpx.AsyncClient(base_url=live_server.url) as attacker:
        attacker.cookies.set("plumbline_session", planted, path="/console")
        assert (await attacker.get("/console/")).status_code == 303
    # And a second sign-in gets a fresh token again: the first one is not reused.
    async with ConsoleClient(live_server.url) as console:
        second = await console.sign_in(person)
        assert second.cookies.get("plumbline_session") not in (None, issued)


async def test_sign_out_ends_the_session_at_once(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        token = console.http.cookies.get("plumbline_session")
        out = await console.post("/console/sign-out")
        assert out.status_code == 303
        assert out.headers["location"] == "/console/sign-in"
    # Replaying the old cookie after sign-out gets nothing.
    async with httpx.AsyncClient(base_url=live_server.url) as replay:
        replay.cookies.set("plumbline_session", token or "", path="/console")
        assert (await replay.get("/console/")).status_code == 303


async def test_sign_out_without_the_csrf_token_is_refused(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        refused = await console.http.post("/console/sign-out", data={"csrf_token": "forged"})
        assert refused.status_code == 403
        missing = await console.http.post("/console/sign-out")
        assert missing.status_code == 403
        # Still signed in.
        assert (await console.http.get("/console/")).status_code == 303
        assert (await console.http.get("/console/")).headers["location"] == "/console/overview"


async def test_a_cross_site_origin_is_refused_even_with_the_token(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        response = await console.post(
            "/console/sign-out", headers={"Origin": "https://evil.example"}
        )
        assert response.status_code == 403


@pytest.mark.parametrize("limit", ["idle", "absolute"])
async def test_sessions_end_after_the_idle_and_the_absolute_timeout(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession], limit: str
) -> None:
    person = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        assert (await console.http.get("/console/")).headers["location"] == "/console/overview"
        async with sessionmaker() as session, session.begin():
            if limit == "idle":
                # Just past the 30-minute default of console_idle_timeout_minutes.
                values = {"last_seen_at": utcnow() - timedelta(minutes=31)}
            else:
                values = {"expires_at": utcnow() - timedelta(seconds=1)}
            await session.execute(
                update(ConsoleSession).where(ConsoleSession.user_id == person.id).values(**values)
            )
        response = await console.http.get("/console/")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/sign-in")


async def test_console_pages_carry_a_strict_content_security_policy(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    response = await client.get("/console/sign-in")
    policy = response.headers["content-security-policy"]
    directives = dict(
        ([*part.strip().split(" ", 1), ""])[:2] for part in policy.split(";") if part.strip()
    )
    assert directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    # No inline script on the page for the policy to have to allow.
    assert "<script>" not in response.text
    assert all('src="/console/static/' in tag for tag in response.text.split("<script")[1:])


async def test_sign_in_attempts_are_rate_limited(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    statuses = []
    async with ConsoleClient(live_server.url) as console:
        # sign_in_attempts_per_minute defaults to 10: the 11th attempt on one address waits.
        for _ in range(11):
            statuses.append(
                (await console.sign_in(person, password="wrong password!!")).status_code
            )
        blocked = await console.sign_in(person)
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1


async def test_a_new_person_sets_the_password_through_the_one_time_link(
    live_server: LiveServer, client: httpx.AsyncClient, admin_key: str
) -> None:
    created = await client.post(
        "/v1/users",
        json={"email": "Ada@Example.com", "role": "manager", "language": "de"},
        headers=auth(admin_key),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["email"] == "ada@example.com"
    link = httpx.URL(body["password_link"])
    assert link.path == "/console/password"
    async with ConsoleClient(live_server.url) as console:
        page = await console.http.get(f"{link.path}?{link.query.decode()}")
        assert page.status_code == 200
        assert "Passwort festlegen" in page.text  # the person's language
        token = link.params["token"]
        short = await console.http.post(
            "/console/password",
            data={
                "token": token,
                "password": "short",
                "password_again": "short",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert short.status_code == 422
        done = await console.http.post(
            "/console/password",
            data={
                "token": token,
                "password": "a long enough password",
                "password_again": "a long enough password",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert done.status_code == 303
        # The link works once.
        again = await console.http.get(f"{link.path}?{link.query.decode()}")
        assert again.status_code == 404
        form = await console.http.get("/console/sign-in")
        signed_in = await console.http.post(
            "/console/sign-in",
            data={
                "email": "ada@example.com",
                "password": "a long enough password",
                "csrf_token": csrf_of(form.text),
            },
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/console/overview"


async def test_users_api_is_admin_only_and_refuses_bad_input(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    from tests.conftest import make_key

    manager_key = await make_key(sessionmaker, "manager")
    assert (
        await client.post(
            "/v1/users",
            json={"email": "x@example.com", "role": "manager"},
            headers=auth(manager_key),
        )
    ).status_code == 403
    for bad in (
        {"email": "not an address", "role": "manager"},
        {"email": "m@example.com", "role": "moderator"},  # a moderator needs a reviewer_id
        {"email": "m@example.com", "role": "manager", "password": "short"},
        {"email": "m@example.com", "role": "manager", "markets": []},
        {"email": "m@example.com", "role": "emperor"},
    ):
        response = await client.post("/v1/users", json=bad, headers=auth(admin_key))
        assert response.status_code == 422, (bad, response.text)
    first = await client.post(
        "/v1/users", json={"email": "dup@example.com", "role": "manager"}, headers=auth(admin_key)
    )
    assert first.status_code == 201
    again = await client.post(
        "/v1/users", json={"email": "DUP@example.com", "role": "manager"}, headers=auth(admin_key)
    )
    assert again.status_code == 409
    listed = await client.get("/v1/users", headers=auth(admin_key))
    assert [user["email"] for user in listed.json()["items"]] == ["dup@example.com"]
    assert "password" not in listed.text
    assert "argon2" not in listed.text
