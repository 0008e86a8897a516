"""A moderator registered from decisions works in their markets (issue 7, section 7)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.markets import MARKET_CODES, default_language, default_time_zone
from shared.models import Market, Reviewer
from tests.conftest import SignedSender, auth, decision_event, make_key
from tests.support.quizzes import create_quiz, reviewer_key

Sessionmaker = async_sessionmaker[AsyncSession]


async def markets_of(sessionmaker: Sessionmaker) -> dict[str, list[str]]:
    async with sessionmaker() as session:
        return dict((await session.execute(select(Reviewer.id, Reviewer.markets))).all())


async def test_a_moderator_gains_each_market_it_decides_in(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    first = await sender.post(
        {
            "events": [
                decision_event(1, moderator_id="mod-x", market="AT", queue="at-video"),
                decision_event(2, moderator_id="mod-x", market="at", queue="at-video"),
                decision_event(3, moderator_id="mod-y", market="CH", queue="ch-text"),
            ]
        }
    )
    assert first.status_code == 202, first.text
    assert await markets_of(sessionmaker) == {"mod-x": ["AT"], "mod-y": ["CH"]}

    # A new market is added; a known one, sent again, changes nothing.
    await sender.post(decision_event(4, moderator_id="mod-x", market="DE"))
    await sender.post(decision_event(5, moderator_id="mod-x", market="AT", queue="at-video"))
    assert (await markets_of(sessionmaker))["mod-x"] == ["AT", "DE"]

    # A profile set by hand keeps its markets and gains those decided in.
    profile = await client.put(
        "/v1/reviewers/mod-y",
        json={"display_name": "Y", "markets": ["FR"], "languages": ["fr"]},
        headers=auth(admin_key),
    )
    assert profile.status_code in (200, 201), profile.text
    await sender.post(decision_event(6, moderator_id="mod-y", market="CH", queue="ch-text"))
    assert (await markets_of(sessionmaker))["mod-y"] == ["CH", "FR"]
    # A reviewer known before its first decision (here, from a key) gains it too.
    await make_key(sessionmaker, "moderator", reviewer_id="mod-z")
    await sender.post(decision_event(7, moderator_id="mod-z", market="FR"))
    assert (await markets_of(sessionmaker))["mod-z"] == ["FR"]


async def test_market_assignments_and_scoped_views_include_moderators_from_decisions(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    response = await sender.post(decision_event(1, moderator_id="mod-x", market="AT"))
    assert response.status_code == 202, response.text

    quiz = await create_quiz(client, admin_key, assignee_reviewer_ids=[], assignee_markets=["AT"])
    moderator = await reviewer_key(sessionmaker, "mod-x")
    assigned = await client.get("/v1/quizzes", headers=auth(moderator))
    assert assigned.status_code == 200, assigned.text
    assert [item["id"] for item in assigned.json()["items"]] == [quiz["id"]]

    at_manager = await make_key(sessionmaker, "manager", markets=["AT"])
    in_at = await client.get("/v1/reviewers", params={"market": "AT"}, headers=auth(at_manager))
    assert [item["id"] for item in in_at.json()["items"]] == ["mod-x"]
    seen = await client.get("/v1/reviewers/mod-x", headers=auth(at_manager))
    assert seen.status_code == 200, seen.text


async def test_every_market_code_has_a_real_zone_and_language(
    sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    assert len(MARKET_CODES) == 249
    for code in MARKET_CODES:
        ZoneInfo(default_time_zone(code))  # raises for a zone that does not exist
        assert 2 <= len(default_language(code)) <= 3, code
    # Countries spanning several zones get their capital's, not the first one listed.
    expected = {
        "DE": ("de", "Europe/Berlin"),
        "UA": ("uk", "Europe/Kyiv"),
        "RU": ("ru", "Europe/Moscow"),
        "CA": ("en", "America/Toronto"),
        "AU": ("en", "Australia/Sydney"),
        "BR": ("pt", "America/Sao_Paulo"),
        "SA": ("ar", "Asia/Riyadh"),
        "BV": ("no", "Europe/Oslo"),
    }
    for code, defaults in expected.items():
        assert (default_language(code), default_time_zone(code)) == defaults

    response = await sender.post(decision_event(1, market="sa", queue="sa-video", language="ar"))
    assert response.status_code == 202, response.text
    async with sessionmaker() as session:
        market = await session.get(Market, "SA")
    assert market is not None
    assert (market.default_language, market.time_zone) == ("ar", "Asia/Riyadh")
