"""The moderator's audits over HTTP: the list (paged) and accuracy with its interval, an
audit's detail with its disagreement, the dispute within the window, and nobody else's."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from playwright.async_api import Page, expect
from sqlalchemy import select, update

from shared.models import Disagreement
from shared.models.base import utcnow
from tests.conftest import LiveServer, SignedSender, auth, make_key
from tests.support.audits import Sessions, auditor, drain
from tests.support.console import ConsoleClient, make_person
from tests.support.console_audits import (
    console_moderator,
    judged_audit,
    pending_audits,
    sign_in_in_browser,
)

_ROW_LINK = re.compile(r'href="/console/my-audits/([0-9a-f-]{36})"')


async def _disagreement(sessionmaker: Sessions, audit_id: str) -> Disagreement:
    async with sessionmaker() as session:
        found = await session.scalar(select(Disagreement).where(Disagreement.audit_id == audit_id))
    assert found is not None
    return found


async def test_my_audits_lists_my_verdicts_and_my_accuracy_with_its_interval(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
) -> None:
    person = await console_moderator(sessionmaker)
    assert person.reviewer_id is not None
    wrong = await judged_audit(client, sender, sessionmaker, person.reviewer_id)
    right = await judged_audit(client, sender, sessionmaker, person.reviewer_id, outcome="correct")
    others = await judged_audit(client, sender, sessionmaker, "mod-someone-else")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        page = await console.page("/console/my-audits")
        assert page.status_code == 200
        listed = set(_ROW_LINK.findall(page.text))
        assert listed == {wrong["id"], right["id"]}
        assert others["id"] not in page.text
        assert "mod-someone-else" not in page.text
        # The accuracy report's own numbers: 1 of 2, Wilson interval 9.5 % to 90.5 %.
        assert "1 of 2 audited decisions correct" in page.text
        assert "50.0%" in page.text
        assert "95 % interval: 9.5% to 90.5%" in page.text
        assert "Over-enforcement" in page.text


async def test_my_audits_pages_with_the_shared_cursor(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
) -> None:
    person = await console_moderator(sessionmaker)
    assert person.reviewer_id is not None
    ids = await pending_audits(sender, sessionmaker, person.reviewer_id, 27)
    judged = await drain(client, await auditor(sessionmaker, "aud-pager"))
    assert len(judged) == 27
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        first = await console.page("/console/my-audits")
        on_first = _ROW_LINK.findall(first.text)
        assert len(on_first) == 25
        found = re.search(r'href="(/console/my-audits\?cursor=[^"]+)" rel="next"', first.text)
        assert found is not None
        second = await console.page(found.group(1).replace("&amp;", "&"))
        assert second.status_code == 200
        on_second = _ROW_LINK.findall(second.text)
        assert len(on_second) == 2
        assert set(on_first) | set(on_second) == {str(audit_id) for audit_id in ids}
        assert 'rel="next"' not in second.text
        assert ">First page</a>" in second.text
        forged = await console.page("/console/my-audits?cursor=bm90LWEtY3Vyc29y")
        assert forged.status_code == 400


async def test_a_moderator_disputes_a_verdict_within_the_window(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
) -> None:
    person = await console_moderator(sessionmaker)
    assert person.reviewer_id is not None
    audit = await judged_audit(client, sender, sessionmaker, person.reviewer_id)
    path = f"/console/my-audits/{audit['id']}"
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        detail = await console.page(path)
        assert detail.status_code == 200
        assert "satire, not hate" in detail.text
        assert "Over-enforcement" in detail.text
        assert ">Open</strong>" in detail.text
        assert f'action="{path}/dispute"' in detail.text
        assert ">Dispute verdict</button>" in detail.text

        blank = await console.post(f"{path}/dispute", data={"reason": "   "})
        assert blank.status_code == 422
        assert 'id="reason-error"' in blank.text
        assert (await _disagreement(sessionmaker, audit["id"])).status == "open"

        disputed = await console.post(
            f"{path}/dispute", data={"reason": "The video is a news report."}
        )
        assert disputed.status_code == 303
        assert disputed.headers["location"] == path
        after = await console.page(path)
        assert ">Disputed</strong>" in after.text
        assert "The video is a news report." in after.text
        assert ">Dispute verdict</button>" not in after.text
        assert "a policy expert will rule on it" in after.text

        again = await console.post(f"{path}/dispute", data={"reason": "once more"})
        assert again.status_code == 409
        assert "disputed already" in again.text
    stored = await _disagreement(sessionmaker, audit["id"])
    assert stored.status == "disputed"
    assert stored.dispute_reason == "The video is a news report."


async def test_a_closed_window_offers_no_dispute_and_refuses_one(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
) -> None:
    person = await console_moderator(sessionmaker)
    assert person.reviewer_id is not None
    audit = await judged_audit(client, sender, sessionmaker, person.reviewer_id)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Disagreement)
            .where(Disagreement.audit_id == audit["id"])
            .values(dispute_deadline=utcnow() - timedelta(minutes=1))
        )
    path = f"/console/my-audits/{audit['id']}"
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        detail = await console.page(path)
        assert detail.status_code == 200
        assert "The dispute window closed at" in detail.text
        assert f'action="{path}/dispute"' not in detail.text
        late = await console.post(f"{path}/dispute", data={"reason": "too late?"})
        assert late.status_code == 409
        assert "dispute window closed" in late.text
    assert (await _disagreement(sessionmaker, audit["id"])).status == "open"


async def test_a_moderator_cannot_open_or_dispute_another_moderators_audit(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
) -> None:
    person = await console_moderator(sessionmaker)
    other = await judged_audit(client, sender, sessionmaker, "mod-neighbour")
    path = f"/console/my-audits/{other['id']}"
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        opened = await console.page(path)
        assert opened.status_code == 404
        assert "mod-neighbour" not in opened.text
        assert "satire" not in opened.text
        await console.page("/console/my-audits")
        disputed = await console.post(f"{path}/dispute", data={"reason": "not mine"})
        assert disputed.status_code == 404
    assert (await _disagreement(sessionmaker, other["id"])).status == "open"
    # The API agrees: the same audit is a 404 for the same reviewer's key.
    key = await make_key(sessionmaker, "moderator", reviewer_id=person.reviewer_id)
    response = await client.get(f"/v1/audits/{other['id']}", headers=auth(key))
    assert response.status_code == 404


async def test_the_dispute_form_needs_the_csrf_token_and_the_moderator_role(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
) -> None:
    person = await console_moderator(sessionmaker)
    assert person.reviewer_id is not None
    audit = await judged_audit(client, sender, sessionmaker, person.reviewer_id)
    path = f"/console/my-audits/{audit['id']}"
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        await console.page(path)
        refused = await console.http.post(f"{path}/dispute", data={"reason": "no token"})
        assert refused.status_code == 403
    assert (await _disagreement(sessionmaker, audit["id"])).status == "open"
    qa = await make_person(sessionmaker, "qa_auditor")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(qa)
        assert (await console.page("/console/my-audits")).status_code == 403
        assert (await console.page(path)).status_code == 403


async def test_my_audits_speaks_german(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
) -> None:
    person = await console_moderator(sessionmaker, language="de")
    assert person.reviewer_id is not None
    audit = await judged_audit(client, sender, sessionmaker, person.reviewer_id)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        page = await console.page("/console/my-audits")
        assert "Meine Genauigkeit" in page.text
        detail = await console.page(f"/console/my-audits/{audit['id']}")
        assert "Urteil anfechten" in detail.text


async def test_browser_a_moderator_disputes_a_verdict(
    page: Page, client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    person = await console_moderator(sessionmaker)
    assert person.reviewer_id is not None
    audit = await judged_audit(client, sender, sessionmaker, person.reviewer_id)
    await sign_in_in_browser(page, person)
    await page.wait_for_url("**/console/my-audits")
    await expect(page.get_by_role("heading", name="My accuracy")).to_be_visible()
    await expect(page.get_by_text("0 of 1 audited decisions correct")).to_be_visible()
    await page.get_by_role("link", name="Open").first.click()
    await page.wait_for_url(f"**/console/my-audits/{audit['id']}")
    await expect(page.get_by_text("satire, not hate")).to_be_visible()
    await page.get_by_label("Why was your decision right?").fill("It is a news report.")
    await page.get_by_role("button", name="Dispute verdict").click()
    await page.wait_for_url(f"**/console/my-audits/{audit['id']}")
    await expect(page.get_by_text("Disputed", exact=True).first).to_be_visible()
    await expect(page.get_by_text("It is a news report.").first).to_be_visible()
    await expect(page.get_by_role("button", name="Dispute verdict")).to_have_count(0)
    assert (await _disagreement(sessionmaker, audit["id"])).status == "disputed"
