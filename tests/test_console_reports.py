"""Report downloads in the console: every report in each file format the API writes, with
the signed-in person's reach, byte for byte what ``GET /v1/reports/*`` answers."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import openpyxl
import pytest
from pptx import Presentation
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import LiveServer, SignedSender, auth
from tests.support.analytics import seed_judged
from tests.support.console import ConsoleClient, make_person
from tests.support.console_overview import AUDITED, CASES, WINDOW, parse, problems

Sessionmaker = async_sessionmaker[AsyncSession]
DOWNLOAD = "/console/reports/download"


@pytest.fixture
async def judged(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> dict[str, dict[str, Any]]:
    return await seed_judged(client, sender, sessionmaker, CASES)


async def _download(console: ConsoleClient, **params: str) -> httpx.Response:
    return await console.http.get(DOWNLOAD, params={**WINDOW, **params})


async def test_the_reports_page_offers_every_report_in_its_formats(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    manager = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        page = await console.page("/console/reports?from=2026-11-02&to=2026-11-15")
        assert page.status_code == 200
        root = parse(page.text)
        offered = {
            form.xpath('.//input[@name="report"]')[0].get("value"): [
                button.get("value") for button in form.xpath(".//button[@name='format']")
            ]
            for form in root.xpath(f'//form[@action="{DOWNLOAD}"]')
        }
        assert offered["briefing"] == ["pptx", "xlsx"]
        assert offered["accuracy"] == ["csv", "xlsx"]
        assert offered["trend"] == ["csv", "xlsx", "png"]
        assert set(offered) >= {"population-accuracy", "comparison", "errors", "rates"}
        # The window chosen travels with every download form.
        assert root.xpath(f'//form[@action="{DOWNLOAD}"]//input[@name="from"]/@value')[0] == (
            "2026-11-02"
        )


async def test_downloads_open_and_equal_the_apis_files(
    live_server: LiveServer,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    judged: dict[str, dict[str, Any]],
    admin_key: str,
) -> None:
    manager = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)

        accuracy = await _download(console, report="accuracy", format="csv", group_by="market")
        assert accuracy.status_code == 200, accuracy.text
        assert accuracy.headers["content-type"].startswith("text/csv")
        assert "attachment" in accuracy.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(accuracy.content.decode("utf-8-sig"))))
        assert {row["key"]: int(row["audited"]) for row in rows} == AUDITED
        api = await client.get(
            "/v1/reports/accuracy",
            params={**WINDOW, "group_by": "market", "format": "csv"},
            headers=auth(admin_key),
        )
        assert api.content == accuracy.content

        trend = await _download(console, report="trend", format="csv", interval="week")
        assert trend.status_code == 200
        weeks = list(csv.DictReader(io.StringIO(trend.content.decode("utf-8-sig"))))
        assert sum(int(row["audited"]) for row in weeks) == sum(AUDITED.values())

        workbook = await _download(console, report="errors", format="xlsx", group_by="market")
        assert workbook.status_code == 200
        sheet = openpyxl.load_workbook(io.BytesIO(workbook.content)).worksheets[0]
        values = [[cell.value for cell in row] for row in sheet.iter_rows()]
        assert any("DE" in row for row in values)
        assert any("FR" in row for row in values)

        deck = await _download(console, report="briefing", format="pptx")
        assert deck.status_code == 200
        presentation = Presentation(io.BytesIO(deck.content))
        assert len(presentation.slides) > 1

        chart = await _download(console, report="comparison", format="png", dimension="market")
        assert chart.status_code == 200
        assert chart.content.startswith(b"\x89PNG")


async def test_a_market_scoped_manager_downloads_only_its_markets(
    live_server: LiveServer, sessionmaker: Sessionmaker, judged: dict[str, dict[str, Any]]
) -> None:
    manager = await make_person(sessionmaker, "manager", markets=["FR"])
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        accuracy = await _download(console, report="accuracy", format="csv", group_by="market")
        rows = list(csv.DictReader(io.StringIO(accuracy.content.decode("utf-8-sig"))))
        assert [row["key"] for row in rows] == ["FR"]
        other = await _download(console, report="accuracy", format="csv", market="DE")
        assert other.status_code == 403


async def test_bad_download_requests_are_422_on_the_form(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    manager = await make_person(sessionmaker, "manager")
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(manager)
        for params, field in [
            ({"report": "nothing", "format": "csv"}, "report"),
            ({"report": "briefing", "format": "csv"}, "format"),
            ({"report": "accuracy", "format": "csv", "group_by": "planet"}, "group_by"),
            ({"report": "trend", "format": "csv", "from": "2026-02-30"}, "from"),
        ]:
            response = await console.http.get(DOWNLOAD, params=params)
            assert response.status_code == 422, params
            listed = problems(response.text)
            assert listed, params
            assert listed[0].startswith(field), (params, listed)


@pytest.mark.parametrize(("role", "status"), [("policy_poc", 403), ("moderator", 403)])
async def test_other_roles_have_no_reports_page(
    live_server: LiveServer, sessionmaker: Sessionmaker, role: str, status: int
) -> None:
    person = await make_person(sessionmaker, role)
    async with ConsoleClient(live_server.url) as console:
        await console.sign_in(person)
        assert (await console.page("/console/reports")).status_code == status
        response = await _download(console, report="accuracy", format="csv", group_by="market")
        assert response.status_code == status


async def test_signed_out_downloads_go_to_sign_in(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        response = await http.get(DOWNLOAD, params={"report": "accuracy", "format": "csv"})
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/sign-in")
