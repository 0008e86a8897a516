"""The reports benchmark's seeder: what it loads, and that the rollups count it exactly.

``benchmarks/report_seed.py`` loads the benchmark's history with COPY instead of the
webhook, so nothing else checks that its rows are the rows the real code would write. Here
it seeds 2,000 decisions (and then grows them to 3,000, as the benchmark grows 1 M to 10 M)
into the test database; the test compares its counts with the tables and with what
``rebuild_quality_rollups`` makes of them, rebuilt one day at a time as the benchmark times it.
No timings: speed is measured by ``python -m benchmarks.reports``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchmarks.bench_database import plain_dsn
from benchmarks.report_seed import ReportSeeder, table_counts
from shared.analytics.rollups import rebuild_quality_rollups
from shared.core.settings import Settings

END_DAY = date(2026, 11, 29)
AUDIT_SHARE = 0.5


@pytest.fixture
async def connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    assert settings.database_url is not None
    connection = await asyncpg.connect(plain_dsn(settings.database_url))
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def seeded(connection: asyncpg.Connection) -> AsyncIterator[ReportSeeder]:
    """2,000 decisions over the 90 days ending ``END_DAY``, half of them audited (so that
    disputes and overturns occur in so few rows); the partitions the seeder created for past
    months are dropped afterwards (other tests expect only their own)."""
    seeder = ReportSeeder(end_day=END_DAY, seed=3, moderators=200, audit_share=AUDIT_SHARE)
    await seeder.seed_reference(connection)
    created = await seeder.ensure_partitions(connection)
    try:
        await seeder.seed(connection, 2_000)
        yield seeder
    finally:
        for name in created:
            await connection.execute(f'DROP TABLE IF EXISTS "{name}"')


async def _sums(session: AsyncSession) -> dict[str, int]:
    row = (
        await session.execute(
            text(
                """
                SELECT sum(decisions) AS decisions, sum(audited) AS audited,
                       sum(correct) AS correct, sum(judged_incorrect) AS judged_incorrect,
                       sum(disputed) AS disputed, sum(overturned) AS overturned,
                       sum(appealed) AS appealed, sum(appeal_reversed) AS appeal_reversed,
                       sum(handling_time_count) AS handling_time_count,
                       sum(critical + major + minor) AS by_severity,
                       sum(missed_violation + over_enforcement + wrong_policy + wrong_action)
                           AS by_error_type
                FROM quality_rollups WHERE policy = '*'
                """
            )
        )
    ).one()
    return {key: int(value or 0) for key, value in row._mapping.items()}


async def test_seeded_rows_match_the_seeder_counts(
    seeded: ReportSeeder, connection: asyncpg.Connection
) -> None:
    """Every table holds what the seeder says it wrote, shaped as the real code writes it:
    the share audited, one completed audit and verdict each, one disagreement per incorrect
    verdict (its history starting with 'open'), overturned ones effectively correct, every
    verdict on its decision's market-local day, every decision with its key row when the
    schema has the key table."""
    counts = seeded.counts
    tables = await table_counts(
        connection,
        ["decisions", "audits", "verdicts", "disagreements", "appeals", "markets", "queues",
         "policies", "reviewers", "sources"],
    )  # fmt: skip
    assert tables == {
        "decisions": 2_000,
        "audits": counts.audits,
        "verdicts": counts.verdicts,
        "disagreements": counts.incorrect,
        "appeals": counts.appeals,
        "markets": 10,
        "queues": 40,
        "policies": 15,
        "reviewers": 200 + 10 * 10,
        "sources": 1,
    }
    # Binomial(2000, 0.5): mean 1,000, sd ~22; the seeded generator gives one fixed value.
    assert 900 < counts.audits < 1_100
    # ~7 % incorrect, 30 % of those disputed, about a third of the rulings overturned.
    assert counts.incorrect > 30
    assert 0 < counts.overturned < counts.disputed < counts.incorrect
    checks = await connection.fetchrow(
        """
        SELECT
          count(*) FILTER (WHERE a.status <> 'completed') AS not_completed,
          count(*) FILTER (WHERE v.day <> (d.decided_at AT TIME ZONE m.time_zone)::date)
            AS wrong_day,
          count(*) FILTER (WHERE v.outcome = 'incorrect' AND (v.error_type IS NULL
                           OR v.severity IS NULL OR v.expected_action IS NULL)) AS incomplete,
          count(*) FILTER (WHERE v.effective_outcome = 'incorrect') AS effectively_incorrect,
          count(*) FILTER (WHERE v.effective_outcome = 'correct' AND v.outcome = 'incorrect'
                           AND g.status <> 'overturned') AS corrected_without_overturn,
          count(*) FILTER (WHERE v.created_at < d.decided_at) AS judged_before_decided
        FROM verdicts v
        JOIN audits a ON a.id = v.audit_id
        JOIN decisions d ON d.id = v.decision_id
        JOIN markets m ON m.code = d.market
        LEFT JOIN disagreements g ON g.verdict_id = v.id
        """
    )
    assert dict(checks) == {
        "not_completed": 0,
        "wrong_day": 0,
        "incomplete": 0,
        "effectively_incorrect": counts.effectively_incorrect,
        "corrected_without_overturn": 0,
        "judged_before_decided": 0,
    }
    assert counts.effectively_incorrect == counts.incorrect - counts.overturned
    first_changes = await connection.fetchval(
        "SELECT count(*) FROM disagreement_changes WHERE from_status IS NULL AND to_status = 'open'"
    )
    assert first_changes == counts.disagreements
    if await connection.fetchval("SELECT to_regclass('decision_event_keys') IS NOT NULL"):
        assert counts.event_keys == 2_000
        missing = await connection.fetchval(
            "SELECT count(*) FROM decisions d WHERE NOT EXISTS (SELECT 1 FROM "
            "decision_event_keys k WHERE k.source_id = d.source_id AND k.event_id = d.event_id)"
        )
        assert missing == 0


async def test_rollups_rebuilt_day_by_day_count_every_seeded_row(
    seeded: ReportSeeder,
    connection: asyncpg.Connection,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The benchmark rebuilds one market-local day at a time over ``local_days()``: that
    must cover every seeded row (no decision on a day outside the list) and give the totals
    the seeder counted; growing the history (2,000 -> 3,000 decisions) and rebuilding again
    counts the new rows too."""
    for size in (None, 3_000):
        if size is not None:
            await seeded.seed(connection, size)
        for day in seeded.local_days():
            async with sessionmaker() as session:
                await rebuild_quality_rollups(session, day_from=day, day_to=day)
                await session.commit()
        counts = seeded.counts
        async with sessionmaker() as session:
            sums = await _sums(session)
            handled = await session.scalar(text("SELECT count(handling_time_ms) FROM decisions"))
            confusion = await session.scalar(
                text("SELECT sum(verdicts) FROM action_confusion_rollups WHERE policy = '*'")
            )
        assert sums == {
            "decisions": counts.decisions,
            "audited": counts.verdicts,
            "correct": counts.verdicts - counts.effectively_incorrect,
            "judged_incorrect": counts.incorrect,
            "disputed": counts.disputed,
            "overturned": counts.overturned,
            "appealed": counts.appeals,
            "appeal_reversed": counts.appeals_reversed,
            "handling_time_count": handled,
            # Errors by severity and by type count verdicts still incorrect.
            "by_severity": counts.effectively_incorrect,
            "by_error_type": counts.effectively_incorrect,
        }
        assert confusion == counts.verdicts
    assert seeded.counts.decisions == 3_000


async def test_the_seed_is_deterministic(connection: asyncpg.Connection) -> None:
    """The same seed and end day give the same rows (here: the same counts and the same
    verdicts) whoever runs it; the data set is a fixed point of comparison between runs."""
    first = ReportSeeder(end_day=END_DAY, seed=5, moderators=50)
    second = ReportSeeder(end_day=END_DAY, seed=5, moderators=50)
    await first.seed_reference(connection)
    created = await first.ensure_partitions(connection)
    try:
        await first.seed(connection, 1_000)
        rows = await connection.fetch(
            "SELECT decision_id, outcome, effective_outcome, error_type FROM verdicts ORDER BY 1"
        )
        await connection.execute(
            "TRUNCATE decisions, audits, verdicts, disagreements, disagreement_changes, "
            "appeals, intake_batches, sampling_runs, markets, queues, policies, reviewers, "
            "sources CASCADE"
        )
        if await connection.fetchval("SELECT to_regclass('decision_event_keys') IS NOT NULL"):
            await connection.execute("TRUNCATE decision_event_keys")
        await second.seed_reference(connection)
        await second.seed(connection, 1_000)
        again = await connection.fetch(
            "SELECT decision_id, outcome, effective_outcome, error_type FROM verdicts ORDER BY 1"
        )
    finally:
        for name in created:
            await connection.execute(f'DROP TABLE IF EXISTS "{name}"')
    assert [tuple(r) for r in rows] == [tuple(r) for r in again]
    assert first.counts == second.counts
