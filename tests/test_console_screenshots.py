"""Screenshots of the console's main pages, in English and German, for the README.

Signed in as each role on a small realistic data set (judged audits, a dispute waiting for
a ruling, audits waiting for an auditor): the sign-in page, each role's landing page and the
auditor's claimed audit are saved at 1366x768 to ``docs/console/<page>-<language>.png``
(overwritten on every run). A page that is not there yet (404) is skipped, and said so.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.console.sign_in import LANDING
from shared.core.auth import Role
from tests.conftest import LiveServer, SignedSender, auth, make_key
from tests.support.analytics import seed_judged
from tests.support.audits import set_profile
from tests.support.console import Person, make_person
from tests.support.console_audits import judged_audit, pending_audits
from tests.support.console_overview import CASES, WINDOW

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "console"
SIZE: ViewportSize = {"width": 1366, "height": 768}
LANGUAGES = ("en", "de")
# The landing page's name in the file name, and the query that shows the seeded data.
PAGES: dict[Role, tuple[str, str]] = {
    Role.QA_AUDITOR: ("workbench", ""),
    Role.MODERATOR: ("my-audits", ""),
    Role.POLICY_POC: ("arbitration", ""),
    Role.MANAGER: ("overview", "?from={from}&to={to}".format(**WINDOW)),
    Role.ADMIN: ("admin-people", ""),
}

_STILL_CHARTS = """() => {
  if (window.Chart) {
    for (const chart of Object.values(Chart.instances)) {
      chart.options.animation = false;
      chart.update('none');
    }
  }
}"""


async def _seed(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: async_sessionmaker[AsyncSession]
) -> dict[Role, Person]:
    """The data the pages show, and one person of each role to show it to."""
    await seed_judged(client, sender, sessionmaker, CASES)
    # A dispute waiting for a policy POC's ruling.
    judged = await judged_audit(client, sender, sessionmaker, "mod-a")
    moderator_key = await make_key(sessionmaker, "moderator", reviewer_id="mod-a")
    disputed = await client.post(
        f"/v1/disagreements/{judged['disagreement_id']}/dispute",
        json={"reason": "The video is satire; the policy allows it."},
        headers=auth(moderator_key),
    )
    assert disputed.status_code == 200, disputed.text
    # Audits waiting for the auditor.
    auditor = await make_person(sessionmaker, "qa_auditor", email="auditor@example.com")
    assert auditor.reviewer_id is not None
    await set_profile(sessionmaker, auditor.reviewer_id, ["DE"], ["de"])
    await pending_audits(sender, sessionmaker, "mod-b", 3)
    return {
        Role.QA_AUDITOR: auditor,
        Role.MODERATOR: await make_person(
            sessionmaker, "moderator", email="moderator@example.com", reviewer_id="mod-a"
        ),
        Role.POLICY_POC: await make_person(sessionmaker, "policy_poc", email="policy@example.com"),
        Role.MANAGER: await make_person(sessionmaker, "manager", email="lead@example.com"),
        Role.ADMIN: await make_person(sessionmaker, "admin", email="admin@example.com"),
    }


async def _new_context(browser: Browser, live_server: LiveServer) -> BrowserContext:
    return await browser.new_context(base_url=live_server.url, viewport=SIZE, locale="en-GB")


async def _shoot(page: Page, name: str, language: str) -> Path:
    await page.wait_for_load_state("networkidle")
    await page.evaluate(_STILL_CHARTS)
    # No caret or focus ring in the pictures.
    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
    path = SCREENSHOTS / f"{name}-{language}.png"
    await page.screenshot(path=str(path), full_page=False, animations="disabled")
    return path


async def _switch_language(page: Page, language: str) -> None:
    """Choose ``language`` in the top bar's language menu (remembered on the person)."""
    current = await page.evaluate("() => document.documentElement.lang")
    if current != language:
        async with page.expect_navigation():
            await page.get_by_label("Sprache" if current == "de" else "Language").select_option(
                language
            )
    assert await page.evaluate("() => document.documentElement.lang") == language


async def test_screenshots_of_the_main_pages_in_english_and_german(
    browser: Browser,
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    people = await _seed(client, sender, sessionmaker)
    saved: list[Path] = []
    skipped: list[str] = []

    context = await _new_context(browser, live_server)
    page = await context.new_page()
    await page.goto("/console/sign-in")
    saved.append(await _shoot(page, "sign-in", "en"))
    await _switch_language(page, "de")
    saved.append(await _shoot(page, "sign-in", "de"))
    await context.close()

    for role, (name, query) in PAGES.items():
        context = await _new_context(browser, live_server)
        page = await context.new_page()
        person = people[role]
        await page.goto("/console/sign-in")
        await page.get_by_label("Email").fill(person.email)
        await page.get_by_label("Password").fill(person.password)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(lambda url: "/console/sign-in" not in url)
        response: Any = await page.goto(LANDING[role] + query)
        if response is None or response.status == 404:
            skipped.append(LANDING[role])
            await context.close()
            continue
        assert response.status == 200, f"{LANDING[role]} answered {response.status}"
        saved.append(await _shoot(page, name, "en"))
        if role is Role.QA_AUDITOR:
            # The auditor's main screen: a claimed audit with the verdict form.
            await page.get_by_role("button", name="Claim next audit").click()
            await page.wait_for_url("**/console/workbench/audits/*")
            saved.append(await _shoot(page, "workbench-audit", "en"))
            await _switch_language(page, "de")
            saved.append(await _shoot(page, "workbench-audit", "de"))
        await _switch_language(page, "de")
        # The language form comes back to the page's path; the query shows the data again.
        await page.goto(LANDING[role] + query)
        saved.append(await _shoot(page, name, "de"))
        await context.close()

    if skipped:
        warnings.warn(f"no screenshot, 404 at run time: {', '.join(skipped)}", stacklevel=1)
    for path in saved:
        # A PNG of the right size, not an empty file.
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n", path
        width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
        assert (width, height) == (SIZE["width"], SIZE["height"]), path
    # Sign-in, each landing page there is, and the auditor's claimed audit: each in 2 languages.
    assert len(saved) == 2 * (
        1 + len(PAGES) - len(skipped) + (LANDING[Role.QA_AUDITOR] not in skipped)
    )
