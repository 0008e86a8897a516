"""The day rollups (``queue_day_rollups``, ``population_day_rollups``) give the briefing the
numbers the finer ``quality_rollups`` give, and the jobs keep them so.

Hand-built rollup rows (a moderator working in two markets on one day, policy rows beside
the totals, days outside the window, strata with decisions but no audits or more audits than
decisions) are summed both ways; the briefing over the API is compared with the briefing
computed from the finer rows on the same decisions and verdicts (sent over the webhook and
judged over the API). That the day rollups kept by the jobs equal those rebuilt from the raw
verdicts is held by tests/test_quality_rollups.py (``assert_incremental_equals_rebuild``).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics import briefing as briefing_module
from shared.analytics import population as population_module
from shared.analytics.day_rollups import (
    population_day_rollups_cover,
    queue_day_rollups_cover,
    recompute_day_rollups,
)
from shared.analytics.filters import AnalyticsScope
from shared.analytics.population import (
    StrataSums,
    estimate_from_sums,
    population_day_sums,
    population_sums,
)
from shared.analytics.queries import Dimension, sum_quality_rollups, sum_queue_day_rollups
from shared.analytics.schemas import ALL_KEY
from shared.models import QualityRollup
from tests.conftest import SignedSender, auth, make_key
from tests.support.analytics import Judged, incorrect, seed_judged

Sessionmaker = async_sessionmaker[AsyncSession]

D1, D2, D3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)
OUTSIDE = date(2026, 10, 31)


def _scope(markets: tuple[str, ...] | None = None, **filters: Any) -> AnalyticsScope:
    return AnalyticsScope(
        day_from=D1,
        day_to=D3,
        markets=markets,
        queue=filters.get("queue"),
        moderator_id=filters.get("moderator_id"),
        policy=filters.get("policy"),
    )


def _row(day: date, market: str, queue: str, moderator: str, **counts: int) -> QualityRollup:
    return QualityRollup(
        day=day, market=market, queue=queue, moderator_id=moderator, policy="*", **counts
    )


# mod-a works in DE (two queues) and FR on D1: one stratum (mod-a, D1) of N = 8 + 8 + 16 = 32
# decisions, n = 4 + 0 + 4 = 8 audits, x = 3 + 0 + 4 = 7 correct over every market, and two
# strata of DE (N 16, n 4, x 3) and FR (N 16, n 4, x 4) per market.
HAND_BUILT = [
    _row(D1, "DE", "de-1", "mod-a", decisions=8, audited=4, correct=3, critical=1, disputed=1),
    _row(D1, "DE", "de-2", "mod-a", decisions=8),
    _row(D1, "FR", "fr-1", "mod-a", decisions=16, audited=4, correct=4, appealed=2),
    # mod-b: DE on D2, N 4 (handling times), n 2, x 1; D3: 8 decisions, none audited.
    _row(
        D2,
        "DE",
        "de-1",
        "mod-b",
        decisions=4,
        audited=2,
        correct=1,
        minor=1,
        handling_time_ms_sum=9000,
        handling_time_count=3,
    ),
    _row(D3, "DE", "de-2", "mod-b", decisions=8),
    # More audits than decisions (golden-free audits of decisions counted elsewhere): the
    # finite population correction is held at 0.
    _row(D3, "FR", "fr-1", "mod-c", decisions=2, audited=4, correct=2, wrong_action=2),
    # Outside the window: in no sum.
    _row(OUTSIDE, "DE", "de-1", "mod-a", decisions=100, audited=50, correct=1),
]


async def _store(sessionmaker: Sessionmaker, rows: list[QualityRollup]) -> None:
    """The rows, a policy row beside each total (never summed by either side), and the day
    rollups of their days recomputed as the jobs do."""
    async with sessionmaker() as session, session.begin():
        session.add_all(rows)
        session.add_all(
            QualityRollup(
                day=row.day,
                market=row.market,
                queue=row.queue,
                moderator_id=row.moderator_id,
                policy="hate",
                decisions=1000,
                audited=1000,
                correct=1,
            )
            for row in rows
        )
        await session.flush()
        await recompute_day_rollups(session, days={row.day for row in rows})


async def _assert_same_sums(sessionmaker: Sessionmaker, scopes: list[AnalyticsScope]) -> None:
    groupings: list[list[Dimension]] = [
        [],
        ["market"],
        ["queue"],
        ["day"],
        ["week"],
        ["market", "day"],
        ["queue", "day"],
    ]
    async with sessionmaker() as session:
        for scope in scopes:
            assert queue_day_rollups_cover(scope)
            for group_by in groupings:
                fine = await sum_quality_rollups(session, scope=scope, group_by=group_by)
                coarse = await sum_queue_day_rollups(session, scope=scope, group_by=group_by)
                assert coarse == fine, (scope, group_by)


async def test_hand_built_rows_give_the_same_sums_both_ways(sessionmaker: Sessionmaker) -> None:
    await _store(sessionmaker, HAND_BUILT)
    everything, germany, france = _scope(), _scope(("DE",)), _scope(("FR",))
    await _assert_same_sums(sessionmaker, [everything, germany, france, _scope(("DE", "FR"))])
    async with sessionmaker() as session:
        (totals,) = await sum_queue_day_rollups(session, scope=everything)
        by_market = {
            group.key: group["audited"]
            for group in await sum_queue_day_rollups(session, scope=everything, group_by=["market"])
        }
        population = {
            scope.markets: (
                (await population_day_sums(session, scope=scope))[ALL_KEY],
                (await population_sums(session, scope=scope, group_by=None))[ALL_KEY],
            )
            for scope in (everything, germany, france)
        }
    # By hand: 8 + 8 + 16 + 4 + 8 + 2 decisions, 4 + 4 + 2 + 4 audits, 3 + 4 + 1 + 2 correct.
    assert (totals["decisions"], totals["audited"], totals["correct"]) == (46, 14, 10)
    assert (totals["critical"], totals["minor"], totals["wrong_action"]) == (1, 1, 2)
    assert (totals["handling_time_ms_sum"], totals["appealed"]) == (9000, 2)
    assert by_market == {("DE",): 6, ("FR",): 8}
    # Every market: strata (mod-a, D1) 32/8/7, (mod-b, D2) 4/2/1, (mod-b, D3) 8/0/0,
    # (mod-c, D3) 2/4/2. sum N_h p_h = 32 * 7/8 + 4 * 1/2 + 2 * 2/4 = 28 + 2 + 1 = 31;
    # variance: 32^2 (7/8)(1/8) / 8 (1 - 8/32) = 10.5, 4^2 (1/2)(1/2) / 2 (1 - 2/4) = 1,
    # and 0 for mod-c (n > N).
    assert population[None][0] == StrataSums(
        decisions=46, covered_decisions=38, weighted_correct=31.0, variance_sum=11.5,
        audited=14, correct=10,
    )  # fmt: skip
    # DE alone: (mod-a, D1) is 16/4/3, so 16 * 3/4 + 2 = 14; 16^2 (3/4)(1/4) / 4 (3/4) = 9.
    assert population[("DE",)][0] == StrataSums(
        decisions=28, covered_decisions=20, weighted_correct=14.0, variance_sum=10.0,
        audited=6, correct=4,
    )  # fmt: skip
    for markets, (coarse, fine) in population.items():
        assert coarse == fine, markets
        assert estimate_from_sums(coarse) == estimate_from_sums(fine)


async def test_random_rows_give_the_same_sums_both_ways(sessionmaker: Sessionmaker) -> None:
    """300 random rows over 3 markets, 4 queues, 8 moderators and 5 days: the counts are the
    same integers; the float sums of the population strata (added day by day on one side, all
    at once on the other) agree to the last few bits."""
    generator = random.Random(20261201)
    rows: dict[tuple[date, str, str, str], QualityRollup] = {}
    for _ in range(300):
        day = OUTSIDE + timedelta(days=generator.randrange(5))
        market = generator.choice(["DE", "FR", "PL"])
        queue = generator.choice(["q1", "q2", "q3", "q4"])
        moderator = f"mod-{generator.randrange(8)}"
        audited = generator.choice([0, 0, 1, 2, 3, 5, 7])
        rows[day, market, queue, moderator] = _row(
            day,
            market,
            queue,
            moderator,
            decisions=generator.choice([0, 1, 3, 10, 40, 111]),
            audited=audited,
            correct=generator.randint(0, audited),
            disputed=generator.randint(0, audited),
            audit_delay_seconds_sum=generator.randrange(10**6),
        )
    await _store(sessionmaker, list(rows.values()))
    scopes = [_scope(), _scope(("PL",)), _scope(("DE", "FR")), _scope(queue="q2")]
    await _assert_same_sums(sessionmaker, scopes)
    async with sessionmaker() as session:
        for scope in scopes[:2]:
            assert population_day_rollups_cover(scope)
            coarse = (await population_day_sums(session, scope=scope))[ALL_KEY]
            fine = (await population_sums(session, scope=scope, group_by=None))[ALL_KEY]
            exact = ("decisions", "covered_decisions", "audited", "correct")
            assert [getattr(coarse, name) for name in exact] == [
                getattr(fine, name) for name in exact
            ]
            assert coarse.weighted_correct == pytest.approx(fine.weighted_correct, rel=1e-12)
            assert coarse.variance_sum == pytest.approx(fine.variance_sum, rel=1e-12)
    for scope in scopes[2:]:
        assert not population_day_rollups_cover(scope)  # read from the strata instead


async def test_day_rollups_cover_no_moderator_or_policy_filter(
    sessionmaker: Sessionmaker,
) -> None:
    for scope in (_scope(moderator_id="mod-a"), _scope(policy="hate")):
        assert not queue_day_rollups_cover(scope)
        assert not population_day_rollups_cover(scope)
        async with sessionmaker() as session:
            with pytest.raises(ValueError, match="no moderator or policy"):
                await sum_queue_day_rollups(session, scope=scope)
            with pytest.raises(ValueError, match="every market"):
                await population_day_sums(session, scope=scope)


def _on(day: str, moderator: str, market: str) -> dict[str, Any]:
    return {"moderator_id": moderator, "decided_at": f"{day}T10:00:00Z", "market": market}


CASES = [
    *[Judged(_on("2026-11-03", "mod-a", "DE")) for _ in range(3)],
    Judged(_on("2026-11-03", "mod-a", "DE"), incorrect("approve", "critical")),
    Judged(_on("2026-11-03", "mod-a", "FR")),
    Judged(_on("2026-11-03", "mod-a", "FR"), verdict=None),
    *[Judged(_on("2026-11-10", "mod-b", "FR")) for _ in range(2)],
    Judged(_on("2026-11-10", "mod-b", "FR"), incorrect("approve", "minor")),
    *[Judged(_on("2026-11-11", "mod-b", "FR"), verdict=None) for _ in range(3)],
]


@pytest.mark.parametrize("market", [None, "FR"])
async def test_the_briefing_is_the_one_the_finer_rollups_give(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessionmaker,
    monkeypatch: pytest.MonkeyPatch,
    market: str | None,
) -> None:
    """The same decisions and verdicts, the briefing read from the day rollups and from
    ``quality_rollups`` (the day rollups switched off): the same JSON, number for number."""
    await seed_judged(client, sender, sessionmaker, CASES)
    lead = await make_key(sessionmaker, "manager")
    params = {"from": "2026-11-01", "to": "2026-11-30", **({"market": market} if market else {})}

    async def get() -> Any:
        response = await client.get("/v1/reports/briefing", params=params, headers=auth(lead))
        assert response.status_code == 200, response.text
        return response.json()

    coarse = await get()
    monkeypatch.setattr(briefing_module, "queue_day_rollups_cover", lambda scope: False)
    monkeypatch.setattr(population_module, "population_day_rollups_cover", lambda scope: False)
    fine = await get()
    assert coarse == fine
    head = coarse["headline"]
    expected = (12, 8, 6) if market is None else (8, 4, 3)
    assert (head["decisions"], head["audited"], head["correct"]) == expected


async def test_recomputing_any_number_of_days_sends_the_same_statements(
    sessionmaker: Sessionmaker,
) -> None:
    """Each connection prepares a statement per distinct SQL text and keeps it (asyncpg's
    cache, PostgreSQL's plan memory): a text that varied with the number of days (an IN list)
    would be prepared again for every count, on every connection of every worker."""
    await _store(sessionmaker, [_row(D1, "DE", "q1", "mod-1", decisions=3, audited=1)])
    sent: dict[int, list[str]] = {}
    async with sessionmaker() as session:
        connection = await session.connection()
        for count in (1, 2, 3):
            statements: list[str] = []

            def record(*args: Any, statements: list[str] = statements) -> None:
                statements.append(args[2])  # (conn, cursor, statement, parameters, ...)

            sync_engine = connection.sync_connection
            assert sync_engine is not None
            event.listen(sync_engine, "before_cursor_execute", record)
            try:
                await recompute_day_rollups(
                    session, days=[D1 + timedelta(days=n) for n in range(count)]
                )
            finally:
                event.remove(sync_engine, "before_cursor_execute", record)
            sent[count] = statements
        await session.rollback()
    assert len(sent[1]) >= 4
    assert sent[1] == sent[2] == sent[3]
