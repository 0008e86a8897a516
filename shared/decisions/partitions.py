"""The decisions' monthly partitions: created ahead of time, dropped after retention.

``decisions`` is partitioned by RANGE on ``decided_at``: one partition per calendar month in
UTC, named ``decisions_pYYYY_MM``, plus ``decisions_default`` for any time no month covers
(intake never fails for want of a partition). The report worker's scheduled job calls:

- ``ensure_decision_partitions``: the current month and ``months_ahead`` months after it
  exist. A month whose rows already landed in the DEFAULT partition (clocks, a gap) gets
  them moved in the same transaction: the month is created as a table of its own, the rows
  move into it, and it is attached (ATTACH takes only a SHARE UPDATE EXCLUSIVE lock on
  ``decisions``, so intake and reads go on; the DEFAULT partition is locked against writes
  for the short move).
- ``apply_decision_retention``: every month entirely older than the cutoff is dropped whole,
  except its audited decisions (anything an audit, verdict, appeal, calibration item or
  golden item refers to), which move to the DEFAULT partition first and stay readable by id;
  unreferenced rows of the DEFAULT partition older than the cutoff are deleted; the
  idempotency keys of every dropped decision are deleted with it. Rollups are never
  touched, so reports over old days keep their numbers.

Both take one transaction-scoped advisory lock (two workers never interleave) and are
idempotent: a second run finds nothing to do. DDL waits at most ``LOCK_TIMEOUT`` for its
locks; a run that times out leaves everything as it was, for the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Decision
from shared.models.intake import DECISION_PARTITION_NAME

DEFAULT_PARTITION = "decisions_default"
# How long DDL waits for its locks before the run gives up (and the next run tries again):
# a lock request waiting in the queue holds back every later query of the table.
LOCK_TIMEOUT = "5s"
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('decision_partitions', 0))")
_SET_LOCK_TIMEOUT = text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")

# Every table whose decision_id refers to a decision: such a decision is audited (or otherwise
# in use) and outlives retention. tests/test_decision_partitions.py checks that every model
# with a decision_id column is listed.
DECISION_REFERENCES = (
    "audits",
    "verdicts",
    "appeals",
    "calibration_items",
    "golden_items",
    "golden_verdicts",
)
_REFERENCED_IDS = " UNION ALL ".join(
    f"SELECT decision_id FROM {table} WHERE decision_id IS NOT NULL"  # noqa: S608
    for table in DECISION_REFERENCES
)


def _unreferenced(decision_id: str) -> str:
    """SQL: nothing refers to the decision ``decision_id`` (an SQL expression) names.

    NOT EXISTS per table, ANDed: each becomes an anti-join (a NOT IN over the union would
    be a per-row scan once the ids outgrow work_mem).
    """
    return " AND ".join(
        f"NOT EXISTS (SELECT FROM {table} AS r WHERE r.decision_id = {decision_id})"
        for table in DECISION_REFERENCES
    )


# Bulk loads that COPY rows into decisions (bypassing intake: tests, benchmarks) register
# their idempotency keys with this statement afterwards, so that appeals find those
# decisions by event id and the same events sent later are duplicates.
REGISTER_MISSING_EVENT_KEYS = """
INSERT INTO decision_event_keys (source_id, event_id, decision_id, decided_at)
SELECT d.source_id, d.event_id, d.id, d.decided_at FROM decisions AS d
WHERE NOT EXISTS (
    SELECT FROM decision_event_keys AS k
    WHERE k.source_id = d.source_id AND k.event_id = d.event_id
)
ORDER BY d.id
ON CONFLICT DO NOTHING
"""
_COLUMNS = ", ".join(column.name for column in Decision.__table__.columns)


@dataclass(frozen=True, slots=True)
class MonthPartition:
    """One monthly partition: ``decided_at`` in ``[start, end)`` (UTC)."""

    month: date

    @property
    def name(self) -> str:
        return f"decisions_p{self.month.year:04d}_{self.month.month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.month.year, self.month.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        following = add_months(self.month, 1)
        return datetime(following.year, following.month, 1, tzinfo=UTC)

    @classmethod
    def named(cls, name: str) -> MonthPartition | None:
        """The month partition called ``name``; None for the DEFAULT one or another table."""
        match = DECISION_PARTITION_NAME.fullmatch(name)
        if match is None or match.group(1) == "default":
            return None
        year, month = match.group(1)[1:].split("_")
        return cls(date(int(year), int(month), 1))


@dataclass(slots=True)
class RetentionResult:
    """What one retention run removed and kept."""

    cutoff: datetime
    dropped_partitions: list[str] = field(default_factory=list)
    # Audited decisions of dropped months, now in the DEFAULT partition.
    kept_decisions: int = 0
    # Unreferenced rows of the DEFAULT partition older than the cutoff.
    deleted_default_rows: int = 0
    deleted_keys: int = 0


def add_months(month: date, count: int) -> date:
    """The first day of the month ``count`` months after ``month``'s."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


async def decision_partitions(session: AsyncSession) -> tuple[list[MonthPartition], bool]:
    """The monthly partitions, oldest first, and whether the DEFAULT partition exists."""
    names = list(
        await session.scalars(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'decisions'::regclass"
            )
        )
    )
    months = [partition for name in names if (partition := MonthPartition.named(name))]
    return sorted(months, key=lambda partition: partition.month), DEFAULT_PARTITION in names


async def ensure_decision_partitions(
    session: AsyncSession, *, today: date, months_ahead: int
) -> list[str]:
    """Create the partitions of ``today``'s month and the ``months_ahead`` after it that are
    missing (and the DEFAULT partition, should it be missing); returns the names created.

    Rows of a new month already in the DEFAULT partition move into it in this transaction.
    """
    await session.execute(_LOCK)
    existing, has_default = await decision_partitions(session)
    if not has_default:
        await session.execute(_SET_LOCK_TIMEOUT)
        await session.execute(
            text(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF decisions DEFAULT")
        )
    have = {partition.month for partition in existing}
    this_month = today.replace(day=1)
    created = []
    for ahead in range(months_ahead + 1):
        partition = MonthPartition(add_months(this_month, ahead))
        if partition.month not in have:
            await _create_month(session, partition)
            created.append(partition.name)
    await session.flush()
    return created


async def _create_month(session: AsyncSession, partition: MonthPartition) -> None:
    """Create ``partition`` as a table, move its rows out of DEFAULT, attach it.

    CREATE TABLE ... PARTITION OF would take an ACCESS EXCLUSIVE lock on ``decisions`` (and
    fails when DEFAULT holds rows of the month); ATTACH takes SHARE UPDATE EXCLUSIVE, which
    neither intake nor reads conflict with. DEFAULT is locked against writes first, so no
    row of the month can land there between the move and the attach (which checks it).
    """
    await session.execute(_SET_LOCK_TIMEOUT)
    bounds = {"start": partition.start, "end": partition.end}
    await session.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN SHARE ROW EXCLUSIVE MODE"))
    await session.execute(
        text(
            f"CREATE TABLE {partition.name} "
            "(LIKE decisions INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
        )
    )
    await session.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608 (our own names)
            "WHERE decided_at >= :start AND decided_at < :end "
            f"RETURNING {_COLUMNS}) "
            f"INSERT INTO {partition.name} ({_COLUMNS}) SELECT {_COLUMNS} FROM moved"
        ),
        bounds,
    )
    # Bounds are literals in DDL (no parameters there); they come from a date, not input.
    await session.execute(
        text(
            f"ALTER TABLE decisions ATTACH PARTITION {partition.name} "
            f"FOR VALUES FROM ('{partition.start.isoformat()}') TO ('{partition.end.isoformat()}')"
        )
    )


async def apply_decision_retention(
    session: AsyncSession, *, now: datetime, retention_days: int
) -> RetentionResult:
    """Drop the decisions older than ``retention_days`` before ``now`` that nothing refers
    to, with their idempotency keys; keep the referenced ones (see the module docstring)."""
    result = RetentionResult(cutoff=now - timedelta(days=retention_days))
    await session.execute(_LOCK)
    existing, has_default = await decision_partitions(session)
    if not has_default:
        # The DEFAULT partition is where kept decisions go: ensure_decision_partitions
        # creates it first.
        raise RuntimeError("decisions has no DEFAULT partition; create the partitions first")
    for partition in existing:
        if partition.end <= result.cutoff:
            kept, deleted_keys = await _drop_month(session, partition)
            result.dropped_partitions.append(partition.name)
            result.kept_decisions += kept
            result.deleted_keys += deleted_keys
    deleted = (
        await session.execute(
            text(
                f"""
                WITH gone AS (
                    DELETE FROM {DEFAULT_PARTITION}
                    WHERE decided_at < :cutoff AND {_unreferenced(f"{DEFAULT_PARTITION}.id")}
                    RETURNING id, source_id, event_id
                ), keys AS (
                    DELETE FROM decision_event_keys k USING gone
                    WHERE k.source_id = gone.source_id AND k.event_id = gone.event_id
                      AND k.decision_id = gone.id
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM keys)
                """  # noqa: S608 (our own names)
            ),
            {"cutoff": result.cutoff},
        )
    ).one()
    result.deleted_default_rows = int(deleted[0])
    result.deleted_keys += int(deleted[1])
    await session.flush()
    return result


async def _drop_month(session: AsyncSession, partition: MonthPartition) -> tuple[int, int]:
    """Drop ``partition``, its referenced decisions moved to DEFAULT first; returns
    (decisions kept, keys deleted).

    The keys go first and the kept rows are set aside, under row locks only; detaching and
    dropping take an ACCESS EXCLUSIVE lock on ``decisions`` until commit, which blocks
    intake and reads, so only the copy of the (few) kept rows into DEFAULT runs under it.
    """
    deleted_keys = await session.scalar(
        text(
            "WITH gone AS (DELETE FROM decision_event_keys AS k "  # noqa: S608 (our own names)
            "WHERE k.decided_at >= :start AND k.decided_at < :end "
            f"AND {_unreferenced('k.decision_id')} RETURNING 1) "
            "SELECT count(*) FROM gone"
        ),
        {"start": partition.start, "end": partition.end},
    )
    # The kept rows are found before the lock (a scan of the whole month), so that only
    # their copy into DEFAULT runs under it.
    kept_rows = f"kept_{partition.name}"
    await session.execute(
        text(
            f"CREATE TEMPORARY TABLE {kept_rows} ON COMMIT DROP AS "  # noqa: S608 (our own names)
            f"SELECT {_COLUMNS} FROM {partition.name} WHERE id IN ({_REFERENCED_IDS})"
        )
    )
    await session.execute(_SET_LOCK_TIMEOUT)
    await session.execute(text(f"ALTER TABLE decisions DETACH PARTITION {partition.name}"))
    # The month has no partition now: its kept rows are routed to DEFAULT.
    kept = await session.scalar(
        text(
            f"WITH kept AS (INSERT INTO decisions ({_COLUMNS}) "  # noqa: S608 (our own names)
            f"SELECT {_COLUMNS} FROM {kept_rows} RETURNING 1) SELECT count(*) FROM kept"
        )
    )
    await session.execute(text(f"DROP TABLE {partition.name}"))
    return int(kept or 0), int(deleted_keys or 0)
