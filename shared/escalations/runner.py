"""Evaluating a rule: read its slices from the rollups, judge them (``evaluation``), and
open, add to, re-open or mark recovered the escalations they call for (``lifecycle``).

Windows. The rule's window is the last ``window_days`` full market-local days: up to
yesterday in the rule's market's time zone (UTC for a rule across markets, as the reports'
default "today" is the UTC date), the rollups' days being market-local already. The
baseline is the ``baseline_days`` just before the window.

After resolution the rule keeps watching the slice, over the days after the resolution day
only (the window clipped to start the day after ``resolved_at``, so the breach that was just
resolved is not counted again): once such a clipped window has ``min_audits`` audits and no
breach, the escalation is marked recovered (``recovered_at``); a breach found in it within
``cooldown_days`` of ``resolved_at`` re-opens the same escalation. Beyond the cool-down a
recovered slice is judged over the whole window again and a new breach opens a new
escalation. Every slice judged in one evaluation (clipped or not) belongs to one
Benjamini-Hochberg family.

Scheduling: ``evaluate_due_rules`` claims one due rule at a time ``FOR UPDATE SKIP LOCKED``
(two workers take different rules), evaluates it in the same transaction and sets its next
evaluation an hour or a day later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.filters import AnalyticsScope
from shared.analytics.population import estimate_from_sums, population_sums
from shared.analytics.queries import Dimension, sum_quality_rollups
from shared.analytics.rollups import refresh_rollups
from shared.core.db import unit_of_work
from shared.escalations.evaluation import (
    Criteria,
    Measurement,
    SliceInput,
    judge_slices,
    proportion,
)
from shared.escalations.lifecycle import record_breach, record_recovery, slice_key
from shared.escalations.rules import SCHEDULE_PERIOD
from shared.markets import default_time_zone
from shared.models import Escalation, EscalationRule, Market

logger = logging.getLogger(__name__)

# The counters a rate metric's successes and trials come from (as the rates report has them).
RATE_COUNTS = {
    "accuracy": ("correct", "audited"),
    "dispute_rate": ("disputed", "judged_incorrect"),
    "overturn_rate": ("overturned", "disputed"),
}
_COUNTERS = ("audited", "correct", "judged_incorrect", "disputed", "overturned")
DUE_BATCH = 50


@dataclass(frozen=True, slots=True)
class RuleWindows:
    """The market-local days a rule's evaluation reads (inclusive)."""

    day_from: date
    day_to: date
    baseline_from: date | None
    baseline_to: date | None
    zone: str


async def rule_zone(session: AsyncSession, rule: EscalationRule) -> str:
    """The time zone whose days a rule counts: its market's, else UTC."""
    if rule.market is None:
        return "UTC"
    zone = await session.scalar(select(Market.time_zone).where(Market.code == rule.market))
    return zone or default_time_zone(rule.market)


def local_date(moment: datetime, zone: str) -> date:
    """The date of ``moment`` in ``zone`` (UTC for a zone that cannot be read)."""
    try:
        return moment.astimezone(ZoneInfo(zone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        return moment.astimezone(UTC).date()


def rule_windows(rule: EscalationRule, *, now: datetime, zone: str) -> RuleWindows:
    """The last ``window_days`` full days before today in ``zone`` and the baseline before."""
    day_to = local_date(now, zone) - timedelta(days=1)
    day_from = day_to - timedelta(days=rule.window_days - 1)
    baseline_from = baseline_to = None
    if rule.baseline_days:
        baseline_to = day_from - timedelta(days=1)
        baseline_from = baseline_to - timedelta(days=rule.baseline_days - 1)
    return RuleWindows(day_from, day_to, baseline_from, baseline_to, zone)


def rule_parts(rule: EscalationRule) -> dict[str, str]:
    """The slice dimensions a rule fixes (its filters)."""
    fixed = {
        "market": rule.market,
        "queue": rule.queue,
        "policy": rule.policy,
        "moderator": rule.moderator_id,
    }
    return {name: value for name, value in fixed.items() if value is not None}


def scope_of(parts: dict[str, str], day_from: date, day_to: date) -> AnalyticsScope:
    """The rollup rows of a slice over the days given."""
    return AnalyticsScope(
        day_from=day_from,
        day_to=day_to,
        markets=(parts["market"],) if "market" in parts else None,
        queue=parts.get("queue"),
        moderator_id=parts.get("moderator"),
        policy=parts.get("policy"),
    )


async def measure(
    session: AsyncSession,
    *,
    metric: str,
    scope: AnalyticsScope,
    group_by: str | None,
) -> dict[str, Measurement]:
    """The metric per slice of ``group_by`` within ``scope`` (one ``""`` slice without it),
    from the reports' own readers: the rollup sums and the population strata sums."""
    if metric == "population_accuracy":
        sums = await population_sums(
            session,
            scope=scope,
            group_by=group_by,  # type: ignore[arg-type]  # the schema refuses policy
        )
        measured: dict[str, Measurement] = {}
        for key, strata in sums.items():
            estimate = estimate_from_sums(strata)
            measured["" if group_by is None else key] = Measurement(
                audited=strata.audited,
                successes=strata.correct,
                trials=strata.audited,
                value=None if estimate is None else estimate.estimate,
                ci_low=None if estimate is None else estimate.ci_low,
                ci_high=None if estimate is None else estimate.ci_high,
                standard_error=None if estimate is None else estimate.standard_error,
            )
        return measured
    dimensions: tuple[Dimension, ...] = (group_by,) if group_by is not None else ()  # type: ignore[assignment]
    groups = await sum_quality_rollups(
        session, scope=scope, group_by=dimensions, counters=_COUNTERS
    )
    successes, trials = RATE_COUNTS[metric]
    return {
        (str(group.key[0]) if group.key else ""): proportion(
            group[successes], group[trials], audited=group["audited"]
        )
        for group in groups
        if group["audited"] > 0 or group[trials] > 0
    }


@dataclass
class _Slice:
    parts: dict[str, str]
    window: Measurement
    baseline: Measurement | None
    days: tuple[date, date]
    latest: Escalation | None
    watched: bool


async def _latest_escalations(
    session: AsyncSession, rule: EscalationRule, now: datetime
) -> dict[str, Escalation]:
    """Per slice key, the escalation of the rule that matters: the unresolved one, else the
    latest resolved one still watched (not recovered, or within the cool-down)."""
    rows = await session.scalars(
        select(Escalation)
        .where(
            Escalation.rule_id == rule.id,
            or_(
                Escalation.status != "resolved",
                Escalation.recovered_at.is_(None),
                Escalation.resolved_at >= now - timedelta(days=rule.cooldown_days),
            ),
        )
        .order_by(Escalation.opened_at)
    )
    latest: dict[str, Escalation] = {}
    for escalation in rows:
        current = latest.get(escalation.slice_key)
        if current is None or current.status == "resolved":
            latest[escalation.slice_key] = escalation
    return latest


def _watched(escalation: Escalation | None, rule: EscalationRule, now: datetime) -> bool:
    if escalation is None or escalation.status != "resolved" or escalation.resolved_at is None:
        return False
    within = escalation.resolved_at >= now - timedelta(days=rule.cooldown_days)
    return within or escalation.recovered_at is None


async def evaluate_rule(
    session: AsyncSession, *, rule: EscalationRule, now: datetime
) -> dict[str, Any]:
    """Evaluate ``rule`` at ``now`` in the caller's transaction; returns a summary (slices
    judged, breaches, escalations opened, re-opened, recorded, recovered)."""
    await refresh_rollups(session)
    zone = await rule_zone(session, rule)
    windows = rule_windows(rule, now=now, zone=zone)
    fixed = rule_parts(rule)
    group_by = rule.group_by
    full = await measure(
        session,
        metric=rule.metric,
        scope=scope_of(fixed, windows.day_from, windows.day_to),
        group_by=group_by,
    )
    baseline: dict[str, Measurement] = {}
    if windows.baseline_from is not None and windows.baseline_to is not None:
        baseline = await measure(
            session,
            metric=rule.metric,
            scope=scope_of(fixed, windows.baseline_from, windows.baseline_to),
            group_by=group_by,
        )
    latest = await _latest_escalations(session, rule, now)

    def parts_of(key: str) -> dict[str, str]:
        # Slice dimensions are named like the groupings (market, queue, policy, moderator).
        return {**fixed, group_by: key} if group_by is not None else dict(fixed)

    slices: list[_Slice] = []
    for key, window in full.items():
        parts = parts_of(key)
        escalation = latest.get(slice_key(parts))
        watched = _watched(escalation, rule, now)
        days = (windows.day_from, windows.day_to)
        if watched and escalation is not None and escalation.resolved_at is not None:
            # Only the days after the resolution day count for a resolved slice.
            first = max(windows.day_from, local_date(escalation.resolved_at, zone) + timedelta(1))
            if first > windows.day_to:
                continue
            days = (first, windows.day_to)
            clipped = await measure(
                session,
                metric=rule.metric,
                scope=scope_of(parts, first, windows.day_to),
                group_by=None,
            )
            if "" not in clipped:
                continue
            window = clipped[""]
        slices.append(_Slice(parts, window, baseline.get(key), days, escalation, watched))

    criteria = Criteria(
        metric=rule.metric,
        min_audits=rule.min_audits,
        alpha=rule.alpha,
        threshold=rule.threshold,
        relative_drop=rule.relative_drop,
    )
    judgements = judge_slices(
        [SliceInput(slice_key(s.parts), s.window, s.baseline) for s in slices], criteria
    )
    summary = {"judged": 0, "breaches": 0, "opened": 0, "reopened": 0, "recorded": 0,
               "recovered": 0}  # fmt: skip
    for item, judgement in zip(slices, judgements, strict=True):
        if not judgement.judged:
            continue
        summary["judged"] += 1
        escalation = item.latest
        if not judgement.breach:
            if item.watched and escalation is not None and escalation.recovered_at is None:
                summary["recovered"] += await record_recovery(
                    session, escalation=escalation, now=now
                )
            continue
        summary["breaches"] += 1
        evidence = {
            **judgement.evidence,
            "window_from": item.days[0].isoformat(),
            "window_to": item.days[1].isoformat(),
            "baseline_from": None
            if windows.baseline_from is None
            else windows.baseline_from.isoformat(),
            "baseline_to": None if windows.baseline_to is None else windows.baseline_to.isoformat(),
            "time_zone": zone,
        }
        reopen = None
        if (
            item.watched
            and escalation is not None
            and escalation.resolved_at is not None
            and escalation.resolved_at >= now - timedelta(days=rule.cooldown_days)
        ):
            reopen = escalation
        outcome = await record_breach(
            session, rule=rule, parts=item.parts, evidence=evidence, now=now, reopen=reopen
        )
        summary[outcome] += 1
    rule.last_evaluated_at = now
    await session.flush()
    return summary


async def claim_due_rule(session: AsyncSession, *, now: datetime) -> EscalationRule | None:
    """One enabled rule due for evaluation, locked (SKIP LOCKED: another worker's is
    skipped), or None."""
    rule: EscalationRule | None = await session.scalar(
        select(EscalationRule)
        .where(
            EscalationRule.enabled.is_(True),
            EscalationRule.next_evaluation_at.is_not(None),
            EscalationRule.next_evaluation_at <= now,
        )
        .order_by(EscalationRule.next_evaluation_at, EscalationRule.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return rule


async def evaluate_due_rules(
    sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime, limit: int = DUE_BATCH
) -> int:
    """Evaluate every rule due at ``now`` (at most ``limit``), each in its own transaction;
    returns how many were evaluated. A rule that fails is pushed to its next slot and
    logged, so one bad rule does not block the others."""
    evaluated = 0
    for _ in range(limit):
        async with unit_of_work(sessionmaker) as session:
            rule = await claim_due_rule(session, now=now)
            if rule is None:
                return evaluated
            rule_id = rule.id
            try:
                async with session.begin_nested():
                    summary = await evaluate_rule(session, rule=rule, now=now)
            except Exception:
                logger.exception(
                    "escalation rule evaluation failed", extra={"rule_id": str(rule_id)}
                )
                summary = None
            rule.next_evaluation_at = now + SCHEDULE_PERIOD[rule.schedule]
        evaluated += 1
        if summary:
            logger.info("escalation rule evaluated", extra={"rule_id": str(rule_id), **summary})
    return evaluated
