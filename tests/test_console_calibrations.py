"""Console calibration sessions over real HTTP: create, list, label blind, close, results.

The pages call ``shared.calibrations.service`` as ``/v1/calibrations`` does: blind while
open, results once closed, the same roles.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract as extract_jinja
from playwright.async_api import Page, expect
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.console.templating import LOCALES_DIR, TEMPLATES_DIR
from shared.models import CalibrationLabel, CalibrationSession
from tests.conftest import LiveServer
from tests.support.console import Person, make_person
from tests.support.console_a11y import page_problems
from tests.support.console_lead import location, people, rows, signed_in, text_of

ITEMS = "v1, hate_speech\nv2\nv3, no_violation"


def session_form(**overrides: str) -> dict[str, str]:
    form = {
        "title": "Hate speech, week 48",
        "market": "DE",
        "categories": "hate_speech, harassment, no_violation",
        "items": ITEMS,
        "participants": "rev-a, rev-b",
        "deadline": "",
    }
    form.update(overrides)
    return form


async def count_sessions(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(CalibrationSession)) or 0)


async def test_a_manager_creates_a_session_which_is_listed_and_shown(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = await people(sessionmaker, lead="manager")
    async with signed_in(live_server.url, who["lead"]) as console:
        form = await console.page("/console/calibrations/new")
        assert form.status_code == 200
        assert 'for="cal-title"' in form.text
        created = await console.post("/console/calibrations", session_form())
        target = location(created)
        assert target.startswith("/console/calibrations/")
        detail = await console.page(target)
        assert detail.status_code == 200
        assert "Hate speech, week 48" in detail.text
        # The creator (not a participant) sees the golden answers and the progress.
        assert ["v1", "hate_speech", "0"] in rows(detail.text)
        assert ["rev-a", "0 / 3"] in rows(detail.text)
        assert "Close session" in detail.text
        listing = await console.page("/console/calibrations")
        assert rows(listing.text)[0][:5] == ["Hate speech, week 48", "DE", "open", "3", "2"]
        only_closed = await console.page("/console/calibrations?status=closed")
        assert "Hate speech, week 48" not in only_closed.text
    assert await count_sessions(sessionmaker) == 1


async def test_a_bad_session_form_is_shown_again_with_the_reasons_and_nothing_is_stored(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = await people(sessionmaker, lead="manager")
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    async with signed_in(live_server.url, who["lead"]) as console:
        await console.page("/console/calibrations/new")
        one = await console.post("/console/calibrations", session_form(participants="rev-a"))
        assert one.status_code == 422
        assert "at least two participants" in one.text
        assert 'role="alert"' in one.text
        # What was typed stays in the form.
        assert 'value="Hate speech, week 48"' in one.text
        golden = await console.post("/console/calibrations", session_form(items="v1, spam"))
        assert golden.status_code == 422
        assert "not one of the categories" in golden.text
        # Refused by the domain function (after the form's checks): nothing stays either.
        late = await console.post("/console/calibrations", session_form(deadline=past))
        assert late.status_code == 422
        assert "must be in the future" in late.text
        bad_date = await console.post("/console/calibrations", session_form(deadline="soon"))
        assert bad_date.status_code == 422
    assert await count_sessions(sessionmaker) == 0


async def test_participants_label_blind_and_everyone_sees_the_labels_after_close(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = await people(
        sessionmaker,
        lead="manager",
        a=("qa_auditor", "rev-a"),
        b=("moderator", "rev-b"),
    )
    async with (
        signed_in(live_server.url, who["lead"]) as lead,
        signed_in(live_server.url, who["a"]) as a,
        signed_in(live_server.url, who["b"]) as b,
    ):
        await lead.page("/console/calibrations/new")
        target = location(await lead.post("/console/calibrations", session_form()))
        # The participant's own page: a label form, the golden answers hidden.
        mine = await a.page(target)
        assert 'name="label-0"' in mine.text
        assert "<td>hate_speech</td>" not in mine.text
        saved = await a.post(
            f"{target}/labels", {"label-0": "harassment", "label-1": "no_violation"}
        )
        assert location(saved) == f"{target}?saved=true"
        again = await a.page(location(saved))
        assert "Your labels are saved." in again.text
        assert '<option value="harassment" selected>' in again.text
        # Another participant and the manager do not see rev-a's labels while it is open.
        other = await b.page(target)
        assert "selected>harassment" not in other.text
        assert "<td>harassment</td>" not in other.text
        overseer = await lead.page(target)
        assert "<td>harassment</td>" not in overseer.text
        assert ["rev-a", "2 / 3"] in rows(overseer.text)
        # Results wait for the close.
        early = await lead.page(f"{target}/results")
        assert early.status_code == 409
        await b.post(f"{target}/labels", {"label-0": "hate_speech", "label-1": "no_violation"})
        closed = await lead.post(f"{target}/close")
        assert location(closed) == f"{target}/results"
        results = await lead.page(f"{target}/results")
        assert results.status_code == 200
        # v1: one harassment and one hate_speech (50 %, below 0.6): flagged; v2 agreed.
        flagged = rows(results.text, "flagged-items")
        assert [row[0] for row in flagged] == ["v1"]
        assert flagged[0][1:4] == ["harassment", "50.0%", "hate_speech"]
        assert "Krippendorff" in results.text
        # Closed: everyone's labels, to a participant too.
        after = await b.page(target)
        assert ["v1", "hate_speech", "2", "hate_speech", "harassment", "hate_speech"] in rows(
            after.text
        )
        # Labels freeze at close: the form is gone, and posting is refused.
        assert 'name="label-0"' not in after.text
        refused = await a.post(f"{target}/labels", {"label-0": "hate_speech"})
        assert refused.status_code == 409


async def test_a_label_outside_the_categories_is_refused_on_the_form_and_nothing_is_stored(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = await people(sessionmaker, lead="manager", a=("qa_auditor", "rev-a"))
    async with (
        signed_in(live_server.url, who["lead"]) as lead,
        signed_in(live_server.url, who["a"]) as a,
    ):
        await lead.page("/console/calibrations/new")
        target = location(await lead.post("/console/calibrations", session_form()))
        await a.page(target)
        outside = await a.post(f"{target}/labels", {"label-0": "hate_speech", "label-1": "spam"})
        assert outside.status_code == 422
        assert "not one of the session" in outside.text
        malformed = await a.post(f"{target}/labels", {"label-0": "Not A Code"})
        assert malformed.status_code == 422
        empty = await a.post(f"{target}/labels", {"label-0": ""})
        assert empty.status_code == 422
        assert "at least one item" in empty.text
    async with sessionmaker() as session:
        stored = await session.scalar(select(func.count()).select_from(CalibrationLabel))
    assert stored == 0


async def test_roles_and_bystanders_are_refused_as_the_api_refuses_them(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = await people(
        sessionmaker,
        lead="manager",
        a=("qa_auditor", "rev-a"),
        outsider=("qa_auditor", "rev-z"),
        moderator=("moderator", "rev-m"),
        scoped=("manager", None),
    )
    async with signed_in(live_server.url, who["lead"]) as lead:
        await lead.page("/console/calibrations/new")
        target = location(await lead.post("/console/calibrations", session_form()))
    async with signed_in(live_server.url, who["moderator"]) as moderator:
        # Moderators do not create sessions (the API's roles).
        assert (await moderator.page("/console/calibrations/new")).status_code == 403
        before = await count_sessions(sessionmaker)
        created = await moderator.post("/console/calibrations", session_form())
        assert created.status_code == 403
        assert await count_sessions(sessionmaker) == before
        # Not a participant, not the creator: the session is not theirs to see.
        assert (await moderator.page(target)).status_code == 403
        listing = await moderator.page("/console/calibrations")
        assert "Hate speech, week 48" not in listing.text
    async with signed_in(live_server.url, who["outsider"]) as outsider:
        labels = await outsider.post(f"{target}/labels", {"label-0": "hate_speech"})
        assert labels.status_code == 403
    async with signed_in(live_server.url, who["a"]) as a:
        # A participant may not close the session: only its creator, managers and admins.
        page = await a.page(target)
        assert "Close session" not in page.text
        assert (await a.post(f"{target}/close")).status_code == 403
    async with sessionmaker() as session:
        status = await session.scalar(select(CalibrationSession.status))
    assert status == "open"
    missing = f"/console/calibrations/{uuid.uuid4()}"
    async with signed_in(live_server.url, who["lead"]) as lead:
        assert (await lead.page(missing)).status_code == 404


async def test_writes_without_the_csrf_token_are_refused(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = await people(sessionmaker, lead="manager", a=("qa_auditor", "rev-a"))
    async with signed_in(live_server.url, who["lead"]) as lead:
        await lead.page("/console/calibrations/new")
        forged = await lead.http.post("/console/calibrations", data=session_form())
        assert forged.status_code == 403
        assert await count_sessions(sessionmaker) == 0
        target = location(await lead.post("/console/calibrations", session_form()))
        close = await lead.http.post(f"{target}/close", data={"csrf_token": "forged"})
        assert close.status_code == 403
    async with signed_in(live_server.url, who["a"]) as a:
        labels = await a.http.post(f"{target}/labels", data={"label-0": "hate_speech"})
        assert labels.status_code == 403
    async with sessionmaker() as session:
        assert await session.scalar(select(CalibrationSession.status)) == "open"
        assert await session.scalar(select(func.count()).select_from(CalibrationLabel)) == 0


async def test_the_manager_writes_a_note_on_a_flagged_item(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = await people(
        sessionmaker, lead="manager", a=("qa_auditor", "rev-a"), b=("qa_auditor", "rev-b")
    )
    async with (
        signed_in(live_server.url, who["lead"]) as lead,
        signed_in(live_server.url, who["a"]) as a,
        signed_in(live_server.url, who["b"]) as b,
    ):
        await lead.page("/console/calibrations/new")
        target = location(await lead.post("/console/calibrations", session_form()))
        await a.page(target)
        await a.post(f"{target}/labels", {"label-0": "harassment"})
        await b.page(target)
        await b.post(f"{target}/labels", {"label-0": "harassment"})
        await lead.page(target)
        await lead.post(f"{target}/close")
        results = await lead.page(f"{target}/results")
        # Both said harassment, the golden answer is hate_speech: flagged.
        assert [row[0] for row in rows(results.text, "flagged-items")] == ["v1"]
        noted = await lead.post(
            f"{target}/notes", {"content_id": "v1", "note": "Reclaimed slur: see policy 4.2"}
        )
        assert location(noted) == f"{target}/results"
        shown = await lead.page(f"{target}/results")
        assert "Reclaimed slur: see policy 4.2" in text_of(shown.text)
        # A participant reads the note but has no form to change it.
        theirs = await a.page(f"{target}/results")
        assert "Reclaimed slur: see policy 4.2" in theirs.text
        assert 'name="note"' not in theirs.text
        assert (
            await a.post(f"{target}/notes", {"content_id": "v1", "note": "x"})
        ).status_code == 403


async def browser_sign_in(page: Page, person: Person) -> None:
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/sign-in" not in url)


async def test_in_the_browser_participants_label_blind_and_the_manager_closes_and_reads(
    page: Page, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    who = await people(
        sessionmaker, lead="manager", a=("qa_auditor", "rev-a"), b=("policy_poc", "rev-b")
    )
    # The manager opens a session from the form.
    await browser_sign_in(page, who["lead"])
    await page.get_by_role("link", name="Calibrations").click()
    await page.get_by_role("link", name="New calibration session").click()
    await page.get_by_label("Title").fill("Hate speech, week 48")
    await page.get_by_label("Market").fill("DE")
    await page.get_by_label("Categories").fill("hate_speech, harassment, no_violation")
    await page.get_by_label("Items").fill("v1, hate_speech\nv2")
    await page.get_by_label("Participants").fill("rev-a, rev-b")
    await page.get_by_role("button", name="Open session").click()
    await expect(page.get_by_role("heading", name="Hate speech, week 48")).to_be_visible()
    session_url = page.url
    await page.get_by_role("button", name="Sign out").click()

    # Each participant labels blind: their own form, nobody else's labels.
    problems: list[str] = []
    for person, first in ((who["a"], "harassment"), (who["b"], "hate_speech")):
        await browser_sign_in(page, person)
        await page.goto(session_url)
        await expect(page.get_by_role("cell", name="harassment", exact=True)).to_have_count(0)
        problems += [f"label form: {p}" for p in await page_problems(page, language="en")]
        await page.get_by_label("v1").select_option(first)
        await page.get_by_label("v2").select_option("no_violation")
        await page.get_by_role("button", name="Save labels").click()
        await expect(page.get_by_role("status")).to_contain_text("Your labels are saved.")
        await expect(page.get_by_label("v1")).to_have_value(first)
        await page.get_by_role("button", name="Sign out").click()

    # The manager sees the progress but no label, closes, and reads the results.
    await browser_sign_in(page, who["lead"])
    await page.goto(session_url)
    await expect(page.get_by_role("row", name="rev-a 2 / 2")).to_be_visible()
    await expect(page.get_by_role("cell", name="harassment", exact=True)).to_have_count(0)
    problems += [f"open session: {p}" for p in await page_problems(page, language="en")]
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_role("button", name="Close session").click()
    await page.wait_for_url("**/results")
    flagged = page.locator("#flagged-items tbody tr")
    await expect(flagged).to_have_count(1)
    await expect(flagged.first).to_contain_text("v1")
    await expect(page.locator("#agreement")).to_contain_text("Krippendorff's alpha")
    problems += [f"results: {p}" for p in await page_problems(page, language="en")]
    await page.get_by_role("link", name="Everyone's labels").click()
    await expect(page.get_by_role("cell", name="harassment", exact=True)).to_have_count(1)
    # Accessible on the way: names on every control, headings in order, Tab reaches all, AA.
    assert problems == [], "\n".join(problems)


@pytest.mark.no_db
def test_every_string_of_the_lead_pages_has_a_german_translation() -> None:
    catalogs: dict[str, str] = {}
    for po_file in sorted((LOCALES_DIR / "de").glob("*.po")):
        with po_file.open("rb") as opened:
            for message in read_po(opened):
                if isinstance(message.id, str) and isinstance(message.string, str):
                    catalogs[message.id] = message.string
    wanted: set[str] = set()
    for area in ("calibrations", "training", "escalations"):
        for template in sorted((TEMPLATES_DIR / area).glob("*.html")):
            with template.open("rb") as opened:
                for _, _, text, _ in extract_jinja(opened, ("_",), [], {}):
                    if isinstance(text, str):
                        wanted.add(text)
    assert len(wanted) > 200
    assert sorted(wanted - set(catalogs)) == []


async def test_the_pages_speak_german_to_a_german_lead(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    lead = await make_person(sessionmaker, "manager", language="de")
    a = await make_person(sessionmaker, "qa_auditor", reviewer_id="rev-a")
    b = await make_person(sessionmaker, "qa_auditor", reviewer_id="rev-b")
    async with signed_in(live_server.url, lead) as console:
        await console.page("/console/calibrations/new")
        target = location(await console.post("/console/calibrations", session_form()))
        for person, first in ((a, "harassment"), (b, "hate_speech")):
            async with signed_in(live_server.url, person) as participant:
                await participant.page(target)
                await participant.post(f"{target}/labels", {"label-0": first})
        listing = await console.page("/console/calibrations")
        assert "<h1>Kalibrierungsrunden</h1>" in listing.text
        await console.page(target)
        await console.post(f"{target}/close")
        results = await console.page(f"{target}/results")
        assert "Markierte Elemente" in results.text
        assert "weniger als 60 % seiner Labels" in results.text
        [flagged] = rows(results.text, "flagged-items")
        assert flagged[:3] == ["v1", "harassment", "50,0 %"]
        # Babel's German percent: a comma and a non-breaking space.
        assert "50,0\xa0%" in results.text


async def test_an_auditor_creates_and_closes_their_own_session_and_markets_scope_the_rest(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    creator = await make_person(sessionmaker, "qa_auditor", reviewer_id="qa-lead")
    a = await make_person(sessionmaker, "qa_auditor", reviewer_id="rev-a")
    french = await make_person(sessionmaker, "manager", markets=["FR"])
    async with signed_in(live_server.url, creator) as console:
        await console.page("/console/calibrations/new")
        target = location(await console.post("/console/calibrations", session_form()))
        page = await console.page(target)
        # The creator, not a participant: no label form, but "Close session".
        assert 'name="label-0"' not in page.text
        assert "Close session" in page.text
    async with signed_in(live_server.url, french) as console:
        # Another market's session is as unknown as a missing one; the list leaves it out.
        assert (await console.page(target)).status_code == 404
        listing = await console.page("/console/calibrations")
        assert "Hate speech, week 48" not in listing.text
        await console.page("/console/calibrations/new")
        # A market-scoped manager opens sessions only in its markets.
        refused = await console.post("/console/calibrations", session_form())
        assert refused.status_code == 403
    # Past the deadline the participant's form is gone and a late post is refused.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(CalibrationSession).values(deadline=datetime.now(UTC) - timedelta(minutes=1))
        )
    async with signed_in(live_server.url, a) as console:
        page = await console.page(target)
        assert 'name="label-0"' not in page.text
        late = await console.post(f"{target}/labels", {"label-0": "hate_speech"})
        assert late.status_code == 409
        assert "deadline has passed" in late.text
    async with signed_in(live_server.url, creator) as console:
        await console.page(target)
        assert location(await console.post(f"{target}/close")) == f"{target}/results"
    assert await count_sessions(sessionmaker) == 1
