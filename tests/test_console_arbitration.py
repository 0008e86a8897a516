"""The policy POC's arbitration inbox, a dispute's page and the ruling form, over real HTTP.

Disputes are made the API's way (``tests/support/console_policy.py``): an incorrect
verdict's disagreement, disputed by its moderator with their own key.
"""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import LiveServer, SignedSender
from tests.support.console import ConsoleClient, make_person
from tests.support.console_a11y import page_problems
from tests.support.console_policy import disputed_case
from tests.support.disagreements import new_case, state_of

Sessionmaker = async_sessionmaker[AsyncSession]


def listed_ids(html: str) -> list[str]:
    """The disagreement ids the inbox links to, in page order."""
    return re.findall(r'href="/console/arbitration/([0-9a-f-]{36})"', html)


async def test_the_inbox_lists_the_disputes_of_the_pocs_markets_oldest_first(
    live_server: LiveServer,
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    first = await disputed_case(sender, client, sessionmaker, 1)
    second = await disputed_case(sender, client, sessionmaker, 2, moderator_id="mod-7")
    french = await disputed_case(sender, client, sessionmaker, 3, market="FR")
    undisputed = await new_case(sender, sessionmaker, 4)
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        response = await console.page("/console/arbitration")
    assert response.status_code == 200
    ids = listed_ids(response.text)
    assert ids == [str(first.disagreement_id), str(second.disagreement_id)]
    assert str(french.disagreement_id) not in response.text
    assert str(undisputed.disagreement_id) not in response.text
    assert "Review and rule" in response.text


async def test_a_poc_of_another_market_neither_sees_nor_opens_nor_rules_a_dispute(
    live_server: LiveServer,
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    german = await disputed_case(sender, client, sessionmaker, 1)
    poc = await make_person(sessionmaker, "policy_poc", markets=["FR"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        inbox = await console.page("/console/arbitration")
        assert listed_ids(inbox.text) == []
        assert "No dispute is waiting" in inbox.text
        opened = await console.page(f"/console/arbitration/{german.disagreement_id}")
        assert opened.status_code == 404
        ruled = await console.post(
            f"/console/arbitration/{german.disagreement_id}/ruling",
            {"outcome": "overturned", "note": "Not mine to rule."},
        )
        assert ruled.status_code == 404
    disagreement, _, _ = await state_of(sessionmaker, german)
    assert disagreement.status == "disputed"


async def test_the_dispute_page_shows_decision_verdict_and_reason_and_a_ruling_ends_it(
    live_server: LiveServer,
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    case = await disputed_case(sender, client, sessionmaker, 1, reason="It is a news clip.")
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        detail = await console.page(f"/console/arbitration/{case.disagreement_id}")
        assert detail.status_code == 200
        text = detail.text
        assert "vid-1" in text  # the decision's content
        assert "hate_speech" in text  # its labels
        assert "over_enforcement" in text  # the auditor's verdict
        assert "It is a news clip." in text  # the moderator's reason
        assert 'name="outcome" value="overturned"' in text
        ruled = await console.post(
            f"/console/arbitration/{case.disagreement_id}/ruling",
            {"outcome": "overturned", "note": "News reporting is allowed."},
        )
        assert ruled.status_code == 303
        assert ruled.headers["location"] == "/console/arbitration?ruled=overturned"
        inbox = await console.page(ruled.headers["location"])
        assert "the verdict was overturned" in inbox.text
        assert listed_ids(inbox.text) == []
        # The dispute's page now shows the ruling and no form.
        after = await console.page(f"/console/arbitration/{case.disagreement_id}")
        assert "News reporting is allowed." in after.text
        assert poc.email in after.text  # who ruled, by their e-mail address
        assert 'name="outcome"' not in after.text
        # Ruling again is refused: the dispute is resolved already.
        again = await console.post(
            f"/console/arbitration/{case.disagreement_id}/ruling",
            {"outcome": "upheld", "note": "Second thoughts."},
        )
        assert again.status_code == 409
        assert "resolved already" in again.text
    disagreement, verdict, _ = await state_of(sessionmaker, case)
    assert disagreement.status == "overturned"
    assert disagreement.resolution_note == "News reporting is allowed."
    assert verdict.effective_outcome == "correct"


async def test_a_ruling_without_outcome_or_rationale_is_shown_again_and_nothing_is_stored(
    live_server: LiveServer,
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    case = await disputed_case(sender, client, sessionmaker, 1)
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    url = f"/console/arbitration/{case.disagreement_id}/ruling"
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        blank = await console.post(url, {"outcome": "upheld", "note": "   "})
        assert blank.status_code == 422
        assert "Give the rationale of your ruling." in blank.text
        assert 'value="upheld" required checked' in blank.text  # the choice is kept
        unknown = await console.post(url, {"outcome": "maybe", "note": "Unsure."})
        assert unknown.status_code == 422
        assert "Choose an outcome." in unknown.text
        assert "Unsure." in unknown.text
    disagreement, _, changes = await state_of(sessionmaker, case)
    assert disagreement.status == "disputed"
    assert changes == 2


async def test_a_ruling_without_the_csrf_token_is_refused(
    live_server: LiveServer,
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    case = await disputed_case(sender, client, sessionmaker, 1)
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        refused = await console.http.post(
            f"/console/arbitration/{case.disagreement_id}/ruling",
            data={"outcome": "overturned", "note": "No token."},
        )
        assert refused.status_code == 403
    disagreement, _, _ = await state_of(sessionmaker, case)
    assert disagreement.status == "disputed"


async def test_an_admin_reads_the_inbox_but_only_arbiters_rule_and_moderators_stay_out(
    live_server: LiveServer,
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    case = await disputed_case(sender, client, sessionmaker, 1)
    admin = await make_person(sessionmaker, "admin")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(admin)
        inbox = await console.page("/console/arbitration")
        assert listed_ids(inbox.text) == [str(case.disagreement_id)]
        detail = await console.page(f"/console/arbitration/{case.disagreement_id}")
        assert detail.status_code == 200
        assert 'name="outcome"' not in detail.text
        refused = await console.post(
            f"/console/arbitration/{case.disagreement_id}/ruling",
            {"outcome": "upheld", "note": "Admins do not arbitrate."},
        )
        assert refused.status_code == 403
    moderator = await make_person(sessionmaker, "moderator", reviewer_id="mod-42")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(moderator)
        assert (await console.page("/console/arbitration")).status_code == 403
    disagreement, _, _ = await state_of(sessionmaker, case)
    assert disagreement.status == "disputed"


async def test_a_manager_finds_the_inbox_in_the_menu_and_may_rule_as_the_api_allows(
    live_server: LiveServer,
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    case = await disputed_case(sender, client, sessionmaker, 1)
    manager = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        inbox = await console.page("/console/arbitration")
        assert 'href="/console/arbitration" aria-current="page"' in inbox.text
        assert listed_ids(inbox.text) == [str(case.disagreement_id)]
        ruled = await console.post(
            f"/console/arbitration/{case.disagreement_id}/ruling",
            {"outcome": "upheld", "note": "The clip shows no news context."},
        )
        assert ruled.status_code == 303
    disagreement, verdict, _ = await state_of(sessionmaker, case)
    assert disagreement.status == "upheld"
    assert verdict.effective_outcome == "incorrect"


async def test_the_inbox_and_the_ruling_form_speak_german(
    live_server: LiveServer,
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    case = await disputed_case(sender, client, sessionmaker, 1)
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"], language="de")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        inbox = await console.page("/console/arbitration")
        assert "Prüfen und entscheiden" in inbox.text
        detail = await console.page(f"/console/arbitration/{case.disagreement_id}")
        assert "Über diesen Einspruch entscheiden" in detail.text
        assert "Entscheid speichern" in detail.text
        assert "angefochten" in detail.text  # the status, translated


async def test_a_poc_rules_on_a_dispute_in_the_browser(
    page: Page,
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    case = await disputed_case(sender, client, sessionmaker, 1, reason="It is a news clip.")
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(poc.email)
    await page.get_by_label("Password").fill(poc.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/arbitration")
    assert await page_problems(page, language="en") == []  # the inbox with a dispute in it
    inbox_link = page.get_by_role("link", name=f"Review and rule {case.disagreement_id}")
    await inbox_link.click()
    dispute = page.get_by_role("region", name="The moderator's dispute")
    await expect(dispute).to_contain_text("It is a news clip.")
    assert await page_problems(page, language="en") == []  # the dispute and its form
    await page.get_by_label("Overturn: the decision counts as correct").check()
    await page.get_by_label("Rationale").fill("News reporting is allowed.")
    await page.get_by_role("button", name="Record ruling").click()
    await page.wait_for_url("**/console/arbitration?ruled=overturned")
    await expect(page.get_by_role("status")).to_contain_text("the verdict was overturned")
    await expect(page.get_by_text("No dispute is waiting for a ruling.")).to_be_visible()
    await expect(inbox_link).to_have_count(0)
    disagreement, verdict, _ = await state_of(sessionmaker, case)
    assert disagreement.status == "overturned"
    assert verdict.effective_outcome == "correct"
