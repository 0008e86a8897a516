"""The auditor work queue and verdicts.

Claiming: an auditor (a ``qa_auditor`` key bound to a reviewer) is handed the pending audit
with the lowest ``priority`` among those they may judge, under a lease of
``claim_lease_minutes``:

- in one of the reviewer's markets (narrowed to the key's markets for a market-scoped key)
  and languages (tags compared exactly: a profile lists ``de-AT`` to get ``de-AT`` work);
- never a decision of their own (``moderator_id`` is not the auditor's reviewer id);
- not carrying a sensitive policy label whose daily cap the auditor has reached
  (see ``shared.wellbeing.service``);
- ``pending``, or ``claimed`` with an expired lease: an abandoned claim returns to the queue.

The row is taken with ``FOR UPDATE SKIP LOCKED``: concurrent claims never wait for each other
and never get the same audit. An auditor works one item at a time: while they hold an
unexpired claim, claiming again returns that audit (its lease unchanged), so a retried
request cannot take a second item. Claims of one auditor are serialised by locking their
reviewer row, so two concurrent requests of the same auditor cannot both see "nothing held"
and take two items. A key without a reviewer, or whose reviewer has no markets
or no languages, is handed nothing (204): there is no work it may be given.

Blindness: until the verdict is in, a QA auditor's view of an audit leaves out the
moderator's id (on the audit and on its decision).

Verdicts: only the auditor holding the claim may judge, once. A lease that expired is still
honoured while nobody else has claimed the audit. The policy versions recorded are the
current versions of the policies concerned (the decision's labels and the expected ones):
until policies keep a version history, the version in force when the verdict is given is the
best record of the one in force at decision time. An incorrect verdict opens a disagreement
(the moderator may dispute it within ``dispute_window_hours``), tells the moderator's team
(``disagreement.opened``) and sends the correction to the decision's source platform
(``decision.corrected``, to that source's own channel only). Golden items (``is_golden``)
test the auditor, not a moderator: they open no disagreement and send no correction.

Golden items (issue 4, ``shared.golden.service``): with probability ``golden_rate``
(deterministic per auditor and claim number, under a secret key) a claim hands out a golden
audit instead, created for this auditor; nothing else claims it. A QA auditor is never told
an audit is golden (``is_golden`` reads false for them), a moderator never sees golden audits
of their decisions, and the verdict on a golden audit is compared with the golden expectation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    Insert,
    Integer,
    Row,
    Select,
    String,
    Table,
    Update,
    Uuid,
    and_,
    any_,
    bindparam,
    false,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from shared.audit_log.record import CHANGE_COLUMNS, change_values, record_change
from shared.core.auth import Principal, Role
from shared.core.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.core.outbox import OUTBOX_CHANNEL
from shared.core.pagination import Keyset, KeysetPage
from shared.disagreements.lifecycle import open_disagreement
from shared.golden.service import (
    CLAIM_NUMBER,
    claim_golden_audit,
    is_golden_turn,
    record_golden_verdict,
)
from shared.jobs import ApplyQualityRollups
from shared.models import (
    Audit,
    AuditLogEntry,
    Decision,
    Disagreement,
    Reviewer,
    TrainingItemProgress,
    TrainingPlanItem,
    Verdict,
)
from shared.models.analytics import DirtyRollupSlice
from shared.models.base import utcnow
from shared.models.outbox import OutboxJob
from shared.schemas.audits import (
    AuditDecision,
    AuditQuery,
    AuditRead,
    VerdictCreate,
    VerdictRead,
)
from shared.training_plans.service import complete_shadow_audit_items
from shared.verdicts import NON_ENFORCING_ACTION, derive_error_type
from shared.wellbeing.service import CAPPED_CODES, capped_codes_values

ENTITY = "audit"

# ---------------------------------------------------------------------------- views


def is_blind(principal: Principal, audit: Audit) -> bool:
    """Whether the caller must not see who made the audited decision (not judged yet)."""
    return principal.role == "qa_auditor" and audit.status != "completed"


def audit_read(
    audit: Audit,
    decision: Decision,
    *,
    verdict: Verdict | None,
    disagreement_id: uuid.UUID | None,
    blind: bool,
    hide_golden: bool = False,
) -> AuditRead:
    """The API view of an audit; ``blind`` leaves the moderator out, ``hide_golden`` says
    every audit is a real one (what QA auditors see)."""
    moderator_id = None if blind else audit.moderator_id
    return AuditRead(
        id=audit.id,
        status=audit.status,
        reason=audit.reason,
        market=audit.market,
        queue=audit.queue,
        language=audit.language,
        day=audit.day,
        priority=audit.priority,
        is_golden=audit.is_golden and not hide_golden,
        auditor_id=audit.auditor_id,
        claimed_at=audit.claimed_at,
        lease_expires_at=audit.lease_expires_at,
        completed_at=audit.completed_at,
        created_at=audit.created_at,
        moderator_id=moderator_id,
        decision=AuditDecision(
            id=decision.id,
            event_id=decision.event_id,
            content_id=decision.content_id,
            content_type=decision.content_type,
            queue=decision.queue,
            market=decision.market,
            language=decision.language,
            action=decision.action,
            policy_labels=list(decision.policy_labels),
            decided_at=decision.decided_at,
            metadata=decision.metadata_,
            moderator_id=moderator_id,
        ),
        verdict=VerdictRead.model_validate(verdict) if verdict is not None else None,
        error_type=verdict.error_type if verdict is not None else None,
        disagreement_id=disagreement_id,
    )


def _snapshot(
    *,
    status: str,
    auditor_id: str | None,
    claimed_at: datetime | None,
    lease_expires_at: datetime | None,
    completed_at: datetime | None,
) -> dict[str, Any]:
    """What the audit log keeps of an audit's state (``_SNAPSHOT_BEFORE_CLAIM`` in SQL)."""
    return {
        "status": status,
        "auditor_id": auditor_id,
        "claimed_at": claimed_at.isoformat() if claimed_at else None,
        "lease_expires_at": lease_expires_at.isoformat() if lease_expires_at else None,
        "completed_at": completed_at.isoformat() if completed_at else None,
    }


def _audit_snapshot(audit: Audit) -> dict[str, Any]:
    return _snapshot(
        status=audit.status,
        auditor_id=audit.auditor_id,
        claimed_at=audit.claimed_at,
        lease_expires_at=audit.lease_expires_at,
        completed_at=audit.completed_at,
    )


# ---------------------------------------------------------------------------- claims


# The fast path looks at this many of the first claimable audits of each (market, language)
# (in priority order, straight off ix_audits_claimable). It must exceed the number of claims
# running at the same moment: their rows are locked and skipped.
CANDIDATES_PER_PAIR = 64

# The first claimable audits of each of the auditor's (market, language) pairs.
_CANDIDATES = (
    text(
        """
        SELECT c.id
        FROM unnest(CAST(:markets AS text[])) AS m(code)
        CROSS JOIN unnest(CAST(:languages AS text[])) AS l(tag)
        CROSS JOIN LATERAL (
            SELECT x.id FROM audits AS x
            WHERE x.market = m.code AND x.language = l.tag AND x.status <> 'completed'
              AND (x.status = 'pending' OR (x.lease_expires_at <= :now AND NOT x.is_golden))
              AND x.moderator_id <> :auditor
              AND NOT (x.policy_labels && CAST(:excluded AS varchar[]))
            ORDER BY x.priority
            LIMIT :per_pair
        ) AS c
        """
    )
    .columns(id=Uuid)
    .subquery("candidates")
)


# The audit a claim takes: its id and what the audit log keeps of it before the claim.
_Pick = Select[uuid.UUID, str, str | None, datetime | None, datetime | None, datetime | None]


def _claim_statement(*, fast: bool) -> _Pick:
    """Lock the first audit the auditor may judge (``FOR UPDATE SKIP LOCKED``): its id and
    what the audit log keeps of it before the claim.

    Built once with bound parameters: a claim then only binds values. The fast form looks
    at ``_CANDIDATES`` only (read in index order); the exhaustive one at the whole queue of
    the auditor's markets and languages.
    """
    excluded = bindparam("excluded", type_=ARRAY(String(64)))
    query = (
        select(
            Audit.id,
            Audit.status,
            Audit.auditor_id,
            Audit.claimed_at,
            Audit.lease_expires_at,
            Audit.completed_at,
        )
        .join(Decision, Decision.id == Audit.decision_id)
        .where(
            Audit.status != "completed",
            or_(
                Audit.status == "pending",
                and_(
                    Audit.status == "claimed",
                    Audit.lease_expires_at <= bindparam("now"),
                    # A golden audit handed to an auditor is theirs alone.
                    not_(Audit.is_golden),
                ),
            ),
            Audit.moderator_id != bindparam("auditor"),
            not_(Audit.policy_labels.overlap(excluded)),
            # Nothing while the auditor holds a claim, as this statement's snapshot sees it:
            # one taken by a concurrent claim of theirs while this one waited for the lock.
            not_(_held_claim(aliased(Audit, name="held")).exists()),
        )
        .order_by(Audit.priority, Audit.id)
        .limit(1)
        .with_for_update(of=Audit, skip_locked=True)
    )
    if fast:
        return query.where(Audit.id.in_(select(_CANDIDATES.c.id)))
    return query.where(
        Audit.market == any_(bindparam("markets", type_=ARRAY(String))),
        Audit.language == any_(bindparam("languages", type_=ARRAY(String))),
    )


async def _take_next(
    session: AsyncSession,
    *,
    auditor_id: str,
    markets: list[str],
    languages: list[str],
    excluded: list[str],
    now: datetime,
    claim: dict[str, Any],
) -> AuditRead | None:
    """Claim the next audit the auditor may judge, if any, and log the claim: one statement
    (``_claim_and_log``) that ``claim`` binds the rest of.

    The fast path orders a few candidates per (market, language); when all of them are
    taken by concurrent claims, the exhaustive query decides.
    """
    values = {
        "markets": markets,
        "languages": languages,
        "auditor": auditor_id,
        "excluded": excluded,
        "now": now,
        "per_pair": CANDIDATES_PER_PAIR,
    }
    row = await _FAST_CLAIM.fetchrow(session, {**values, **claim})
    if row is None:
        row = await _EXHAUSTIVE_CLAIM.fetchrow(session, {**values, **claim})
    return None if row is None else _claimed_read(row)


_KEY_MARKETS = bindparam("key_markets", type_=ARRAY(String))


def _held_claim(audits: type[Audit]) -> Select[uuid.UUID]:
    """The auditor's unexpired claim (in the key's markets, for a market-scoped key)."""
    return (
        select(audits.id)
        .where(
            audits.auditor_id == bindparam("auditor"),
            audits.status == "claimed",
            audits.lease_expires_at > bindparam("now"),
            or_(_KEY_MARKETS.is_(None), audits.market == any_(_KEY_MARKETS)),
        )
        .order_by(audits.claimed_at, audits.id)
        .limit(1)
    )


_HELD = _held_claim(Audit)
_CAPPED = CAPPED_CODES.subquery("capped")

# What a claim needs to know about the auditor, in one round trip: the claim they hold, the
# ordinal of their next claim (golden turns) and the sensitive codes past their cap today.
_STATE_COLUMNS = (
    _HELD.scalar_subquery().label("held"),
    CLAIM_NUMBER.scalar_subquery().label("claims"),
    select(func.array_agg(_CAPPED.c.policy_code)).scalar_subquery().label("capped"),
)
_CLAIM_STATE = select(*_STATE_COLUMNS)

# Locking the reviewer row serialises one auditor's claims; the same statement reads their
# profile and their state. That state is read before the lock is taken: a concurrent claim
# of theirs that committed meanwhile is not in it. The claim statements check for it again
# (``_claim_statement``), and a golden turn reads the state again (``_CLAIM_STATE``).
_LOCK_REVIEWER = (
    select(Reviewer.markets, Reviewer.languages, *_STATE_COLUMNS)
    .where(Reviewer.id == bindparam("auditor"))
    .with_for_update(of=Reviewer)
)

# The hot paths write with Core statements built once (SQLAlchemy caches their compiled
# form), not through the unit of work: a claim or a verdict is then one statement that
# changes the audit and adds its audit-log entry (and, for a verdict, the verdict row).
_AUDITS: Table = Audit.__table__  # type: ignore[assignment]
_VERDICTS: Table = Verdict.__table__  # type: ignore[assignment]
_AUDIT_LOG: Table = AuditLogEntry.__table__  # type: ignore[assignment]
_DIRTY_SLICES: Table = DirtyRollupSlice.__table__  # type: ignore[assignment]
_DECISIONS: Table = Decision.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxJob.__table__  # type: ignore[assignment]


class _DriverStatement:
    """A Core statement run on the session's asyncpg connection, in the transaction the
    session began: past SQLAlchemy's execution layer as well (about a hundred calls a
    statement: compiled-cache lookup, execution context, result metadata), for the hot
    paths' second statements. Compiled once for the engine's dialect; its values go through
    the statement's bind processors, as SQLAlchemy would send them, and its rows come back as
    asyncpg records (read by column name). Before the session's transaction has begun on the
    driver (no statement ran yet), SQLAlchemy runs it: the driver would run it outside.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: Any = None
        self._sql = ""
        self._names: tuple[str, ...] = ()
        self._processors: dict[str, Any] = {}

    def _compile(self, dialect: Any) -> None:
        compiled: Any = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self._sql = compiled.string
        self._names = tuple(compiled.positiontup or ())
        self._processors = dict(compiled._bind_processors)
        self._compiled = compiled

    def _arguments(self, values: dict[str, Any]) -> list[Any]:
        params = self._compiled.construct_params(values, _check=False)
        processors = self._processors
        return [
            processors[name](params[name]) if name in processors else params[name]
            for name in self._names
        ]

    async def fetchrow(
        self, session: AsyncSession, values: dict[str, Any]
    ) -> Mapping[str, Any] | None:
        """The statement's first row, or None."""
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if driver is None or not driver.is_in_transaction():
            row = (await connection.execute(self.statement, values)).first()
            return None if row is None else dict(row._mapping)
        if self._compiled is None:
            self._compile(connection.dialect)
        record: Mapping[str, Any] | None = await driver.fetchrow(
            self._sql, *self._arguments(values)
        )
        return record

    async def execute(self, session: AsyncSession, values: dict[str, Any]) -> None:
        """Run the statement (what it returns, if anything, is dropped)."""
        await self.fetchrow(session, values)


def _logged(change: Update, *more: Insert) -> Insert:
    """``change`` (and ``more``) as data-modifying CTEs of the audit-log entry's insert:
    PostgreSQL runs them all, in one round trip and one snapshot."""
    statement = insert(_AUDIT_LOG).values(
        {name: bindparam(f"log_{name}") for name in CHANGE_COLUMNS}
    )
    return statement.add_cte(
        change.cte("changed"), *(cte.cte(f"added_{n}") for n, cte in enumerate(more))
    )


def _log_params(**entry: Any) -> dict[str, Any]:
    return {f"log_{name}": value for name, value in change_values(**entry).items()}


# (ORM attribute, column) of every verdict column: the verdict insert binds them all.
_VERDICT_COLUMNS = tuple(
    (attribute.key, attribute.columns[0].name) for attribute in sa_inspect(Verdict).column_attrs
)


def _iso(column: str) -> str:
    # What ``datetime.isoformat()`` makes of a UTC timestamp (no fraction when it is 0).
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        f" || CASE WHEN to_char({utc}, 'US') = '000000' THEN '' ELSE to_char({utc}, '.US') END"
        " || '+00:00' END"
    )


# ``_audit_snapshot`` of the row before the claim, in SQL (the row is read in the statement).
_SNAPSHOT_BEFORE_CLAIM = literal_column(
    "jsonb_build_object('status', picked.status, 'auditor_id', picked.auditor_id,"
    f" 'claimed_at', {_iso('picked.claimed_at')},"
    f" 'lease_expires_at', {_iso('picked.lease_expires_at')},"
    f" 'completed_at', {_iso('picked.completed_at')})",
    type_=JSONB,
)


def _claim_and_log(pick: _Pick) -> Select[Any]:
    """The claim in one statement: lock the audit ``pick`` finds, claim it, add its
    audit-log entry, and return it with its decision (nothing when ``pick`` finds none)."""
    picked = pick.cte("picked")
    claimed = (
        update(_AUDITS)
        .where(_AUDITS.c.id == picked.c.id)
        .values(
            status="claimed",
            auditor_id=bindparam("auditor"),
            claimed_at=bindparam("now"),
            lease_expires_at=bindparam("lease_expires_at"),
        )
        .returning(*_AUDITS.c)
        .cte("claimed")
    )
    from_row = {"before": _SNAPSHOT_BEFORE_CLAIM, "entity_id": picked.c.id.cast(String)}
    log_values = [
        from_row[name].label(name)
        if name in from_row
        else bindparam(f"log_{name}", type_=_AUDIT_LOG.c[name].type).label(name)
        for name in CHANGE_COLUMNS
    ]
    logged = (
        insert(_AUDIT_LOG)
        .from_select(list(CHANGE_COLUMNS), select(*log_values).select_from(picked))
        .cte("logged")
    )
    # Plain columns, not ORM entities: the claim's answer is built from the row
    # (``_claimed_read``), with no object loaded into the session.
    return (
        select(
            *(claimed.c[name] for name in _CLAIMED_AUDIT_COLUMNS),
            *(_DECISIONS.c[name].label(f"decision_{name}") for name in _CLAIMED_DECISION_COLUMNS),
        )
        .select_from(claimed.join(_DECISIONS, _DECISIONS.c.id == claimed.c.decision_id))
        .add_cte(logged)
    )


# What a claimed audit's blind view (``_claimed_read``) reads of the audit and its decision.
_CLAIMED_AUDIT_COLUMNS = (
    "id",
    "status",
    "reason",
    "market",
    "queue",
    "language",
    "day",
    "priority",
    "auditor_id",
    "claimed_at",
    "lease_expires_at",
    "completed_at",
    "created_at",
)
_CLAIMED_DECISION_COLUMNS = (
    "id",
    "event_id",
    "content_id",
    "content_type",
    "queue",
    "market",
    "language",
    "action",
    "policy_labels",
    "decided_at",
    "metadata",
)


def _claimed_read(row: Mapping[str, Any]) -> AuditRead:
    """The auditor's view of the audit a claim statement took: what ``audit_read`` gives
    with ``blind`` and ``hide_golden`` (no moderator, never golden, no verdict yet)."""
    return AuditRead(
        **{name: row[name] for name in _CLAIMED_AUDIT_COLUMNS},
        is_golden=False,
        moderator_id=None,
        decision=AuditDecision(
            **{name: row[f"decision_{name}"] for name in _CLAIMED_DECISION_COLUMNS},
            moderator_id=None,
        ),
        verdict=None,
        error_type=None,
        disagreement_id=None,
    )


_FAST_CLAIM = _DriverStatement(_claim_and_log(_claim_statement(fast=True)))
_EXHAUSTIVE_CLAIM = _DriverStatement(_claim_and_log(_claim_statement(fast=False)))

_COMPLETE_AUDIT = (
    update(_AUDITS)
    .where(_AUDITS.c.id == bindparam("audit_id"))
    .values(status="completed", completed_at=bindparam("now"), lease_expires_at=None)
)
_ADD_VERDICT = insert(_VERDICTS).values(
    {column: bindparam(f"verdict_{column}") for _, column in _VERDICT_COLUMNS}
)
# A golden verdict tests the auditor: it counts in no moderator's rollup slice.
_GOLDEN_VERDICT_WRITE = _DriverStatement(_logged(_COMPLETE_AUDIT, _ADD_VERDICT))
# Any other marks the moderator's slice for the rollup job (``shared.analytics.rollups``)
# and queues that job in the outbox, with the NOTIFY that wakes the relay at commit (what
# ``queue_rollup_job`` writes, in this statement instead of a round trip of its own).
_VERDICT_WRITE = _DriverStatement(
    _logged(
        _COMPLETE_AUDIT,
        _ADD_VERDICT,
        insert(_DIRTY_SLICES).values(
            day=bindparam("slice_day"),
            market=bindparam("slice_market"),
            queue=bindparam("slice_queue"),
            moderator_id=bindparam("slice_moderator_id"),
        ),
        insert(_OUTBOX)
        .values(
            id=bindparam("rollup_job_id"),
            queue_name=ApplyQualityRollups.queue,
            function=ApplyQualityRollups.function,
            payload=bindparam("rollup_job_payload", type_=JSONB),
            request_id=bindparam("log_request_id"),
        )
        .returning(func.pg_notify(OUTBOX_CHANNEL, "")),
    )
)
_ROLLUP_JOB_PAYLOAD = ApplyQualityRollups().model_dump(mode="json")

_AUDIT_WITH_DECISION = select(Audit, Decision).join(Decision, Decision.id == Audit.decision_id)
_AUDIT_BY_ID = _AUDIT_WITH_DECISION.where(Audit.id == bindparam("audit_id"))


async def _core(
    session: AsyncSession, statement: Executable, values: dict[str, Any]
) -> CursorResult[Any]:
    """Run a Core statement in the session's transaction, on its connection: past the ORM's
    execution layer (a few dozen calls a statement), which a statement that loads no entity
    does not need. The session never autoflushes, so nothing is skipped."""
    connection = await session.connection()
    return await connection.execute(statement, values)


def _work_scope(
    reviewer_markets: list[str],
    reviewer_languages: list[str],
    *,
    key_markets: tuple[str, ...] | None,
) -> tuple[list[str], list[str]]:
    """The markets and languages the auditor may be handed work in (empty: none)."""
    markets = sorted(set(reviewer_markets))
    if key_markets is not None:
        markets = [market for market in markets if market in key_markets]
    return markets, sorted(set(reviewer_languages))


async def claim_next_audit(
    session: AsyncSession,
    *,
    principal: Principal,
    lease_minutes: int,
    golden_rate: float,
    golden_key: bytes,
) -> AuditRead | None:
    """The audit the calling auditor should judge now, or None when there is nothing for them.

    Returns the auditor's unexpired claim if they hold one; otherwise claims the next
    audit they may judge (see the module docstring), a golden one at ``golden_rate`` when one
    fits (turns chosen under the secret ``golden_key``), and audit-logs the claim.
    """
    auditor_id = principal.reviewer_id
    if auditor_id is None:
        return None
    now = utcnow()
    values = {
        "auditor": auditor_id,
        "now": now,
        "key_markets": list(principal.markets) if principal.markets is not None else None,
        **capped_codes_values(auditor_id=auditor_id, day=now.date()),
    }
    # Locking the reviewer row serialises this auditor's claims: the next statements see
    # whatever a concurrent claim of theirs committed (this one's state may not).
    state = (await _core(session, _LOCK_REVIEWER, values)).first()
    if state is None:
        return None
    if state.held is not None:
        return await _held_read(session, state.held)
    markets, languages = _work_scope(state.markets, state.languages, key_markets=principal.markets)
    if not markets or not languages:
        return None
    excluded: list[str] = list(state.capped or [])
    golden_turn = golden_rate > 0 and is_golden_turn(
        auditor_id, state.claims, golden_rate, key=golden_key
    )
    if golden_turn:
        # The claim number must be exact on a golden turn: read after the lock.
        fresh = (await _core(session, _CLAIM_STATE, values)).one()
        if fresh.held is not None:
            return await _held_read(session, fresh.held)
        excluded = list(fresh.capped or [])
        golden_turn = is_golden_turn(auditor_id, fresh.claims, golden_rate, key=golden_key)
    if golden_turn:
        golden = await claim_golden_audit(
            session,
            auditor_id=auditor_id,
            markets=markets,
            languages=languages,
            excluded=excluded,
            now=now,
            lease=timedelta(minutes=lease_minutes),
        )
        if golden is not None:
            audit, decision = golden
            await record_change(
                session,
                actor=principal,
                action="audit.claim",
                entity_type=ENTITY,
                entity_id=audit.id,
                after={**_audit_snapshot(audit), "is_golden": True},
            )
            return audit_read(
                audit, decision, verdict=None, disagreement_id=None, blind=True, hide_golden=True
            )
    lease_expires_at = now + timedelta(minutes=lease_minutes)
    # The claim's log entry: its "after" is known before the audit is; its "before" and
    # entity id are the claimed row's, filled in by the statement.
    after = _snapshot(
        status="claimed",
        auditor_id=auditor_id,
        claimed_at=now,
        lease_expires_at=lease_expires_at,
        completed_at=None,
    )
    taken = await _take_next(
        session,
        auditor_id=auditor_id,
        markets=markets,
        languages=languages,
        excluded=excluded,
        now=now,
        claim={
            "key_markets": values["key_markets"],
            "lease_expires_at": lease_expires_at,
            **_log_params(
                actor=principal, action="audit.claim", entity_type=ENTITY, entity_id="", after=after
            ),
            # Written by the statement from the claimed row.
            "log_entity_id": None,
            "log_before": None,
        },
    )
    if taken is None:
        # Nothing left for them, or a concurrent claim of theirs committed while this one
        # waited for the lock: then they hold that one.
        fresh = (await _core(session, _CLAIM_STATE, values)).one()
        return None if fresh.held is None else await _held_read(session, fresh.held)
    return taken


async def _held_read(session: AsyncSession, audit_id: uuid.UUID) -> AuditRead:
    """The auditor's view of the claim they hold (blind, never marked golden)."""
    audit, decision = (await session.execute(_AUDIT_BY_ID, {"audit_id": audit_id})).one()
    return audit_read(
        audit, decision, verdict=None, disagreement_id=None, blind=True, hide_golden=True
    )


# ---------------------------------------------------------------------------- verdicts


def _unique(labels: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(labels))


def expected_labels_of(data: VerdictCreate, decision_labels: list[str]) -> list[str]:
    """The expected labels, defaulted as ``VerdictCreate`` documents (``decision_labels``:
    the moderator's)."""
    if data.expected_labels is not None:
        return _unique(data.expected_labels)
    if data.expected_action == NON_ENFORCING_ACTION:
        return []
    return list(decision_labels)


async def _policy_versions(
    session: AsyncSession, codes: Iterable[str], *, at: datetime
) -> dict[str, int]:
    """Per policy code, the version in force at ``at`` (when the decision was made).

    That is the highest published version whose ``effective_at`` is not after ``at``; before
    the first published version takes effect, the one before it (its number - 1; policy
    updates start from the policy's version then); with no published version at all, the
    policy's own version; and 1 for a policy known from nothing else.
    """
    ordered = sorted(set(codes))
    if not ordered:
        return {}
    rows = await session.execute(_POLICY_VERSIONS, {"codes": ordered, "at": at})
    return {code: int(number) for code, number in rows}


def _version_in_force(at: str) -> str:
    """SQL for the version of policy ``c.code`` (its ``policies`` row ``p``, if any) in force
    at the SQL time ``at``: the rule ``_policy_versions`` states."""
    return f"""greatest(coalesce(
        (SELECT max(v.version) FROM policy_versions v
         WHERE v.policy_code = c.code AND v.effective_at <= {at}),
        (SELECT min(v.version) - 1 FROM policy_versions v WHERE v.policy_code = c.code),
        p.version,
        1
    ), 1)"""  # noqa: S608 (our own SQL: ``at`` is a column or a parameter's name)


# First reference registers the policies (an auditor may name a policy no decision carried
# yet), in the same statement: a policy registered here is not visible to the query beside
# it, and reads as version 1, as it would once stored (no published version, default 1).
_POLICY_VERSIONS = text(
    f"""
    WITH registered AS (
        INSERT INTO policies (code) SELECT unnest(CAST(:codes AS text[]))
        ON CONFLICT DO NOTHING
    )
    SELECT c.code, {_version_in_force(":at")}
    FROM unnest(CAST(:codes AS text[])) AS c(code)
    LEFT JOIN policies p ON p.code = c.code
    """  # noqa: S608 (our own SQL)
).columns(code=String, version=Integer)


# The versions ``_POLICY_VERSIONS`` gives, read with the audit to judge (one round trip
# fewer), for the decision's labels and the verdict's own (``expected_codes``), and whether
# one of them is not registered yet (then ``_POLICY_VERSIONS`` registers it).
_VERSIONS_OF_JUDGED = (
    text(
        f"""
        SELECT jsonb_build_object(
            'versions', coalesce(
                jsonb_object_agg(c.code, {_version_in_force("decisions.decided_at")}),
                '{{}}'::jsonb
            ),
            'unregistered', coalesce(bool_or(p.code IS NULL), false)
        )
        FROM (
            SELECT DISTINCT unnest(
                CAST(decisions.policy_labels AS text[]) || CAST(:expected_codes AS text[])
            )
        ) AS c(code)
        LEFT JOIN policies p ON p.code = c.code
        """  # noqa: S608 (our own SQL)
    )
    .columns(policies=JSONB)
    .scalar_subquery()
)
# Whether the auditor has an open ``shadow_audits`` training item: only then does a verdict
# look for items it completes (``complete_shadow_audit_items``), a round trip most verdicts
# skip. Read with the audit: an item assigned while the verdict is given is completed by the
# auditor's next verdict.
_HAS_OPEN_SHADOW_ITEMS = (
    select(TrainingItemProgress.item_id)
    .join(
        TrainingPlanItem,
        and_(
            TrainingPlanItem.plan_id == TrainingItemProgress.plan_id,
            TrainingPlanItem.id == TrainingItemProgress.item_id,
        ),
    )
    .where(
        TrainingItemProgress.reviewer_id == bindparam("auditor"),
        TrainingItemProgress.completed_at.is_(None),
        TrainingPlanItem.kind == "shadow_audits",
    )
    .exists()
)
# What a verdict reads of the audit it judges and of the audit's decision (the decision's
# columns as ``decision_<name>``): plain columns, no entity loaded into the session.
_JUDGED_AUDIT_COLUMNS = (*_CLAIMED_AUDIT_COLUMNS, "moderator_id", "is_golden")
_JUDGED_DECISION_COLUMNS = (*_CLAIMED_DECISION_COLUMNS, "source_id")
_AUDIT_TO_JUDGE = (
    select(
        *(_AUDITS.c[name] for name in _JUDGED_AUDIT_COLUMNS),
        *(_DECISIONS.c[name].label(f"decision_{name}") for name in _JUDGED_DECISION_COLUMNS),
        _VERSIONS_OF_JUDGED.label("policies"),
        _HAS_OPEN_SHADOW_ITEMS.label("open_shadow_items"),
    )
    .select_from(_AUDITS.join(_DECISIONS, _DECISIONS.c.id == _AUDITS.c.decision_id))
    .where(_AUDITS.c.id == bindparam("audit_id"))
    .with_for_update(of=_AUDITS)
)


def _judged_entities(
    row: Row[Any], verdict: dict[str, Any], *, completed_at: datetime
) -> tuple[Audit, Decision, Verdict]:
    """The judged audit (completed), its decision and the verdict as transient entities,
    for the steps that take entities (a golden verdict, a disagreement); never added to
    the session."""
    audit_values = {name: getattr(row, name) for name in _JUDGED_AUDIT_COLUMNS}
    audit_values.update(status="completed", completed_at=completed_at, lease_expires_at=None)
    audit = Audit(**audit_values, decision_id=row.decision_id)
    decision = Decision(
        **{
            "metadata_" if name == "metadata" else name: getattr(row, f"decision_{name}")
            for name in _JUDGED_DECISION_COLUMNS
        }
    )
    return audit, decision, Verdict(**verdict)


def _judged_read(
    row: Row[Any],
    verdict: VerdictRead,
    *,
    completed_at: datetime,
    disagreement_id: uuid.UUID | None,
    hide_golden: bool,
) -> AuditRead:
    """What ``audit_read`` gives of the audit just judged (completed, not blind), built
    from the row ``_AUDIT_TO_JUDGE`` read."""
    audit_values = {name: getattr(row, name) for name in _CLAIMED_AUDIT_COLUMNS}
    audit_values.update(status="completed", completed_at=completed_at, lease_expires_at=None)
    return AuditRead(
        **audit_values,
        is_golden=row.is_golden and not hide_golden,
        moderator_id=row.moderator_id,
        decision=AuditDecision(
            **{name: getattr(row, f"decision_{name}") for name in _CLAIMED_DECISION_COLUMNS},
            moderator_id=row.moderator_id,
        ),
        verdict=verdict,
        error_type=verdict.error_type,
        disagreement_id=disagreement_id,
    )


async def submit_verdict(
    session: AsyncSession,
    *,
    principal: Principal,
    audit_id: uuid.UUID,
    data: VerdictCreate,
    dispute_window_hours: int,
) -> AuditRead:
    """Record the holder's verdict; an incorrect one opens a disagreement and a correction.

    404 for an audit the caller cannot see; 409 when it is already judged or not claimed by
    the caller; 422 for an incorrect verdict that expects the moderator's own decision.
    """
    given_codes = data.expected_labels if data.outcome == "incorrect" else None
    row = (
        await _core(
            session,
            _AUDIT_TO_JUDGE,
            {
                "audit_id": audit_id,
                "expected_codes": given_codes or [],
                "auditor": principal.reviewer_id,
            },
        )
    ).first()
    if row is None or not principal.can_see_market(row.market):
        raise NotFound("audit not found")
    auditor_id = principal.reviewer_id
    if row.status == "completed":
        raise Conflict("this audit already has a verdict")
    if auditor_id is None or row.status != "claimed" or row.auditor_id != auditor_id:
        raise Conflict(
            "this audit is not claimed by you (never claimed, or its lease expired and it was"
            " claimed again): claim work with POST /v1/audits/claim"
        )

    decision_labels: list[str] = row.decision_policy_labels
    expected_labels: list[str] | None = None
    error_type = None
    if data.outcome == "incorrect":
        assert data.expected_action is not None  # VerdictCreate guarantees it
        expected_labels = expected_labels_of(data, decision_labels)
        error_type = derive_error_type(
            row.decision_action, decision_labels, data.expected_action, expected_labels
        )
        if error_type is None:
            raise UnprocessableEntity(
                "an incorrect verdict must expect another decision than the moderator's"
                f" ({row.decision_action} with {sorted(set(decision_labels))})",
                errors=[
                    {"loc": ["expected_action"], "msg": "is the moderator's own decision"},
                    {"loc": ["expected_labels"], "msg": "is the moderator's own decision"},
                ],
            )

    now = utcnow()
    # The expected labels are the given ones or the decision's: all read with the audit.
    versions: dict[str, int] = row.policies["versions"]
    if row.policies["unregistered"]:
        versions = await _policy_versions(
            session, [*decision_labels, *(expected_labels or [])], at=row.decision_decided_at
        )
    # The verdict's columns, by ORM attribute name (``_VERDICT_COLUMNS``).
    verdict_values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "audit_id": row.id,
        "decision_id": row.decision_id,
        "auditor_id": auditor_id,
        "moderator_id": row.moderator_id,
        "market": row.market,
        "queue": row.queue,
        "day": row.day,
        "outcome": data.outcome,
        "effective_outcome": data.outcome,
        "expected_action": data.expected_action,
        "expected_labels": expected_labels,
        "severity": data.severity,
        "error_type": error_type,
        "comment": data.comment,
        "policy_versions": versions,
        "created_at": now,
    }
    verdict = VerdictRead(**verdict_values)
    before = _snapshot(
        status=row.status,
        auditor_id=row.auditor_id,
        claimed_at=row.claimed_at,
        lease_expires_at=row.lease_expires_at,
        completed_at=row.completed_at,
    )
    after = _snapshot(
        status="completed",
        auditor_id=row.auditor_id,
        claimed_at=row.claimed_at,
        lease_expires_at=None,
        completed_at=now,
    )
    # The verdict row, the audit's completion, the log entry and (not golden) the dirty
    # rollup slice in one statement.
    await (_GOLDEN_VERDICT_WRITE if row.is_golden else _VERDICT_WRITE).execute(
        session,
        {
            "audit_id": row.id,
            "now": now,
            "slice_day": row.day,
            "slice_market": row.market,
            "slice_queue": row.queue,
            "slice_moderator_id": row.moderator_id,
            # The moderator's slice (marked here) counts this verdict once the job runs.
            "rollup_job_id": uuid.uuid4(),
            "rollup_job_payload": _ROLLUP_JOB_PAYLOAD,
            **{f"verdict_{column}": verdict_values[key] for key, column in _VERDICT_COLUMNS},
            **_log_params(
                actor=principal,
                action="audit.verdict",
                entity_type=ENTITY,
                entity_id=row.id,
                before=before,
                after={**after, "verdict": verdict.model_dump(mode="json")},
            ),
        },
    )

    if row.open_shadow_items:
        await complete_shadow_audit_items(session, reviewer_id=auditor_id, actor=principal)
    disagreement_id = None
    if row.is_golden or data.outcome == "incorrect":
        audit, decision, judged = _judged_entities(row, verdict_values, completed_at=now)
        if row.is_golden:
            await record_golden_verdict(session, audit=audit, verdict=judged)
        else:
            disagreement_id = await open_disagreement(
                session,
                actor=principal,
                audit=audit,
                decision=decision,
                verdict=judged,
                dispute_window=timedelta(hours=dispute_window_hours),
            )
    return _judged_read(
        row,
        verdict,
        completed_at=now,
        disagreement_id=disagreement_id,
        hide_golden=principal.role == "qa_auditor",
    )


# ---------------------------------------------------------------------------- reading


def visible_audits(principal: Principal) -> ColumnElement[bool]:
    """Which audits the caller may see, in lists, reads and verdicts alike: a moderator key
    its reviewer's (never a golden audit: those test the auditor), a QA auditor the audits
    they hold or judged, a market-scoped key only its markets'; nothing for a moderator or
    auditor key bound to no reviewer."""
    clauses: list[ColumnElement[bool]] = []
    if principal.role in (Role.MODERATOR, Role.QA_AUDITOR):
        if principal.reviewer_id is None:
            return false()
        if principal.role == Role.MODERATOR:
            clauses += [Audit.moderator_id == principal.reviewer_id, not_(Audit.is_golden)]
        else:
            clauses.append(Audit.auditor_id == principal.reviewer_id)
    if principal.markets is not None:
        clauses.append(Audit.market.in_(principal.markets))
    return and_(true(), *clauses)


def _joined() -> Select[Audit, Decision, Verdict, uuid.UUID]:
    # Verdict and disagreement id are outer-joined: None for audits not judged (yet).
    return (
        select(Audit, Decision, Verdict, Disagreement.id)
        .join(Decision, Decision.id == Audit.decision_id)
        .outerjoin(Verdict, Verdict.audit_id == Audit.id)
        .outerjoin(Disagreement, Disagreement.audit_id == Audit.id)
    )


def _refuse_foreign_filters(principal: Principal, filters: AuditQuery) -> None:
    own = principal.reviewer_id
    if principal.role == "moderator" and filters.moderator_id not in (None, own):
        raise Forbidden("a moderator key sees only its own reviewer's audits")
    if principal.role == "qa_auditor" and filters.auditor_id not in (None, own):
        raise Forbidden("a QA auditor sees only the audits they claimed")
    if principal.role == "qa_auditor" and filters.golden is not None:
        raise Forbidden("which audits are golden is not for QA auditors to know")


AUDIT_ORDER = Keyset(Audit.day, Audit.id, descending=True)


async def list_audits(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: AuditQuery,
) -> KeysetPage[AuditRead]:
    """A page of audits, newest day first (``AUDIT_ORDER``).

    A moderator key sees its reviewer's audits (asking for another moderator's is 403); a QA
    auditor the audits they hold or judged, blind until judged (so a ``moderator_id`` filter
    matches only judged ones); every other role all audits; market-scoped keys only their
    markets.
    """
    _refuse_foreign_filters(principal, filters)
    query = _joined().where(visible_audits(principal))
    if filters.status is not None:
        query = query.where(Audit.status == filters.status)
    if filters.moderator_id is not None:
        query = query.where(Audit.moderator_id == filters.moderator_id)
        if principal.role == "qa_auditor":
            query = query.where(Audit.status == "completed")
    if filters.auditor_id is not None:
        query = query.where(Audit.auditor_id == filters.auditor_id)
    if filters.market is not None:
        query = query.where(Audit.market == filters.market)
    if filters.queue is not None:
        query = query.where(Audit.queue == filters.queue)
    if filters.from_ is not None:
        query = query.where(Audit.day >= filters.from_)
    if filters.to is not None:
        query = query.where(Audit.day <= filters.to)
    if filters.outcome is not None:
        query = query.where(Verdict.effective_outcome == filters.outcome)
    if filters.error_type is not None:
        query = query.where(Verdict.error_type == filters.error_type)
    if filters.golden is not None:
        query = query.where(Audit.is_golden.is_(filters.golden))
    rows = (await session.execute(AUDIT_ORDER.apply(query, filters))).all()
    items = [
        audit_read(
            audit,
            decision,
            verdict=verdict,
            disagreement_id=disagreement_id,
            blind=is_blind(principal, audit),
            hide_golden=principal.role == "qa_auditor",
        )
        for audit, decision, verdict, disagreement_id in rows
    ]
    return AUDIT_ORDER.page(items, filters)


async def get_audit(
    session: AsyncSession, *, principal: Principal, audit_id: uuid.UUID
) -> AuditRead:
    """One audit, with the visibility of ``list_audits``; 404 when the caller cannot see it."""
    row = (
        await session.execute(_joined().where(Audit.id == audit_id, visible_audits(principal)))
    ).first()
    if row is None:
        raise NotFound("audit not found")
    audit, decision, verdict, disagreement_id = row
    return audit_read(
        audit,
        decision,
        verdict=verdict,
        disagreement_id=disagreement_id,
        blind=is_blind(principal, audit),
        hide_golden=principal.role == "qa_auditor",
    )
