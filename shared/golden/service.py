"""Golden items: decisions with a known right verdict, mixed into auditors' claims.

Golden items are curated from a decision (``expected_outcome`` and, when incorrect, the
expected action and labels) or imported from a closed calibration session. An import maps an
item's golden label to an expectation of the item's decision:

- a golden label in ``NO_VIOLATION_LABELS`` (``no_violation``, ``approve``) expects the
  non-enforcing action (``approve``, no labels): ``correct`` when the moderator approved,
  otherwise ``incorrect`` expecting ``approve`` with no labels;
- any other golden label is a policy code the content violates: ``correct`` when the
  moderator enforced (any action but ``approve``) with that label among theirs, otherwise
  ``incorrect`` expecting the moderator's action (``remove`` when they approved) with labels
  ``[golden]``.

Mixing (see ``claim_golden_audit``): a claim is a golden turn when a keyed hash (HMAC-SHA256
under ``golden_selection_key``, a secret) of (auditor, number of audits the auditor holds or
held) falls below ``golden_rate``: deterministic, at the configured rate over many claims, and
unpredictable to anyone without the key (an auditor who could compute it would know which of
their claims are tests). A golden turn hands out an active golden item the auditor
has not judged (nor been handed) before, in their markets and languages, not their own
decision, not one they created, not from a calibration session they took part in, and not
carrying a sensitive label they reached the cap of. It becomes an ``Audit`` with ``is_golden``
set (one per decision and auditor), shaped like any other audit, down to what a real one
carries: reason ``base`` (the sampler's commonest), a priority in [0, 1), and a ``created_at``
when the sampler would have created it (the creation time of the real audits of the same
market day, else that day's scheduled sampling at 01:00 market time once it has passed, else
when the decision arrived), never the claim time. The claim response does not say it is
golden.

Verdicts on golden audits are compared with the expectation: matched when the outcome is the
expected one and, for an expected ``incorrect``, the expected action is the golden one.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    String,
    any_,
    bindparam,
    func,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change, snapshot
from shared.core.auth import Principal
from shared.core.errors import Conflict, NotFound, UnprocessableEntity
from shared.core.pagination import Keyset, KeysetPage
from shared.models import (
    Audit,
    CalibrationItem,
    CalibrationSession,
    Decision,
    GoldenItem,
    GoldenVerdict,
    Verdict,
)
from shared.models.base import utcnow
from shared.sampling.selection import SampleReason
from shared.schemas.golden import (
    GoldenItemCreate,
    GoldenItemQuery,
    GoldenItemRead,
    SkippedCalibrationItem,
)
from shared.verdicts import NON_ENFORCING_ACTION, derive_error_type

ENTITY = "golden_item"
NO_VIOLATION_LABELS = frozenset({"no_violation", "approve"})
DEFAULT_ENFORCING_ACTION = "remove"
GOLDEN_AUDIT_REASON: SampleReason = "base"

# ---------------------------------------------------------------------------- curating


def _unique(labels: list[str]) -> list[str]:
    return list(dict.fromkeys(labels))


async def _decision(session: AsyncSession, decision_id: int) -> Decision | None:
    return await session.scalar(select(Decision).where(Decision.id == decision_id))


async def _active_exists(session: AsyncSession, decision_id: int) -> bool:
    found = await session.scalar(
        select(GoldenItem.id).where(GoldenItem.decision_id == decision_id, GoldenItem.active)
    )
    return found is not None


async def _add(
    session: AsyncSession,
    *,
    principal: Principal,
    decision: Decision,
    expected_outcome: str,
    expected_action: str | None,
    expected_labels: list[str] | None,
    source: str,
    calibration_id: uuid.UUID | None,
) -> GoldenItem:
    item = GoldenItem(
        id=uuid.uuid4(),
        decision_id=decision.id,
        market=decision.market,
        expected_outcome=expected_outcome,
        expected_action=expected_action,
        expected_labels=expected_labels,
        source=source,
        calibration_id=calibration_id,
        active=True,
        created_by=principal.key_id,
        created_by_reviewer_id=principal.reviewer_id,
        created_at=utcnow(),
        deactivated_at=None,
    )
    session.add(item)
    await session.flush()
    await record_change(
        session,
        actor=principal,
        action="golden_item.create",
        entity_type=ENTITY,
        entity_id=item.id,
        after=snapshot(GoldenItemRead.model_validate(item)),
    )
    return item


async def create_golden_item(
    session: AsyncSession, *, principal: Principal, data: GoldenItemCreate
) -> GoldenItem:
    """Curate a golden item from a decision.

    422 when the decision does not exist (or is outside a market-scoped key's markets) or an
    incorrect expectation is the moderator's own decision; 409 when the decision already is
    an active golden item.
    """
    decision = await _decision(session, data.decision_id)
    if decision is None or not principal.can_see_market(decision.market):
        raise UnprocessableEntity(
            f"decision {data.decision_id} does not exist",
            errors=[{"loc": ["decision_id"], "msg": "no such decision"}],
        )
    expected_labels: list[str] | None = None
    if data.expected_outcome == "incorrect":
        assert data.expected_action is not None  # GoldenItemCreate guarantees it
        if data.expected_labels is not None:
            expected_labels = _unique(data.expected_labels)
        elif data.expected_action == NON_ENFORCING_ACTION:
            expected_labels = []
        else:
            expected_labels = list(decision.policy_labels)
        error_type = derive_error_type(
            decision.action, decision.policy_labels, data.expected_action, expected_labels
        )
        if error_type is None:
            raise UnprocessableEntity(
                "an incorrect golden item must expect another decision than the moderator's",
                errors=[{"loc": ["expected_action"], "msg": "is the moderator's own decision"}],
            )
    if await _active_exists(session, decision.id):
        raise Conflict(f"decision {decision.id} already is an active golden item")
    return await _add(
        session,
        principal=principal,
        decision=decision,
        expected_outcome=data.expected_outcome,
        expected_action=data.expected_action,
        expected_labels=expected_labels,
        source="curated",
        calibration_id=None,
    )


def expectation_from_golden_label(
    golden: str, *, action: str, labels: list[str]
) -> tuple[str, str | None, list[str] | None]:
    """(expected_outcome, expected_action, expected_labels) for a decision whose content has
    this golden calibration label (the mapping of the module docstring)."""
    if golden in NO_VIOLATION_LABELS:
        if action == NON_ENFORCING_ACTION:
            return "correct", None, None
        return "incorrect", NON_ENFORCING_ACTION, []
    if action != NON_ENFORCING_ACTION and golden in labels:
        return "correct", None, None
    expected_action = action if action != NON_ENFORCING_ACTION else DEFAULT_ENFORCING_ACTION
    return "incorrect", expected_action, [golden]


async def import_from_calibration(
    session: AsyncSession, *, principal: Principal, calibration_id: uuid.UUID
) -> tuple[list[GoldenItem], list[SkippedCalibrationItem]]:
    """Golden items from a closed session's items that have a golden answer and a decision.

    404 for an unknown session (or outside a market-scoped key's markets); 409 while it is
    open. Items without a golden answer or a decision, whose decision is unknown, or whose
    decision already is an active golden item are skipped, with the reason.
    """
    calibration = await session.scalar(
        select(CalibrationSession).where(CalibrationSession.id == calibration_id)
    )
    if calibration is None or not principal.can_see_market(calibration.market):
        raise NotFound("calibration session not found")
    if calibration.status != "closed":
        raise Conflict("only a closed calibration session can give golden items")
    items = list(
        await session.scalars(
            select(CalibrationItem)
            .where(CalibrationItem.session_id == calibration_id)
            .order_by(CalibrationItem.position)
        )
    )
    created: list[GoldenItem] = []
    skipped: list[SkippedCalibrationItem] = []
    for item in items:
        if item.golden is None or item.decision_id is None:
            reason = "no golden answer" if item.golden is None else "no decision"
            skipped.append(SkippedCalibrationItem(content_id=item.content_id, reason=reason))
            continue
        decision = await _decision(session, item.decision_id)
        if decision is None:
            skipped.append(
                SkippedCalibrationItem(content_id=item.content_id, reason="unknown decision")
            )
            continue
        if await _active_exists(session, decision.id):
            skipped.append(
                SkippedCalibrationItem(
                    content_id=item.content_id, reason="already an active golden item"
                )
            )
            continue
        outcome, action, labels = expectation_from_golden_label(
            item.golden, action=decision.action, labels=list(decision.policy_labels)
        )
        created.append(
            await _add(
                session,
                principal=principal,
                decision=decision,
                expected_outcome=outcome,
                expected_action=action,
                expected_labels=labels,
                source="calibration",
                calibration_id=calibration.id,
            )
        )
    return created, skipped


GOLDEN_ITEM_ORDER = Keyset(GoldenItem.created_at, GoldenItem.id, descending=True)


def visible_golden_items(viewer: Principal) -> ColumnElement[bool]:
    """Which golden items ``viewer`` may see: a market-scoped key only its markets'."""
    if viewer.markets is None:
        return true()
    return GoldenItem.market.in_(viewer.markets)


async def list_golden_items(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: GoldenItemQuery,
) -> KeysetPage[GoldenItem]:
    """A page of golden items, newest first."""
    query = select(GoldenItem).where(visible_golden_items(principal))
    if filters.active is not None:
        query = query.where(GoldenItem.active.is_(filters.active))
    if filters.source is not None:
        query = query.where(GoldenItem.source == filters.source)
    items = list(await session.scalars(GOLDEN_ITEM_ORDER.apply(query, filters)))
    return GOLDEN_ITEM_ORDER.page(items, filters)


async def deactivate_golden_item(
    session: AsyncSession, *, principal: Principal, golden_item_id: uuid.UUID
) -> GoldenItem:
    """Stop handing the item out (verdicts already given keep counting); idempotent."""
    item = await session.scalar(
        select(GoldenItem)
        .where(GoldenItem.id == golden_item_id, visible_golden_items(principal))
        .with_for_update()
    )
    if item is None:
        raise NotFound("golden item not found")
    if not item.active:
        return item
    before = snapshot(GoldenItemRead.model_validate(item))
    item.active = False
    item.deactivated_at = utcnow()
    await session.flush()
    await record_change(
        session,
        actor=principal,
        action="golden_item.deactivate",
        entity_type=ENTITY,
        entity_id=item.id,
        before=before,
        after=snapshot(GoldenItemRead.model_validate(item)),
    )
    return item


# ---------------------------------------------------------------------------- mixing


def _unit_hash(*parts: object) -> float:
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_golden_turn(auditor_id: str, claim_number: int, rate: float, *, key: bytes) -> bool:
    """Whether the auditor's ``claim_number``-th claim hands out a golden item.

    HMAC-SHA256 of both under the secret ``key``, read as a number in [0, 1), below ``rate``:
    deterministic, over many claims golden at ``rate`` (0 never, 1 always), and not
    predictable without the key.
    """
    if rate <= 0:
        return False
    digest = hmac.new(key, f"{auditor_id}:{claim_number}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


# How many audits the auditor (bound as ``auditor``) holds or held: the ordinal of their
# next claim. Built once; the claim reads it along with the auditor's other state.
CLAIM_NUMBER = select(func.count()).where(Audit.auditor_id == bindparam("auditor"))


async def claim_number(session: AsyncSession, *, auditor_id: str) -> int:
    """How many audits the auditor holds or held: the ordinal of their next claim."""
    count = await session.scalar(CLAIM_NUMBER, {"auditor": auditor_id})
    return int(count or 0)


# A golden turn's statements, built once with bound parameters (``auditor``, ``markets``,
# ``languages``, ``excluded``, ``now``): a turn only binds values, where building them cost
# the turn more CPU than running them.
_AUDITOR = bindparam("auditor", type_=String)
_MARKETS = bindparam("markets", type_=ARRAY(String))
_LANGUAGES = bindparam("languages", type_=ARRAY(String))

# The auditor's own golden audit whose lease expired: handed back first.
_EXPIRED_GOLDEN_AUDIT = (
    select(Audit, Decision)
    .join(Decision, Decision.id == Audit.decision_id)
    .where(
        Audit.is_golden,
        Audit.auditor_id == _AUDITOR,
        Audit.status == "claimed",
        Audit.lease_expires_at <= bindparam("now"),
        Audit.market == any_(_MARKETS),
        Audit.language == any_(_LANGUAGES),
    )
    .order_by(Audit.claimed_at, Audit.id)
    .limit(1)
    .with_for_update(of=Audit)
)

# The golden item the auditor gets: active, in their markets and languages, not their own
# decision nor their own item, with no label past their cap, never seen by them nor in a
# calibration session they took part in.
_NEXT_GOLDEN_ITEM = (
    select(GoldenItem, Decision)
    .join(Decision, Decision.id == GoldenItem.decision_id)
    .where(
        GoldenItem.active,
        Decision.market == any_(_MARKETS),
        Decision.language == any_(_LANGUAGES),
        Decision.moderator_id != _AUDITOR,
        or_(
            GoldenItem.created_by_reviewer_id.is_(None),
            GoldenItem.created_by_reviewer_id != _AUDITOR,
        ),
        not_(Decision.policy_labels.overlap(bindparam("excluded", type_=ARRAY(String(64))))),
        not_(
            select(Audit.id)
            .where(Audit.decision_id == GoldenItem.decision_id, Audit.auditor_id == _AUDITOR)
            .exists()
        ),
        not_(
            select(CalibrationSession.id)
            .where(
                CalibrationSession.id == GoldenItem.calibration_id,
                any_(CalibrationSession.participants) == _AUDITOR,
            )
            .exists()
        ),
    )
    # A different order per auditor, so auditors do not all get the same item first.
    .order_by(func.md5(func.concat(GoldenItem.id, ":", _AUDITOR)))
    .limit(1)
)


async def claim_golden_audit(
    session: AsyncSession,
    *,
    auditor_id: str,
    markets: list[str],
    languages: list[str],
    excluded: list[str],
    now: datetime,
    lease: timedelta,
) -> tuple[Audit, Decision] | None:
    """Hand the auditor a golden audit (see the module docstring), or None when none fits.

    The auditor's own golden audit whose lease expired is handed back first (golden audits
    never go to anyone else).
    """
    values = {
        "auditor": auditor_id,
        "markets": markets,
        "languages": languages,
        "excluded": excluded,
        "now": now,
    }
    expired = (await session.execute(_EXPIRED_GOLDEN_AUDIT, values)).first()
    if expired is not None:
        audit, decision = expired[0], expired[1]
        audit.claimed_at = now
        audit.lease_expires_at = now + lease
        await session.flush()
        return audit, decision

    row = (await session.execute(_NEXT_GOLDEN_ITEM, values)).first()
    if row is None:
        return None
    item, decision = row[0], row[1]
    day = await _market_day(session, decision)
    audit = Audit(
        id=uuid.uuid4(),
        decision_id=decision.id,
        sampling_run_id=None,
        plan_id=None,
        # What the sampler most often says: a golden audit must read like a real one.
        reason=GOLDEN_AUDIT_REASON,
        market=decision.market,
        queue=decision.queue,
        language=decision.language,
        moderator_id=decision.moderator_id,
        policy_labels=list(decision.policy_labels),
        day=day,
        status="claimed",
        priority=_unit_hash(auditor_id, item.id),
        auditor_id=auditor_id,
        claimed_at=now,
        lease_expires_at=now + lease,
        is_golden=True,
        created_at=await _sampled_at(session, decision=decision, day=day, now=now),
    )
    session.add(audit)
    await session.flush()
    return audit, decision


# When the daily sampler runs for a market day: 01:00 market time on the day after.
_SCHEDULED_SAMPLING = text(
    "SELECT (CAST(:day AS date) + 1 + time '01:00') AT TIME ZONE coalesce("
    "(SELECT time_zone FROM markets WHERE code = :market), 'UTC')"
)


async def _sampled_at(
    session: AsyncSession, *, decision: Decision, day: date, now: datetime
) -> datetime:
    """When the sampler would have created an audit of the decision (module docstring)."""
    sampled = await session.scalar(
        select(func.min(Audit.created_at)).where(
            Audit.day == day, Audit.market == decision.market, not_(Audit.is_golden)
        )
    )
    if sampled is None:
        sampled = await session.scalar(_SCHEDULED_SAMPLING, {"day": day, "market": decision.market})
    if not isinstance(sampled, datetime) or sampled > now:
        return min(decision.received_at, now)
    return max(sampled, decision.received_at)


async def _market_day(session: AsyncSession, decision: Decision) -> date:
    """The decision's day in its market's time zone (UTC when the market has none)."""
    day = await session.scalar(
        text(
            "SELECT CAST((CAST(:at AS timestamptz) AT TIME ZONE coalesce("
            "(SELECT time_zone FROM markets WHERE code = :market), 'UTC')) AS date)"
        ),
        {"at": decision.decided_at, "market": decision.market},
    )
    return day if isinstance(day, date) else decision.decided_at.date()


async def record_golden_verdict(
    session: AsyncSession, *, audit: Audit, verdict: Verdict
) -> GoldenVerdict | None:
    """Compare a golden audit's verdict with the golden expectation and store the result.

    The expectation is the decision's golden item (the active one, else the latest).
    """
    item = await session.scalar(
        select(GoldenItem)
        .where(GoldenItem.decision_id == audit.decision_id)
        .order_by(GoldenItem.active.desc(), GoldenItem.created_at.desc())
        .limit(1)
    )
    if item is None:
        return None
    matched = verdict.outcome == item.expected_outcome and (
        item.expected_outcome == "correct"
        or item.expected_action is None
        or verdict.expected_action == item.expected_action
    )
    result = GoldenVerdict(
        verdict_id=verdict.id,
        golden_item_id=item.id,
        audit_id=audit.id,
        decision_id=audit.decision_id,
        auditor_id=verdict.auditor_id,
        market=audit.market,
        outcome=verdict.outcome,
        expected_action=verdict.expected_action,
        matched=matched,
        judged_at=verdict.created_at,
    )
    session.add(result)
    await session.flush()
    return result
