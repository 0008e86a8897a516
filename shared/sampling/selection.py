"""Daily audit sampling: which of a market day's decisions are audited. Pure, no I/O.

How one plan selects (``PlanSampler``; ``select_sample`` is the one-call form):

1. **Draw.** Every decision gets two numbers from a keyed BLAKE2b hash of its sample key
   (``<source id>/<event id>``) under the run's seed: ``u``, uniform in [0, 1), and a
   ``priority``, independent of ``u``, that orders the auditors' claims. No global random
   state: the same seed and decisions give the same draws on any machine, in any order.
2. **Rate.** A decision is included when ``u < p``, ``p = min(1, rate * multiplier)``. The
   multiplier is the product of the moderator's boosts (new moderator: fewer than
   ``new_moderator_days`` days since they started; low recent accuracy: below the threshold),
   the *largest* boost among the decision's policy labels (labels co-occur; multiplying them
   would count one risk twice) and the boost of its action. Reason ``base`` when ``u < rate``
   (selected at the plan's rate alone), ``boost`` when only the boost selected it. Because
   ``u`` belongs to the decision, a rerun with more decisions keeps every earlier inclusion,
   and raising a rate or a boost only adds decisions.
3. **Minimum per moderator.** A moderator with fewer than ``min_per_moderator`` included
   (decisions audited already count) gets the missing ones from their other decisions, in
   ascending ``s = u / p`` (a boosted decision is preferred), reason ``minimum``. A
   moderator with fewer decisions than the minimum gets all of them.
4. **Label quotas.** Likewise, a policy label with fewer than its quota among the included
   decisions gets the missing ones from its other decisions, ascending ``s``, reason
   ``quota``.
5. **Daily cap.** When the plan's total (audited already + new) exceeds ``daily_cap``, new
   inclusions are kept in this order and the rest dropped: first the ones that make up the
   minimums and quotas, round by round (every moderator's first required audit before any
   moderator's second; likewise per label), then the others by ascending ``s``. Keeping the
   n smallest ``u / p`` is sequential Poisson sampling (Ohlsson, E. (1998). Sequential
   Poisson sampling. Journal of Official Statistics 14(2), 149-162): the kept sample is
   close to one drawn with every inclusion probability lowered by a common factor, so boosts
   keep their proportions. Audits that exist are never dropped; a cap below them adds
   nothing. Ties in ``s`` (only decisions with ``p = 0``) are broken by ``u``, then by id.

Which plan samples a decision: the plan of its queue if there is one, else its market's
(``plans_for_market``). Decisions no active plan covers are not sampled.

Decisions audited already (``already_audited``) are part of the sample as they are: they
count towards minimums, quotas and the cap and are never selected again, so a rerun of a day
adds only what the new decisions call for.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Final, Literal, NamedTuple
from zoneinfo import ZoneInfo

SampleReason = Literal["base", "boost", "minimum", "quota"]
REASONS: tuple[SampleReason, ...] = ("base", "boost", "minimum", "quota")

_TWO_TO_MINUS_53 = 2.0**-53
_LOW_64 = (1 << 64) - 1


def sampling_seed(base: str, *, market: str, day: str) -> str:
    """The seed of one market day's sampling: the configured seed, the market and the day."""
    return f"{base}:{market}:{day}"


# A market day is sampled once it is over and late decisions had an hour to arrive.
SAMPLING_HOUR = 1


def due_sampling_day(now: datetime, time_zone: str) -> date:
    """The latest market day that should have been sampled by ``now`` (aware).

    From 01:00 local time on, yesterday; before that, the day before yesterday (so a worker
    that was down at 01:00 still catches up the day it missed).
    """
    local = now.astimezone(ZoneInfo(time_zone))
    return local.date() - timedelta(days=1 if local.hour >= SAMPLING_HOUR else 2)


class SampleDraw:
    """Deterministic draws per decision: ``draw(key) -> (u, priority)``, both in [0, 1)."""

    __slots__ = ("hasher",)

    def __init__(self, seed: str) -> None:
        # BLAKE2b keys are at most 64 bytes: a seed of any length is hashed down to one.
        key = hashlib.blake2b(seed.encode(), digest_size=32).digest()
        self.hasher = hashlib.blake2b(key=key, digest_size=16)

    def draw(self, sample_key: str) -> tuple[float, float]:
        """The decision's inclusion draw ``u`` and its claim priority (independent halves)."""
        hasher = self.hasher.copy()
        hasher.update(sample_key.encode())
        value = int.from_bytes(hasher.digest(), "big")
        # 53 bits: exactly representable, so neither value can round up to 1.0.
        return (value >> 75) * _TWO_TO_MINUS_53, ((value & _LOW_64) >> 11) * _TWO_TO_MINUS_53


@dataclass(frozen=True, slots=True)
class PlanRules:
    """A sampling plan as the selection needs it (mirrors ``shared.models.SamplingPlan``)."""

    plan_id: object
    rate: float
    min_per_moderator: int = 0
    queue: str | None = None
    market: str | None = None
    new_moderator_days: int = 30
    new_moderator_multiplier: float = 1.0
    low_accuracy_threshold: float | None = None
    low_accuracy_multiplier: float = 1.0
    # Read by whoever computes ``ModeratorStanding.recent_accuracy``, not by the selection.
    low_accuracy_window_days: int = 14
    label_boosts: Mapping[str, float] = field(default_factory=dict)
    label_quotas: Mapping[str, int] = field(default_factory=dict)
    action_boosts: Mapping[str, float] = field(default_factory=dict)
    daily_cap: int | None = None

    @property
    def uses_new_moderator_boost(self) -> bool:
        return self.new_moderator_multiplier != 1.0

    @property
    def uses_low_accuracy_boost(self) -> bool:
        return self.low_accuracy_threshold is not None and self.low_accuracy_multiplier != 1.0


@dataclass(frozen=True, slots=True)
class ModeratorStanding:
    """What the moderator boosts look at.

    ``days_active``: days from the moderator's start (their ``started_on``, else their first
    decision) to the sampled day, 0 on the first day; None when unknown (not boosted).
    ``recent_accuracy``: their accuracy over the plan's window; None without verdicts.
    """

    days_active: int | None = None
    recent_accuracy: float | None = None


def moderator_multiplier(rules: PlanRules, standing: ModeratorStanding | None) -> float:
    """The product of the moderator boosts that apply to this moderator under ``rules``."""
    multiplier = 1.0
    if standing is None:
        return multiplier
    if standing.days_active is not None and standing.days_active < rules.new_moderator_days:
        multiplier *= rules.new_moderator_multiplier
    if (
        rules.low_accuracy_threshold is not None
        and standing.recent_accuracy is not None
        and standing.recent_accuracy < rules.low_accuracy_threshold
    ):
        multiplier *= rules.low_accuracy_multiplier
    return multiplier


def plans_for_market(
    plans: Sequence[PlanRules], market: str
) -> tuple[dict[str, PlanRules], PlanRules | None]:
    """Which plan samples which of ``market``'s decisions: ``(by queue, market default)``.

    A queue plan wins over the market plan. A plan naming a queue and a market applies to
    that queue in that market only and wins over one naming the queue alone. Plans of the
    same scope should not both be active (the API refuses it); if they are, the first in
    ``plans`` wins, so callers pass them in a stable order.
    """
    by_queue: dict[str, PlanRules] = {}
    queue_only: dict[str, PlanRules] = {}
    default: PlanRules | None = None
    for plan in plans:
        if plan.queue is not None:
            if plan.market == market:
                by_queue.setdefault(plan.queue, plan)
            elif plan.market is None:
                queue_only.setdefault(plan.queue, plan)
        elif plan.market == market and default is None:
            default = plan
    for queue, plan in queue_only.items():
        by_queue.setdefault(queue, plan)
    return by_queue, default


def applicable_plans(
    plans: Sequence[PlanRules], market: str
) -> tuple[list[PlanRules], list[str] | None]:
    """The plans that sample some of ``market``'s decisions, and the queues they cover
    (None when a market plan covers every queue)."""
    by_queue, default = plans_for_market(plans, market)
    applicable: dict[object, PlanRules] = {}
    for plan in [*by_queue.values(), *([default] if default else [])]:
        applicable.setdefault(plan.plan_id, plan)
    return list(applicable.values()), None if default is not None else sorted(by_queue)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One decision offered to a plan."""

    decision_id: int
    sample_key: str
    moderator_id: str
    action: str
    policy_labels: Sequence[str] = ()
    already_audited: bool = False


class Selection(NamedTuple):
    """A decision chosen for a new audit."""

    decision_id: int
    moderator_id: str
    reason: SampleReason
    priority: float


@dataclass(slots=True)
class PlanSample:
    """A plan's sample of one day: the new audits and how they came about."""

    selected: list[Selection]
    considered: int
    already_audited: int
    dropped_by_cap: int

    def count_by_reason(self) -> dict[str, int]:
        counts = Counter(selection.reason for selection in self.selected)
        return {reason: counts.get(reason, 0) for reason in REASONS}


# A decision held by the sampler: (s, u, decision id, moderator, labels, priority, reason).
# Ordered by s = u / p, then u (decisions with p = 0 all have s = inf), then id.
# (A decision waiting in a reserve carries the reason it would be chosen for first.)
_Held = tuple[float, float, int, str, Sequence[str], float, SampleReason]
_S: Final = 0
_U: Final = 1
_ID: Final = 2
_MODERATOR: Final = 3
_LABELS: Final = 4
_PRIORITY: Final = 5
_REASON: Final = 6
# Max-heap entries (negated keys) keeping the smallest held decisions.
_Entry = tuple[float, float, int, _Held]


class PlanSampler:
    """Streams one plan's decisions (``add``) and selects its sample (``finish``).

    Memory grows with the included decisions, not with the day: of the others, only the few
    that may fill a minimum or a quota are kept (bounded heaps per moderator and label).
    """

    def __init__(
        self,
        rules: PlanRules,
        *,
        draw: SampleDraw,
        standings: Mapping[str, ModeratorStanding] | None = None,
    ) -> None:
        self.rules = rules
        self._hasher = draw.hasher
        self._standings = standings or {}
        self._moderator_multipliers: dict[str, float] = {}
        self._rate = rules.rate
        self._label_boosts = dict(rules.label_boosts)
        self._action_boosts = dict(rules.action_boosts)
        self._minimum = rules.min_per_moderator
        self._quotas = {label: quota for label, quota in rules.label_quotas.items() if quota > 0}
        self._keeps_reserve = self._minimum > 0 or bool(self._quotas)
        self.considered = 0
        self._included: list[_Held] = []
        self._included_by_moderator: Counter[str] = Counter()
        self._included_by_label: Counter[str] = Counter()
        self._existing = 0
        self._existing_by_moderator: Counter[str] = Counter()
        self._existing_by_label: Counter[str] = Counter()
        self._reserve_by_moderator: dict[str, list[_Entry]] = {}
        self._reserve_by_label: dict[str, list[_Entry]] = {}

    def _moderator_multiplier(self, moderator_id: str) -> float:
        multiplier = moderator_multiplier(self.rules, self._standings.get(moderator_id))
        self._moderator_multipliers[moderator_id] = multiplier
        return multiplier

    def add(
        self,
        decision_id: int,
        sample_key: str,
        moderator_id: str,
        action: str,
        policy_labels: Sequence[str],
        already_audited: bool = False,
    ) -> None:
        """Offer one decision (the hot path: called once per decision of the day)."""
        self.considered += 1
        quotas = self._quotas
        if already_audited:
            self._existing += 1
            self._existing_by_moderator[moderator_id] += 1
            if quotas:
                for label in policy_labels:
                    if label in quotas:
                        self._existing_by_label[label] += 1
            return
        # SampleDraw.draw, inlined: this runs a million times a day per market.
        hasher = self._hasher.copy()
        hasher.update(sample_key.encode())
        value = int.from_bytes(hasher.digest(), "big")
        u = (value >> 75) * _TWO_TO_MINUS_53
        multiplier = self._moderator_multipliers.get(moderator_id)
        if multiplier is None:
            multiplier = self._moderator_multiplier(moderator_id)
        label_boosts = self._label_boosts
        if label_boosts and policy_labels:
            # The largest boost among the labels (boosts are >= 0; a label without one is 1).
            largest = 0.0
            for label in policy_labels:
                boost = label_boosts.get(label, 1.0)
                if boost > largest:
                    largest = boost
            multiplier *= largest
        if self._action_boosts:
            multiplier *= self._action_boosts.get(action, 1.0)
        p = self._rate * multiplier
        if u < p:
            # Then p > 0; p above 1 changes nothing (u < 1), so it is not clamped here.
            priority = ((value & _LOW_64) >> 11) * _TWO_TO_MINUS_53
            reason: SampleReason = "base" if u < self._rate else "boost"
            self._included.append(
                (u / min(p, 1.0), u, decision_id, moderator_id, policy_labels, priority, reason)
            )
            self._included_by_moderator[moderator_id] += 1
            if quotas:
                for label in policy_labels:
                    if label in quotas:
                        self._included_by_label[label] += 1
            return
        if not self._keeps_reserve:
            return
        s = u / p if p > 0.0 else math.inf
        held: _Held | None = None
        minimum = self._minimum
        if minimum:
            heap = self._reserve_by_moderator.get(moderator_id)
            if heap is None:
                heap = self._reserve_by_moderator[moderator_id] = []
            # Cheap test first: most decisions cannot enter a full heap.
            if len(heap) < minimum or -s >= heap[0][0]:
                priority = ((value & _LOW_64) >> 11) * _TWO_TO_MINUS_53
                candidate: _Held = (
                    s,
                    u,
                    decision_id,
                    moderator_id,
                    policy_labels,
                    priority,
                    "minimum",
                )
                _keep_smallest(heap, candidate, minimum)
                held = candidate
        if quotas:
            for label in policy_labels:
                quota = quotas.get(label)
                if quota:
                    labelled: _Held = (
                        held
                        if held is not None
                        else (
                            s, u, decision_id, moderator_id, policy_labels,
                            ((value & _LOW_64) >> 11) * _TWO_TO_MINUS_53, "quota",
                        )
                    )  # fmt: skip
                    held = labelled
                    heap = self._reserve_by_label.get(label)
                    if heap is None:
                        heap = self._reserve_by_label[label] = []
                    _keep_smallest(heap, labelled, quota)

    def finish(self) -> PlanSample:
        """The sample: inclusions, then minimums, then quotas, then the cap."""
        chosen: dict[int, _Held] = {held[_ID]: held for held in self._included}
        have_by_label = self._existing_by_label + self._included_by_label
        if self._minimum:
            for moderator_id, reserve in self._reserve_by_moderator.items():
                have = (
                    self._existing_by_moderator[moderator_id]
                    + self._included_by_moderator[moderator_id]
                )
                for held in _ascending(reserve)[: max(0, self._minimum - have)]:
                    chosen[held[_ID]] = (*held[:_REASON], "minimum")
                    for label in held[_LABELS]:
                        if label in self._quotas:
                            have_by_label[label] += 1
        for label, quota in sorted(self._quotas.items()):
            missing = quota - have_by_label[label]
            for held in _ascending(self._reserve_by_label.get(label, [])):
                if missing <= 0:
                    break
                if held[_ID] in chosen:
                    continue
                chosen[held[_ID]] = (*held[:_REASON], "quota")
                missing -= 1
                for other in held[_LABELS]:
                    if other in self._quotas:
                        have_by_label[other] += 1
        kept = list(chosen.values())
        dropped = 0
        cap = self.rules.daily_cap
        if cap is not None and self._existing + len(kept) > cap:
            room = max(0, cap - self._existing)
            kept = self._in_keep_order(kept)[:room]
            dropped = len(chosen) - len(kept)
        kept.sort(key=itemgetter(_ID))
        return PlanSample(
            selected=[
                Selection(held[_ID], held[_MODERATOR], held[_REASON], held[_PRIORITY])
                for held in kept
            ],
            considered=self.considered,
            already_audited=self._existing,
            dropped_by_cap=dropped,
        )

    def _in_keep_order(self, chosen: list[_Held]) -> list[_Held]:
        """Minimums and quotas first, round by round; then the rest by ascending ``s``."""
        chosen = sorted(chosen, key=itemgetter(_S, _U, _ID))
        rounds: dict[int, int] = {}
        if self._minimum:
            taken: Counter[str] = Counter(self._existing_by_moderator)
            for held in chosen:
                round_ = taken[held[_MODERATOR]]
                if round_ < self._minimum:
                    rounds[held[_ID]] = round_
                    taken[held[_MODERATOR]] = round_ + 1
        for label, quota in self._quotas.items():
            round_ = self._existing_by_label[label]
            for held in chosen:
                if round_ >= quota:
                    break
                if label in held[_LABELS]:
                    rounds[held[_ID]] = min(rounds.get(held[_ID], round_), round_)
                    round_ += 1
        required = sorted(
            (held for held in chosen if held[_ID] in rounds),
            key=lambda held: rounds[held[_ID]],
        )  # stable: within a round, still by ascending s
        return required + [held for held in chosen if held[_ID] not in rounds]


def _keep_smallest(heap: list[_Entry], held: _Held, size: int) -> None:
    """Keep the ``size`` smallest held decisions, as a max-heap of negated keys."""
    entry = (-held[_S], -held[_U], -held[_ID], held)
    if len(heap) < size:
        heapq.heappush(heap, entry)
    elif entry > heap[0]:
        heapq.heapreplace(heap, entry)


def _ascending(heap: list[_Entry]) -> list[_Held]:
    return [entry[3] for entry in sorted(heap, reverse=True)]


class DaySampler:
    """Routes each decision of a market day to its plan's sampler."""

    def __init__(
        self,
        plans: Sequence[PlanRules],
        *,
        market: str,
        seed: str,
        standings: Mapping[object, Mapping[str, ModeratorStanding]] | None = None,
    ) -> None:
        draw = SampleDraw(seed)
        by_queue, default = plans_for_market(plans, market)
        standings = standings or {}
        self.samplers: dict[object, PlanSampler] = {}
        for plan in [*by_queue.values(), *([default] if default else [])]:
            if plan.plan_id not in self.samplers:
                self.samplers[plan.plan_id] = PlanSampler(
                    plan, draw=draw, standings=standings.get(plan.plan_id)
                )
        self._by_queue = {queue: self.samplers[plan.plan_id] for queue, plan in by_queue.items()}
        self._default = self.samplers[default.plan_id] if default else None

    def sampler_for(self, queue: str) -> PlanSampler | None:
        """The sampler of the plan that covers ``queue`` (None: no plan, not sampled)."""
        return self._by_queue.get(queue, self._default)

    def finish(self) -> dict[object, PlanSample]:
        return {plan_id: sampler.finish() for plan_id, sampler in self.samplers.items()}


def select_sample(
    rules: PlanRules,
    candidates: Iterable[Candidate],
    *,
    seed: str,
    standings: Mapping[str, ModeratorStanding] | None = None,
) -> PlanSample:
    """One plan's sample of ``candidates`` (see the module docstring for the rules)."""
    sampler = PlanSampler(rules, draw=SampleDraw(seed), standings=standings)
    for candidate in candidates:
        sampler.add(
            candidate.decision_id,
            candidate.sample_key,
            candidate.moderator_id,
            candidate.action,
            candidate.policy_labels,
            candidate.already_audited,
        )
    return sampler.finish()


__all__ = [
    "REASONS",
    "Candidate",
    "DaySampler",
    "ModeratorStanding",
    "PlanRules",
    "PlanSample",
    "PlanSampler",
    "SampleDraw",
    "SampleReason",
    "Selection",
    "applicable_plans",
    "due_sampling_day",
    "moderator_multiplier",
    "plans_for_market",
    "sampling_seed",
    "select_sample",
]
