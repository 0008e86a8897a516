"""Policy updates and policy questions in the console, over real HTTP (and one browser test:
a POC writes and publishes an update).

Every check of what was stored goes through the API (``/v1/policy-updates``,
``/v1/policy-questions``): the console must write exactly what the API would.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import LiveServer, auth, make_key
from tests.support.console import ConsoleClient, make_person
from tests.support.console_a11y import page_problems
from tests.support.console_policy import api_update, reviewer_profile

Sessionmaker = async_sessionmaker[AsyncSession]


def update_form(**overrides: str) -> dict[str, str]:
    form = {
        "title_en": "Satire of public figures",
        "summary_en": "Satire is allowed unless it targets private persons.",
        "body_en": "Politicians may be mocked. Private persons may not.",
        "title_de": "Satire über Personen des öffentlichen Lebens",
        "summary_de": "Satire ist erlaubt, außer sie zielt auf Privatpersonen.",
        "body_de": "Politiker dürfen verspottet werden. Privatpersonen nicht.",
        "policy_codes": "satire, hate_speech",
        "markets": "de",
        "effective_at": "2030-01-01T09:00",
    }
    form.update(overrides)
    return form


async def api_updates(client: httpx.AsyncClient, admin_key: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/policy-updates", headers=auth(admin_key))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def api_questions(client: httpx.AsyncClient, admin_key: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/policy-questions", headers=auth(admin_key))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def update_id_of(location: str) -> str:
    found = re.search(r"/console/policy-updates/([0-9a-f-]{36})", location)
    assert found is not None, location
    return found.group(1)


# --- policy updates --------------------------------------------------------------------------


async def test_a_poc_writes_a_draft_in_two_languages_edits_and_publishes_it(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        form = await console.page("/console/policy-updates/new")
        assert form.status_code == 200
        assert 'name="markets" required value="DE"' in form.text  # the POC's markets
        saved = await console.post("/console/policy-updates/new", update_form())
        assert saved.status_code == 303, saved.text
        update_id = update_id_of(saved.headers["location"])
        stored = (
            await client.get(f"/v1/policy-updates/{update_id}", headers=auth(admin_key))
        ).json()
        assert stored["status"] == "draft"
        assert stored["language"] == "en"
        assert stored["title"] == "Satire of public figures"
        assert stored["translations"]["de"]["title"].startswith("Satire über")
        assert stored["policy_codes"] == ["satire", "hate_speech"]
        assert stored["markets"] == ["DE"]
        assert stored["effective_at"].startswith("2030-01-01T09:00:00")

        draft = await console.page(saved.headers["location"])
        assert "The draft is saved." in draft.text
        assert poc.email in draft.text  # the author, by their e-mail address
        assert "Politiker dürfen verspottet werden." in draft.text
        assert "data-confirm=" in draft.text

        edit = await console.page(f"/console/policy-updates/{update_id}/edit")
        assert 'value="Satire of public figures"' in edit.text
        changed = await console.post(
            f"/console/policy-updates/{update_id}/edit",
            update_form(title_en="Satire of politicians", title_de="", summary_de="", body_de=""),
        )
        assert changed.status_code == 303, changed.text
        stored = (
            await client.get(f"/v1/policy-updates/{update_id}", headers=auth(admin_key))
        ).json()
        assert stored["title"] == "Satire of politicians"
        assert stored["translations"] == {}

        published = await console.post(f"/console/policy-updates/{update_id}/publish")
        assert published.status_code == 303
        page = await console.page(published.headers["location"])
        assert "The update is published" in page.text
        versions = (
            await client.get(f"/v1/policy-updates/{update_id}", headers=auth(admin_key))
        ).json()["versions"]
        assert f"satire (version {versions['satire']})" in page.text
        assert "Edit draft" not in page.text
        refused = await console.page(f"/console/policy-updates/{update_id}/edit")
        assert refused.status_code == 409
        again = await console.post(f"/console/policy-updates/{update_id}/publish")
        assert again.status_code == 409
    stored = (await client.get(f"/v1/policy-updates/{update_id}", headers=auth(admin_key))).json()
    assert stored["status"] == "published"
    assert set(stored["versions"]) == {"hate_speech", "satire"}


async def test_a_bad_update_form_comes_back_with_its_errors_and_nothing_is_stored(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        await console.page("/console/policy-updates/new")
        bad = await console.post(
            "/console/policy-updates/new",
            update_form(summary_en="", policy_codes="", markets="XX", effective_at="soon"),
        )
        assert bad.status_code == 422
        assert 'id="summary_en-error"' in bad.text
        assert 'id="policy_codes-error"' in bad.text
        assert 'id="markets-error"' in bad.text
        assert 'id="effective_at-error"' in bad.text
        assert 'value="Satire of public figures"' in bad.text  # what was typed is kept
        empty = await console.post(
            "/console/policy-updates/new",
            update_form(
                title_en="", summary_en="", body_en="", title_de="", summary_de="", body_de=""
            ),
        )
        assert empty.status_code == 422
        assert "Write the update in at least one language." in empty.text
    assert await api_updates(client, admin_key) == []


async def test_updates_are_scoped_to_the_pocs_markets(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    german = await api_update(client, admin_key, title="German draft")
    poc = await make_person(sessionmaker, "policy_poc", markets=["FR"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        listing = await console.page("/console/policy-updates")
        assert "German draft" not in listing.text
        assert (await console.page(f"/console/policy-updates/{german['id']}")).status_code == 404
        publish = await console.post(f"/console/policy-updates/{german['id']}/publish")
        assert publish.status_code == 404
        foreign = await console.post("/console/policy-updates/new", update_form(markets="DE"))
        assert foreign.status_code == 422
        assert 'id="markets-error"' in foreign.text
        assert 'value="Satire of public figures"' in foreign.text
    updates = await api_updates(client, admin_key)
    assert [(u["title"], u["status"]) for u in updates] == [("German draft", "draft")]


async def test_reviewers_acknowledge_with_one_button_and_the_poc_sees_who_has_not(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    await reviewer_profile(client, admin_key, "mod-1", ["DE"])
    await reviewer_profile(client, admin_key, "mod-2", ["DE"])
    published = await api_update(client, admin_key, title="Published for DE", publish=True)
    await api_update(client, admin_key, title="Draft for DE")
    await api_update(client, admin_key, title="Published for FR", markets=["FR"], publish=True)
    moderator = await make_person(sessionmaker, "moderator", reviewer_id="mod-1")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(moderator)
        listing = await console.page("/console/policy-updates")
        assert "Published for DE" in listing.text
        assert "Draft for DE" not in listing.text
        assert "Published for FR" not in listing.text
        assert "I have read it" in listing.text
        done = await console.post(
            f"/console/policy-updates/{published['id']}/acknowledge", {"back": "list"}
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/console/policy-updates?notice=acknowledged"
        after = await console.page(done.headers["location"])
        assert "your acknowledgement is recorded" in after.text
        assert "Acknowledged on" in after.text
        assert "I have read it" not in after.text
        assert (await console.page("/console/policy-updates/new")).status_code == 403
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        detail = await console.page(f"/console/policy-updates/{published['id']}")
        assert "1 acknowledged, 1 not yet." in detail.text
        pending = detail.text.split("Not acknowledged yet", 1)[1].split("</ul>", 1)[0]
        assert "mod-2" in pending
        assert "mod-1" not in pending


async def test_a_manager_reads_updates_but_neither_writes_nor_publishes(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    draft = await api_update(client, admin_key, title="Draft for DE")
    manager = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        listing = await console.page("/console/policy-updates")
        assert "Draft for DE" in listing.text
        assert "Write a policy update" not in listing.text
        detail = await console.page(f"/console/policy-updates/{draft['id']}")
        assert detail.status_code == 200
        assert "Publish" not in detail.text
        assert (await console.page("/console/policy-updates/new")).status_code == 403
        await console.post("/console/language", {"language": "de", "next": "/console/account"})
        german = await console.page(f"/console/policy-updates/{draft['id']}")
        assert "Gültig ab" in german.text
        assert "Entwurf" in german.text
        refused = await console.post(f"/console/policy-updates/{draft['id']}/publish")
        assert refused.status_code == 403
    assert [u["status"] for u in await api_updates(client, admin_key)] == ["draft"]


async def test_publishing_without_the_csrf_token_is_refused(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    draft = await api_update(client, admin_key)
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        refused = await console.http.post(f"/console/policy-updates/{draft['id']}/publish")
        assert refused.status_code == 403
        forged = await console.http.post(
            f"/console/policy-updates/{draft['id']}/publish", data={"csrf_token": "forged"}
        )
        assert forged.status_code == 403
    assert [u["status"] for u in await api_updates(client, admin_key)] == ["draft"]


# --- policy questions ------------------------------------------------------------------------


async def test_a_moderator_asks_a_poc_answers_once_and_the_asker_reads_the_answer(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    moderator = await make_person(sessionmaker, "moderator", reviewer_id="mod-1", markets=["DE"])
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    async with ConsoleClient(live_server.url) as asker, ConsoleClient(live_server.url) as answerer:
        await asker.sign_in(moderator)
        form = await asker.page("/console/policy-questions")
        assert '<option value="DE"' in form.text  # the asker's markets to choose from
        asked = await asker.post(
            "/console/policy-questions",
            {"policy_code": "satire", "market": "DE", "question": "Is a meme of a mayor satire?"},
        )
        assert asked.status_code == 303, asked.text
        question_url = asked.headers["location"].split("?")[0]
        page = await asker.page(asked.headers["location"])
        assert "sent to the policy POCs" in page.text
        assert "Not answered yet" in page.text

        await answerer.sign_in(poc)
        inbox = await answerer.page("/console/policy-questions")
        assert "Is a meme of a mayor satire?" in inbox.text
        open_page = await answerer.page(question_url)
        assert 'name="answer"' in open_page.text
        blank = await answerer.post(question_url + "/answer", {"answer": "   "})
        assert blank.status_code == 422
        assert "Write an answer first." in blank.text
        answered = await answerer.post(
            question_url + "/answer", {"answer": "Yes, a mayor is a public figure."}
        )
        assert answered.status_code == 303
        twice = await answerer.post(question_url + "/answer", {"answer": "No, on second look."})
        assert twice.status_code == 409
        assert "This question was answered already" in twice.text
        assert "Yes, a mayor is a public figure." in twice.text
        assert (await answerer.page("/console/policy-questions")).text.count(
            "Is a meme of a mayor satire?"
        ) == 0  # no longer open

        mine = await asker.page(question_url)
        assert "Yes, a mayor is a public figure." in mine.text
        assert f"Answered by {poc.email}" in mine.text
        assert 'name="answer"' not in mine.text
        refused = await asker.post(question_url + "/answer", {"answer": "Answering myself."})
        assert refused.status_code == 403
    [stored] = await api_questions(client, admin_key)
    assert stored["answer"] == "Yes, a mayor is a public figure."
    assert stored["asked_by"] == "mod-1"


async def test_a_bad_question_comes_back_with_its_errors_and_nothing_is_stored(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    auditor = await make_person(sessionmaker, "qa_auditor")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(auditor)
        await console.page("/console/policy-questions")
        bad = await console.post(
            "/console/policy-questions",
            {"policy_code": "Not A Code", "market": "XX", "question": "   "},
        )
        assert bad.status_code == 422
        assert 'id="ask-policy-error"' in bad.text
        assert 'id="ask-market-error"' in bad.text
        assert 'id="ask-question-error"' in bad.text
        assert 'value="Not A Code"' in bad.text
        no_token = await console.http.post(
            "/console/policy-questions",
            data={"policy_code": "satire", "market": "DE", "question": "Without a token?"},
        )
        assert no_token.status_code == 403
    assert await api_questions(client, admin_key) == []


async def test_questions_are_scoped_to_markets_and_askers(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-1")
    response = await client.post(
        "/v1/policy-questions",
        json={"policy_code": "satire", "market": "DE", "question": "German question?"},
        headers=auth(key),
    )
    assert response.status_code == 201, response.text
    question_id = response.json()["id"]
    french_poc = await make_person(sessionmaker, "policy_poc", markets=["FR"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(french_poc)
        listing = await console.page("/console/policy-questions?status=all")
        assert "German question?" not in listing.text
        opened = await console.page(f"/console/policy-questions/{question_id}")
        assert opened.status_code == 404
        answer = await console.post(
            f"/console/policy-questions/{question_id}/answer", {"answer": "Not my market."}
        )
        assert answer.status_code == 404
    other = await make_person(sessionmaker, "moderator", reviewer_id="mod-2")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(other)
        assert "German question?" not in (await console.page("/console/policy-questions")).text
        opened = await console.page(f"/console/policy-questions/{question_id}")
        assert opened.status_code == 403
    [stored] = await api_questions(client, admin_key)
    assert stored["answer"] is None


async def test_an_answer_is_promoted_into_the_next_updates_body(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    draft = await api_update(client, admin_key, title="Next satire update")
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(poc)
        await console.page("/console/policy-questions")
        asked = await console.post(
            "/console/policy-questions",
            {"policy_code": "satire", "market": "DE", "question": "Are cartoons satire?"},
        )
        question_url = asked.headers["location"].split("?")[0]
        await console.page(question_url)
        await console.post(question_url + "/answer", {"answer": "Usually they are."})
        answered = await console.page(question_url)
        assert "Add to the draft" in answered.text
        assert f'<option value="{draft["id"]}">Next satire update' in answered.text
        promoted = await console.post(question_url + "/promote", {"policy_update_id": draft["id"]})
        assert promoted.status_code == 303
        assert promoted.headers["location"] == (
            f"/console/policy-updates/{draft['id']}?notice=promoted"
        )
        shown = await console.page(promoted.headers["location"])
        assert "Q: Are cartoons satire?" in shown.text
        after = await console.page(question_url)
        assert "Add to the draft" not in after.text
    stored = (await client.get(f"/v1/policy-updates/{draft['id']}", headers=auth(admin_key))).json()
    assert stored["body"].endswith("Q: Are cartoons satire?\nA: Usually they are.")


# --- in a browser ----------------------------------------------------------------------------


async def test_a_poc_writes_and_publishes_an_update_in_the_browser(
    page: Page,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    poc = await make_person(sessionmaker, "policy_poc", markets=["DE"])
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(poc.email)
    await page.get_by_label("Password").fill(poc.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/arbitration")
    await page.get_by_role("link", name="Policy updates").click()
    await page.get_by_role("link", name="Write a policy update").click()
    assert await page_problems(page, language="en") == []  # the update form
    english = page.get_by_role("group", name="English")
    await english.get_by_label("Title").fill("Satire of public figures")
    await english.get_by_label("Summary").fill(
        "Satire is allowed unless it targets private persons."
    )
    await english.get_by_label("Body").fill("Politicians may be mocked.")
    await page.get_by_label("Policy codes").fill("satire")
    await page.get_by_label("In force from (UTC)").fill("2030-01-01T09:00")
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.get_by_text("The draft is saved.")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Publish").click()
    await expect(page.get_by_text("The update is published")).to_be_visible()
    await expect(page.get_by_role("heading", name="Acknowledgements")).to_be_visible()
    assert await page_problems(page, language="en") == []  # the published update
    await page.get_by_role("link", name="Policy questions").click()
    assert await page_problems(page, language="en") == []  # the questions and the ask form
    [stored] = await api_updates(client, admin_key)
    assert (stored["title"], stored["status"]) == ("Satire of public figures", "published")
