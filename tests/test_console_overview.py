"""The QA lead's overview and its drill-down to the audits, over real HTTP (and one
browser test: the charts are drawn, and a click on a number lands on its audits).

Every figure is the briefing's (``GET /v1/reports/briefing`` answers the same numbers), and
every linked number lists exactly the audits it counts.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.async_api import Page
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Audit
from tests.conftest import LiveServer, SignedSender, auth, make_key
from tests.support.analytics import seed_judged
from tests.support.console import ConsoleClient, make_person
from tests.support.console_overview import (
    AUDITED,
    CASES,
    WINDOW,
    audits_behind,
    parse,
    problems,
    table_figures,
)

Sessionmaker = async_sessionmaker[AsyncSession]
OVERVIEW = "/console/overview?from={from}&to={to}".format(**WINDOW)


@pytest.fixture
async def judged(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> dict[str, dict[str, Any]]:
    return await seed_judged(client, sender, sessionmaker, CASES)


async def _briefing(client: httpx.AsyncClient, key: str, **params: str) -> dict[str, Any]:
    response = await client.get(
        "/v1/reports/briefing", params={**WINDOW, **params}, headers=auth(key)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_overview_figures_are_the_briefings_and_link_to_the_audits_behind_them(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    judged: dict[str, dict[str, Any]],
    admin_key: str,
) -> None:
    briefing = await _briefing(client, admin_key)
    manager = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        response = await console.page(OVERVIEW)
        assert response.status_code == 200, response.text
        page = response.text

        # Accuracy by market: each market's audited count is the briefing's, and its link
        # lists exactly those audits (judged, of that market, in the window).
        accuracy = [f for f in table_figures(page, "table-accuracy") if "%" not in f.text]
        assert {f.row: int(f.text) for f in accuracy} == AUDITED
        assert {row["key"]: row["audited"] for row in briefing["comparison"]["rows"]} == AUDITED
        for figure in accuracy:
            listed = await audits_behind(console, figure.href)
            assert len(listed) == int(figure.text), figure
            assert len(set(listed)) == len(listed)
        # The accuracy itself: DE 4 of 5 (the overturned verdict counts as correct).
        assert "80.0%" in page

        # Population accuracy: the briefing's estimate, linking to the window's audits.
        headline = briefing["headline"]
        population = parse(page).xpath('//*[@id="population-accuracy"]/a')[0]
        assert population.text_content().strip() == f"{headline['population_accuracy']:.1%}"
        assert len(await audits_behind(console, population.get("href"))) == headline["audited"]

        # Trend: each week's audited count is its audits.
        trend = table_figures(page, "table-trend")
        assert [int(f.text) for f in trend] == [row["audited"] for row in briefing["trend"]["rows"]]
        for figure in trend:
            assert len(await audits_behind(console, figure.href)) == int(figure.text)

        # Error Pareto: largest type first, each count its incorrect audits of that type.
        errors = table_figures(page, "table-errors")
        counts = {f.param("error_type"): int(f.text) for f in errors}
        assert [f.row for f in errors][:2] == ["Over-enforcement", "Wrong policy"]
        assert counts["over_enforcement"] == 1
        assert counts["wrong_policy"] == 1
        assert sum(counts.values()) == 2  # the overturned verdict is no error
        assert [int(f.text) for f in errors] == sorted(counts.values(), reverse=True)
        for figure in errors:
            listed = await audits_behind(console, figure.href)
            assert len(listed) == int(figure.text), figure
        over = next(f for f in errors if f.param("error_type") == "over_enforcement")
        (audit_id,) = await audits_behind(console, over.href)
        detail = await console.page(f"/console/audits/{audit_id}")
        assert detail.status_code == 200
        assert "Over-enforcement" in detail.text
        assert "critical" in detail.text

        # Every chart is also a table, and the page carries no inline script or style.
        for chart in ("chart-accuracy", "chart-trend", "chart-errors"):
            assert f'id="{chart}"' in page
        assert "<script>" not in page
        assert "style=" not in page


async def test_overview_filters_a_market_and_refuses_bad_input_on_the_form(
    live_server: LiveServer, sessionmaker: Sessionmaker, judged: dict[str, dict[str, Any]]
) -> None:
    manager = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        only_fr = await console.page(OVERVIEW + "&market=fr")
        assert only_fr.status_code == 200
        # One market asked for: the comparison is of its queues.
        figures = [f for f in table_figures(only_fr.text, "table-accuracy") if "%" not in f.text]
        assert [(f.row, int(f.text)) for f in figures] == [("de-video-standard", 3)]
        assert "market=FR" in figures[0].href
        assert "queue=de-video-standard" in figures[0].href

        for query, field in [
            ("from=yesterday", "from"),
            ("from=2026-11-15&to=2026-11-02", "from"),
            ("market=XX", "market"),
            ("from=2020-01-01&to=2026-11-15", "to"),
        ]:
            bad = await console.page(f"/console/overview?{query}")
            assert bad.status_code == 422, query
            listed = problems(bad.text)
            assert listed, query
            assert field in listed[0], (query, listed)
            # The form is still there, with what was typed.
            assert 'name="from"' in bad.text


async def test_a_market_scoped_manager_sees_only_its_markets(
    live_server: LiveServer, sessionmaker: Sessionmaker, judged: dict[str, dict[str, Any]]
) -> None:
    manager = await make_person(sessionmaker, "manager", markets=["FR"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        page = await console.page(OVERVIEW)
        assert page.status_code == 200
        figures = [f for f in table_figures(page.text, "table-errors")]
        assert {f.param("error_type"): int(f.text) for f in figures}["over_enforcement"] == 0
        assert (await console.page(OVERVIEW + "&market=DE")).status_code == 403
        # The drill-down and the detail of a DE audit are out of reach too.
        assert await audits_behind(console, "/console/audits?market=DE") == []
        everything = await audits_behind(console, "/console/audits?status=completed")
        assert len(everything) == AUDITED["FR"]
        de_audit = next(a for a in judged.values() if a["market"] == "DE")
        assert (await console.page(f"/console/audits/{de_audit['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("role", "overview", "audits"),
    [
        ("manager", 200, 200),
        ("admin", 200, 200),
        ("policy_poc", 403, 200),
        ("qa_auditor", 403, 403),
        ("moderator", 403, 403),
    ],
)
async def test_who_may_open_the_overview_and_the_audits(
    live_server: LiveServer, sessionmaker: Sessionmaker, role: str, overview: int, audits: int
) -> None:
    person = await make_person(sessionmaker, role)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        assert (await console.page("/console/overview")).status_code == overview
        assert (await console.page("/console/audits")).status_code == audits


async def test_audits_are_paged_with_their_filters_and_bad_filters_are_422(
    live_server: LiveServer, sessionmaker: Sessionmaker, judged: dict[str, dict[str, Any]]
) -> None:
    manager = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        first = await console.page("/console/audits?market=DE&limit=2")
        assert first.status_code == 200
        next_link = parse(first.text).xpath('//a[@rel="next"]')[0].get("href")
        assert "market=DE" in next_link
        assert "cursor=" in next_link
        listed = await audits_behind(console, "/console/audits?market=DE&limit=2")
        assert len(listed) == AUDITED["DE"]
        overturned = await audits_behind(
            console, "/console/audits?market=DE&outcome=correct&limit=2"
        )
        assert len(overturned) == 4
        for query, status in [
            ("status=judged", 422),
            ("from=2026-13-01", 422),
            ("limit=0", 422),
            ("cursor=garbage", 400),
        ]:
            bad = await console.page(f"/console/audits?{query}")
            assert bad.status_code == status, query
            assert problems(bad.text), query
        assert (await console.page("/console/audits/not-a-uuid")).status_code == 422
        missing = await console.page("/console/audits/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404


async def test_the_leads_overview_draws_its_charts_and_a_number_drills_down(
    page: Page,
    sessionmaker: Sessionmaker,
    judged: dict[str, dict[str, Any]],
) -> None:
    manager = await make_person(sessionmaker, "manager")
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(manager.email)
    await page.get_by_label("Password").fill(manager.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/console/overview"))
    await page.goto(OVERVIEW)
    expected = {
        "chart-accuracy": ["Accuracy"],
        "chart-trend": ["Accuracy"],
        "chart-errors": ["Errors", "Cumulative share"],
    }
    for canvas, datasets in expected.items():
        labels = await page.evaluate(
            """(id) => {
                const chart = Chart.getChart(document.getElementById(id));
                return chart ? chart.data.datasets.map((d) => d.label) : null;
            }""",
            canvas,
        )
        assert labels == datasets, canvas
    # The whisker plugin is registered on the accuracy chart and has the intervals.
    whiskers = await page.evaluate(
        """() => {
            const chart = Chart.getChart(document.getElementById("chart-accuracy"));
            const own = chart.config.plugins.map((p) => p.id);
            return [own, chart.data.datasets[0].whiskers.length, chart.data.labels];
        }"""
    )
    assert whiskers == [["whiskers"], 2, ["DE", "FR"]]
    await (
        page.locator("#table-accuracy tbody tr", has_text="FR")
        .get_by_role("link", name="3", exact=True)
        .click()
    )
    await page.wait_for_url(re.compile(r"/console/audits\?.*market=FR"))
    assert await page.locator("tr.audit-row").count() == AUDITED["FR"]


async def test_the_overview_speaks_german_with_german_numbers(
    live_server: LiveServer, sessionmaker: Sessionmaker, judged: dict[str, dict[str, Any]]
) -> None:
    manager = await make_person(sessionmaker, "manager", language="de")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        page = await console.page(OVERVIEW)
        assert page.status_code == 200
        assert "Genauigkeit nach Markt" in page.text
        assert "Fehler nach Art" in page.text
        assert "80,0\xa0%" in page.text  # DE: 4 of 5, as Babel writes it in German
        audits = await console.page("/console/audits?market=DE")
        assert "Fehlerart" in audits.text
        reports = await console.page("/console/reports")
        assert "Management-Briefing" in reports.text


async def test_the_api_lists_audits_by_outcome_and_error_type_as_the_drill_down_does(
    client: httpx.AsyncClient, judged: dict[str, dict[str, Any]], admin_key: str
) -> None:
    async def count(**params: str) -> int:
        response = await client.get(
            "/v1/audits", params={**WINDOW, **params}, headers=auth(admin_key)
        )
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    # The overturned verdict counts as correct, as in every report.
    assert await count(market="DE", outcome="correct") == 4
    assert await count(market="DE", outcome="incorrect") == 1
    assert await count(outcome="incorrect", error_type="wrong_policy") == 1
    assert await count(error_type="missed_violation") == 0
    bad = await client.get("/v1/audits", params={"outcome": "maybe"}, headers=auth(admin_key))
    assert bad.status_code == 422


async def test_the_drill_down_leaves_golden_audits_out_as_the_reports_do(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    judged: dict[str, dict[str, Any]],
    admin_key: str,
) -> None:
    # One DE audit becomes golden (as if the auditor had been tested with it).
    golden = next(a for a in judged.values() if a["market"] == "DE")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Audit).where(Audit.id == uuid.UUID(golden["id"])).values(is_golden=True)
        )

    async def listed(key: str, **params: str) -> httpx.Response:
        return await client.get("/v1/audits", params={**WINDOW, **params}, headers=auth(key))

    real = (await listed(admin_key, market="DE", golden="false")).json()["items"]
    assert golden["id"] not in [item["id"] for item in real]
    assert len(real) == AUDITED["DE"] - 1
    only = (await listed(admin_key, golden="true")).json()["items"]
    assert [item["id"] for item in only] == [golden["id"]]
    # QA auditors must not learn which audits are golden.
    auditor = await make_key(sessionmaker, "qa_auditor", reviewer_id="aud-1")
    assert (await listed(auditor, golden="false")).status_code == 403

    manager = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        page = await console.page(OVERVIEW)
        figure = next(
            f
            for f in table_figures(page.text, "table-accuracy")
            if f.row == "DE" and "%" not in f.text
        )
        assert figure.param("golden") == "false"
        assert golden["id"] not in await audits_behind(console, figure.href)
