"""The rates report: audit coverage, dispute, overturn and appeal-overturn rates with their
Wilson intervals, time to audit and handling time, from rollups kept by the real write paths
(decisions and appeal outcomes over their signed webhooks, verdicts, disputes and rulings
over the API)."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.filters import AnalyticsScope
from shared.analytics.rates import RATES_COUNTERS, rates_row, rates_rows
from shared.analytics.schemas import RatesRow
from shared.models import Decision, Verdict
from tests.conftest import SignedSender, auth, make_key
from tests.support.analytics import Judged, appeal, incorrect, post_appeals, seed_judged
from tests.support.problems import assert_problem

REPORT = "/v1/reports/rates"
WINDOW = {"from": "2026-11-01", "to": "2026-11-30"}

Sessionmaker = async_sessionmaker[AsyncSession]


def _decision(n: int, moderator: str = "mod-a") -> dict[str, Any]:
    # mod-a's handling times: 1 s, 2 s, ..., 9 s, and the tenth decision reports none.
    return {"moderator_id": moderator, "handling_time_ms": 1000 * (n + 1) if n < 9 else None}


# mod-a: 10 decisions (evt-0..evt-9), 6 audited:
#   evt-0..2 correct; evt-3 incorrect, disputed, overturned; evt-4 incorrect, disputed,
#   upheld; evt-5 incorrect, never disputed; evt-6..9 not audited.
# mod-b: 2 decisions (evt-10, evt-11), none audited.
CASES = [
    *[Judged(_decision(n)) for n in range(3)],
    Judged(_decision(3), incorrect("approve"), ruling="overturned"),
    Judged(_decision(4), incorrect("approve"), ruling="upheld"),
    Judged(_decision(5), incorrect("approve")),
    *[Judged(_decision(n), verdict=None) for n in range(6, 10)],
    Judged(_decision(0, moderator="mod-b"), verdict=None),
    Judged(_decision(0, moderator="mod-b"), verdict=None),
]
# Appeal outcomes: evt-0 and evt-6 reversed, evt-7 upheld (appeals need no audit).
APPEALS = [
    appeal("ap-0", "evt-0", "reversed"),
    appeal("ap-6", "evt-6", "reversed"),
    appeal("ap-7", "evt-7", "upheld"),
]


async def _seed(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    await seed_judged(client, sender, sessionmaker, CASES)
    await post_appeals(sender, APPEALS)


async def _mean_hours_to_audit(sessionmaker: Sessionmaker, moderator: str) -> float:
    """The verdicts' mean delay after their decisions, straight from the raw tables."""
    async with sessionmaker() as session:
        seconds = await session.scalar(
            select(func.avg(func.extract("epoch", Verdict.created_at - Decision.decided_at)))
            .join(Decision, Decision.id == Verdict.decision_id)
            .where(Verdict.moderator_id == moderator)
        )
    assert seconds is not None
    return float(seconds) / 3600


def test_an_empty_slice_is_nulls_with_every_reason() -> None:
    row = rates_row("mod-z", dict.fromkeys(RATES_COUNTERS, 0), min_audits=30)
    rates = [
        row.audit_coverage,
        row.dispute_rate,
        row.overturn_rate,
        row.appeal_overturn_rate,
        row.mean_hours_to_audit,
        row.mean_handling_seconds,
    ]
    assert rates == [None] * 6
    assert row.note == (
        "no decisions received: no audit coverage; "
        "no audits: no dispute, overturn rate or time to audit; "
        "no appeal outcomes: no appeal overturn rate; no handling times reported"
    )


def test_more_audits_than_decisions_give_no_coverage() -> None:
    """Under a policy a verdict counts where the auditor expected the policy on a decision
    that did not carry it: 3 audits over 2 decisions is no proportion."""
    counts = dict.fromkeys(RATES_COUNTERS, 0) | {"decisions": 2, "audited": 3}
    row = rates_row("spam", counts, min_audits=1)
    assert (row.audit_coverage, row.audit_coverage_ci_high) == (None, None)
    assert row.note is not None
    assert "more audits than decisions" in row.note


async def test_rates_by_moderator_match_the_hand_count(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker, admin_key: str
) -> None:
    """mod-a (Wilson 95 %, z = 1.959964, z^2 = 3.841459):
    audit coverage = 6 / 10 = 0.6: centre (0.6 + z^2/20) / (1 + z^2/10) = 0.792073 / 1.384146
        = 0.572247, half = z sqrt(0.024 + z^2/400) / 1.384146 = 0.259573: [0.312674, 0.831820];
    dispute rate = 2 disputed / 3 judged incorrect: [0.207660, 0.938508];
    overturn rate = 1 overturned / 2 disputed: [0.094531, 0.905469];
    appeal overturn rate = 2 reversed / 3 appealed: [0.207660, 0.938508];
    mean handling = (1 + 2 + ... + 9) s / 9 decisions that reported one = 5 s;
    mean hours to audit = the mean of (verdict time - decision time) over the 6 verdicts.
    mod-b: 2 decisions, no audit: coverage 0 / 2 = 0 with [0, 0.657620], the rest null.
    """
    await _seed(client, sender, sessionmaker)

    response = await client.get(
        REPORT,
        params={**WINDOW, "group_by": "moderator", "min_audits": "5"},
        headers=auth(admin_key),
    )

    assert response.status_code == 200, response.text
    mod_a, mod_b = response.json()["rows"]
    hours = await _mean_hours_to_audit(sessionmaker, "mod-a")
    assert mod_a == {
        "key": "mod-a",
        "decisions": 10,
        "audited": 6,
        "audit_coverage": pytest.approx(0.6),
        "audit_coverage_ci_low": pytest.approx(0.312674, abs=1e-6),
        "audit_coverage_ci_high": pytest.approx(0.831820, abs=1e-6),
        "judged_incorrect": 3,
        "disputed": 2,
        "dispute_rate": pytest.approx(2 / 3),
        "dispute_rate_ci_low": pytest.approx(0.207660, abs=1e-6),
        "dispute_rate_ci_high": pytest.approx(0.938508, abs=1e-6),
        "overturned": 1,
        "overturn_rate": pytest.approx(0.5),
        "overturn_rate_ci_low": pytest.approx(0.094531, abs=1e-6),
        "overturn_rate_ci_high": pytest.approx(0.905469, abs=1e-6),
        "appealed": 3,
        "appeal_reversed": 2,
        "appeal_overturn_rate": pytest.approx(2 / 3),
        "appeal_overturn_rate_ci_low": pytest.approx(0.207660, abs=1e-6),
        "appeal_overturn_rate_ci_high": pytest.approx(0.938508, abs=1e-6),
        # The rollup sums whole seconds per verdict: within 6 s over 6 verdicts.
        "mean_hours_to_audit": pytest.approx(hours, abs=1 / 3600),
        "mean_handling_seconds": pytest.approx(5.0),
        "small_sample": False,
        "note": None,
    }
    assert (mod_b["key"], mod_b["decisions"], mod_b["audited"]) == ("mod-b", 2, 0)
    assert (mod_b["audit_coverage"], mod_b["audit_coverage_ci_high"]) == (
        0.0,
        pytest.approx(0.657620, abs=1e-6),
    )
    assert [mod_b[name] for name in ("dispute_rate", "overturn_rate", "mean_hours_to_audit")] == [
        None,
        None,
        None,
    ]
    assert mod_b["small_sample"] is True
    assert mod_b["note"] == (
        "no audits: no dispute, overturn rate or time to audit; "
        "no appeal outcomes: no appeal overturn rate"
    )


async def test_a_moderator_key_sees_only_its_own_rates(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    await _seed(client, sender, sessionmaker)
    own = await make_key(sessionmaker, "moderator", reviewer_id="mod-b")

    (row,) = (await client.get(REPORT, params=WINDOW, headers=auth(own))).json()["rows"]

    assert (row["key"], row["decisions"], row["audited"], row["appealed"]) == ("(all)", 2, 0, 0)
    other = await client.get(REPORT, params={**WINDOW, "moderator_id": "mod-a"}, headers=auth(own))
    assert_problem(other, 403)


async def test_files_carry_the_json_rows_and_german_headers(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker, admin_key: str
) -> None:
    await _seed(client, sender, sessionmaker)
    params = {**WINDOW, "group_by": "moderator"}
    rows = (await client.get(REPORT, params=params, headers=auth(admin_key))).json()["rows"]

    answer = await client.get(REPORT, params={**params, "format": "csv"}, headers=auth(admin_key))
    assert answer.status_code == 200, answer.text
    assert "rates-2026-11-01-to-2026-11-30.csv" in answer.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(answer.text)))
    assert table[0] == list(rows[0])
    assert table[1][table[0].index("mean_handling_seconds")] == "5.0"
    assert table[2][table[0].index("dispute_rate")] == ""

    workbook_answer = await client.get(
        REPORT, params={**params, "format": "xlsx", "lang": "de"}, headers=auth(admin_key)
    )
    assert workbook_answer.status_code == 200, workbook_answer.text
    workbook = load_workbook(io.BytesIO(workbook_answer.content))
    assert workbook.sheetnames == ["Quoten", "Info"]
    headers = [cell.value for cell in workbook["Quoten"][1]]
    assert len(headers) == len(RatesRow.model_fields)
    assert headers[:4] == ["Ausschnitt", "Entscheidungen", "Geprüft", "Prüfabdeckung"]
    coverage = workbook["Quoten"].cell(row=2, column=4)
    assert (coverage.value, coverage.number_format) == (pytest.approx(0.6), "0.0%")
    about = {row[0].value: row[1].value for row in workbook["Info"].iter_rows()}
    assert about["Gruppiert nach"] == "moderator"


async def test_the_rows_are_callable_without_http(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker, admin_key: str
) -> None:
    """Escalation rules (dispute_rate, overturn_rate) read ``rates_rows`` with a scope of
    their own, no viewer and no HTTP."""
    await _seed(client, sender, sessionmaker)
    by_http = (
        await client.get(REPORT, params={**WINDOW, "group_by": "queue"}, headers=auth(admin_key))
    ).json()["rows"]
    scope = AnalyticsScope(
        day_from=date(2026, 11, 1),
        day_to=date(2026, 11, 30),
        markets=("DE",),
        queue=None,
        moderator_id=None,
        policy=None,
    )
    async with sessionmaker() as session:
        rows = await rates_rows(session, scope=scope, group_by="queue", min_audits=30)
    assert [row.model_dump(mode="json") for row in rows] == by_http
    assert [(row.key, row.decisions, row.audited) for row in rows] == [("de-video-standard", 12, 6)]


async def test_an_empty_window_is_one_row_of_nulls(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    (row,) = (await client.get(REPORT, params=WINDOW, headers=auth(admin_key))).json()["rows"]
    assert (row["key"], row["decisions"], row["audit_coverage"], row["dispute_rate"]) == (
        "(all)",
        0,
        None,
        None,
    )
    assert row["note"].startswith("no decisions received")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"group_by": "auditor"}, "group_by"),
        ({"from": "2026-11-30", "to": "2026-11-01"}, "to"),
        ({"from": "2025-11-01", "to": "2026-11-30"}, "to"),
        ({"format": "png"}, "format"),
        ({"min_audits": "0"}, "min_audits"),
        ({"from": "30.11.2026"}, "from"),
    ],
)
async def test_bad_input_is_a_422_naming_the_parameter(
    client: httpx.AsyncClient, admin_key: str, params: dict[str, str], parameter: str
) -> None:
    response = await client.get(REPORT, params={**WINDOW, **params}, headers=auth(admin_key))
    assert_problem(response, 422)
    assert parameter in response.text
