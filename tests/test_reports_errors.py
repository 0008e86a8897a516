"""The error report: counts by error type and severity, the error rate with its Wilson
interval and the severity-weighted quality score, from rollups kept by the real write paths.

Decisions arrive over the signed webhook, verdicts are claimed and given over the API,
disputes and rulings go through the API; the report brings the rollups up to date itself.
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

from shared.analytics.errors import errors_row, errors_rows
from shared.analytics.filters import AnalyticsScope
from shared.analytics.schemas import ErrorsRow
from tests.conftest import SignedSender, auth, make_key
from tests.support.analytics import Judged, incorrect, seed_judged
from tests.support.problems import assert_problem

REPORT = "/v1/reports/errors"
WINDOW = {"from": "2026-11-01", "to": "2026-11-30"}
WEIGHTS = {"critical": 5.0, "major": 3.0, "minor": 1.0}

Sessionmaker = async_sessionmaker[AsyncSession]


def _mod(moderator: str) -> dict[str, Any]:
    return {"moderator_id": moderator, "decided_at": "2026-11-24T10:00:00Z"}


# mod-a: 10 audits of removals under hate_speech. 6 correct; 2 over-enforcements (critical),
# 1 wrong action (minor: restrict expected), 1 wrong policy (major) overturned on dispute.
# mod-b: 2 audits, both correct; 1 decision never audited.
CASES = [
    *[Judged(_mod("mod-a")) for _ in range(6)],
    Judged(_mod("mod-a"), incorrect("approve", "critical")),
    Judged(_mod("mod-a"), incorrect("approve", "critical"), ruling="upheld"),
    Judged(_mod("mod-a"), incorrect("restrict", "minor")),
    Judged(
        _mod("mod-a"),
        incorrect("remove", "major", expected_labels=["violent_graphic"]),
        ruling="overturned",
    ),
    Judged(_mod("mod-b")),
    Judged(_mod("mod-b")),
    Judged(_mod("mod-b"), verdict=None),
]


async def _get(client: httpx.AsyncClient, key: str, **params: Any) -> httpx.Response:
    return await client.get(REPORT, params={**WINDOW, **params}, headers=auth(key))


def test_row_from_counts_shows_the_quality_score_by_hand() -> None:
    """10 audits with 2 critical and 1 minor error at weights 5/3/1:
    score = 1 - (2*5 + 0*3 + 1*1) / (5 * 10) = 1 - 11/50 = 0.78; error rate 3/10."""
    counts = {
        "audited": 10,
        "correct": 7,
        "missed_violation": 0,
        "over_enforcement": 2,
        "wrong_policy": 0,
        "wrong_action": 1,
        "critical": 2,
        "major": 0,
        "minor": 1,
    }
    row = errors_row("mod-a", counts, min_audits=30, severity_weights=WEIGHTS)
    assert row.quality_score == pytest.approx(0.78)
    assert row.incorrect == 3
    assert row.error_rate == pytest.approx(0.3)
    assert row.small_sample is True
    empty = errors_row("mod-z", dict.fromkeys(counts, 0), min_audits=1, severity_weights=WEIGHTS)
    assert (empty.error_rate, empty.error_rate_ci_low, empty.quality_score) == (None, None, None)
    assert empty.note == "no audits in this slice"


async def test_errors_by_moderator_match_the_hand_count(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessionmaker,
    admin_key: str,
) -> None:
    """mod-a: 10 audited; the overturned wrong-policy verdict counts as correct, so
    incorrect = 3 (2 over-enforcement critical, 1 wrong action minor).
    error rate = 3/10 = 0.3, Wilson 95 % (z = 1.959964, z^2 = 3.841459):
    centre = (0.3 + z^2/20) / (1 + z^2/10) = 0.4920729 / 1.3841459 = 0.355510,
    half = z * sqrt(0.3*0.7/10 + z^2/400) / 1.3841459 = 1.959964 * 0.174939 / 1.3841459
         = 0.247719, so [0.107791, 0.603222].
    score = 1 - (2*5 + 0*3 + 1*1) / (5*10) = 0.78.
    mod-b: 2 audited, both correct: error rate 0, Wilson [0, 0.657620], score 1.
    With min_audits=5, mod-b is a small sample and mod-a is not.
    """
    await seed_judged(client, sender, sessionmaker, CASES)

    response = await _get(client, admin_key, group_by="moderator", min_audits="5")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["severity_weights"] == WEIGHTS
    assert (body["day_from"], body["day_to"]) == ("2026-11-01", "2026-11-30")
    mod_a, mod_b = body["rows"]
    assert mod_a == {
        "key": "mod-a",
        "audited": 10,
        "incorrect": 3,
        "error_rate": pytest.approx(0.3),
        "error_rate_ci_low": pytest.approx(0.107791, abs=1e-6),
        "error_rate_ci_high": pytest.approx(0.603222, abs=1e-6),
        "missed_violation": 0,
        "over_enforcement": 2,
        "wrong_policy": 0,
        "wrong_action": 1,
        "critical": 2,
        "major": 0,
        "minor": 1,
        "quality_score": pytest.approx(0.78),
        "small_sample": False,
        "note": None,
    }
    assert (mod_b["key"], mod_b["audited"], mod_b["incorrect"]) == ("mod-b", 2, 0)
    assert mod_b["error_rate_ci_high"] == pytest.approx(0.657620, abs=1e-6)
    assert (mod_b["quality_score"], mod_b["small_sample"]) == (1.0, True)

    # Without group_by: one (all) row, 12 audited, the same 3 errors:
    # score = 1 - 11 / (5 * 12) = 0.816667.
    (whole,) = (await _get(client, admin_key)).json()["rows"]
    assert (whole["key"], whole["audited"], whole["incorrect"]) == ("(all)", 12, 3)
    assert whole["quality_score"] == pytest.approx(1 - 11 / 60)
    assert whole["small_sample"] is True  # 12 < 30, the default min_audits

    # By policy: the overturned verdict (hate_speech applied, violent_graphic expected) is
    # correct under both; every error was a hate_speech removal.
    by_policy = (await _get(client, admin_key, group_by="policy")).json()["rows"]
    assert [(row["key"], row["audited"], row["incorrect"]) for row in by_policy] == [
        ("hate_speech", 12, 3),
        ("violent_graphic", 1, 0),
    ]


async def test_a_moderator_key_sees_only_its_own_errors(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    await seed_judged(client, sender, sessionmaker, CASES)
    own = await make_key(sessionmaker, "moderator", reviewer_id="mod-b")

    rows = (await _get(client, own, group_by="moderator")).json()["rows"]

    assert [(row["key"], row["audited"], row["incorrect"]) for row in rows] == [("mod-b", 2, 0)]
    assert_problem(await _get(client, own, moderator_id="mod-a"), 403)


async def test_files_carry_the_json_rows_and_german_headers(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessionmaker,
    admin_key: str,
) -> None:
    await seed_judged(client, sender, sessionmaker, CASES)
    rows = (await _get(client, admin_key, group_by="moderator")).json()["rows"]

    csv_answer = await _get(client, admin_key, group_by="moderator", format="csv")
    assert csv_answer.status_code == 200, csv_answer.text
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert "errors-2026-11-01-to-2026-11-30.csv" in csv_answer.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(csv_answer.text)))
    assert table[0] == list(rows[0])
    assert [line[0] for line in table[1:]] == ["mod-a", "mod-b"]
    assert table[1][table[0].index("quality_score")] == "0.78"

    xlsx = await _get(client, admin_key, group_by="moderator", format="xlsx", lang="de")
    assert xlsx.status_code == 200, xlsx.text
    workbook = load_workbook(io.BytesIO(xlsx.content))
    assert workbook.sheetnames == ["Fehler", "Info"]
    sheet = workbook["Fehler"]
    headers = [cell.value for cell in sheet[1]]
    assert headers[:4] == ["Ausschnitt", "Geprüft", "Fehlerhaft", "Fehlerquote"]
    assert len(headers) == len(ErrorsRow.model_fields)
    score = sheet.cell(row=2, column=headers.index("Qualitätswert") + 1)
    assert (score.value, score.number_format) == (pytest.approx(0.78), "0.0%")
    about = {row[0].value: row[1].value for row in workbook["Info"].iter_rows()}
    assert about["Zeitraum (Markttage)"] == "01.11.2026 bis 30.11.2026"
    assert "kritisch 5, schwer 3, leicht 1" in about["Qualitätswert"]


async def test_an_empty_window_is_a_row_of_nulls_with_a_note(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    (row,) = (await _get(client, admin_key)).json()["rows"]
    assert (row["key"], row["audited"], row["incorrect"]) == ("(all)", 0, 0)
    assert (row["error_rate"], row["error_rate_ci_low"], row["quality_score"]) == (None, None, None)
    assert row["note"] == "no audits in this slice"
    assert (await _get(client, admin_key, group_by="queue")).json()["rows"] == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"group_by": "week"}, "group_by"),
        ({"from": "2026-11-30", "to": "2026-11-01"}, "to"),
        ({"from": "2025-01-01", "to": "2026-11-30"}, "to"),
        ({"format": "png"}, "format"),
        ({"format": "pptx"}, "format"),
        ({"min_audits": "0"}, "min_audits"),
        ({"lang": "fr"}, "lang"),
        ({"market": "germany"}, "market"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_input_is_a_422_naming_the_parameter(
    client: httpx.AsyncClient, admin_key: str, params: dict[str, str], parameter: str
) -> None:
    response = await client.get(REPORT, params={**WINDOW, **params}, headers=auth(admin_key))
    body = assert_problem(response, 422)
    assert parameter in response.text, body


async def test_the_rows_are_callable_without_http(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker, admin_key: str
) -> None:
    """Escalation rules and the briefing read ``errors_rows`` with a scope of their own."""
    await seed_judged(client, sender, sessionmaker, CASES)
    by_http = (await _get(client, admin_key, group_by="market")).json()["rows"]
    scope = AnalyticsScope(
        day_from=date(2026, 11, 1),
        day_to=date(2026, 11, 30),
        markets=None,
        queue=None,
        moderator_id=None,
        policy=None,
    )
    async with sessionmaker() as session:
        rows = await errors_rows(
            session, scope=scope, group_by="market", min_audits=30, severity_weights=WEIGHTS
        )
    assert [row.model_dump(mode="json") for row in rows] == by_http
