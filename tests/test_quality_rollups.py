"""The analytics rollups: maintained incrementally, they equal a rebuild from scratch.

Decisions arrive through the signed webhook (intake batches); verdicts, disputes, rulings
and appeal outcomes go through the domain functions the API calls, so the rollups learn of
them only the way production does: the dirty slices those functions mark in their own
transaction. After each step the incrementally maintained rows are compared, row by row on
both tables, with ``rebuild_quality_rollups`` run in a transaction that is rolled back, and
hand-counted values are checked for every counter.

The data set (decided_at in UTC; market-local day in brackets):

== ====== ===== ======== ================ ============== ====================================
n  market queue moderator action / labels decided_at     audit
== ====== ===== ======== ================ ============== ====================================
1  DE     q-de  mod-a    remove hate      11-10 10:00    correct            (handling 1000)
2  DE     q-de  mod-a    remove hate,spam 11-10 22:30    incorrect: approve, critical;
                                          [10th, 23:30]  disputed, overturned (handling 2000)
3  DE     q-de  mod-a    approve -        11-10 23:30    incorrect: remove violent_graphic,
                                          [11th, 00:30]  major; disputed, upheld
4  DE     q-de  mod-b    remove spam      11-10 09:00    incorrect: remove scam (wrong
                                                         policy), minor     (handling 500)
5  DE     q-de  mod-b    restrict spam    11-10 09:30    incorrect: remove spam (wrong
                                                         action), major
6  AU     q-au  mod-c    remove hate      11-10 14:00    correct; appeal reversed
                                          [11th, 01:00]
7  AU     q-au  mod-c    approve -        11-10 01:00    none; appeal upheld (handling 3000)
                                          [10th, 12:00]
8  US     q-us  mod-d    escalate self    11-11 03:00    correct
                                          [10th, 22:00]
9  DE     q-de  mod-a    remove hate      11-10 11:00    golden, incorrect (never counts)
10 DE     q-de  mod-a    remove hate      11-10 12:00    none; appealed twice: upheld, then
                                                         reversed (one decision, reversed)
== ====== ===== ======== ================ ============== ====================================
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import main, rebuild_rollups
from services.report_worker.quality_rollups import sweep_quality_rollups
from shared.analytics.rollups import (
    Slice,
    apply_dirty_slices,
    apply_pending_intake_batches,
    mark_slices_dirty,
    rebuild_quality_rollups,
    refresh_rollups,
)
from shared.appeals.service import store_appeals
from shared.audits.service import submit_verdict
from shared.core.auth import Principal, Role
from shared.core.settings import Settings
from shared.disagreements.lifecycle import dispute, resolve
from shared.models import Audit, Decision, Disagreement, Market, OutboxJob, Source, Verdict
from shared.models.analytics import DirtyRollupSlice
from shared.models.base import utcnow
from shared.schemas.appeals import AppealEvent
from shared.schemas.audits import VerdictCreate
from shared.schemas.disagreements import ResolutionOutcome
from tests.conftest import SignedSender, decision_event
from tests.support.workers import worker_state

Sessions = async_sessionmaker[AsyncSession]

AUDITOR = Principal(key_id="test-auditor", role=Role.QA_AUDITOR, reviewer_id="aud-1", markets=None)
ARBITER = Principal(key_id="test-manager", role=Role.MANAGER, reviewer_id=None, markets=None)
D10, D11 = date(2026, 11, 10), date(2026, 11, 11)

DECISIONS: dict[int, dict[str, Any]] = {
    1: {"moderator_id": "mod-a", "policy_labels": ["hate"], "decided_at": "2026-11-10T10:00:00Z",
        "handling_time_ms": 1000},
    2: {"moderator_id": "mod-a", "policy_labels": ["hate", "spam"],
        "decided_at": "2026-11-10T22:30:00Z", "handling_time_ms": 2000},
    3: {"moderator_id": "mod-a", "action": "approve", "policy_labels": [],
        "decided_at": "2026-11-10T23:30:00Z"},
    4: {"moderator_id": "mod-b", "policy_labels": ["spam"], "decided_at": "2026-11-10T09:00:00Z",
        "handling_time_ms": 500},
    5: {"moderator_id": "mod-b", "action": "restrict", "policy_labels": ["spam"],
        "decided_at": "2026-11-10T09:30:00Z"},
    6: {"moderator_id": "mod-c", "market": "AU", "queue": "q-au", "language": "en",
        "policy_labels": ["hate"], "decided_at": "2026-11-10T14:00:00Z"},
    7: {"moderator_id": "mod-c", "market": "AU", "queue": "q-au", "language": "en",
        "action": "approve", "policy_labels": [], "decided_at": "2026-11-10T01:00:00Z",
        "handling_time_ms": 3000},
    8: {"moderator_id": "mod-d", "market": "US", "queue": "q-us", "language": "en",
        "action": "escalate", "policy_labels": ["self"], "decided_at": "2026-11-11T03:00:00Z"},
    9: {"moderator_id": "mod-a", "policy_labels": ["hate"], "decided_at": "2026-11-10T11:00:00Z"},
    10: {"moderator_id": "mod-a", "policy_labels": ["hate"], "decided_at": "2026-11-10T12:00:00Z"},
}  # fmt: skip
VERDICTS: dict[int, VerdictCreate] = {
    1: VerdictCreate(outcome="correct"),
    2: VerdictCreate(outcome="incorrect", expected_action="approve", severity="critical"),
    3: VerdictCreate(
        outcome="incorrect",
        expected_action="remove",
        expected_labels=["violent_graphic"],
        severity="major",
    ),
    4: VerdictCreate(
        outcome="incorrect", expected_action="remove", expected_labels=["scam"], severity="minor"
    ),
    5: VerdictCreate(outcome="incorrect", expected_action="remove", severity="major"),
    6: VerdictCreate(outcome="correct"),
    8: VerdictCreate(outcome="correct"),
}

Snapshot = dict[tuple[Any, ...], dict[str, Any]]


async def snapshot(session: AsyncSession) -> tuple[Snapshot, Snapshot]:
    """Both tables, keyed by their primary keys (``updated_at`` left out)."""
    quality = {
        (r["day"], r["market"], r["queue"], r["moderator_id"], r["policy"]): {
            k: v for k, v in r.items() if k != "updated_at"
        }
        for r in (await session.execute(text("SELECT * FROM quality_rollups"))).mappings()
    }
    confusion = {
        (r["day"], r["market"], r["queue"], r["moderator_id"], r["policy"], r["action"],
         r["expected_action"]): dict(r)
        for r in (
            await session.execute(text("SELECT * FROM action_confusion_rollups"))
        ).mappings()
    }  # fmt: skip
    return quality, confusion


async def apply_all(sessionmaker: Sessions) -> None:
    """What the jobs do, until nothing is pending."""
    while True:
        async with sessionmaker() as session, session.begin():
            counted = await apply_pending_intake_batches(session)
            recomputed = await apply_dirty_slices(session)
        if not counted and not recomputed:
            return


async def day_snapshot(session: AsyncSession) -> tuple[Snapshot, Snapshot]:
    """The day rollups, keyed by their primary keys."""
    queue_days = {
        (r["day"], r["market"], r["queue"]): dict(r)
        for r in (await session.execute(text("SELECT * FROM queue_day_rollups"))).mappings()
    }
    population_days = {
        (r["day"], r["market"]): dict(r)
        for r in (await session.execute(text("SELECT * FROM population_day_rollups"))).mappings()
    }
    return queue_days, population_days


async def assert_incremental_equals_rebuild(sessionmaker: Sessions) -> tuple[Snapshot, Snapshot]:
    """Compare row by row with a rebuild from scratch (rolled back: nothing changes), the day
    rollups too (kept by the jobs, and rebuilt from the rebuilt rows)."""
    async with sessionmaker() as session:
        incremental = await snapshot(session)
        incremental_days = await day_snapshot(session)
    async with sessionmaker() as session, session.begin():
        await rebuild_quality_rollups(session)
        rebuilt = await snapshot(session)
        rebuilt_days = await day_snapshot(session)
        await session.rollback()
    tables = ("quality", "confusion", "queue_day", "population_day")
    for table, mine, truth in zip(
        tables, (*incremental, *incremental_days), (*rebuilt, *rebuilt_days), strict=True
    ):
        assert sorted(mine) == sorted(truth), table
        for key, row in truth.items():
            assert mine[key] == row, (table, key)
    # The day rollups are the slice totals summed: the moderators of a market, queue and day.
    totals: dict[tuple[Any, ...], int] = {}
    for (day, market, queue, _, policy), counts in rebuilt[0].items():
        if policy == "*":
            totals[day, market, queue] = totals.get((day, market, queue), 0) + counts["audited"]
    assert {key: row["audited"] for key, row in rebuilt_days[0].items()} == totals
    return incremental


def row(quality: Snapshot, day: date, market: str, moderator: str, policy: str) -> dict[str, Any]:
    queue = {"DE": "q-de", "AU": "q-au", "US": "q-us"}[market]
    return quality[(day, market, queue, moderator, policy)]


async def post_decisions(sender: SignedSender, numbers: list[int]) -> None:
    defaults: dict[str, Any] = {"queue": "q-de", "handling_time_ms": None}
    events = [decision_event(n, **{**defaults, **DECISIONS[n]}) for n in numbers]
    response = await sender.post({"events": events})
    assert response.status_code == 202, response.text


async def claimed_audits(
    sessionmaker: Sessions, numbers: list[int], *, golden: bool = False
) -> dict[int, uuid.UUID]:
    """Audits of these decisions, claimed by aud-1, on the decision's market-local day."""
    local_day = text("SELECT (CAST(:at AS timestamptz) AT TIME ZONE :zone)::date")
    made: dict[int, uuid.UUID] = {}
    async with sessionmaker() as session, session.begin():
        for n in numbers:
            decision = await session.scalar(select(Decision).where(Decision.event_id == f"evt-{n}"))
            assert decision is not None
            zone = await session.scalar(
                select(Market.time_zone).where(Market.code == decision.market)
            )
            day = await session.scalar(local_day, {"at": decision.decided_at, "zone": zone})
            audit = Audit(
                id=uuid.uuid4(),
                decision_id=decision.id,
                reason="base_rate",
                market=decision.market,
                queue=decision.queue,
                language=decision.language,
                moderator_id=decision.moderator_id,
                policy_labels=decision.policy_labels,
                day=day,
                status="claimed",
                priority=0.5,
                auditor_id="aud-1",
                claimed_at=utcnow(),
                lease_expires_at=utcnow() + timedelta(hours=1),
                is_golden=golden,
            )
            session.add(audit)
            made[n] = audit.id
    return made


async def judge(sessionmaker: Sessions, audits: dict[int, uuid.UUID]) -> None:
    for n, audit_id in audits.items():
        async with sessionmaker() as session, session.begin():
            await submit_verdict(
                session,
                principal=AUDITOR,
                audit_id=audit_id,
                data=VERDICTS[n],
                dispute_window_hours=72,
            )


async def golden_verdict(sessionmaker: Sessions, audit_id: uuid.UUID) -> None:
    """A golden audit's verdict as stored (it tests the auditor; no slice counts it)."""
    async with sessionmaker() as session, session.begin():
        audit = await session.get(Audit, audit_id)
        assert audit is not None
        audit.status = "completed"
        session.add(
            Verdict(
                audit_id=audit.id,
                decision_id=audit.decision_id,
                auditor_id="aud-1",
                moderator_id=audit.moderator_id,
                market=audit.market,
                queue=audit.queue,
                day=audit.day,
                outcome="incorrect",
                effective_outcome="incorrect",
                expected_action="approve",
                expected_labels=[],
                severity="critical",
                error_type="over_enforcement",
                policy_versions={},
            )
        )


async def disagreement_of(sessionmaker: Sessions, audit_id: uuid.UUID) -> uuid.UUID:
    async with sessionmaker() as session:
        found = await session.scalar(
            select(Disagreement.id).where(Disagreement.audit_id == audit_id)
        )
    assert found is not None
    return found


async def dispute_and_rule(
    sessionmaker: Sessions, audit_id: uuid.UUID, moderator: str, outcome: ResolutionOutcome
) -> None:
    disagreement_id = await disagreement_of(sessionmaker, audit_id)
    as_moderator = Principal(
        key_id="test-moderator", role=Role.MODERATOR, reviewer_id=moderator, markets=None
    )
    async with sessionmaker() as session, session.begin():
        await dispute(
            session,
            disagreement_id=disagreement_id,
            reason="it was fine",
            actor=as_moderator,
            now=utcnow(),
        )
    # Applied in between: the ruling must mark the slice itself.
    await apply_all(sessionmaker)
    async with sessionmaker() as session, session.begin():
        await resolve(
            session,
            disagreement_id=disagreement_id,
            outcome=outcome,
            note="ruled",
            actor=ARBITER,
            now=utcnow(),
        )


async def appeal(
    sessionmaker: Sessions, event_id: str, n: int, outcome: Literal["upheld", "reversed"]
) -> None:
    async with sessionmaker() as session, session.begin():
        source_id = await session.scalar(select(Source.id).where(Source.name == "acme"))
        assert source_id is not None
        await store_appeals(
            session,
            source_id=source_id,
            events=[
                AppealEvent(
                    event_id=event_id,
                    content_id=f"vid-{n}",
                    original_event_id=f"evt-{n}",
                    outcome=outcome,
                    decided_at=datetime(2026, 11, 20, tzinfo=UTC),
                )
            ],
        )


async def delays(sessionmaker: Sessions, numbers: list[int]) -> int:
    """Sum of whole seconds from decision to verdict, computed here from the stored times."""
    total = 0
    async with sessionmaker() as session:
        for n in numbers:
            decided_at, judged_at = (
                await session.execute(
                    select(Decision.decided_at, Verdict.created_at)
                    .join(Verdict, Verdict.decision_id == Decision.id)
                    .where(Decision.event_id == f"evt-{n}")
                )
            ).one()
            total += int((judged_at - decided_at).total_seconds() // 1)
    return total


@pytest.fixture
async def world(sender: SignedSender, sessionmaker: Sessions) -> dict[int, uuid.UUID]:
    """Every decision posted, every audit judged, no dispute or appeal yet."""
    await post_decisions(sender, list(DECISIONS))
    audits = await claimed_audits(sessionmaker, [1, 2, 3, 4, 5, 6, 8])
    golden = await claimed_audits(sessionmaker, [9], golden=True)
    await judge(sessionmaker, audits)
    await golden_verdict(sessionmaker, golden[9])
    return audits


async def test_incremental_rows_equal_a_rebuild_through_verdicts_rulings_and_appeals(
    world: dict[int, uuid.UUID], sessionmaker: Sessions
) -> None:
    await apply_all(sessionmaker)
    quality, confusion = await assert_incremental_equals_rebuild(sessionmaker)

    # Decision side, by hand. mod-a on DE's 10th: decisions 1, 2 (23:30 in Berlin), 9, 10;
    # 3 fell on the 11th in Berlin. Handling times 1000 + 2000, two reported.
    mod_a = row(quality, D10, "DE", "mod-a", "*")
    assert (mod_a["decisions"], mod_a["handling_time_ms_sum"], mod_a["handling_time_count"]) == (
        4,
        3000,
        2,
    )
    assert row(quality, D10, "DE", "mod-a", "hate")["decisions"] == 4
    assert row(quality, D10, "DE", "mod-a", "spam")["decisions"] == 1
    assert row(quality, D11, "DE", "mod-a", "(none)")["decisions"] == 1
    # AU's 10th in Sydney is decision 7 (01:00 UTC); decision 6 (14:00 UTC) is the 11th.
    assert row(quality, D10, "AU", "mod-c", "*")["decisions"] == 1
    assert row(quality, D11, "AU", "mod-c", "*")["decisions"] == 1
    # New York: 03:00 UTC on the 11th is 22:00 on the 10th.
    assert row(quality, D10, "US", "mod-d", "*")["decisions"] == 1
    assert (D11, "US", "q-us", "mod-d", "*") not in quality

    # Verdict side before any dispute. mod-a's 10th: 1 correct, 2 incorrect (critical
    # over-enforcement); the golden verdict on 9 counts nowhere.
    assert {k: mod_a[k] for k in ("audited", "correct", "judged_incorrect")} == {
        "audited": 2,
        "correct": 1,
        "judged_incorrect": 1,
    }
    assert (mod_a["over_enforcement"], mod_a["critical"], mod_a["disputed"]) == (1, 1, 0)
    assert mod_a["audit_delay_seconds_sum"] == await delays(sessionmaker, [1, 2])
    # Enforcement of hate: 1 enforced and right (tp), 2 enforced and wrong (fp).
    hate = row(quality, D10, "DE", "mod-a", "hate")
    assert (hate["enforcement_tp"], hate["enforcement_fp"], hate["enforcement_fn"]) == (1, 1, 0)
    assert (mod_a["enforcement_tp"], mod_a["enforcement_fp"]) == (0, 0)  # never on "*" rows
    # mod-b: 4 wrong policy (minor), 5 wrong action (major). Under spam, 4 enforced spam
    # where the auditor wanted scam (fp), 5 enforced spam as expected (tp); under scam, 4
    # missed it (fn), a row with verdicts and no decisions.
    mod_b = row(quality, D10, "DE", "mod-b", "*")
    assert (mod_b["wrong_policy"], mod_b["wrong_action"], mod_b["minor"], mod_b["major"]) == (
        1,
        1,
        1,
        1,
    )
    assert (mod_b["missed_violation"], mod_b["correct"]) == (0, 0)
    spam = row(quality, D10, "DE", "mod-b", "spam")
    assert (spam["enforcement_tp"], spam["enforcement_fp"], spam["enforcement_fn"]) == (1, 1, 0)
    scam = row(quality, D10, "DE", "mod-b", "scam")
    assert (scam["decisions"], scam["audited"], scam["enforcement_fn"]) == (0, 1, 1)
    # The confusion matrix: 4 remove -> remove (other labels), 5 restrict -> remove.
    b_star = {
        (k[5], k[6]): r["verdicts"] for k, r in confusion.items() if k[3] == "mod-b" and k[4] == "*"
    }
    assert b_star == {("remove", "remove"): 1, ("restrict", "remove"): 1}
    a_star = {
        (k[5], k[6]): r["verdicts"]
        for k, r in confusion.items()
        if k[:5] == (D10, "DE", "q-de", "mod-a", "*")
    }
    assert a_star == {("remove", "remove"): 1, ("remove", "approve"): 1}

    # Disputes: 2 overturned (the moderator was right), 3 upheld; appeals about 6
    # (reversed), 7 (upheld) and 10 (twice: upheld, then reversed).
    await dispute_and_rule(sessionmaker, world[2], "mod-a", "overturned")
    await dispute_and_rule(sessionmaker, world[3], "mod-a", "upheld")
    await apply_all(sessionmaker)
    quality, _ = await assert_incremental_equals_rebuild(sessionmaker)
    assert row(quality, D10, "DE", "mod-a", "*")["overturned"] == 1
    await appeal(sessionmaker, "ap-6", 6, "reversed")
    await appeal(sessionmaker, "ap-7", 7, "upheld")
    await appeal(sessionmaker, "ap-10a", 10, "upheld")
    await appeal(sessionmaker, "ap-10b", 10, "reversed")
    await apply_all(sessionmaker)
    quality, confusion = await assert_incremental_equals_rebuild(sessionmaker)

    mod_a = row(quality, D10, "DE", "mod-a", "*")
    # Overturned: correct now, still judged incorrect first, no longer an error.
    assert {
        k: mod_a[k]
        for k in ("audited", "correct", "judged_incorrect", "over_enforcement", "critical")
    } == {"audited": 2, "correct": 2, "judged_incorrect": 1, "over_enforcement": 0, "critical": 0}
    assert (mod_a["disputed"], mod_a["overturned"]) == (1, 1)
    # Decision 10 appealed twice counts once, reversed.
    assert (mod_a["appealed"], mod_a["appeal_reversed"]) == (1, 1)
    hate = row(quality, D10, "DE", "mod-a", "hate")
    assert (hate["enforcement_tp"], hate["enforcement_fp"], hate["appealed"]) == (2, 0, 1)
    # Upheld: 3 stays a major missed violation, disputed but not overturned; under the
    # expected violent_graphic it is a miss (fn).
    mod_a_11 = row(quality, D11, "DE", "mod-a", "*")
    assert {
        k: mod_a_11[k]
        for k in ("audited", "correct", "missed_violation", "major", "disputed", "overturned")
    } == {
        "audited": 1,
        "correct": 0,
        "missed_violation": 1,
        "major": 1,
        "disputed": 1,
        "overturned": 0,
    }
    assert row(quality, D11, "DE", "mod-a", "violent_graphic")["enforcement_fn"] == 1
    assert row(quality, D11, "DE", "mod-a", "(none)")["audited"] == 0
    # Appeals on the decisions' own days in Sydney.
    au_10 = row(quality, D10, "AU", "mod-c", "*")
    au_11 = row(quality, D11, "AU", "mod-c", "*")
    assert (au_10["appealed"], au_10["appeal_reversed"], au_10["audited"]) == (1, 0, 0)
    assert (au_11["appealed"], au_11["appeal_reversed"], au_11["correct"]) == (1, 1, 1)
    assert row(quality, D10, "AU", "mod-c", "(none)")["appealed"] == 1
    a_star = {
        (k[5], k[6]): r["verdicts"]
        for k, r in confusion.items()
        if k[:5] == (D10, "DE", "q-de", "mod-a", "*")
    }
    assert a_star == {("remove", "remove"): 2}
    us = {k[4:]: r["verdicts"] for k, r in confusion.items() if k[3] == "mod-d"}
    assert us == {("*", "escalate", "escalate"): 1, ("self", "escalate", "escalate"): 1}


async def test_every_change_marks_its_slice_dirty_in_its_transaction(
    world: dict[int, uuid.UUID], sessionmaker: Sessions
) -> None:
    # The fixture's seven verdicts left one dirty row each and one job each (one per
    # transaction); the golden verdict, none.
    async with sessionmaker() as session:
        dirty = list(await session.scalars(select(DirtyRollupSlice).order_by(DirtyRollupSlice.id)))
        jobs = await session.scalar(
            select(text("count(*)"))
            .select_from(OutboxJob)
            .where(OutboxJob.function == "apply_quality_rollups")
        )
    assert len(dirty) == 7
    assert jobs == 7
    assert {(d.day, d.market, d.moderator_id) for d in dirty} == {
        (D10, "DE", "mod-a"),
        (D11, "DE", "mod-a"),
        (D10, "DE", "mod-b"),
        (D11, "AU", "mod-c"),
        (D10, "US", "mod-d"),
    }
    # Several marks in one transaction queue one job.
    async with sessionmaker() as session, session.begin():
        for moderator in ("mod-x", "mod-y"):
            await mark_slices_dirty(session, [Slice(D10, "DE", "q-de", moderator)])
    async with sessionmaker() as session:
        jobs = await session.scalar(
            select(text("count(*)"))
            .select_from(OutboxJob)
            .where(OutboxJob.function == "apply_quality_rollups")
        )
    assert jobs == 8


async def test_applying_twice_or_concurrently_changes_nothing(
    world: dict[int, uuid.UUID], sessionmaker: Sessions
) -> None:
    await apply_all(sessionmaker)
    before = await assert_incremental_equals_rebuild(sessionmaker)
    # At-least-once delivery: every slice marked again, several times, and applied by
    # jobs running at once in separate sessions, then again.
    slices = {Slice(k[0], k[1], k[2], k[3]) for k in before[0]}
    async with sessionmaker() as session, session.begin():
        for _ in range(3):
            await session.execute(
                insert(DirtyRollupSlice),
                [
                    {
                        "day": s.day,
                        "market": s.market,
                        "queue": s.queue,
                        "moderator_id": s.moderator_id,
                    }
                    for s in slices
                ],
            )

    async def job() -> int:
        async with sessionmaker() as session, session.begin():
            return await apply_dirty_slices(session, limit=4)

    while sum(await asyncio.gather(*(job() for _ in range(4)))):
        pass
    await apply_all(sessionmaker)
    async with sessionmaker() as session:
        assert await snapshot(session) == before
        assert list(await session.scalars(select(DirtyRollupSlice))) == []


async def test_the_sweep_catches_a_lost_job_and_reports_read_their_writes(
    world: dict[int, uuid.UUID], sessionmaker: Sessions, settings: Settings
) -> None:
    await apply_all(sessionmaker)
    # A new verdict whose job Redis lost: nothing is relayed; the sweep recomputes it.
    state = worker_state(settings, sessionmaker)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM outbox_jobs"))
    audits = await claimed_audits(sessionmaker, [10])
    VERDICTS[10] = VerdictCreate(outcome="correct")
    try:
        await judge(sessionmaker, audits)
    finally:
        del VERDICTS[10]
    assert await sweep_quality_rollups(state) == 1
    assert await sweep_quality_rollups(state) == 0
    quality, _ = await assert_incremental_equals_rebuild(sessionmaker)
    assert row(quality, D10, "DE", "mod-a", "*")["audited"] == 3

    # Read-your-writes: a verdict committed, no job run; refresh_rollups in the report's
    # transaction counts it before the report reads.
    audits = await claimed_audits(sessionmaker, [7])
    VERDICTS[7] = VerdictCreate(outcome="correct")
    try:
        await judge(sessionmaker, audits)
    finally:
        del VERDICTS[7]
    async with sessionmaker() as session, session.begin():
        await refresh_rollups(session)
        audited = await session.scalar(
            text(
                "SELECT audited FROM quality_rollups WHERE day = :day AND market = 'AU'"
                " AND moderator_id = 'mod-c' AND policy = '*'"
            ),
            {"day": D10},
        )
    assert audited == 1


async def test_the_rebuild_command_restores_wiped_rollups_day_by_day(
    world: dict[int, uuid.UUID],
    sessionmaker: Sessions,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await apply_all(sessionmaker)
    async with sessionmaker() as session:
        before = await snapshot(session)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM quality_rollups"))
        await session.execute(text("DELETE FROM action_confusion_rollups"))
    # The operator's command: two market-local days, each in its own transaction.
    days, written = await rebuild_rollups(settings, day_from=D10, day_to=D11)
    assert (days, written) == (2, len(before[0]))
    assert "rebuilt 2026-11-10" in capsys.readouterr().out
    async with sessionmaker() as session:
        assert await snapshot(session) == before


@pytest.mark.no_db
def test_the_rebuild_command_refuses_a_range_that_ends_before_it_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rollups", "rebuild", "--from", "2026-11-11", "--to", "2026-11-10"]) == 2
    assert "--from must not be after --to" in capsys.readouterr().err
