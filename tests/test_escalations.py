"""Escalation rules, their evaluation from the rollups, and the RCA workflow.

Decisions arrive over the signed webhook and verdicts are claimed and given over the API
(``tests.support.analytics.seed_judged``), so the rollups an evaluation reads are the real
ones. Evaluations run through ``shared.escalations.runner.evaluate_rule`` with an injected
``now`` (the windows are the full market-local days before it), and once through the API,
the outbox and the real report worker.

Every number asserted is worked by hand in the test's comments: Wilson 95 % with z =
1.959964 (z^2 = 3.841459), the pooled two-sided two-proportion z-test, Benjamini-Hochberg.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.worker import WorkerSettings
from shared.core.auth import Principal, Role
from shared.core.settings import Settings
from shared.escalations.evaluation import (
    Criteria,
    Measurement,
    SliceInput,
    judge_slices,
    proportion,
)
from shared.escalations.lifecycle import announce_overdue_actions, update_escalation
from shared.escalations.runner import evaluate_due_rules, evaluate_rule
from shared.models import (
    AuditLogEntry,
    Escalation,
    EscalationBreach,
    EscalationRule,
    Event,
)
from shared.schemas.escalations import EscalationUpdate
from tests.conftest import SignedSender, auth, make_key, relay_all, run_worker_burst
from tests.support.analytics import Judged, incorrect, seed_judged
from tests.support.db import count_rows
from tests.support.problems import assert_problem

Sessionmaker = async_sessionmaker[AsyncSession]

RULES = "/v1/escalation-rules"
ESCALATIONS = "/v1/escalations"
LEAD = Principal(key_id="lead-key", role=Role.MANAGER, reviewer_id="lead-1", markets=None)


def at(day: str, hour: int = 12) -> datetime:
    """Noon UTC (afternoon in Berlin and Paris) of a November day of 2026."""
    return datetime.fromisoformat(f"2026-11-{day}T{hour:02d}:00:00+00:00")


def cases(
    market: str, day: str, *, correct: int, wrong: int, queue: str | None = None
) -> list[Judged]:
    """``correct`` + ``wrong`` judged decisions of one market, queue and day (of November
    2026, or a whole ISO date)."""
    fields = {
        "market": market,
        "language": market.lower(),
        "queue": queue or f"{market.lower()}-video",
        "moderator_id": f"mod-{market.lower()}",
        "decided_at": f"{day if '-' in day else '2026-11-' + day}T10:00:00Z",
    }
    return [
        *[Judged(fields) for _ in range(correct)],
        *[Judged(fields, incorrect("approve")) for _ in range(wrong)],
    ]


async def create_rule(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    rule = {
        "name": f"rule-{uuid.uuid4().hex[:8]}",
        "metric": "accuracy",
        "market": "DE",
        "window_days": 7,
        "min_audits": 10,
        "schedule": "hourly",
        **body,
    }
    response = await client.post(RULES, json=rule, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def evaluate(sessionmaker: Sessionmaker, rule_id: str, now: datetime) -> dict[str, Any]:
    """One evaluation of the rule at ``now``, in its own transaction."""
    async with sessionmaker() as session, session.begin():
        rule = await session.get(EscalationRule, uuid.UUID(rule_id))
        assert rule is not None
        return await evaluate_rule(session, rule=rule, now=now)


async def escalations_of(sessionmaker: Sessionmaker, rule_id: str) -> list[Escalation]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(Escalation)
                .where(Escalation.rule_id == uuid.UUID(rule_id))
                .order_by(Escalation.slice_key)
            )
        )


async def opened_events(sessionmaker: Sessionmaker) -> list[Event]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(Event).where(Event.type == "escalation.opened").order_by(Event.occurred_at)
            )
        )


# ------------------------------------------------------------------- pure statistics


def test_bh_adjustment_turns_a_raw_p_below_alpha_into_no_breach() -> None:
    """Three queues, baseline 10/10 correct each; window q1 6/10, q2 9/10, q3 10/10.

    q1: pooled (6 + 10) / 20 = 0.8, SE = sqrt(0.8 * 0.2 * (1/10 + 1/10)) = 0.178885,
        z = (0.6 - 1.0) / 0.178885 = -2.236068, p = erfc(2.236068 / sqrt 2) = 0.025347.
    q2: pooled 19/20 = 0.95, SE = sqrt(0.95 * 0.05 * 0.2) = 0.097468, z = -1.025978,
        p = 0.304902.
    q3: no variation (both 1): p = 1.
    BH over m = 3, p sorted 0.025347, 0.304902, 1: q1 = min(0.025347 * 3, 0.304902 * 3/2,
    1) = 0.076042, q2 = 0.457353, q3 = 1. q1's raw p < 0.05 but q1 = 0.076 >= 0.05: no breach,
    although its relative drop (1 - 0.6) / 1 = 0.4 passes relative_drop 0.3. Alone (an
    ungrouped rule) the same slice breaches on its raw p.
    """
    criteria = Criteria(metric="accuracy", min_audits=10, alpha=0.05, relative_drop=0.3)

    def window(correct: int) -> Measurement:
        return proportion(correct, 10, audited=10)

    baseline = window(10)
    grouped = judge_slices(
        [
            SliceInput("q1", window(6), baseline),
            SliceInput("q2", window(9), baseline),
            SliceInput("q3", window(10), baseline),
        ],
        criteria,
    )
    q1 = grouped[0].evidence
    assert q1["p_value"] == pytest.approx(0.025347, abs=1e-6)
    assert q1["q_value"] == pytest.approx(0.076042, abs=1e-6)
    assert q1["relative_change"] == pytest.approx(0.4)
    assert grouped[1].evidence["q_value"] == pytest.approx(0.457353, abs=1e-6)
    assert [judgement.breach for judgement in grouped] == [False, False, False]
    (alone,) = judge_slices([SliceInput("q1", window(6), baseline)], criteria)
    assert alone.breach
    assert alone.evidence["q_value"] == alone.evidence["p_value"]
    assert alone.evidence["criteria_met"] == ["relative_drop"]


def test_rates_breach_above_their_threshold() -> None:
    """Dispute rate 8 disputed of 10 judged incorrect (40 audited): Wilson 8/10 =
    (0.490161, 0.943318) (mirror of 2/10); its whole interval lies above 0.45: breach;
    above 0.5 it does not."""
    rate = Measurement(40, 8, 10, 0.8, 0.490161, 0.943318)
    over = Criteria(metric="dispute_rate", min_audits=30, alpha=0.05, threshold=0.45)
    (breach,) = judge_slices([SliceInput("DE", rate)], over)
    assert breach.breach
    assert breach.evidence["audited"] == 40
    (calm,) = judge_slices(
        [SliceInput("DE", rate)],
        Criteria(metric="dispute_rate", min_audits=30, alpha=0.05, threshold=0.5),
    )
    assert not calm.breach


# ------------------------------------------------------------------- evaluation


@pytest.fixture
async def de_ten(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    """DE: 4 of 10 correct on Nov 24 (window), 10 of 10 on Nov 17 (baseline)."""
    await seed_judged(
        client,
        sender,
        sessionmaker,
        [*cases("DE", "24", correct=4, wrong=6), *cases("DE", "17", correct=10, wrong=0)],
    )


async def test_threshold_breach_and_no_breach(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, de_ten: None
) -> None:
    """Window at Nov 28 (Berlin): Nov 21 to 27, holding DE's 4/10.

    Wilson 4/10: p = 0.4, scale = 1 + 3.841459 / 10 = 1.384146; centre = (0.4 + 3.841459 /
    20) / 1.384146 = 0.427754; half = 1.959964 sqrt(0.4 * 0.6 / 10 + 3.841459 / 400) /
    1.384146 = 0.259573; interval (0.168180, 0.687326).
    - threshold 0.7: the whole interval lies below it: breach.
    - threshold 0.6: 0.687 > 0.6: no breach.
    - threshold 0.7 with min_audits 11: only 10 audits: not judged.
    """
    lead = await make_key(sessionmaker, "manager")
    now = at("28")
    breaching = await create_rule(client, lead, threshold=0.7)
    calm = await create_rule(client, lead, threshold=0.6)
    small = await create_rule(client, lead, threshold=0.7, min_audits=11)

    summary = await evaluate(sessionmaker, breaching["id"], now)
    assert summary["opened"] == 1
    (escalation,) = await escalations_of(sessionmaker, breaching["id"])
    evidence = escalation.evidence or {}
    assert {name: evidence[name] for name in ("metric", "audited", "baseline", "p_value")} == {
        "metric": "accuracy",
        "audited": 10,
        "baseline": None,
        "p_value": None,
    }
    assert evidence["observed"] == pytest.approx(0.4)
    assert evidence["ci_low"] == pytest.approx(0.168180, abs=1e-6)
    assert evidence["ci_high"] == pytest.approx(0.687326, abs=1e-6)
    assert (evidence["window_from"], evidence["window_to"]) == ("2026-11-21", "2026-11-27")
    assert evidence["criteria_met"] == ["threshold"]
    assert (escalation.slice, escalation.market, escalation.status) == (
        {"market": "DE"},
        "DE",
        "open",
    )

    assert (await evaluate(sessionmaker, calm["id"], now))["judged"] == 1
    assert await escalations_of(sessionmaker, calm["id"]) == []
    assert (await evaluate(sessionmaker, small["id"], now))["judged"] == 0
    assert await escalations_of(sessionmaker, small["id"]) == []

    (event,) = await opened_events(sessionmaker)
    assert event.market == "DE"
    assert event.data["id"] == str(escalation.id)
    assert event.data["value"] == pytest.approx(0.4)
    assert (event.data["threshold"], event.data["audits"]) == (0.7, 10)
    assert event.data["rule_id"] == breaching["id"]

    listed = await client.get(ESCALATIONS, params={"rule_id": breaching["id"]}, headers=auth(lead))
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert set(item) >= {
        "id", "rule_id", "slice", "status", "evidence", "opened_at", "owner_id", "root_cause",
        "actions",
    }  # fmt: skip
    assert set(item["evidence"]) >= {
        "metric", "observed", "ci_low", "ci_high", "baseline", "p_value", "audited",
    }  # fmt: skip
    assert (item["slice"], item["actions"], item["owner_id"]) == ({"market": "DE"}, [], None)


async def test_relative_drop_breach_with_hand_computed_p_value(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, de_ten: None
) -> None:
    """Window Nov 21-27: 4/10; baseline (7 days before) Nov 14-20: 10/10.

    Pooled p = 14/20 = 0.7; SE = sqrt(0.7 * 0.3 * (1/10 + 1/10)) = sqrt(0.042) = 0.204939;
    z = (0.4 - 1.0) / 0.204939 = -2.927700; p = erfc(2.927700 / sqrt 2) = 0.003415.
    Relative drop (1.0 - 0.4) / 1.0 = 0.6: with relative_drop 0.5 and alpha 0.05 a breach;
    with relative_drop 0.7 the drop is too small; with alpha 0.001 p is too large.
    """
    lead = await make_key(sessionmaker, "manager")
    now = at("28")
    dropped = await create_rule(client, lead, relative_drop=0.5, baseline_days=7)
    too_small = await create_rule(client, lead, relative_drop=0.7, baseline_days=7)
    too_strict = await create_rule(client, lead, relative_drop=0.5, baseline_days=7, alpha=0.001)

    assert (await evaluate(sessionmaker, dropped["id"], now))["opened"] == 1
    (escalation,) = await escalations_of(sessionmaker, dropped["id"])
    evidence = escalation.evidence or {}
    assert evidence["baseline"] == pytest.approx(1.0)
    assert evidence["p_value"] == pytest.approx(0.003415, abs=1e-6)
    assert evidence["relative_change"] == pytest.approx(0.6)
    assert (evidence["baseline_from"], evidence["baseline_to"]) == ("2026-11-14", "2026-11-20")
    assert evidence["criteria_met"] == ["relative_drop"]

    for rule in (too_small, too_strict):
        assert (await evaluate(sessionmaker, rule["id"], now))["breaches"] == 0
        assert await escalations_of(sessionmaker, rule["id"]) == []


async def test_grouped_rule_adjusts_p_values_before_deciding(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    """The data of ``test_bh_adjustment_turns_a_raw_p_below_alpha_into_no_breach`` through
    the real paths: DE queues q1, q2, q3 with 10/10 each on Nov 17 (baseline) and 6/10,
    9/10, 10/10 on Nov 24 (window). Grouped by queue: q1's p 0.025347 adjusts to q 0.076042
    >= 0.05, no breach. The rule on q1 alone breaches on p = 0.025347."""
    await seed_judged(
        client,
        sender,
        sessionmaker,
        [
            *[
                c
                for q in ("q1", "q2", "q3")
                for c in cases("DE", "17", correct=10, wrong=0, queue=q)
            ],
            *cases("DE", "24", correct=6, wrong=4, queue="q1"),
            *cases("DE", "24", correct=9, wrong=1, queue="q2"),
            *cases("DE", "24", correct=10, wrong=0, queue="q3"),
        ],
    )
    lead = await make_key(sessionmaker, "manager")
    now = at("28")
    grouped = await create_rule(client, lead, group_by="queue", relative_drop=0.3, baseline_days=7)
    alone = await create_rule(client, lead, queue="q1", relative_drop=0.3, baseline_days=7)

    summary = await evaluate(sessionmaker, grouped["id"], now)
    assert (summary["judged"], summary["breaches"]) == (3, 0)
    summary = await evaluate(sessionmaker, alone["id"], now)
    assert (summary["judged"], summary["breaches"]) == (1, 1)
    (escalation,) = await escalations_of(sessionmaker, alone["id"])
    assert escalation.slice == {"market": "DE", "queue": "q1"}
    assert (escalation.evidence or {})["p_value"] == pytest.approx(0.025347, abs=1e-6)


async def test_population_accuracy_uses_the_post_stratified_interval(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    """One stratum (mod-de, Nov 24): N_h = 20 decisions, n_h = 10 audited, 4 correct.

    estimate = p_h = 0.4; SE = sqrt((20/20)^2 * 0.4 * 0.6 / 10 * (1 - 10/20)) = sqrt(0.012)
    = 0.109545; interval 0.4 -+ 1.959964 * 0.109545 = (0.185296, 0.614704) (the Wilson
    interval of the audits alone would reach 0.687). Threshold 0.7: breach; 0.6: none.
    """
    await seed_judged(
        client,
        sender,
        sessionmaker,
        [
            *cases("DE", "24", correct=4, wrong=6),
            *[Judged(case.fields, verdict=None) for case in cases("DE", "24", correct=10, wrong=0)],
        ],
    )
    lead = await make_key(sessionmaker, "manager")
    breaching = await create_rule(client, lead, metric="population_accuracy", threshold=0.7)
    calm = await create_rule(client, lead, metric="population_accuracy", threshold=0.6)
    assert (await evaluate(sessionmaker, breaching["id"], at("28")))["opened"] == 1
    (escalation,) = await escalations_of(sessionmaker, breaching["id"])
    evidence = escalation.evidence or {}
    assert evidence["metric"] == "population_accuracy"
    assert evidence["observed"] == pytest.approx(0.4)
    assert evidence["ci_low"] == pytest.approx(0.185296, abs=1e-6)
    assert evidence["ci_high"] == pytest.approx(0.614704, abs=1e-6)
    assert evidence["audited"] == 10
    summary = await evaluate(sessionmaker, calm["id"], at("28"))
    assert (summary["judged"], summary["breaches"]) == (1, 0)


async def test_dispute_and_overturn_rates_breach_above_their_thresholds(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    """DE, Nov 24: 10 audits, all judged incorrect; 8 disputed, of which 6 overturned.

    dispute rate = disputed / judged incorrect = 8/10: Wilson (0.490162, 0.943318), wholly
    above 0.45: breach. overturn rate = overturned / disputed = 6/8: Wilson (0.409275,
    0.928521): above 0.4, a breach; not wholly above 0.45, none. min_audits counts the 10
    audits (not the 8 disputes).
    """
    fields = cases("DE", "24", correct=1, wrong=0)[0].fields
    await seed_judged(
        client,
        sender,
        sessionmaker,
        [
            *[Judged(fields, incorrect("approve"), ruling="overturned") for _ in range(6)],
            *[Judged(fields, incorrect("approve"), ruling="upheld") for _ in range(2)],
            *[Judged(fields, incorrect("approve")) for _ in range(2)],
        ],
    )
    lead = await make_key(sessionmaker, "manager")
    disputes = await create_rule(client, lead, metric="dispute_rate", threshold=0.45)
    overturns = await create_rule(client, lead, metric="overturn_rate", threshold=0.4)
    calm = await create_rule(client, lead, metric="overturn_rate", threshold=0.45)
    assert (await evaluate(sessionmaker, disputes["id"], at("28")))["opened"] == 1
    (escalation,) = await escalations_of(sessionmaker, disputes["id"])
    evidence = escalation.evidence or {}
    assert (evidence["observed"], evidence["audited"], evidence["trials"]) == (0.8, 10, 10)
    assert evidence["ci_low"] == pytest.approx(0.490162, abs=1e-6)
    assert (await evaluate(sessionmaker, overturns["id"], at("28")))["opened"] == 1
    (escalation,) = await escalations_of(sessionmaker, overturns["id"])
    evidence = escalation.evidence or {}
    assert (evidence["observed"], evidence["audited"], evidence["trials"]) == (0.75, 10, 8)
    assert evidence["ci_low"] == pytest.approx(0.409275, abs=1e-6)
    summary = await evaluate(sessionmaker, calm["id"], at("28"))
    assert (summary["judged"], summary["breaches"]) == (1, 0)


async def test_two_concurrent_evaluations_open_one_escalation(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, de_ten: None
) -> None:
    """Two workers evaluate the same breaching rule at once: one escalation (the partial
    unique index), both breaches in its history, one escalation.opened. A third
    evaluation adds a third history row, still one escalation."""
    lead = await make_key(sessionmaker, "manager")
    rule = await create_rule(client, lead, threshold=0.7)
    now = at("28")
    first, second = await asyncio.gather(
        evaluate(sessionmaker, rule["id"], now), evaluate(sessionmaker, rule["id"], now)
    )
    assert sorted([first["opened"], second["opened"]]) == [0, 1]
    assert sorted([first["recorded"], second["recorded"]]) == [0, 1]
    (escalation,) = await escalations_of(sessionmaker, rule["id"])
    assert (
        await count_rows(
            sessionmaker, EscalationBreach, EscalationBreach.escalation_id == escalation.id
        )
        == 2
    )
    assert len(await opened_events(sessionmaker)) == 1

    await evaluate(sessionmaker, rule["id"], now + timedelta(hours=1))
    assert len(await escalations_of(sessionmaker, rule["id"])) == 1
    detail = await client.get(f"{ESCALATIONS}/{escalation.id}", headers=auth(lead))
    assert detail.status_code == 200, detail.text
    assert len(detail.json()["history"]) == 3
    assert len(await opened_events(sessionmaker)) == 1


async def _resolve(sessionmaker: Sessionmaker, escalation_id: uuid.UUID, now: datetime) -> None:
    for status in ("investigating", "actions_pending", "resolved"):
        async with sessionmaker() as session, session.begin():
            await update_escalation(
                session,
                escalation_id=escalation_id,
                data=EscalationUpdate(status=status),
                actor=LEAD,
                now=now,
            )


async def test_resolved_slices_recover_or_reopen_within_the_cooldown(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    """Grouped by market, threshold 0.7, 7-day window, cool-down 7 days.

    DE: 4/10 on Nov 10 (Wilson (0.168, 0.687): breach), 10/10 on Nov 20 (Wilson
    (0.722467, 1): fine). FR: 4/10 on Nov 10 and 4/10 again on Nov 18.
    - Nov 14 (window Nov 7-13): both breach, two escalations; resolved Nov 15.
    - Nov 16 (window Nov 9-15): only days after the resolution day count (Nov 16 on):
      nothing to judge yet, nothing changes.
    - Nov 20 (window Nov 13-19, after resolution Nov 16-19): FR's Nov 18 breaches 5 days
      after resolution: the same escalation re-opens (reopened_count 1). DE has no audits.
    - Nov 22 (window Nov 15-21; DE after resolution Nov 16-21): DE's 10/10 holds: recovered.
      FR is open again: its breach joins the history.
    """
    await seed_judged(
        client,
        sender,
        sessionmaker,
        [
            *cases("DE", "10", correct=4, wrong=6),
            *cases("DE", "20", correct=10, wrong=0),
            *cases("FR", "10", correct=4, wrong=6),
            *cases("FR", "18", correct=4, wrong=6),
        ],
    )
    lead = await make_key(sessionmaker, "manager")
    rule = await create_rule(client, lead, market=None, group_by="market", threshold=0.7)

    assert (await evaluate(sessionmaker, rule["id"], at("14")))["opened"] == 2
    de, fr = await escalations_of(sessionmaker, rule["id"])
    assert (de.slice, fr.slice) == ({"market": "DE"}, {"market": "FR"})
    for escalation in (de, fr):
        await _resolve(sessionmaker, escalation.id, at("15"))

    summary = await evaluate(sessionmaker, rule["id"], at("16"))
    assert summary["judged"] == 0

    summary = await evaluate(sessionmaker, rule["id"], at("20"))
    assert (summary["reopened"], summary["opened"]) == (1, 0)
    de, fr = await escalations_of(sessionmaker, rule["id"])
    assert (fr.status, fr.reopened_count, fr.resolved_at) == ("open", 1, None)
    assert (fr.evidence or {})["window_from"] == "2026-11-16"
    assert (de.status, de.recovered_at) == ("resolved", None)

    summary = await evaluate(sessionmaker, rule["id"], at("22"))
    assert (summary["recovered"], summary["recorded"], summary["opened"]) == (1, 1, 0)
    de, fr = await escalations_of(sessionmaker, rule["id"])
    assert de.recovered_at == at("22")
    assert len(await escalations_of(sessionmaker, rule["id"])) == 2
    assert (
        await count_rows(sessionmaker, EscalationBreach, EscalationBreach.escalation_id == fr.id)
        == 3
    )
    # Opened twice and re-opened once: three escalation.opened events.
    opened = sorted(event.data["slice"]["market"] for event in await opened_events(sessionmaker))
    assert opened == ["DE", "FR", "FR"]
    assert (
        await count_rows(
            sessionmaker, AuditLogEntry, AuditLogEntry.action == "escalation.recovered"
        )
        == 1
    )


async def test_evaluate_endpoint_runs_in_the_report_worker(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessionmaker,
    settings: Settings,
    queue: Any,
) -> None:
    """POST .../evaluate answers 202 with a job; the report worker evaluates the rule at the
    real clock (window: the 3 full Berlin days before today, holding yesterday's 4/10, whose
    interval (0.168, 0.687) lies below 0.7) and stores the summary on the job."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    await seed_judged(client, sender, sessionmaker, cases("DE", yesterday, correct=4, wrong=6))
    lead = await make_key(sessionmaker, "manager")
    rule = await create_rule(client, lead, threshold=0.7, window_days=3)
    accepted = await client.post(f"{RULES}/{rule['id']}/evaluate", headers=auth(lead))
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    await relay_all(sessionmaker, queue)
    await run_worker_burst(WorkerSettings, settings)
    job = (await client.get(f"/v1/jobs/{job_id}", headers=auth(lead))).json()
    assert job["status"] == "complete", job
    assert (job["result"]["judged"], job["result"]["opened"]) == (1, 1)
    (item,) = (await client.get(ESCALATIONS, headers=auth(lead))).json()["items"]
    assert (item["rule_id"], item["slice"]) == (rule["id"], {"market": "DE"})


async def test_due_rules_are_claimed_and_rescheduled(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    """A new rule is due at once; evaluated, it is due again an hour (hourly) or a day
    (daily) later; a disabled rule is never evaluated."""
    lead = await make_key(sessionmaker, "manager")
    hourly = await create_rule(client, lead, threshold=0.5)
    daily = await create_rule(client, lead, threshold=0.5, schedule="daily")
    disabled = await create_rule(client, lead, threshold=0.5)
    patched = await client.patch(
        f"{RULES}/{disabled['id']}", json={"enabled": False}, headers=auth(lead)
    )
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False
    now = datetime.now(UTC) + timedelta(minutes=1)
    assert await evaluate_due_rules(sessionmaker, now=now) == 2
    assert await evaluate_due_rules(sessionmaker, now=now) == 0
    async with sessionmaker() as session:
        rules = {str(rule.id): rule for rule in await session.scalars(select(EscalationRule))}
    assert rules[hourly["id"]].next_evaluation_at == now + timedelta(hours=1)
    assert rules[daily["id"]].next_evaluation_at == now + timedelta(days=1)
    assert rules[disabled["id"]].last_evaluated_at is None
    assert await evaluate_due_rules(sessionmaker, now=now + timedelta(hours=1)) == 1


# ------------------------------------------------------------------- RCA workflow


async def _manual(client: httpx.AsyncClient, key: str, market: str = "DE") -> dict[str, Any]:
    response = await client.post(
        ESCALATIONS,
        json={
            "title": "Spike of missed violations",
            "description": "Seen by the QA team",
            "slice": {"market": market, "queue": f"{market.lower()}-video"},
        },
        headers=auth(key),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_workflow_transitions_and_actions(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    auditor = await make_key(sessionmaker, "qa_auditor", reviewer_id="aud-1")
    escalation = await _manual(client, auditor)
    assert (escalation["status"], escalation["evidence"], escalation["rule_id"]) == (
        "open",
        None,
        None,
    )
    url = f"{ESCALATIONS}/{escalation['id']}"

    async def patch(body: dict[str, Any]) -> httpx.Response:
        return await client.patch(url, json=body, headers=auth(auditor))

    assert_problem(await patch({"status": "resolved"}), 409)
    assert_problem(await patch({"status": "actions_pending"}), 409)
    assert_problem(await patch({"status": "closed"}), 422)
    assert_problem(await patch({"root_cause": "bad_luck"}), 422)
    assert_problem(await patch({"analysis": ["why?"] * 11}), 422)
    assert_problem(await patch({"analysis": ["x" * 2001]}), 422)
    answer = await patch(
        {
            "status": "investigating",
            "owner_id": "lead-1",
            "root_cause": "training_gap",
            "analysis": ["Errors rose", "New moderators", "Onboarding skipped the update"],
        }
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["owner_id"], answer.json()["root_cause"]) == ("lead-1", "training_gap")
    assert (await patch({"status": "actions_pending"})).status_code == 200
    assert (await patch({"status": "investigating"})).status_code == 200
    assert (await patch({"status": "actions_pending"})).status_code == 200

    added = await client.post(
        f"{url}/actions",
        json={"title": "Refresher training", "owner_id": "lead-1", "due_on": "2026-12-10"},
        headers=auth(auditor),
    )
    assert added.status_code == 201, added.text
    action_id = added.json()["id"]
    body = assert_problem(await patch({"status": "resolved"}), 409)
    assert "open" in body["detail"]
    done = await client.post(f"{url}/actions/{action_id}/complete", headers=auth(auditor))
    assert done.status_code == 200
    assert done.json()["completed_at"] is not None
    assert_problem(
        await client.post(f"{url}/actions/{action_id}/complete", headers=auth(auditor)), 409
    )
    resolved = await patch({"status": "resolved"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolved_at"] is not None
    assert_problem(await patch({"status": "investigating"}), 409)
    assert_problem(
        await client.post(
            f"{url}/actions",
            json={"title": "Late", "owner_id": "lead-1", "due_on": "2026-12-10"},
            headers=auth(auditor),
        ),
        409,
    )
    listed = (
        await client.get(ESCALATIONS, params={"status": "resolved"}, headers=auth(auditor))
    ).json()
    (item,) = listed["items"]
    assert [action["title"] for action in item["actions"]] == ["Refresher training"]
    actions = {
        entry.action for entry in (await _entries(sessionmaker, escalation["id"], action_id))
    }
    assert {
        "escalation.opened",
        "escalation.updated",
        "escalation.action_added",
        "escalation.action_completed",
    } <= actions
    moderator = await make_key(sessionmaker, "moderator", reviewer_id="mod-1")
    assert_problem(await client.get(url, headers=auth(moderator)), 403)


async def _entries(sessionmaker: Sessionmaker, *entity_ids: str) -> list[AuditLogEntry]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(AuditLogEntry).where(AuditLogEntry.entity_id.in_(entity_ids))
            )
        )


async def test_overdue_actions_announced_once_per_day(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    """An action due Nov 20 is overdue from Nov 21: one event on Nov 25 (however often the
    job runs that day), another on Nov 26, none once it is complete."""
    lead = await make_key(sessionmaker, "manager")
    escalation = await _manual(client, lead)
    url = f"{ESCALATIONS}/{escalation['id']}"
    added = await client.post(
        f"{url}/actions",
        json={"title": "Fix the tool", "owner_id": "lead-1", "due_on": "2026-11-20"},
        headers=auth(lead),
    )
    assert added.status_code == 201, added.text
    await client.post(
        f"{url}/actions",
        json={"title": "Later", "owner_id": "lead-1", "due_on": "2026-11-25"},
        headers=auth(lead),
    )

    async def announce(now: datetime) -> int:
        async with sessionmaker() as session, session.begin():
            return await announce_overdue_actions(session, now=now)

    assert await announce(at("20", 23)) == 0
    assert await announce(at("25", 8)) == 1
    assert await announce(at("25", 20)) == 0
    assert await announce(at("26", 8)) == 2
    done = await client.post(f"{url}/actions/{added.json()['id']}/complete", headers=auth(lead))
    assert done.status_code == 200
    assert await announce(at("27", 8)) == 1
    async with sessionmaker() as session:
        events = list(
            await session.scalars(select(Event).where(Event.type == "escalation.action_overdue"))
        )
    assert len(events) == 4
    first = next(e for e in events if e.data["action_id"] == added.json()["id"])
    assert (first.data["id"], first.data["owner"], first.market) == (
        escalation["id"],
        "lead-1",
        "DE",
    )


# ------------------------------------------------------------------- bad input, reach


@pytest.mark.parametrize(
    "change",
    [
        {"threshold": 1.5},
        {"threshold": -0.1},
        {"metric": "speed"},
        {"group_by": "language"},
        {"window_days": 0},
        {"threshold": None, "relative_drop": 0.2},
        {"threshold": None},
        {"alpha": 0.0},
        {"alpha": 1.0},
        {"min_audits": 0},
        {"market": "Germany"},
        {"market": "XX"},
        {"schedule": "weekly"},
        {"relative_drop": 1.5, "baseline_days": 7},
        {"metric": "population_accuracy", "group_by": "policy"},
        {"surprise": True},
    ],
)
async def test_bad_rules_are_422(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, change: dict[str, Any]
) -> None:
    lead = await make_key(sessionmaker, "manager")
    body: dict[str, Any] = {
        "name": "bad",
        "metric": "accuracy",
        "window_days": 7,
        "min_audits": 10,
        "threshold": 0.9,
        "schedule": "daily",
    }
    body.update(change)
    body = {name: value for name, value in body.items() if value is not None}
    assert_problem(await client.post(RULES, json=body, headers=auth(lead)), 422)


async def test_rule_updates_are_checked_as_a_whole(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    lead = await make_key(sessionmaker, "manager")
    rule = await create_rule(client, lead, threshold=0.9)
    url = f"{RULES}/{rule['id']}"
    assert_problem(await client.patch(url, json={"threshold": 2}, headers=auth(lead)), 422)
    # Without a baseline a relative drop cannot be judged; without a threshold nothing is.
    assert_problem(await client.patch(url, json={"relative_drop": 0.2}, headers=auth(lead)), 422)
    changed = await client.patch(url, json={"threshold": 0.8, "min_audits": 50}, headers=auth(lead))
    assert changed.status_code == 200, changed.text
    assert (changed.json()["threshold"], changed.json()["min_audits"]) == (0.8, 50)
    assert_problem(await client.post(RULES, json={**_rule_body(rule)}, headers=auth(lead)), 409)
    listed = (await client.get(RULES, params={"limit": 1}, headers=auth(lead))).json()
    assert [item["id"] for item in listed["items"]] == [rule["id"]]


def _rule_body(rule: dict[str, Any]) -> dict[str, Any]:
    return {
        name: rule[name]
        for name in ("name", "metric", "market", "window_days", "min_audits", "schedule")
    } | {"threshold": 0.5}


async def test_market_scoped_keys_stay_in_their_markets(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    admin = await make_key(sessionmaker, "admin")
    french = await _manual(client, admin, market="FR")
    german = await _manual(client, admin, market="DE")
    de_lead = await make_key(sessionmaker, "manager", markets=["DE"])

    url = f"{ESCALATIONS}/{french['id']}"
    assert_problem(await client.get(url, headers=auth(de_lead)), 404)
    assert_problem(await client.patch(url, json={"owner_id": "me"}, headers=auth(de_lead)), 404)
    assert_problem(
        await client.post(
            f"{url}/actions",
            json={"title": "x", "owner_id": "me", "due_on": "2026-12-01"},
            headers=auth(de_lead),
        ),
        404,
    )
    listed = (await client.get(ESCALATIONS, headers=auth(de_lead))).json()
    assert [item["id"] for item in listed["items"]] == [german["id"]]
    assert_problem(
        await client.get(ESCALATIONS, params={"market": "FR"}, headers=auth(de_lead)), 403
    )
    assert_problem(
        await client.post(
            ESCALATIONS,
            json={"title": "t", "description": "d", "slice": {"market": "FR"}},
            headers=auth(de_lead),
        ),
        403,
    )

    body = {"metric": "accuracy", "window_days": 7, "min_audits": 10, "threshold": 0.9,
            "schedule": "daily"}  # fmt: skip
    assert_problem(
        await client.post(
            RULES, json={**body, "name": "fr", "market": "FR"}, headers=auth(de_lead)
        ),
        403,
    )
    assert_problem(
        await client.post(RULES, json={**body, "name": "all"}, headers=auth(de_lead)), 403
    )
    fr_rule = await create_rule(client, admin, market="FR", threshold=0.9)
    assert_problem(await client.get(f"{RULES}/{fr_rule['id']}", headers=auth(de_lead)), 404)
    assert_problem(
        await client.post(f"{RULES}/{fr_rule['id']}/evaluate", headers=auth(de_lead)), 404
    )
    own = await client.post(
        RULES, json={**body, "name": "de", "market": "DE"}, headers=auth(de_lead)
    )
    assert own.status_code == 201, own.text

    briefing = await client.get(
        "/v1/reports/briefing", params={"market": "DE"}, headers=auth(de_lead)
    )
    assert briefing.status_code == 200, briefing.text
    rows = briefing.json()["escalations"]["rows"]
    assert [(row["id"], row["metric"], row["slice"]) for row in rows] == [
        (german["id"], "manual", "market=DE;queue=de-video")
    ]
