"""The auditor's workbench over HTTP: claim (blind), verdict, result, the day's figures, and
every way a claim or a verdict can go wrong shown on the page (never a 500)."""

from __future__ import annotations

import httpx
import pytest
from babel.messages.pofile import read_po
from jinja2 import Environment
from playwright.async_api import Page, expect
from sqlalchemy import select, update

from services.audit_api.console.templating import LOCALES_DIR, TEMPLATES_DIR
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.models import Audit, Disagreement, Verdict
from shared.models.base import utcnow
from tests.conftest import LiveServer, SignedSender, auth
from tests.support.audits import Sessions, auditor, claim
from tests.support.console import ConsoleClient, make_person
from tests.support.console_audits import (
    audit_id_in,
    console_auditor,
    pending_audits,
    sampled_audits,
    sign_in_in_browser,
)


async def _claimed(console: ConsoleClient) -> str:
    """Claim through the workbench's button; the claimed audit's id."""
    await console.page("/console/workbench")
    response = await console.post("/console/workbench/claim")
    assert response.status_code == 303, response.text
    return audit_id_in(response.headers["location"])


async def _audit(sessionmaker: Sessions, audit_id: str) -> Audit:
    async with sessionmaker() as session:
        audit = await session.get(Audit, audit_id)
    assert audit is not None
    return audit


async def test_a_claim_is_blind_until_the_verdict_which_then_names_the_moderator(
    live_server: LiveServer, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await pending_audits(
        sender, sessionmaker, "mod-secret-77", metadata={"url": "https://example.test/v"}
    )
    person = await console_auditor(sessionmaker)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        landing = await console.page("/console/workbench")
        assert landing.status_code == 200
        assert ">Claim next audit</button>" in landing.text
        assert 'data-shortcut="n"' in landing.text
        assert "<kbd>n</kbd>" in landing.text

        assert await _claimed(console) == str(audit_id)
        page = await console.page(f"/console/workbench/audits/{audit_id}")
        assert page.status_code == 200
        html = page.text
        assert "mod-secret-77" not in html
        assert "hidden until your verdict is in" in html
        assert "vid-" in html
        assert "hate_speech" in html
        assert "Remove" in html
        assert "https://example.test/v" in html
        assert 'data-shortcut="c"' in html
        assert 'data-shortcut="i"' in html
        assert ">Correct</label>" in html
        assert ">Incorrect</label>" in html
        assert ">Submit verdict</button>" in html
        # Claim next audit is not offered while an audit is held.
        assert ">Claim next audit</button>" not in html
        # The landing page lists the held audit, still blind.
        landing = await console.page("/console/workbench")
        assert f"/console/workbench/audits/{audit_id}" in landing.text
        assert "mod-secret-77" not in landing.text

        submitted = await console.post(
            f"/console/workbench/audits/{audit_id}/verdict",
            data={"outcome": "correct", "expected_action": "approve", "comment": "fine"},
        )
        assert submitted.status_code == 303
        assert submitted.headers["location"] == f"/console/workbench/audits/{audit_id}"
        result = await console.page(submitted.headers["location"])
        assert result.status_code == 200
        assert "mod-secret-77" in result.text
        assert ">Claim next audit</button>" in result.text
        assert ">Submit verdict</button>" not in result.text
        assert 'class="figure">1</span> verdicts given today' in result.text
    async with sessionmaker() as session:
        verdict = await session.scalar(select(Verdict).where(Verdict.audit_id == audit_id))
    assert verdict is not None
    assert verdict.outcome == "correct"
    # The hidden fields of an incorrect verdict are not sent on with a correct one.
    assert verdict.expected_action is None
    assert verdict.comment == "fine"
    assert verdict.auditor_id == person.reviewer_id


async def test_an_incorrect_verdict_records_what_was_expected_and_opens_a_disagreement(
    live_server: LiveServer, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await pending_audits(sender, sessionmaker, "mod-9")
    person = await console_auditor(sessionmaker)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        await _claimed(console)
        await console.page(f"/console/workbench/audits/{audit_id}")
        submitted = await console.post(
            f"/console/workbench/audits/{audit_id}/verdict",
            data={
                "outcome": "incorrect",
                "expected_action": "restrict",
                "expected_labels": "hate_speech, harassment",
                "severity": "minor",
                "comment": "",
            },
        )
        assert submitted.status_code == 303, submitted.text
        result = await console.page(submitted.headers["location"])
        assert "Incorrect" in result.text
        assert "Wrong action" in result.text
        assert "harassment" in result.text
        assert "mod-9" in result.text
    async with sessionmaker() as session:
        verdict = await session.scalar(select(Verdict).where(Verdict.audit_id == audit_id))
        disagreement = await session.scalar(
            select(Disagreement).where(Disagreement.audit_id == audit_id)
        )
    assert verdict is not None
    assert verdict.expected_action == "restrict"
    assert verdict.expected_labels == ["hate_speech", "harassment"]
    assert verdict.severity == "minor"
    assert verdict.error_type == "wrong_action"
    assert verdict.comment is None
    assert disagreement is not None
    assert disagreement.moderator_id == "mod-9"


async def test_bad_verdict_input_is_shown_on_the_form_with_422_and_changes_nothing(
    live_server: LiveServer, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await pending_audits(sender, sessionmaker, "mod-3")
    person = await console_auditor(sessionmaker)
    path = f"/console/workbench/audits/{audit_id}/verdict"
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        await _claimed(console)
        await console.page(f"/console/workbench/audits/{audit_id}")

        no_outcome = await console.post(path, data={})
        assert no_outcome.status_code == 422
        assert "Choose Correct or Incorrect." in no_outcome.text
        assert "mod-3" not in no_outcome.text

        no_severity = await console.post(
            path, data={"outcome": "incorrect", "expected_action": "approve", "comment": "kept"}
        )
        assert no_severity.status_code == 422
        assert "needs a severity" in no_severity.text
        assert 'role="alert"' in no_severity.text
        # What was typed is kept on the form.
        assert ">kept</textarea>" in no_severity.text
        assert '<option value="approve" selected>' in no_severity.text

        bad_label = await console.post(
            path,
            data={
                "outcome": "incorrect",
                "expected_action": "approve",
                "expected_labels": "Not A Code!",
                "severity": "major",
            },
        )
        assert bad_label.status_code == 422
        assert 'id="expected-labels-error"' in bad_label.text
        assert 'aria-invalid="true"' in bad_label.text

        bad_choice = await console.post(
            path, data={"outcome": "incorrect", "expected_action": "nuke", "severity": "major"}
        )
        assert bad_choice.status_code == 422
        assert 'id="expected-action-error"' in bad_choice.text

        # The domain's own 422: expecting exactly the moderator's decision.
        same = await console.post(
            path,
            data={
                "outcome": "incorrect",
                "expected_action": "remove",
                "expected_labels": "hate_speech",
                "severity": "major",
            },
        )
        assert same.status_code == 422
        assert "must expect another decision" in same.text

        too_long = await console.post(path, data={"outcome": "correct", "comment": "x" * 4001})
        assert too_long.status_code == 422
        assert 'id="comment-error"' in too_long.text
    audit = await _audit(sessionmaker, str(audit_id))
    assert audit.status == "claimed"


async def test_nothing_to_claim_is_said_clearly(
    live_server: LiveServer, sessionmaker: Sessions
) -> None:
    person = await console_auditor(sessionmaker)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        await console.page("/console/workbench")
        response = await console.post("/console/workbench/claim")
        assert response.status_code == 303
        assert response.headers["location"] == "/console/workbench?nothing=true"
        page = await console.page(response.headers["location"])
        assert page.status_code == 200
        assert "Nothing to claim right now." in page.text
        assert ">Claim next audit</button>" in page.text


async def test_a_reached_wellbeing_cap_is_shown_and_explains_an_empty_queue(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
) -> None:
    await pending_audits(sender, sessionmaker, "mod-5")
    capped = await client.put(
        "/v1/wellbeing/caps/hate_speech", json={"daily_cap": 0}, headers=auth(admin_key)
    )
    assert capped.status_code == 200, capped.text
    person = await console_auditor(sessionmaker)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        landing = await console.page("/console/workbench")
        assert "Daily caps on sensitive categories" in landing.text
        assert "<code>hate_speech</code>" in landing.text
        assert "Cap reached" in landing.text
        response = await console.post("/console/workbench/claim")
        page = await console.page(response.headers["location"])
        assert "Nothing to claim right now." in page.text
        assert "reached today's cap for: hate_speech" in page.text


async def test_a_verdict_after_the_audit_went_to_another_auditor_is_a_clear_409(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
) -> None:
    [audit_id] = await pending_audits(sender, sessionmaker, "mod-6")
    person = await console_auditor(sessionmaker)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        await _claimed(console)
        await console.page(f"/console/workbench/audits/{audit_id}")
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Audit).where(Audit.id == audit_id).values(lease_expires_at=utcnow())
            )
        other = await auditor(sessionmaker, "aud-other")
        taken = await claim(client, other)
        assert taken.status_code == 200
        assert taken.json()["id"] == str(audit_id)

        late = await console.post(
            f"/console/workbench/audits/{audit_id}/verdict", data={"outcome": "correct"}
        )
        assert late.status_code == 409
        assert "not claimed by you" in late.text
        assert 'role="alert"' in late.text
        assert ">Claim next audit</button>" in late.text
        # Nor can the first auditor open it any more.
        gone = await console.page(f"/console/workbench/audits/{audit_id}")
        assert gone.status_code == 404
    audit = await _audit(sessionmaker, str(audit_id))
    assert audit.status == "claimed"
    assert audit.auditor_id == "aud-other"


async def test_judging_twice_shows_the_result_with_a_409(
    live_server: LiveServer, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await pending_audits(sender, sessionmaker, "mod-8")
    person = await console_auditor(sessionmaker)
    path = f"/console/workbench/audits/{audit_id}/verdict"
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        await _claimed(console)
        await console.page(f"/console/workbench/audits/{audit_id}")
        assert (await console.post(path, data={"outcome": "correct"})).status_code == 303
        again = await console.post(path, data={"outcome": "correct"})
        assert again.status_code == 409
        assert "already has a verdict" in again.text
        assert "mod-8" in again.text


async def test_forms_without_the_csrf_token_are_refused(
    live_server: LiveServer, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await pending_audits(sender, sessionmaker, "mod-4")
    person = await console_auditor(sessionmaker)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        refused = await console.http.post("/console/workbench/claim", data={})
        assert refused.status_code == 403
        wrong = await console.http.post("/console/workbench/claim", data={"csrf_token": "x" * 43})
        assert wrong.status_code == 403
        assert (await _audit(sessionmaker, str(audit_id))).status == "pending"
        await _claimed(console)
        verdict = await console.http.post(
            f"/console/workbench/audits/{audit_id}/verdict", data={"outcome": "correct"}
        )
        assert verdict.status_code == 403
    assert (await _audit(sessionmaker, str(audit_id))).status == "claimed"


async def test_only_auditors_work_at_the_workbench_and_only_on_their_own_audits(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
) -> None:
    [audit_id] = await pending_audits(sender, sessionmaker, "mod-2")
    other = await auditor(sessionmaker, "aud-someone")
    assert (await claim(client, other)).status_code == 200
    moderator = await make_person(sessionmaker, "moderator", reviewer_id="mod-2")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(moderator)
        assert (await console.page("/console/workbench")).status_code == 403
        assert (await console.post("/console/workbench/claim")).status_code == 403
    person = await console_auditor(sessionmaker)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        foreign = await console.page(f"/console/workbench/audits/{audit_id}")
        assert foreign.status_code == 404
        assert "mod-2" not in foreign.text
        assert (await console.page("/console/workbench/audits/not-a-uuid")).status_code == 422
    async with ConsoleClient(live_server.url) as console:
        signed_out = await console.http.get("/console/workbench")
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].startswith("/console/sign-in")


async def test_the_workbench_speaks_german(
    live_server: LiveServer, sender: SignedSender, sessionmaker: Sessions
) -> None:
    await pending_audits(sender, sessionmaker, "mod-1")
    person = await console_auditor(sessionmaker, language="de")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        landing = await console.page("/console/workbench")
        assert "Nächstes Audit übernehmen" in landing.text
        audit_id = await _claimed(console)
        page = await console.page(f"/console/workbench/audits/{audit_id}")
        assert "Urteil abgeben" in page.text
        assert "Richtig" in page.text
        assert "Falsch" in page.text


async def test_browser_an_auditor_claims_with_the_keyboard_and_submits_an_incorrect_verdict(
    page: Page,
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    queue: ArqRedis,
    settings: Settings,
    admin_key: str,
) -> None:
    [audit_id] = await sampled_audits(
        client, sender, sessionmaker, queue, settings, admin_key, "mod-browser-1"
    )
    person = await console_auditor(sessionmaker)
    await sign_in_in_browser(page, person)
    await page.wait_for_url("**/console/workbench")
    await expect(page.get_by_role("button", name="Claim next audit")).to_be_visible()
    await page.keyboard.press("n")
    await page.wait_for_url(f"**/console/workbench/audits/{audit_id}")
    await expect(page.get_by_text("hidden until your verdict is in")).to_be_visible()
    assert "mod-browser-1" not in await page.content()
    await expect(page.get_by_text("hate_speech").first).to_be_visible()

    # c hides the incorrect verdict's fields, i shows them.
    await page.keyboard.press("c")
    await expect(page.get_by_role("radio", name="Correct", exact=True)).to_be_checked()
    await expect(page.get_by_label("Expected action")).to_be_hidden()
    await page.keyboard.press("i")
    await expect(page.get_by_role("radio", name="Incorrect", exact=True)).to_be_checked()
    await page.get_by_label("Expected action").select_option("approve")
    await page.get_by_label("Severity").select_option("major")
    await page.get_by_label("Comment").fill("Satire, clearly labelled.")
    await page.get_by_role("button", name="Submit verdict").click()

    await expect(page.get_by_role("heading", name="Audit result")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("Incorrect")
    await expect(page.get_by_text("Over-enforcement")).to_be_visible()
    await expect(page.get_by_text("mod-browser-1").first).to_be_visible()
    await expect(page.get_by_role("button", name="Claim next audit")).to_be_visible()
    await page.get_by_role("button", name="Claim next audit").click()
    await expect(page.get_by_text("Nothing to claim right now.")).to_be_visible()
    await expect(page.locator(".day-figures .figure")).to_have_text("1")


@pytest.mark.no_db
def test_every_text_of_the_workbench_and_my_audits_has_a_german_translation() -> None:
    translated: set[str] = set()
    for path in (LOCALES_DIR / "de").glob("*.po"):
        with path.open("rb") as po_file:
            translated |= {m.id for m in read_po(po_file) if isinstance(m.id, str) and m.string}
    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    extract = env.extract_translations  # type: ignore[attr-defined]  # added by the extension
    used = {
        message
        for area in ("workbench", "my_audits")
        for path in (TEMPLATES_DIR / area).glob("*.html")
        for _, _, message in extract(path.read_text())
        if isinstance(message, str)
    }
    assert len(used) > 80
    assert sorted(used - translated) == []
