"""The console is accessible: DESIGN.md, "Web console", and issue 11 ("labels on every
control, keyboard reachable, contrast AA; responsive down to a laptop screen").

In a real browser, on the sign-in page and on every parameterless page of the console (each
role's landing page, the others and the forms for new things, enumerated from the app's
routes, so pages added later are covered): the page's language, an accessible name on every
control, headings starting with one h1 and never skipping a level, no duplicate ids, every
control reachable by Tab, AA contrast of the text as the browser paints it, and no sideways
scrolling at 1280x720.
The stylesheet's own colour pairs are checked by the WCAG 2.x formula (see
``tests/support/console_a11y.py``, which cites it).
"""

from __future__ import annotations

import warnings

import httpx
import pytest
from playwright.async_api import Page, ViewportSize
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.console.sign_in import LANDING
from services.audit_api.console.templating import STATIC_DIR, TEMPLATES_DIR
from shared.core.auth import Role
from tests.conftest import LiveServer, SignedSender, auth, make_key
from tests.support.audits import set_profile
from tests.support.console import Person, make_person
from tests.support.console_a11y import (
    AA_TEXT,
    contrast_ratio,
    page_problems,
    parse_colour,
    stylesheet_pairs,
)
from tests.support.console_audits import judged_audit, pending_audits
from tests.support.console_routes import main_pages

LAPTOP: ViewportSize = {"width": 1280, "height": 720}
# Each page is checked once, as the first of these roles that may open it (or as the role
# whose landing page it is).
ROLE_ORDER = (Role.QA_AUDITOR, Role.MODERATOR, Role.POLICY_POC, Role.MANAGER, Role.ADMIN)


def pages_checked_as(role: Role, live_server: LiveServer) -> list[str]:
    paths = []
    for route in main_pages(live_server.app, forms=True):
        assert route.roles is not None
        landing = [owner for owner, path in LANDING.items() if path == route.path]
        owner = landing[0] if landing else next(r for r in ROLE_ORDER if r in route.roles)
        if owner is role:
            paths.append(route.path)
    return paths


async def sign_in_in_browser(page: Page, person: Person) -> None:
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/console/sign-in" not in url)


# ------------------------------------------------------------------------- contrast


@pytest.mark.no_db
def test_the_contrast_formula_gives_wcags_reference_values() -> None:
    black, white = (0.0, 0.0, 0.0), (255.0, 255.0, 255.0)
    assert contrast_ratio(black, white) == pytest.approx(21.0)
    assert contrast_ratio(white, white) == pytest.approx(1.0)
    # #767676 is the lightest grey that passes AA on white (4.54:1); #777777 fails (4.48:1).
    assert contrast_ratio(parse_colour("#767676") or black, white) == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio(parse_colour("#777") or black, white) < AA_TEXT
    assert parse_colour("var(--x)", {"--x": "#fff"}) == white
    assert parse_colour("transparent") is None


@pytest.mark.no_db
def test_the_stylesheets_colour_pairs_meet_aa() -> None:
    css = (STATIC_DIR / "console.css").read_text()
    base = (TEMPLATES_DIR / "base.html").read_text()
    pairs = stylesheet_pairs(css, base)
    # The pairs are really read: links on the page, the top bar's text, the primary button.
    selectors = {pair.selector for pair in pairs}
    assert {"a", "header.top a", "button.primary", ".error"} <= selectors
    failing = [
        f"{pair.selector}: {pair.text} on {pair.background} is {pair.ratio:.2f}:1"
        for pair in pairs
        if pair.ratio < AA_TEXT
    ]
    assert failing == [], "\n".join(failing)


@pytest.mark.no_db
def test_a_pair_below_aa_would_be_caught() -> None:
    css = (
        ":root { --pale: #aaaaaa; color: #000; background: #fff; }"
        " .hint { color: var(--pale); } header.top { background: #111; } .who { color: #333; }"
    )
    pairs = stylesheet_pairs(css, '<header class="top"><a class="who">x</a></header>')
    ratios = {pair.selector: pair.ratio for pair in pairs}
    assert ratios[".hint"] < AA_TEXT  # pale grey on the white page
    assert ratios["header.top"] < AA_TEXT  # the page's black text on a near-black bar
    assert ratios[".who"] < AA_TEXT  # dark text inside the dark top bar


# ------------------------------------------------------------------------- in the browser


async def test_the_sign_in_page_is_accessible(page: Page) -> None:
    await page.set_viewport_size(LAPTOP)
    response = await page.goto("/console/sign-in")
    assert response is not None
    assert response.status == 200
    assert await page_problems(page, language="en") == []


@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("role", ROLE_ORDER, ids=[role.value for role in ROLE_ORDER])
async def test_each_roles_pages_are_accessible(
    page: Page,
    live_server: LiveServer,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: Role,
    language: str,
) -> None:
    """In English and in German (whose longer words must not push the layout sideways)."""
    paths = pages_checked_as(role, live_server)
    assert LANDING[role] in paths
    person = await make_person(sessionmaker, role.value, language=language)
    await page.set_viewport_size(LAPTOP)
    await sign_in_in_browser(page, person)
    problems: list[str] = []
    not_there: list[str] = []
    for path in paths:
        response = await page.goto(path)
        assert response is not None
        if response.status == 404:
            not_there.append(path)
            continue
        assert response.status < 500, f"{path} answered {response.status}"
        problems.extend(
            f"{path}: {problem}" for problem in await page_problems(page, language=language)
        )
    if not_there:
        warnings.warn(f"not checked, 404 at run time: {', '.join(not_there)}", stacklevel=1)
    assert len(not_there) < len(paths), "no page of this role exists yet"
    assert problems == [], "\n".join(problems)


async def test_the_page_checks_find_what_is_wrong(page: Page) -> None:
    await page.set_viewport_size(LAPTOP)
    await page.set_content(
        """<!doctype html><html><body>
        <h2>Starts at two</h2><h1>One</h1><h1>Two</h1><h4>Skips</h4>
        <input id="twice" name="q"><select id="twice"></select><button></button>
        <p style="color:#aaa">Pale text</p>
        <div style="width:3000px">wide</div>
        </body></html>"""
    )
    problems = "\n".join(await page_problems(page, language="en"))
    assert "<html lang> is ''" in problems
    assert problems.count("control without an accessible name") == 3
    assert "headings do not start with exactly one h1" in problems
    assert "heading h4 'Skips' skips a level after h1" in problems
    assert "duplicate id 'twice'" in problems
    assert 'contrast 2.32:1 < 4.5:1 for p "Pale text"' in problems
    assert "scrolls sideways" in problems


async def test_the_pages_people_work_on_are_accessible_with_data(
    page: Page,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The auditor's verdict form on a claimed audit, a moderator's audit with its dispute
    form, and the policy POC's dispute with the ruling form: pages with path parameters,
    so only reachable with data."""
    await page.set_viewport_size(LAPTOP)
    judged = await judged_audit(client, sender, sessionmaker, "mod-a")
    moderator_key = await make_key(sessionmaker, "moderator", reviewer_id="mod-a")
    auditor = await make_person(sessionmaker, "qa_auditor")
    assert auditor.reviewer_id is not None
    await set_profile(sessionmaker, auditor.reviewer_id, ["DE"], ["de"])
    await pending_audits(sender, sessionmaker, "mod-b")
    problems: list[str] = []

    await sign_in_in_browser(page, auditor)
    await page.get_by_role("button", name="Claim next audit").click()
    await page.wait_for_url("**/console/workbench/audits/*")
    problems.extend(f"claimed audit: {p}" for p in await page_problems(page, language="en"))

    await page.context.clear_cookies()
    moderator = await make_person(sessionmaker, "moderator", reviewer_id="mod-a")
    await sign_in_in_browser(page, moderator)
    response = await page.goto(f"/console/my-audits/{judged['id']}")
    assert response is not None
    assert response.status == 200
    problems.extend(f"moderator's audit: {p}" for p in await page_problems(page, language="en"))

    disputed = await client.post(
        f"/v1/disagreements/{judged['disagreement_id']}/dispute",
        json={"reason": "satire"},
        headers=auth(moderator_key),
    )
    assert disputed.status_code == 200, disputed.text
    await page.context.clear_cookies()
    await sign_in_in_browser(page, await make_person(sessionmaker, "policy_poc"))
    response = await page.goto(f"/console/arbitration/{judged['disagreement_id']}")
    assert response is not None
    assert response.status == 200
    problems.extend(f"dispute to rule on: {p}" for p in await page_problems(page, language="en"))
    assert problems == [], "\n".join(problems)
