"""Analytics rollups: the counts every report reads, per market-local day and slice.

The report worker keeps these tables; reports only sum them, so a report's cost grows with
the number of slices it covers, never with the length of the history behind them.

A slice is (day, market, queue, moderator_id, policy). ``policy`` is a policy code, or
``ALL_POLICIES`` for the slice's total row. A decision counts under every policy label it
carries (``NO_POLICY`` when it carries none); a verdict counts under every policy the
moderator applied or the auditor expected, each once (``NO_POLICY`` when there is none), so
the policy rows of a slice may add up to more than its total row: read either the total
rows or the policy rows, never both.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Float, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base

# The total row of a slice, across its policies. Policy codes match ^[a-z0-9_.-]{1,64}$, so
# neither marker can collide with one.
ALL_POLICIES = "*"
# Decisions and verdicts that name no policy at all.
NO_POLICY = "(none)"
# The row of ``PopulationDayRollup`` over every market (market codes are two letters).
ALL_MARKETS = "*"
# The share of each quality_rollups page that inserts fill: the rest takes the new versions of
# its rows, so that the intake rollup's updates stay on the page (HOT; migration 0015: 76 % of
# them were HOT at 70, 43 % at 85, none at 100).
QUALITY_ROLLUPS_FILLFACTOR = 70


def _count() -> Mapped[int]:
    return mapped_column(BigInteger, default=0, server_default="0")


class RollupCounters:
    """The counters of a quality rollup row, declared once: ``QualityRollup`` keeps them per
    slice, ``QueueDayRollup`` their sums per market, queue and day (what each counts:
    ``QualityRollup``). The table columns, ``ROLLUP_COUNTERS`` and the rollup queries all
    follow this declaration; a counter added here needs its migration."""

    # The decision side (``DECISION_COUNTERS``), counted from intake.
    decisions: Mapped[int] = _count()
    handling_time_ms_sum: Mapped[int] = _count()
    handling_time_count: Mapped[int] = _count()

    # The verdict side, recomputed per slice from verdicts, disputes and appeals.
    audited: Mapped[int] = _count()
    correct: Mapped[int] = _count()
    judged_incorrect: Mapped[int] = _count()
    missed_violation: Mapped[int] = _count()
    over_enforcement: Mapped[int] = _count()
    wrong_policy: Mapped[int] = _count()
    wrong_action: Mapped[int] = _count()
    critical: Mapped[int] = _count()
    major: Mapped[int] = _count()
    minor: Mapped[int] = _count()
    disputed: Mapped[int] = _count()
    overturned: Mapped[int] = _count()
    audit_delay_seconds_sum: Mapped[int] = _count()
    appealed: Mapped[int] = _count()
    appeal_reversed: Mapped[int] = _count()
    enforcement_tp: Mapped[int] = _count()
    enforcement_fp: Mapped[int] = _count()
    enforcement_fn: Mapped[int] = _count()


# Every counter, in declaration order.
ROLLUP_COUNTERS: tuple[str, ...] = tuple(RollupCounters.__annotations__)
# The counters intake adds to; the others are the verdict side.
DECISION_COUNTERS: tuple[str, ...] = ("decisions", "handling_time_ms_sum", "handling_time_count")
VERDICT_COUNTERS: tuple[str, ...] = tuple(
    name for name in ROLLUP_COUNTERS if name not in DECISION_COUNTERS
)


class QualityRollup(RollupCounters, Base):
    """Counts of one slice on one market-local day.

    Decision side (from intake, counted once per intake batch, on the decision's
    market-local day): ``decisions``, ``handling_time_ms_sum`` and ``handling_time_count``
    (decisions that reported a handling time). A slice's verdict-only policy rows (a policy
    only the auditor expected) have 0 here.

    Verdict side (non-golden verdicts whose audit's ``day`` is ``day``, the decision's
    market-local day the sampler recorded; recomputed for the whole slice whenever one of
    its verdicts, disputes or appeals changes; ``shared.analytics.rollups``):
    - ``audited``: verdicts; ``correct``: ``effective_outcome = 'correct'`` (an overturned
      verdict is correct); ``judged_incorrect``: ``outcome = 'incorrect'`` as the auditor
      first judged it (the verdicts that opened a disagreement).
    - errors by type and by severity: verdicts that are still incorrect
      (``effective_outcome = 'incorrect'``), by ``error_type`` and by ``severity``.
    - ``disputed``: their disagreements the moderator disputed; ``overturned``: those ruled
      overturned.
    - ``audit_delay_seconds_sum``: sum over ``audited`` of the whole seconds (rounded down,
      per verdict) from decision time to verdict time.
    - ``appealed`` / ``appeal_reversed``: the slice's decisions (audited or not) with at least
      one linked appeal outcome, and those of them any appeal reversed (a decision appealed
      twice counts once, as ``shared.appeals.service`` counts). A decision's appeals count
      under its own policy labels (``NO_POLICY`` for none), not under expected ones.
    - ``enforcement_tp`` / ``_fp`` / ``_fn`` (policy rows only, 0 on ``ALL_POLICIES`` and
      ``NO_POLICY`` rows):
      the moderators' enforcement of the row's policy judged by the auditors. Per verdict
      counted under policy p: the moderator enforced p when its action is remove/restrict and
      p is among its labels; the truth enforces p when the verdict is correct and the
      moderator enforced p, or it is incorrect and the expected action is remove/restrict
      with p among the expected labels. tp = both, fp = moderator only, fn = truth only.
    """

    __tablename__ = "quality_rollups"
    __table_args__ = (
        Index("ix_quality_rollups_moderator_day", "moderator_id", "day"),
        Index("ix_quality_rollups_policy_day", "policy", "day"),
        # The slice totals are a third of the rows, interleaved on disk with the policy rows:
        # a report over the totals read ~24,000 pages at 10 M decisions. This partial index
        # holds their keys and verdict counters in day order, so the totals of a window are
        # one index-only range scan for reports on verdicts (older days are all-visible once
        # vacuumed). No index holds a decision counter (migration 0015): the intake rollup
        # changes only those, so its upserts are HOT updates (the new version on the same
        # page, no index entry; the fillfactor leaves the room) instead of a new version
        # elsewhere plus an entry in every index. Reports that sum ``decisions`` read the heap.
        Index(
            "ix_quality_rollups_totals_day",
            "day",
            postgresql_where=text("policy = '*'"),
            postgresql_include=["market", "queue", "moderator_id", *VERDICT_COUNTERS],
        ),
        # The population estimate's strata (moderator, day) of the totals, in order with the
        # verdict counters it sums: PostgreSQL sums each stratum as the scan passes it instead
        # of hashing ~60,000 of them per 30 days at 10 M decisions (migration 0013).
        Index(
            "ix_quality_rollups_totals_strata",
            "day",
            "moderator_id",
            postgresql_where=text("policy = '*'"),
            postgresql_include=["audited", "correct"],
        ),
        {"postgresql_with": {"fillfactor": QUALITY_ROLLUPS_FILLFACTOR}},
    )

    day: Mapped[date] = mapped_column(primary_key=True)
    market: Mapped[str] = mapped_column(String(2), primary_key=True)
    queue: Mapped[str] = mapped_column(String(128), primary_key=True)
    moderator_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    policy: Mapped[str] = mapped_column(String(64), primary_key=True)

    # The counters: ``RollupCounters`` (a mixin's columns follow the class's own).

    # Last, after the counters, as the migrations made the table.
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), sort_order=1)


class QueueDayRollup(RollupCounters, Base):
    """The slice totals (``ALL_POLICIES`` rows) of ``quality_rollups`` summed over the
    moderators of one market and queue on one market-local day: the same counters, about
    1/50 of the rows, so the briefing's comparison, errors, rates and trend over 30 days sum
    a thousand rows instead of ~100,000 at 10 M decisions (migration 0014).

    A function of the day's ``quality_rollups`` rows, recomputed for the whole day whenever
    they change, in the same transaction (``shared.analytics.day_rollups``).
    """

    __tablename__ = "queue_day_rollups"

    day: Mapped[date] = mapped_column(primary_key=True)
    market: Mapped[str] = mapped_column(String(2), primary_key=True)
    queue: Mapped[str] = mapped_column(String(128), primary_key=True)

    # The counters: ``RollupCounters`` (a mixin's columns follow the class's own).


class PopulationDayRollup(Base):
    """The post-stratified estimate's strata sums of one market-local day
    (``shared.analytics.population.StrataSums``): over the strata (moderator, day) of every
    market (``market = ALL_MARKETS``), and over the strata (moderator, market, day) of each
    market. Strata never span days, so a window's sums are the sums of its days: the
    briefing's population accuracy reads 30 rows instead of ~60,000 strata (migration 0014).

    ``decisions``: sum N_h; ``covered_decisions``: over the strata with an audit;
    ``weighted_correct``: sum N_h p_h; ``variance_sum``: sum N_h^2 p_h (1 - p_h) / n_h
    (1 - n_h / N_h); ``audited``, ``correct``: sum n_h, sum x_h. Recomputed with
    ``QueueDayRollup``, from the same rows.
    """

    __tablename__ = "population_day_rollups"

    day: Mapped[date] = mapped_column(primary_key=True)
    market: Mapped[str] = mapped_column(String(2), primary_key=True)

    decisions: Mapped[int] = _count()
    covered_decisions: Mapped[int] = _count()
    weighted_correct: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    variance_sum: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    audited: Mapped[int] = _count()
    correct: Mapped[int] = _count()


class DirtyRollupSlice(Base):
    """A slice whose verdict-side counts must be recomputed: append-only, one row per change.

    Written in the transaction of the change (a verdict, a dispute, a ruling, a close, an
    appeal outcome); the rollup job claims rows (``FOR UPDATE SKIP LOCKED``), recomputes the
    slices they name from the raw tables and deletes the rows in one transaction. A slice
    named twice is recomputed once.
    """

    __tablename__ = "dirty_rollup_slices"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    day: Mapped[date]
    market: Mapped[str] = mapped_column(String(2))
    queue: Mapped[str] = mapped_column(String(128))
    moderator_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ActionConfusionRollup(Base):
    """Non-golden verdicts of one slice and day by moderator action x expected action.

    ``expected_action`` is the moderator's own action when the verdict is (effectively)
    correct, else the auditor's expected action. ``policy`` as in ``QualityRollup``
    (``ALL_POLICIES`` holds each verdict once).
    """

    __tablename__ = "action_confusion_rollups"

    day: Mapped[date] = mapped_column(primary_key=True)
    market: Mapped[str] = mapped_column(String(2), primary_key=True)
    queue: Mapped[str] = mapped_column(String(128), primary_key=True)
    moderator_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    policy: Mapped[str] = mapped_column(String(64), primary_key=True)
    action: Mapped[str] = mapped_column(String(16), primary_key=True)
    expected_action: Mapped[str] = mapped_column(String(16), primary_key=True)
    verdicts: Mapped[int] = _count()


__all__ = [
    "ALL_MARKETS",
    "ALL_POLICIES",
    "NO_POLICY",
    "ActionConfusionRollup",
    "DirtyRollupSlice",
    "PopulationDayRollup",
    "QualityRollup",
    "QueueDayRollup",
]
