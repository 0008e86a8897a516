"""The trend report: accuracy per period, each tested against the one before, from rollups
kept by the real write paths.

Decisions arrive over the signed webhook, verdicts are claimed and given over the API, a
dispute is ruled over the API; the report brings the rollups up to date itself.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.filters import AnalyticsScope
from shared.analytics.schemas import TrendRow
from shared.analytics.trend import periods, trend_rows
from tests.conftest import SignedSender, auth, make_key
from tests.support.analytics import Judged, incorrect, seed_judged
from tests.support.problems import assert_problem

REPORT = "/v1/reports/trend"
# Wednesday 2026-11-04 to Tuesday 2026-11-24: ISO weeks starting 11-02 (cut: 11-04 to 11-08),
# 11-09, 11-16 and 11-23 (cut: 11-23 and 11-24).
WINDOW = {"from": "2026-11-04", "to": "2026-11-24", "min_audits": "10"}

Sessionmaker = async_sessionmaker[AsyncSession]


def _on(day: str, moderator: str) -> dict[str, Any]:
    return {"moderator_id": moderator, "decided_at": f"{day}T10:00:00Z"}


# Week of 11-02: mod-a, 10 audits on 11-05, 9 correct (plus 11-03, before the window).
# Week of 11-09: one decision, never audited: no audits.
# Week of 11-16: mod-b, 10 audits on 11-17, 5 correct.
# Week of 11-23: on 11-24 mod-a 7 audits, all correct (one judged incorrect, overturned on
# dispute), mod-b 3 audits, 2 correct: 10 audits, 9 correct (plus 11-25, after the window).
CASES = [
    *[Judged(_on("2026-11-05", "mod-a")) for _ in range(9)],
    Judged(_on("2026-11-05", "mod-a"), incorrect("approve")),
    Judged(_on("2026-11-03", "mod-a"), incorrect("approve")),
    Judged(_on("2026-11-10", "mod-a"), verdict=None),
    *[Judged(_on("2026-11-17", "mod-b")) for _ in range(5)],
    *[Judged(_on("2026-11-17", "mod-b"), incorrect("approve")) for _ in range(5)],
    *[Judged(_on("2026-11-24", "mod-a")) for _ in range(6)],
    Judged(_on("2026-11-24", "mod-a"), incorrect("approve"), ruling="overturned"),
    Judged(_on("2026-11-24", "mod-b")),
    Judged(_on("2026-11-24", "mod-b")),
    Judged(_on("2026-11-24", "mod-b"), incorrect("approve")),
    Judged(_on("2026-11-25", "mod-b"), incorrect("approve")),
]


@pytest.fixture
async def judged(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    await seed_judged(client, sender, sessionmaker, CASES)


async def _get(client: httpx.AsyncClient, key: str, **params: Any) -> httpx.Response:
    return await client.get(REPORT, params={**WINDOW, **params}, headers=auth(key))


async def test_weekly_trend_compares_each_week_with_the_one_before(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    """By hand, weeks of 2026-11-04..24 (Wilson 95 %, z = 1.959964):

    - 11-02 (cut to 11-04..08): 9/10 = 0.9, CI (0.595850, 0.982124); first period: no test.
    - 11-09: no audits: nulls.
    - 11-16: 5/10 = 0.5, CI (0.236593, 0.763407); the week before is empty: no test.
    - 11-23 (cut to 11-23..24): 9/10 = 0.9 (the overturned verdict is correct). Against
      11-16: change = 0.9 - 0.5 = 0.4; pooled p = 14/20 = 0.7, SE = sqrt(0.7 * 0.3 *
      (1/10 + 1/10)) = sqrt(0.042) = 0.204939, z = 0.4 / 0.204939 = 1.951800,
      p = 2 (1 - Phi(1.951800)) = 0.050962: not significant at alpha 0.05, significant at 0.06.
    """
    lead = await make_key(sessionmaker, "manager")
    response = await _get(client, lead, interval="week")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["interval"], body["alpha"]) == ("week", 0.05)
    assert (body["day_from"], body["day_to"]) == ("2026-11-04", "2026-11-24")
    rows = body["rows"]
    assert [row["period_start"] for row in rows] == [
        "2026-11-02",
        "2026-11-09",
        "2026-11-16",
        "2026-11-23",
    ]
    assert [(row["audited"], row["correct"]) for row in rows] == [(10, 9), (0, 0), (10, 5), (10, 9)]
    first, empty, low, last = rows
    assert first["accuracy"] == pytest.approx(0.9)
    assert (first["ci_low"], first["ci_high"]) == (
        pytest.approx(0.595850, abs=1e-6),
        pytest.approx(0.982124, abs=1e-6),
    )
    assert (first["change"], first["p_value"], first["significant"]) == (None, None, False)
    assert first["note"] == (
        "partial week: counts 2026-11-04 to 2026-11-08 only; "
        "first period: nothing before it to compare with"
    )
    assert {empty[name] for name in ("accuracy", "ci_low", "ci_high", "change", "p_value")} == {
        None
    }
    assert (empty["small_sample"], empty["note"]) == (True, "no audits in this period")
    assert (low["ci_low"], low["ci_high"]) == (
        pytest.approx(0.236593, abs=1e-6),
        pytest.approx(0.763407, abs=1e-6),
    )
    assert (low["change"], low["p_value"]) == (None, None)
    assert low["note"] == "no audits in the previous period: nothing to compare with"
    assert last["change"] == pytest.approx(0.4)
    assert last["p_value"] == pytest.approx(0.050962, abs=1e-6)
    assert (last["significant"], last["small_sample"]) == (False, False)
    assert last["note"] == "partial week: counts 2026-11-23 to 2026-11-24 only"

    looser = (await _get(client, lead, interval="week", alpha="0.06")).json()
    assert [row["significant"] for row in looser["rows"]] == [False, False, False, True]


async def test_daily_and_monthly_periods_cover_the_whole_window(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    """By day: 21 rows (11-04..24), audits only on 11-05, 11-17 and 11-24. By month: one
    row, November cut to 11-04..24: 30 audits, 9 + 5 + 9 = 23 correct."""
    lead = await make_key(sessionmaker, "manager")
    days = (await _get(client, lead, interval="day")).json()["rows"]
    assert len(days) == 21
    audited = {row["period_start"]: row["audited"] for row in days if row["audited"]}
    assert audited == {"2026-11-05": 10, "2026-11-17": 10, "2026-11-24": 10}
    # 11-24 follows 11-23, which had no audits: no comparison, however close the days are.
    assert days[-1]["change"] is None

    (month,) = (await _get(client, lead, interval="month")).json()["rows"]
    assert (month["period_start"], month["audited"], month["correct"]) == ("2026-11-01", 30, 23)
    assert month["note"] == (
        "partial month: counts 2026-11-04 to 2026-11-24 only; "
        "first period: nothing before it to compare with"
    )


async def test_a_moderator_key_sees_only_its_own_trend(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    """mod-b: 11-16 5/10, 11-23 2/3; change = 2/3 - 1/2 = 1/6 (the week before 11-16 is
    empty for mod-b, so 11-16 has no test)."""
    own = await make_key(sessionmaker, "moderator", reviewer_id="mod-b")
    rows = (await _get(client, own, interval="week")).json()["rows"]
    assert [(row["audited"], row["correct"]) for row in rows] == [(0, 0), (0, 0), (10, 5), (3, 2)]
    assert rows[3]["change"] == pytest.approx(1 / 6)
    assert_problem(await _get(client, own, interval="week", moderator_id="mod-a"), 403)


async def test_files_carry_the_rows(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    """CSV header = the JSON keys, values as JSON's; the German XLSX has German headers and
    an About sheet; the PNG is a chart, each an attachment named by report and days."""
    lead = await make_key(sessionmaker, "qa_auditor", reviewer_id="qa-1")
    rows = (await _get(client, lead, interval="week")).json()["rows"]

    response = await _get(client, lead, interval="week", format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="trend-by-week-2026-11-04-to-2026-11-24.csv"'
    )
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == list(rows[0]) == list(TrendRow.model_fields)
    assert table[4][table[0].index("p_value")] == str(rows[3]["p_value"])
    assert table[2][table[0].index("accuracy")] == ""

    response = await _get(client, lead, interval="week", format="xlsx", lang="de")
    assert response.status_code == 200, response.text
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["Verlauf", "Info"]
    sheet = workbook["Verlauf"]
    headers = [cell.value for cell in sheet[1]]
    assert headers[:4] == ["Periodenbeginn", "Geprüft", "Korrekt", "Genauigkeit"]
    assert len(headers) == len(TrendRow.model_fields)
    assert sheet.cell(row=5, column=headers.index("Veränderung") + 1).value == pytest.approx(0.4)
    about = {row[0].value: row[1].value for row in workbook["Info"].iter_rows()}
    assert about["Zeitraum (Markttage)"] == "04.11.2026 bis 24.11.2026"
    assert about["Periode"] == "Woche (Montag bis Sonntag)"
    assert about["Signifikanzniveau"] == "5,0\xa0%"

    response = await _get(client, lead, interval="week", format="png", lang="de")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert response.headers["content-disposition"].endswith('-2026-11-24.png"')


async def test_an_empty_window_has_a_row_per_period_with_nulls_and_notes(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    lead = await make_key(sessionmaker, "admin")
    for interval, count in (("day", 21), ("week", 4), ("month", 1)):
        response = await _get(client, lead, interval=interval)
        assert response.status_code == 200, response.text
        rows = response.json()["rows"]
        assert len(rows) == count
        assert all(row["accuracy"] is None and row["note"] for row in rows)
        for file_format in ("csv", "xlsx", "png"):
            response = await _get(client, lead, interval=interval, format=file_format)
            assert response.status_code == 200, (file_format, response.text)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"interval": "year"}, "interval"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "from"),
        ({"from": "2025-01-01", "to": "2026-11-01"}, "to"),
        ({"alpha": "0"}, "alpha"),
        ({"alpha": "1"}, "alpha"),
        ({"format": "pptx"}, "format"),
        ({"min_audits": "0"}, "min_audits"),
        ({"group_by": "market"}, "group_by"),
    ],
)
async def test_bad_input_is_a_422_naming_the_parameter(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, params: dict[str, str], parameter: str
) -> None:
    lead = await make_key(sessionmaker, "manager")
    response = await client.get(REPORT, params={**WINDOW, **params}, headers=auth(lead))
    body = assert_problem(response, 422)
    assert parameter in str(body), body


def test_periods_and_rows_from_counts() -> None:
    """Months roll over the year; a period missing from the counts is an empty row."""
    assert list(periods(date(2026, 11, 30), date(2027, 2, 1), "month")) == [
        date(2026, 11, 1),
        date(2026, 12, 1),
        date(2027, 1, 1),
        date(2027, 2, 1),
    ]
    scope = AnalyticsScope(
        day_from=date(2026, 11, 30),
        day_to=date(2026, 12, 1),
        markets=None,
        queue=None,
        moderator_id=None,
        policy=None,
    )
    rows = trend_rows(
        {date(2026, 12, 1): (4, 4)}, scope=scope, interval="day", alpha=0.05, min_audits=1
    )
    assert [(row.audited, row.accuracy, row.change) for row in rows] == [
        (0, None, None),
        (4, 1.0, None),
    ]
