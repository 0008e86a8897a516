"""The sampling algorithm (shared/sampling.py), tested directly: no database, no clock."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import replace

import pytest

from shared.sampling.selection import (
    Candidate,
    DaySampler,
    ModeratorStanding,
    PlanRules,
    SampleDraw,
    applicable_plans,
    moderator_multiplier,
    plans_for_market,
    sampling_seed,
    select_sample,
)

pytestmark = pytest.mark.no_db

SEED = "test-seed:DE:2026-11-24"


def decisions(
    count: int,
    *,
    moderators: int = 100,
    start: int = 0,
    labels: tuple[str, ...] = ("spam",),
    action: str = "remove",
) -> list[Candidate]:
    """``count`` decisions spread round-robin over ``moderators`` moderators."""
    return [
        Candidate(
            decision_id=start + n,
            sample_key=f"source-1/evt-{start + n}",
            moderator_id=f"mod-{(start + n) % moderators}",
            action=action,
            policy_labels=labels,
        )
        for n in range(count)
    ]


def binomial_bounds(n: int, p: float, *, sigmas: float = 4.0) -> tuple[float, float]:
    mean = n * p
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return mean - spread, mean + spread


def test_draws_are_uniform_independent_and_reproducible() -> None:
    draw = SampleDraw(SEED)
    values = [draw.draw(f"source-1/evt-{n}") for n in range(100_000)]
    assert all(0.0 <= u < 1.0 and 0.0 <= priority < 1.0 for u, priority in values)
    # Ten equal buckets: each is Binomial(100,000, 0.1); 4 sigma is ±380.
    low, high = binomial_bounds(100_000, 0.1)
    for bucket_count in Counter(int(u * 10) for u, _ in values).values():
        assert low <= bucket_count <= high
    # u and priority come from separate halves of the hash: no correlation (|r| < 4/sqrt(n)).
    mean_u = sum(u for u, _ in values) / len(values)
    mean_p = sum(p for _, p in values) / len(values)
    covariance = sum((u - mean_u) * (p - mean_p) for u, p in values) / len(values)
    assert abs(covariance / (1 / 12)) < 4 / math.sqrt(len(values))
    # The same key gives the same draw from a new instance; another seed gives other draws.
    assert SampleDraw(SEED).draw("source-1/evt-7") == values[7]
    assert SampleDraw("other-seed").draw("source-1/evt-7") != values[7]


def test_seed_names_market_and_day() -> None:
    assert sampling_seed("plumbline", market="DE", day="2026-11-24") == "plumbline:DE:2026-11-24"


@pytest.mark.parametrize("seed", [f"seed-{n}" for n in range(5)])
def test_rate_is_respected_statistically(seed: str) -> None:
    # 10,000 decisions at rate 0.1: the sample size is Binomial(10,000, 0.1), sd = 30. Four
    # standard deviations (880..1120) fail a correct implementation with probability 6e-5
    # per seed; a rate off by a fifth (0.08 or 0.12: mean 800 or 1200, sd 27 or 32) passes
    # with probability below 0.2 % per seed, and five seeds must all pass.
    rules = PlanRules(plan_id="p", rate=0.1)
    sample = select_sample(rules, decisions(10_000), seed=seed)
    low, high = binomial_bounds(10_000, 0.1)
    assert low <= len(sample.selected) <= high
    assert {selection.reason for selection in sample.selected} == {"base"}
    assert sample.considered == 10_000
    assert sample.dropped_by_cap == 0


def test_inclusion_is_exactly_u_below_rate_times_boosts() -> None:
    rules = PlanRules(
        plan_id="p",
        rate=0.1,
        new_moderator_days=30,
        new_moderator_multiplier=2.0,
        low_accuracy_threshold=0.9,
        low_accuracy_multiplier=3.0,
        label_boosts={"hate_speech": 2.0, "violent_graphic": 4.0},
        action_boosts={"approve": 1.5},
    )
    standings = {
        "mod-0": ModeratorStanding(days_active=3, recent_accuracy=0.95),  # new: x2
        "mod-1": ModeratorStanding(days_active=400, recent_accuracy=0.5),  # low accuracy: x3
        "mod-2": ModeratorStanding(days_active=400, recent_accuracy=0.99),  # none
        "mod-3": ModeratorStanding(days_active=0, recent_accuracy=0.1),  # both: x6
    }
    label_sets: list[tuple[str, ...]] = [
        (),
        ("spam",),
        ("hate_speech",),
        ("hate_speech", "violent_graphic"),
    ]
    candidates = [
        Candidate(
            decision_id=n,
            sample_key=f"s/evt-{n}",
            moderator_id=f"mod-{n % 4}",
            action="approve" if n % 3 == 0 else "remove",
            policy_labels=label_sets[(n // 4) % 4],
        )
        for n in range(20_000)
    ]
    sample = select_sample(rules, candidates, seed=SEED, standings=standings)
    selected = {selection.decision_id: selection for selection in sample.selected}
    moderator_boost = {"mod-0": 2.0, "mod-1": 3.0, "mod-2": 1.0, "mod-3": 6.0}
    draw = SampleDraw(SEED)
    boosted = 0
    for candidate in candidates:
        u, priority = draw.draw(candidate.sample_key)
        label_boost = max(
            (rules.label_boosts.get(label, 1.0) for label in candidate.policy_labels), default=1.0
        )  # the largest label boost, not the product (x4, never x8)
        action_boost = 1.5 if candidate.action == "approve" else 1.0
        p = min(1.0, 0.1 * moderator_boost[candidate.moderator_id] * label_boost * action_boost)
        if u < p:
            chosen = selected[candidate.decision_id]
            assert chosen.reason == ("base" if u < 0.1 else "boost")
            assert chosen.priority == priority
            boosted += chosen.reason == "boost"
        else:
            assert candidate.decision_id not in selected
    assert boosted > 1000
    # mod-3 with violent_graphic on approvals: 0.1 x 6 x 4 x 1.5 = 3.6, capped at 1: all in.
    certain = [
        c for c in candidates if c.moderator_id == "mod-3" and "violent_graphic" in c.policy_labels
    ]
    assert certain
    assert all(c.decision_id in selected for c in certain if c.action == "approve")


def test_moderator_multiplier_rules() -> None:
    rules = PlanRules(
        plan_id="p",
        rate=0.1,
        new_moderator_days=30,
        new_moderator_multiplier=2.0,
        low_accuracy_threshold=0.9,
        low_accuracy_multiplier=3.0,
    )
    assert moderator_multiplier(rules, None) == 1.0
    assert moderator_multiplier(rules, ModeratorStanding(days_active=29)) == 2.0
    assert moderator_multiplier(rules, ModeratorStanding(days_active=30)) == 1.0
    assert moderator_multiplier(rules, ModeratorStanding(recent_accuracy=0.9)) == 1.0
    assert moderator_multiplier(rules, ModeratorStanding(recent_accuracy=0.89)) == 3.0
    no_threshold = PlanRules(plan_id="p", rate=0.1, low_accuracy_multiplier=3.0)
    assert moderator_multiplier(no_threshold, ModeratorStanding(recent_accuracy=0.0)) == 1.0


def test_min_per_moderator_is_guaranteed() -> None:
    # Moderators with 1 to 30 decisions each at a rate that would leave most with none.
    candidates: list[Candidate] = []
    for moderator in range(30):
        for n in range(moderator + 1):
            candidates.append(
                Candidate(
                    decision_id=len(candidates),
                    sample_key=f"s/{moderator}-{n}",
                    moderator_id=f"mod-{moderator}",
                    action="remove",
                )
            )
    rules = PlanRules(plan_id="p", rate=0.02, min_per_moderator=3)
    sample = select_sample(rules, candidates, seed=SEED)
    per_moderator = Counter(selection.moderator_id for selection in sample.selected)
    for moderator in range(30):
        assert per_moderator[f"mod-{moderator}"] >= min(3, moderator + 1)
    # Minimum picks top up only what the rate left missing, and prefer the smallest u / p.
    draw = SampleDraw(SEED)
    reasons = Counter(selection.reason for selection in sample.selected)
    assert reasons["minimum"] > 0
    for moderator in range(30):
        mine = [s for s in sample.selected if s.moderator_id == f"mod-{moderator}"]
        if any(s.reason == "minimum" for s in mine):
            assert len(mine) == min(3, moderator + 1)
            chosen_keys = {candidates[s.decision_id].sample_key for s in mine}
            others = [
                draw.draw(c.sample_key)[0]
                for c in candidates
                if c.moderator_id == f"mod-{moderator}" and c.sample_key not in chosen_keys
            ]
            picked = [
                draw.draw(candidates[s.decision_id].sample_key)[0]
                for s in mine
                if s.reason == "minimum"
            ]
            assert not others or max(picked) < min(others)


def test_label_quotas_are_guaranteed() -> None:
    candidates = decisions(5_000, labels=("spam",))
    candidates += decisions(40, start=5_000, labels=("csam", "spam"))
    candidates += decisions(3, start=6_000, labels=("terrorism",))
    rules = PlanRules(plan_id="p", rate=0.01, label_quotas={"csam": 15, "terrorism": 10, "spam": 0})
    sample = select_sample(rules, candidates, seed=SEED)
    by_id = {c.decision_id: c for c in candidates}
    labels = Counter(label for s in sample.selected for label in by_id[s.decision_id].policy_labels)
    assert labels["csam"] == 15  # topped up to the quota, not beyond
    assert labels["terrorism"] == 3  # fewer decisions than the quota: all of them
    assert {s.reason for s in sample.selected if "csam" in by_id[s.decision_id].policy_labels} <= {
        "base",
        "quota",
    }


def test_daily_cap_keeps_minimums_first_then_smallest_u_over_p() -> None:
    candidates = decisions(5_000, moderators=50)
    rules = PlanRules(plan_id="p", rate=0.2, min_per_moderator=2, daily_cap=200)
    uncapped = select_sample(
        PlanRules(plan_id="p", rate=0.2, min_per_moderator=2), candidates, seed=SEED
    )
    sample = select_sample(rules, candidates, seed=SEED)
    assert len(sample.selected) == 200
    assert sample.dropped_by_cap == len(uncapped.selected) - 200
    per_moderator = Counter(s.moderator_id for s in sample.selected)
    assert len(per_moderator) == 50
    assert min(per_moderator.values()) >= 2
    # Beyond the minimums, the kept inclusions are those with the smallest u / p (= u here).
    draw = SampleDraw(SEED)
    kept = {s.decision_id for s in sample.selected}
    by_id = {c.decision_id: c for c in candidates}
    u_of = {s.decision_id: draw.draw(by_id[s.decision_id].sample_key)[0] for s in uncapped.selected}
    minimum_set: set[int] = set()
    for moderator in per_moderator:
        mine = sorted(
            (u_of[s.decision_id], s.decision_id)
            for s in uncapped.selected
            if s.moderator_id == moderator
        )
        minimum_set.update(decision_id for _, decision_id in mine[:2])
    assert minimum_set <= kept
    rest_kept = [u_of[d] for d in kept - minimum_set]
    rest_dropped = [u_of[d] for d in set(u_of) - kept]
    assert max(rest_kept) < min(rest_dropped)


def test_cap_below_the_minimums_spreads_over_moderators() -> None:
    candidates = decisions(2_000, moderators=50)
    rules = PlanRules(plan_id="p", rate=0.1, min_per_moderator=2, daily_cap=30)
    sample = select_sample(rules, candidates, seed=SEED)
    assert len(sample.selected) == 30
    # Every moderator's first audit comes before anyone's second.
    assert Counter(s.moderator_id for s in sample.selected).most_common(1)[0][1] == 1


def test_cap_keeps_quotas_and_existing_audits_count() -> None:
    candidates = decisions(3_000, moderators=10, labels=("spam",))
    candidates += decisions(30, start=10_000, moderators=10, labels=("csam",))
    rules = PlanRules(plan_id="p", rate=0.3, label_quotas={"csam": 20}, daily_cap=50)
    sample = select_sample(rules, candidates, seed=SEED)
    by_id = {c.decision_id: c for c in candidates}
    assert len(sample.selected) == 50
    assert sum("csam" in by_id[s.decision_id].policy_labels for s in sample.selected) >= 20

    # 45 audits exist already: the cap leaves room for 5 more, however many are drawn.
    audited = {s.decision_id for s in sample.selected[:45]}
    rerun = [replace(c, already_audited=c.decision_id in audited) for c in candidates]
    again = select_sample(rules, rerun, seed=SEED)
    assert again.already_audited == 45
    assert len(again.selected) == 5
    assert not audited & {s.decision_id for s in again.selected}


def test_same_input_gives_same_sample_in_any_order() -> None:
    candidates = decisions(5_000, moderators=40)
    rules = PlanRules(
        plan_id="p", rate=0.05, min_per_moderator=3, label_quotas={"spam": 10}, daily_cap=400
    )
    first = select_sample(rules, candidates, seed=SEED)
    shuffled = list(candidates)
    random.Random(1).shuffle(shuffled)
    second = select_sample(rules, shuffled, seed=SEED)
    assert first.selected == second.selected
    other_seed = select_sample(rules, candidates, seed="another")
    assert {s.decision_id for s in other_seed.selected} != {s.decision_id for s in first.selected}


def test_more_decisions_keep_earlier_inclusions() -> None:
    rules = PlanRules(plan_id="p", rate=0.1)
    early = select_sample(rules, decisions(5_000), seed=SEED)
    later = select_sample(rules, decisions(10_000), seed=SEED)
    assert {s.decision_id for s in early.selected} <= {s.decision_id for s in later.selected}
    # A higher rate adds to the sample and removes nothing.
    higher = select_sample(PlanRules(plan_id="p", rate=0.2), decisions(10_000), seed=SEED)
    assert {s.decision_id for s in later.selected} <= {s.decision_id for s in higher.selected}


def test_rerun_with_audits_in_place_adds_only_what_is_missing() -> None:
    rules = PlanRules(plan_id="p", rate=0.02, min_per_moderator=2)
    first_batch = decisions(1_000, moderators=20)
    first = select_sample(rules, first_batch, seed=SEED)
    audited = {s.decision_id for s in first.selected}
    # The same day again: nothing new.
    rerun = [replace(c, already_audited=c.decision_id in audited) for c in first_batch]
    assert select_sample(rules, rerun, seed=SEED).selected == []
    # More decisions arrive late: minimums are met already, so only rate inclusions are new.
    more = rerun + decisions(1_000, moderators=20, start=1_000)
    second = select_sample(rules, more, seed=SEED)
    assert {s.reason for s in second.selected} <= {"base"}
    assert all(s.decision_id >= 1_000 for s in second.selected)
    fresh = select_sample(rules, decisions(2_000, moderators=20), seed=SEED)
    fresh_base = {s.decision_id for s in fresh.selected if s.reason == "base"}
    assert {s.decision_id for s in second.selected} == {d for d in fresh_base if d >= 1_000}


def test_zero_rate_selects_only_minimums() -> None:
    sample = select_sample(
        PlanRules(plan_id="p", rate=0.0, min_per_moderator=1),
        decisions(500, moderators=5),
        seed=SEED,
    )
    assert sorted(Counter(s.moderator_id for s in sample.selected).values()) == [1] * 5
    assert {s.reason for s in sample.selected} == {"minimum"}


def test_queue_plan_wins_over_market_plan() -> None:
    market_plan = PlanRules(plan_id="market", rate=0.1, market="DE")
    queue_plan = PlanRules(plan_id="queue", rate=0.5, queue="de-video")
    exact = PlanRules(plan_id="exact", rate=0.5, queue="de-text", market="DE")
    loose = PlanRules(plan_id="loose", rate=0.5, queue="de-text")
    elsewhere = PlanRules(plan_id="elsewhere", rate=0.5, queue="de-image", market="AT")
    by_queue, default = plans_for_market([market_plan, queue_plan, loose, exact, elsewhere], "DE")
    assert default is market_plan
    assert by_queue["de-video"] is queue_plan
    assert by_queue["de-text"] is exact
    assert "de-image" not in by_queue

    assert applicable_plans([queue_plan, elsewhere], "DE") == ([queue_plan], ["de-video"])
    assert applicable_plans([market_plan, queue_plan], "DE") == ([queue_plan, market_plan], None)
    day = DaySampler([queue_plan, elsewhere], market="DE", seed=SEED)
    video = day.sampler_for("de-video")
    assert video is not None
    assert video.rules is queue_plan
    assert day.sampler_for("de-image") is None
