"""The comparison report: slices ranked by their interval's upper bound, each tested against
the rest of the population, Benjamini-Hochberg q-values over the ranked slices.

Decisions arrive over the signed webhook, verdicts are claimed and given over the API; the
report brings the rollups up to date itself. The policy test writes rollup rows directly, to
show overlapping policy slices against their rest.
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

from shared.analytics.schemas import ComparisonRow
from shared.models import QualityRollup
from tests.conftest import SignedSender, auth, make_key
from tests.support.analytics import Judged, incorrect, seed_judged
from tests.support.problems import assert_problem

REPORT = "/v1/reports/comparison"
WINDOW = {"from": "2026-11-01", "to": "2026-11-30", "min_audits": "10"}

Sessionmaker = async_sessionmaker[AsyncSession]


def _market(market: str, *, correct: int, wrong: int) -> list[Judged]:
    fields = {
        "market": market,
        "queue": f"{market.lower()}-video",
        "moderator_id": f"mod-{market.lower()}",
        "decided_at": "2026-11-10T10:00:00Z",
    }
    return [
        *[Judged(fields) for _ in range(correct)],
        *[Judged(fields, incorrect("approve")) for _ in range(wrong)],
    ]


# Audited / correct per market: DE 20 / 14, FR 20 / 19, PL 12 / 12, IT 3 / 1 (small).
CASES = [
    *_market("DE", correct=14, wrong=6),
    *_market("FR", correct=19, wrong=1),
    *_market("PL", correct=12, wrong=0),
    *_market("IT", correct=1, wrong=2),
]


@pytest.fixture
async def judged(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    await seed_judged(client, sender, sessionmaker, CASES)


async def _get(client: httpx.AsyncClient, key: str, **params: Any) -> httpx.Response:
    return await client.get(REPORT, params={**WINDOW, **params}, headers=auth(key))


async def test_markets_ranked_by_upper_bound_with_bh_q_values(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    """Population: 55 audits, 46 correct. Wilson 95 % (z = 1.959964) and the pooled
    two-sided z-test against the rest (pooled p = 46/55 = 0.836364 for every slice):

    - DE 14/20 = 0.7, CI (0.481027, 0.854523); rest 32/35 = 0.914286;
      SE = sqrt(0.836364 * 0.163636 * (1/20 + 1/35)) = 0.103698, z = -2.066443, p = 0.038787.
    - FR 19/20 = 0.95, CI (0.763869, 0.991119); rest 27/35; z = 1.722036, p = 0.085063.
    - PL 12/12 = 1, CI (0.757506, 1); rest 34/43; z = 1.732926, p = 0.083109.
    - IT 3 audits < min_audits 10: listed last, no rank, no test (its p of 0.0154 would have
      been the smallest: small samples never enter the family).

    Rank by upper bound: DE 0.854523, FR 0.991119, PL 1. Benjamini-Hochberg over m = 3:
    sorted p DE 0.038787 * 3/1 = 0.116360, PL 0.083109 * 3/2 = 0.124663, FR 0.085063 * 3/3;
    step-up minimum from the top: every q = 0.085063. So DE's p < 0.05 is not significant
    after adjustment at alpha 0.05; at alpha 0.1 all three are. Target 0.95: only DE's (and
    IT's) interval lies wholly below it.
    """
    lead = await make_key(sessionmaker, "manager")
    response = await _get(client, lead, dimension="market")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["dimension"], body["target"], body["alpha"]) == ("market", 0.95, 0.05)
    assert body["adjustment"] == "benjamini-hochberg"
    rows = body["rows"]
    assert [(row["rank"], row["key"], row["audited"], row["correct"]) for row in rows] == [
        (1, "DE", 20, 14),
        (2, "FR", 20, 19),
        (3, "PL", 12, 12),
        (None, "IT", 3, 1),
    ]
    de, fr, pl, it = rows
    assert (de["ci_low"], de["ci_high"]) == (
        pytest.approx(0.481027, abs=1e-6),
        pytest.approx(0.854523, abs=1e-6),
    )
    assert (de["rest_audited"], de["rest_accuracy"]) == (35, pytest.approx(32 / 35))
    assert [row["p_value"] for row in rows] == [
        pytest.approx(0.038787, abs=1e-6),
        pytest.approx(0.085063, abs=1e-6),
        pytest.approx(0.083109, abs=1e-6),
        None,
    ]
    assert [row["q_value"] for row in rows] == [
        pytest.approx(0.085063, abs=1e-6),
        pytest.approx(0.085063, abs=1e-6),
        pytest.approx(0.085063, abs=1e-6),
        None,
    ]
    assert [row["significant"] for row in rows] == [False, False, False, False]
    assert [row["below_target"] for row in rows] == [True, False, False, True]
    assert [row["small_sample"] for row in rows] == [False, False, False, True]
    assert it["note"] == "fewer audits than min_audits (10): not ranked, not tested"
    assert (fr["note"], pl["note"]) == (None, None)

    looser = (await _get(client, lead, dimension="market", alpha="0.1")).json()["rows"]
    assert [row["significant"] for row in looser] == [True, True, True, False]
    higher = (await _get(client, lead, dimension="market", target="0.5")).json()["rows"]
    assert [row["below_target"] for row in higher] == [False, False, False, False]


async def test_keys_compare_only_within_their_reach(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    """A DE/FR key: the population is DE + FR (40 audits, 33 correct), so DE's rest is FR's
    19/20. A moderator key compares its own numbers only: one queue, nothing to compare."""
    regional = await make_key(sessionmaker, "manager", markets=["DE", "FR"])
    rows = (await _get(client, regional, dimension="market")).json()["rows"]
    assert [(row["key"], row["rest_audited"], row["rest_accuracy"]) for row in rows] == [
        ("DE", 20, pytest.approx(0.95)),
        ("FR", 20, pytest.approx(0.7)),
    ]
    assert_problem(await _get(client, regional, market="PL"), 403)

    own = await make_key(sessionmaker, "moderator", reviewer_id="mod-de")
    (row,) = (await _get(client, own, dimension="queue")).json()["rows"]
    assert (row["key"], row["audited"], row["rank"]) == ("de-video", 20, 1)
    assert (row["rest_audited"], row["p_value"], row["q_value"]) == (0, None, None)
    assert row["note"] == "no audits outside this slice: nothing to compare with"


async def test_files_carry_the_rows(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    lead = await make_key(sessionmaker, "admin")
    rows = (await _get(client, lead)).json()["rows"]

    response = await _get(client, lead, format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == (
        'attachment; filename="comparison-by-market-2026-11-01-to-2026-11-30.csv"'
    )
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == list(rows[0]) == list(ComparisonRow.model_fields)
    assert [line[1] for line in table[1:]] == ["DE", "FR", "PL", "IT"]
    assert table[4][0] == ""  # IT: no rank

    response = await _get(client, lead, format="xlsx", lang="de")
    assert response.status_code == 200, response.text
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["Vergleich", "Info"]
    headers = [cell.value for cell in workbook["Vergleich"][1]]
    assert headers[:4] == ["Rang", "Ausschnitt", "Geprüft", "Korrekt"]
    assert "q-Wert (BH)" in headers
    about = {row[0].value: row[1].value for row in workbook["Info"].iter_rows()}
    assert (about["Ausschnitte"], about["Ziel"]) == ("Markt", "95,0\xa0%")
    assert "Benjamini-Hochberg" in about["Test und Korrektur"]

    response = await _get(client, lead, format="png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


async def test_overlapping_policy_slices_are_tested_against_the_verdicts_outside_them(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    """30 verdicts, 24 correct (the total row); 20 concern hate_speech (15 correct) and 15
    spam (12 correct), 5 of them both. The rest of hate_speech is the 30 - 20 = 10 verdicts
    not concerning it, 24 - 15 = 9 correct; of spam 15 verdicts, 12 correct."""

    def rollup(policy: str, audited: int, correct: int) -> QualityRollup:
        return QualityRollup(
            day=date(2026, 11, 10),
            market="DE",
            queue="de-video",
            moderator_id="mod-a",
            policy=policy,
            audited=audited,
            correct=correct,
        )

    async with sessionmaker() as session, session.begin():
        session.add_all(
            [rollup("*", 30, 24), rollup("hate_speech", 20, 15), rollup("spam", 15, 12)]
        )
    lead = await make_key(sessionmaker, "manager")
    rows = (await _get(client, lead, dimension="policy")).json()["rows"]
    assert [(row["key"], row["rest_audited"], row["rest_accuracy"]) for row in rows] == [
        ("hate_speech", 10, pytest.approx(0.9)),
        ("spam", 15, pytest.approx(0.8)),
    ]
    (only,) = (await _get(client, lead, dimension="policy", policy="spam")).json()["rows"]
    assert (only["key"], only["rest_audited"]) == ("spam", 15)


async def test_an_empty_window_answers_no_rows(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    lead = await make_key(sessionmaker, "manager")
    for dimension in ("market", "queue", "policy"):
        response = await _get(client, lead, dimension=dimension)
        assert response.status_code == 200, response.text
        assert response.json()["rows"] == []
        for file_format in ("csv", "xlsx", "png"):
            answer = await _get(client, lead, dimension=dimension, format=file_format)
            assert answer.status_code == 200, (file_format, answer.text)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"dimension": "moderator"}, "dimension"),
        ({"target": "1.5"}, "target"),
        ({"target": "-0.1"}, "target"),
        ({"alpha": "0"}, "alpha"),
        ({"alpha": "1"}, "alpha"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "from"),
        ({"from": "2025-01-01", "to": "2026-11-01"}, "to"),
        ({"format": "pptx"}, "format"),
    ],
)
async def test_bad_input_is_a_422_naming_the_parameter(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, params: dict[str, str], parameter: str
) -> None:
    lead = await make_key(sessionmaker, "manager")
    body = assert_problem(await _get(client, lead, **params), 422)
    assert parameter in str(body), body
