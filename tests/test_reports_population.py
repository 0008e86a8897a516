"""The population accuracy report: the post-stratified estimate of all decisions' accuracy
beside the audited accuracy, from rollups kept by the real write paths.

Decisions arrive over the signed webhook (the unaudited ones too: they are the weights),
verdicts are claimed and given over the API; the report brings the rollups up to date itself.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.filters import AnalyticsScope
from shared.analytics.population import estimate_from_sums, population_sums
from shared.analytics.schemas import ALL_KEY, PopulationRow
from shared.models import QualityRollup
from shared.stats.estimation import Stratum, post_stratified_accuracy
from tests.conftest import SignedSender, auth, make_key
from tests.support.analytics import Judged, incorrect, seed_judged
from tests.support.problems import assert_problem

REPORT = "/v1/reports/population-accuracy"
WINDOW = {"from": "2026-11-01", "to": "2026-11-30"}

Sessionmaker = async_sessionmaker[AsyncSession]


def _on(day: str, moderator: str) -> dict[str, Any]:
    return {"moderator_id": moderator, "decided_at": f"{day}T10:00:00Z"}


def _stratum(day: str, moderator: str, *, correct: int, wrong: int, unaudited: int) -> list[Judged]:
    fields = _on(day, moderator)
    return [
        *[Judged(fields) for _ in range(correct)],
        *[Judged(fields, incorrect("approve")) for _ in range(wrong)],
        *[Judged(fields, verdict=None) for _ in range(unaudited)],
    ]


# Strata h = (moderator, market-local day), all in DE: N_h decisions, n_h audits, x_h correct.
CASES = [
    *_stratum("2026-11-10", "mod-a", correct=2, wrong=0, unaudited=2),  # N 4, n 2, x 2
    *_stratum("2026-11-11", "mod-a", correct=1, wrong=1, unaudited=0),  # N 2, n 2, x 1
    *_stratum("2026-11-10", "mod-b", correct=2, wrong=1, unaudited=3),  # N 6, n 3, x 2
    *_stratum("2026-11-12", "mod-b", correct=0, wrong=0, unaudited=3),  # N 3, n 0
]


@pytest.fixture
async def judged(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    await seed_judged(client, sender, sessionmaker, CASES)


async def _get(client: httpx.AsyncClient, key: str, **params: Any) -> httpx.Response:
    return await client.get(REPORT, params={**WINDOW, **params}, headers=auth(key))


async def test_the_hand_worked_example(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    """Strata (N_h, n_h, x_h, p_h): a/11-10 (4, 2, 2, 1), a/11-11 (2, 2, 1, 1/2),
    b/11-10 (6, 3, 2, 2/3), b/11-12 (3, 0, 0, -).

    All: b/11-12 has no audit and is left out, N = 4 + 2 + 6 = 12 of 15 decisions,
    coverage = 12/15 = 0.8. estimate = (4 * 1 + 2 * 1/2 + 6 * 2/3) / 12 = 9/12 = 0.75.
    SE^2 = sum (N_h/N)^2 p_h (1 - p_h) / n_h (1 - n_h/N_h):
    a/11-10: p_h = 1 -> 0; a/11-11: n_h = N_h -> fpc 0 -> 0;
    b/11-10: (6/12)^2 * (2/3 * 1/3) / 3 * (1 - 3/6) = 1/4 * 2/27 * 1/2 = 1/108;
    SE = sqrt(1/108) = 0.096225, CI = 0.75 -+ 1.959964 * 0.096225 = (0.561402, 0.938598).
    Audited accuracy = 5/7 = 0.714286 (it gives mod-a's heavily audited days more weight),
    Wilson CI (0.358934, 0.917781).

    By moderator: mod-a: N = 6, estimate = (4 * 1 + 2 * 1/2) / 6 = 5/6, SE = 0 (both terms
    0), coverage 1, audited 3/4. mod-b: N = 6 of 9, estimate = 2/3, coverage 2/3,
    SE^2 = (6/6)^2 * 2/9 / 3 * 1/2 = 1/27, SE = 0.192450, CI = 2/3 -+ 0.377200 =
    (0.289471, 1.043867) clipped to (0.289471, 1).
    """
    lead = await make_key(sessionmaker, "manager")
    response = await _get(client, lead)
    assert response.status_code == 200, response.text
    body = response.json()
    (whole,) = body["rows"]
    assert whole["key"] == ALL_KEY
    assert (whole["decisions"], whole["audited"]) == (15, 7)
    assert whole["estimate"] == pytest.approx(0.75)
    assert (whole["ci_low"], whole["ci_high"]) == (
        pytest.approx(0.561402, abs=1e-6),
        pytest.approx(0.938598, abs=1e-6),
    )
    assert whole["coverage"] == pytest.approx(0.8)
    assert whole["audited_accuracy"] == pytest.approx(5 / 7)
    assert (whole["audited_ci_low"], whole["audited_ci_high"]) == (
        pytest.approx(0.358934, abs=1e-6),
        pytest.approx(0.917781, abs=1e-6),
    )
    assert (whole["small_sample"], whole["note"]) == (True, None)

    rows = (await _get(client, lead, group_by="moderator", min_audits="3")).json()["rows"]
    assert [(row["key"], row["decisions"], row["audited"]) for row in rows] == [
        ("mod-a", 6, 4),
        ("mod-b", 9, 3),
    ]
    mod_a, mod_b = rows
    assert mod_a["estimate"] == pytest.approx(5 / 6)
    assert (mod_a["ci_low"], mod_a["ci_high"]) == (pytest.approx(5 / 6), pytest.approx(5 / 6))
    assert (mod_a["coverage"], mod_a["audited_accuracy"]) == (1.0, 0.75)
    assert mod_b["estimate"] == pytest.approx(2 / 3)
    assert (mod_b["ci_low"], mod_b["ci_high"]) == (pytest.approx(0.289471, abs=1e-6), 1.0)
    assert mod_b["coverage"] == pytest.approx(2 / 3)
    assert [row["small_sample"] for row in rows] == [False, False]

    (market,) = (await _get(client, lead, group_by="market")).json()["rows"]
    assert market["key"] == "DE"
    assert {name: market[name] for name in ("estimate", "ci_low", "coverage")} == {
        name: whole[name] for name in ("estimate", "ci_low", "coverage")
    }


async def test_a_moderator_key_sees_only_its_own_population(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    """mod-b alone: the (all) row is mod-b's (estimate 2/3, 9 decisions, coverage 2/3)."""
    own = await make_key(sessionmaker, "moderator", reviewer_id="mod-b")
    (row,) = (await _get(client, own)).json()["rows"]
    assert (row["key"], row["decisions"], row["audited"]) == (ALL_KEY, 9, 3)
    assert row["estimate"] == pytest.approx(2 / 3)
    rows = (await _get(client, own, group_by="moderator")).json()["rows"]
    assert [row["key"] for row in rows] == ["mod-b"]
    assert_problem(await _get(client, own, moderator_id="mod-a"), 403)


async def test_files_carry_the_rows(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    lead = await make_key(sessionmaker, "policy_poc", reviewer_id="poc-9")
    rows = (await _get(client, lead, group_by="moderator")).json()["rows"]

    response = await _get(client, lead, group_by="moderator", format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == (
        'attachment; filename="population-accuracy-by-moderator-2026-11-01-to-2026-11-30.csv"'
    )
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == list(rows[0]) == list(PopulationRow.model_fields)
    assert [line[0] for line in table[1:]] == ["mod-a", "mod-b"]
    assert float(table[2][table[0].index("estimate")]) == pytest.approx(rows[1]["estimate"])

    response = await _get(client, lead, group_by="moderator", format="xlsx", lang="de")
    assert response.status_code == 200, response.text
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["Genauigkeit Grundgesamtheit", "Info"]
    sheet = workbook["Genauigkeit Grundgesamtheit"]
    headers = [cell.value for cell in sheet[1]]
    assert headers[:3] == ["Ausschnitt", "Genauigkeit (Grundgesamtheit)", "95-%-KI untere Grenze"]
    assert headers[headers.index("Abdeckung")] == "Abdeckung"
    cell = sheet.cell(row=3, column=headers.index("Genauigkeit (Grundgesamtheit)") + 1)
    assert (cell.value, cell.number_format) == (pytest.approx(2 / 3), "0.0%")
    about = {row[0].value: row[1].value for row in workbook["Info"].iter_rows()}
    assert about["Methode"].startswith("Nachgeschichtete Schätzung")

    assert_problem(await _get(client, lead, format="png"), 422)


async def test_an_empty_window_is_one_row_of_nulls(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    lead = await make_key(sessionmaker, "admin")
    (row,) = (await _get(client, lead)).json()["rows"]
    assert (row["key"], row["decisions"], row["audited"]) == (ALL_KEY, 0, 0)
    assert {row[name] for name in ("estimate", "ci_low", "coverage", "audited_accuracy")} == {None}
    assert row["note"] == "no decisions and no audits in this slice"
    assert (await _get(client, lead, group_by="market")).json()["rows"] == []
    for file_format in ("csv", "xlsx"):
        assert (await _get(client, lead, format=file_format)).status_code == 200


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"group_by": "policy"}, "group_by"),
        ({"group_by": "day"}, "group_by"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "from"),
        ({"from": "2025-01-01", "to": "2026-11-01"}, "to"),
        ({"format": "pptx"}, "format"),
        ({"lang": "fr"}, "lang"),
    ],
)
async def test_bad_input_is_a_422_naming_the_parameter(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, params: dict[str, str], parameter: str
) -> None:
    lead = await make_key(sessionmaker, "manager")
    body = assert_problem(await _get(client, lead, **params), 422)
    assert parameter in str(body), body


async def test_the_sql_sums_give_the_reference_estimate(sessionmaker: Sessionmaker) -> None:
    """The strata summed in SQL give what ``post_stratified_accuracy`` gives on the same
    strata: random rollup rows over 3 markets, 2 queues, 8 moderators and 10 days (some with
    decisions but no audits, some with more audits than decisions), per market and overall."""
    generator = random.Random(20261130)
    rows: dict[tuple[date, str, str, str], QualityRollup] = {}
    for _ in range(300):
        day = date(2026, 11, 1) + timedelta(days=generator.randrange(10))
        market = generator.choice(["DE", "FR", "PL"])
        queue = generator.choice(["q1", "q2"])
        moderator = f"mod-{generator.randrange(8)}"
        audited = generator.choice([0, 0, 1, 2, 5])
        rows[day, market, queue, moderator] = QualityRollup(
            day=day,
            market=market,
            queue=queue,
            moderator_id=moderator,
            policy="*",
            decisions=generator.choice([0, 1, 3, 10, 40]),
            audited=audited,
            correct=generator.randint(0, audited),
        )
    async with sessionmaker() as session, session.begin():
        session.add_all(rows.values())
    scope = AnalyticsScope(
        day_from=date(2026, 11, 1),
        day_to=date(2026, 11, 30),
        markets=None,
        queue=None,
        moderator_id=None,
        policy=None,
    )

    def reference(market: str | None) -> Any:
        strata: dict[tuple[str, date], list[int]] = {}
        for (day, row_market, _, moderator), row in rows.items():
            if market in (None, row_market):
                counts = strata.setdefault((moderator, day), [0, 0, 0])
                counts[0] += row.decisions
                counts[1] += row.audited
                counts[2] += row.correct
        return post_stratified_accuracy(Stratum(*counts) for counts in strata.values())

    async with sessionmaker() as session:
        by_market = await population_sums(session, scope=scope, group_by="market")
        overall = await population_sums(session, scope=scope, group_by=None)
    assert sorted(by_market) == ["DE", "FR", "PL"]
    for key, sums in [*by_market.items(), (None, overall[ALL_KEY])]:
        expected = reference(key)
        got = estimate_from_sums(sums)
        assert expected is not None
        assert got is not None
        for name in ("estimate", "standard_error", "ci_low", "ci_high", "coverage"):
            assert getattr(got, name) == pytest.approx(getattr(expected, name), rel=1e-9), name
        assert (got.decisions, got.covered_decisions, got.audited, got.correct) == (
            expected.decisions,
            expected.covered_decisions,
            expected.audited,
            expected.correct,
        )
