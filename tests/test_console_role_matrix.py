"""Who may open what in the console: a role x page matrix generated from the app's routes.

Every console route declares its callers in code: ``console_page(...)`` (a ``ConsolePage``)
or ``CONSOLE_PUBLIC``. A route declaring neither fails here by name, so a page cannot ship
without a decision about who may open it. Then, signed in as each role, every page is
opened: 403 where the role is not declared, never 401/403 where it is, never a 5xx. Without
a session every non-public route sends the browser to sign-in, and every write (POST)
without the CSRF token, or from another site's Origin, is refused with 403.

Every page served is also swept for the Content-Security-Policy: the header on every HTML
page, and no inline script, style or event handler in what is served or in any template
(pages that need data to be reached are covered through their templates).

Written against whatever pages exist when it runs: it enumerates, it does not list.
"""

from __future__ import annotations

import re
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.console.session import CONSOLE_PUBLIC, ConsoleContext, console_page
from services.audit_api.console.templating import CONTENT_SECURITY_POLICY, TEMPLATES_DIR
from services.audit_api.deps import PrincipalDep, require_roles
from shared.core.auth import Principal, Role
from tests.conftest import LiveServer
from tests.support.console import ConsoleClient, csrf_of, make_person
from tests.support.console_routes import ConsoleRoute, console_routes

FOREIGN_ORIGIN = "https://attacker.example"

_TAG = re.compile(r"<[a-zA-Z][^>]*>")
_SCRIPT = re.compile(r"<script\b([^>]*)>", re.I)
_FORBIDDEN_IN_TAGS = (
    (re.compile(r"\sstyle\s*=", re.I), "an inline style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on* event handler"),
    (re.compile(r"=\s*[\"']?\s*javascript:", re.I), "a javascript: URL"),
)


def inline_code(html: str) -> list[str]:
    """What the strict CSP would block in a page or template: inline scripts (a script
    without ``src`` that is not a JSON data block), ``<style>`` elements, ``style=""``
    attributes, ``on*=""`` handlers and ``javascript:`` URLs."""
    found = []
    for attributes in _SCRIPT.findall(html):
        if "src=" not in attributes and "application/json" not in attributes:
            found.append("an inline <script>")
    if re.search(r"<style\b", html, re.I):
        found.append("a <style> element")
    for tag in _TAG.findall(html):
        for pattern, what in _FORBIDDEN_IN_TAGS:
            if pattern.search(tag):
                found.append(f"{what}: {tag[:80]}")
    return found


def _undeclared(routes: list[ConsoleRoute]) -> list[str]:
    problems = []
    for route in routes:
        if route.roles == frozenset():
            problems.append(f"{route}: declares neither console_page(...) nor CONSOLE_PUBLIC")
        if route.api_key_checks:
            problems.append(f"{route}: uses an API-key role check; use console_page(...)")
    return problems


def _form(route: ConsoleRoute) -> dict[str, str]:
    """A form for ``route`` with a plausible value in every field (and no CSRF token)."""
    return {field: "x" for field in route.form_fields if field != "csrf_token"}


# ------------------------------------------------------------------------- declarations


def test_a_console_route_without_a_declaration_is_caught() -> None:
    router = APIRouter(prefix="/console")

    @router.get("/forgot")
    async def forgot() -> None: ...

    @router.get("/api-key")
    async def api_key(_: PrincipalDep) -> None: ...

    @router.get("/api-key-role")
    async def api_key_role(
        _: Annotated[Principal, Depends(require_roles(Role.MANAGER))],
    ) -> None: ...

    @router.get("/leads")
    async def leads(
        _: Annotated[ConsoleContext, Depends(console_page(Role.MANAGER, Role.ADMIN))],
    ) -> None: ...

    @router.get("/open", dependencies=[Depends(CONSOLE_PUBLIC)])
    async def open_page() -> None: ...

    app = FastAPI()
    app.include_router(router)
    routes = console_routes(app)
    assert {str(route): route.roles for route in routes} == {
        "GET /console/forgot": frozenset(),
        "GET /console/api-key": frozenset(),
        "GET /console/api-key-role": frozenset(),
        "GET /console/leads": {Role.MANAGER, Role.ADMIN},
        "GET /console/open": None,
    }
    assert _undeclared(routes) == [
        "GET /console/forgot: declares neither console_page(...) nor CONSOLE_PUBLIC",
        "GET /console/api-key: declares neither console_page(...) nor CONSOLE_PUBLIC",
        "GET /console/api-key-role: declares neither console_page(...) nor CONSOLE_PUBLIC",
        "GET /console/api-key-role: uses an API-key role check; use console_page(...)",
    ]


def test_every_console_route_declares_who_may_open_it(live_server: LiveServer) -> None:
    routes = console_routes(live_server.app)
    # The console exists: sign-in and the pages every role lands on are among its routes.
    paths = {route.path for route in routes}
    assert {"/console/sign-in", "/console/account", "/console/"} <= paths
    assert not any(route.path.startswith("/console/static") for route in routes)
    assert _undeclared(routes) == []


# ------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("role", list(Role), ids=[role.value for role in Role])
async def test_each_role_opens_exactly_the_pages_it_is_declared_for(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession], role: Role
) -> None:
    routes = [route for route in console_routes(live_server.app) if route.method == "GET"]
    person = await make_person(sessionmaker, role.value)
    problems = []
    async with ConsoleClient(live_server.url) as console:
        signed_in = await console.sign_in(person)
        assert signed_in.status_code == 303
        for route in routes:
            response = await console.http.get(route.example_path())
            status = response.status_code
            location = response.headers.get("location", "")
            if status >= 500:
                problems.append(f"{route} answered {status}")
            elif route.public:
                if status in (401, 403):
                    problems.append(f"{route} is public but answered {status}")
            elif role not in route.roles:  # type: ignore[operator]
                if status != 403:
                    problems.append(f"{route} is not for {role.value} but answered {status}")
            elif status in (401, 403) or location.startswith("/console/sign-in"):
                problems.append(f"{route} is for {role.value} but answered {status} {location}")
            elif route.path_params and status not in (404, 422):
                problems.append(
                    f"{route} with a made-up {route.example_path()} answered {status}, not 404/422"
                )
            if response.headers.get("content-type", "").startswith("text/html"):
                if response.headers.get("content-security-policy") != CONTENT_SECURITY_POLICY:
                    problems.append(f"{route} ({status}) lacks the console's CSP header")
                problems.extend(f"{route} serves {what}" for what in inline_code(response.text))
    assert problems == [], "\n".join(problems)


async def test_without_a_session_every_page_sends_the_browser_to_sign_in(
    live_server: LiveServer,
) -> None:
    problems = []
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as anonymous:
        for route in console_routes(live_server.app):
            if route.public:
                continue
            response = await anonymous.request(
                route.method, route.example_path(), data=_form(route) or None
            )
            location = response.headers.get("location", "")
            if response.status_code != 303 or not location.startswith("/console/sign-in?next="):
                problems.append(f"{route} answered {response.status_code} {location}")
            # HTMX swaps answers in place: it gets a 401 telling it to load the sign-in page.
            swapped = await anonymous.request(
                route.method,
                route.example_path(),
                data=_form(route) or None,
                headers={"HX-Request": "true"},
            )
            if swapped.status_code != 401 or not swapped.headers.get("hx-redirect", "").startswith(
                "/console/sign-in?next="
            ):
                problems.append(f"{route} from HTMX answered {swapped.status_code}")
    assert problems == [], "\n".join(problems)


async def test_every_write_needs_the_csrf_token_and_this_sites_origin(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    posts = [route for route in console_routes(live_server.app) if route.method == "POST"]
    assert posts, "the console has no forms?"
    clients: dict[Role, ConsoleClient] = {}
    problems = []
    try:
        for route in posts:
            if route.public:
                # Before sign-in the token is the pre-session (double-submit) cookie's.
                console = ConsoleClient(live_server.url)
                clients_to_close = [console]
                form_page = await console.http.get("/console/sign-in")
                token = csrf_of(form_page.text)
            else:
                assert route.roles is not None
                role = min(route.roles, key=lambda role: role.value)
                if role not in clients:
                    person = await make_person(sessionmaker, role.value)
                    clients[role] = ConsoleClient(live_server.url)
                    assert (await clients[role].sign_in(person)).status_code == 303
                console = clients[role]
                clients_to_close = []
                token = console.csrf
            assert token, "no CSRF token to compare against"
            path = route.example_path()
            without = await console.http.post(path, data=_form(route))
            if without.status_code != 403 or "CSRF" not in without.text:
                problems.append(f"{route} without the CSRF token answered {without.status_code}")
            foreign = await console.http.post(
                path,
                data={**_form(route), "csrf_token": token},
                headers={"Origin": FOREIGN_ORIGIN},
            )
            if foreign.status_code != 403 or "CSRF" not in foreign.text:
                problems.append(f"{route} from {FOREIGN_ORIGIN} answered {foreign.status_code}")
            for client in clients_to_close:
                await client.http.aclose()
    finally:
        for client in clients.values():
            await client.http.aclose()
    assert problems == [], "\n".join(problems)


def test_no_template_holds_code_the_csp_would_block() -> None:
    problems = [
        f"{template.relative_to(TEMPLATES_DIR)}: {what}"
        for template in sorted(TEMPLATES_DIR.rglob("*.html"))
        for what in inline_code(template.read_text(encoding="utf-8"))
    ]
    assert problems == [], "\n".join(problems)


def test_the_inline_code_sweep_finds_what_the_csp_blocks() -> None:
    page = (
        '<script src="/console/static/x.js"></script><script type="application/json">{}</script>'
        '<p>Call us on=Monday</p><a href="/x">fine</a>'
    )
    assert inline_code(page) == []
    bad = (
        "<script>alert(1)</script><style>p{}</style><p style='color:red'>x</p>"
        '<button onclick="go()">Go</button><a href="javascript:go()">go</a>'
    )
    assert [what.split(":")[0] for what in inline_code(bad)] == [
        "an inline <script>",
        "a <style> element",
        "an inline style attribute",
        "an on* event handler",
        "a javascript",
    ]
