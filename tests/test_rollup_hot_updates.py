"""The intake rollup's upserts are HOT updates, and the lost-job sweep has its index
(migration 0015): no index of ``quality_rollups`` holds a decision counter, its pages keep
room for new row versions, and the rollup still counts every decision once."""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.rollups import apply_pending_intake_batches
from shared.background_jobs.recovery import _UNFINISHED_RELAYED
from shared.models.analytics import DECISION_COUNTERS, QUALITY_ROLLUPS_FILLFACTOR
from tests.conftest import SignedSender, decision_event

Sessions = async_sessionmaker[AsyncSession]

# This transaction's row updates of quality_rollups, and those of them that were HOT.
_UPDATES_IN_THIS_TRANSACTION = text(
    "SELECT pg_stat_get_xact_tuples_updated('quality_rollups'::regclass) AS updated, "
    "pg_stat_get_xact_tuples_hot_updated('quality_rollups'::regclass) AS hot"
)


async def post(sender: SignedSender, numbers: range) -> None:
    # Two moderators, one with a policy label and one without: total and policy rows.
    events = [
        decision_event(n, moderator_id=f"mod-{n % 2}", policy_labels=["spam"] if n % 2 else [])
        for n in numbers
    ]
    response = await sender.post({"events": events})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events)


async def test_the_intake_rollup_updates_its_rows_in_place_and_counts_every_decision(
    sender: SignedSender, sessionmaker: Sessions
) -> None:
    await post(sender, range(1, 11))
    async with sessionmaker() as session, session.begin():
        assert await apply_pending_intake_batches(session) == 10
        created = (await session.execute(_UPDATES_IN_THIS_TRANSACTION)).one()
    assert created.updated == 0  # the first batch inserts its rows

    await post(sender, range(11, 31))
    async with sessionmaker() as session, session.begin():
        assert await apply_pending_intake_batches(session) == 20
        updates = (await session.execute(_UPDATES_IN_THIS_TRANSACTION)).one()
    # Each of the 4 rows (2 moderators x total and policy row) once, all HOT: no index entry
    # was written for any of them.
    assert updates.updated == 4
    assert updates.hot == updates.updated

    async with sessionmaker() as session:
        counted = (
            await session.execute(
                text(
                    "SELECT moderator_id, policy, decisions, handling_time_count "
                    "FROM quality_rollups ORDER BY moderator_id, policy"
                )
            )
        ).all()
    assert [tuple(row) for row in counted] == [
        ("mod-0", "(none)", 15, 15),
        ("mod-0", "*", 15, 15),
        ("mod-1", "*", 15, 15),
        ("mod-1", "spam", 15, 15),
    ]


async def test_no_index_holds_a_decision_counter_and_pages_keep_room(
    sessionmaker: Sessions,
) -> None:
    async with sessionmaker() as session:
        definitions = list(
            await session.scalars(
                text("SELECT indexdef FROM pg_indexes WHERE tablename = 'quality_rollups'")
            )
        )
        options = await session.scalar(
            text("SELECT reloptions FROM pg_class WHERE relname = 'quality_rollups'")
        )
    assert len(definitions) == 5
    for definition in definitions:
        for counter in DECISION_COUNTERS:
            assert not re.search(rf"\b{counter}\b", definition), definition
    # The verdict counters are still covered: reports on verdicts stay index-only.
    [totals_day] = [d for d in definitions if "ix_quality_rollups_totals_day" in d]
    assert "audited" in totals_day
    assert "enforcement_fn" in totals_day
    assert options == [f"fillfactor={QUALITY_ROLLUPS_FILLFACTOR}"]


async def test_the_lost_job_sweep_can_read_the_unfinished_jobs_by_their_index(
    sessionmaker: Sessions,
) -> None:
    async with sessionmaker() as session, session.begin():
        # An empty table is read whole whatever the indexes; forbid that to see which index
        # the sweep's predicate can use.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            await session.scalars(
                text(f"EXPLAIN {_UNFINISHED_RELAYED.text}"),
                {"grace_seconds": 10, "limit": 500},
            )
        )
    assert "ix_background_jobs_unfinished" in plan
