"""After a fault and the recovery: wait until the stack has nothing left to do, then check
that nothing was lost and nothing happened twice.

API::

    result = await reconcile(stack, load, sink)     # waits (bounded), then asserts
    result.summary()                                 # the counts, one line
    await wait_for_quiescence(stack, setup, within=90)   # only the waiting part

What ``reconcile`` asserts (each failure names what it found):

- rows stored = events acknowledged: every event answered 202 is stored; every stored event
  was sent (acknowledged, or sent without an answer: in flight when the fault hit);
- the intake rollups count every stored decision once (``decisions`` of the total rows);
- every outbox row relayed, every intake batch applied, no dirty rollup slice left;
- every notification fanned out to each channel once, and every delivery delivered or
  dead-lettered; each delivered one reached the sink; no delivery (channel, event id)
  reached the sink with two different bodies;
- no job effect twice: one real audit per decision, each sampling job complete with one
  run, the runs' ``audits_created`` adding up to the audits; one verdict per audit, the
  verdicts = those acknowledged (plus some of those unanswered); one disagreement per
  incorrect verdict and one ``disagreement.opened`` per disagreement; one rejected batch
  (and one ``source.rejected_batch``) per request refused on purpose; the rollups' audited
  count = the verdicts;
- no 5xx other than 503 among the load's answers (a 503 must carry ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from tests.support.fault_load import CHANNEL_EVENTS, Load, Setup, Sink
from tests.support.fault_stack import FaultStack


@dataclass(frozen=True)
class Backlog:
    """Work the stack has not done yet."""

    outbox: int
    intake_batches: int
    dirty_slices: int
    pending_deliveries: int
    open_jobs: int
    missing_deliveries: int

    def empty(self) -> bool:
        return not any(
            (
                self.outbox,
                self.intake_batches,
                self.dirty_slices,
                self.pending_deliveries,
                self.open_jobs,
                self.missing_deliveries,
            )
        )


async def backlog(stack: FaultStack, setup: Setup) -> Backlog:
    """What is still to do: outbox rows, intake batches, dirty slices, pending deliveries,
    unfinished background jobs, and (channel, event) pairs not yet fanned out."""
    row = (
        await stack.fetch(
            """
            SELECT
              (SELECT count(*) FROM outbox_jobs WHERE enqueued_at IS NULL),
              (SELECT count(*) FROM intake_batches WHERE applied_at IS NULL),
              (SELECT count(*) FROM dirty_rollup_slices),
              (SELECT count(*) FROM deliveries WHERE status = 'pending'),
              (SELECT count(*) FROM background_jobs WHERE status IN ('queued', 'running')),
              (SELECT count(*) FROM events e CROSS JOIN unnest($1::uuid[]) AS c(id)
                 WHERE e.type = ANY($2::text[])
                   AND NOT EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.event_id = e.id AND d.channel_id = c.id))
            """,
            [uuid.UUID(channel) for channel in setup.channels],
            list(CHANNEL_EVENTS),
        )
    )[0]
    return Backlog(*[int(value) for value in row])


async def wait_for_quiescence(stack: FaultStack, setup: Setup, within: float = 90.0) -> float:
    """Until the backlog is empty twice in a row, 0.5 s apart; the seconds it took."""
    started = time.monotonic()
    deadline = started + within
    empty_before = False
    last: Backlog | None = None
    while True:
        try:
            last = await backlog(stack, setup)
        except OSError:
            last = None  # PostgreSQL is (still) coming back
        if last is not None and last.empty():
            if empty_before:
                return time.monotonic() - started
            empty_before = True
        else:
            empty_before = False
        assert time.monotonic() < deadline, f"no quiescence within {within} s: {last}"
        await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Reconciliation:
    """The counts a reconciliation compared."""

    acknowledged: int
    uncertain: int
    stored: int
    deliveries: int
    delivered: int
    dead: int
    sink_requests: int
    sink_repeats: int
    audits: int
    verdicts: int
    disagreements: int
    rejected_batches: int
    sampling_jobs: int
    quiescent_after: float

    def summary(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in vars(self).items())


async def reconcile(
    stack: FaultStack, load: Load, sink: Sink, *, within: float = 90.0
) -> Reconciliation:
    """Wait for quiescence (at most ``within`` s), then assert everything listed above."""
    setup = load.setup
    waited = await wait_for_quiescence(stack, setup, within)

    # The load's answers: a transient fault is a 503 with Retry-After, never a 500.
    errors = [r for r in load.refused if r.status >= 500 and r.status != 503]
    assert not errors, f"{len(errors)} answers 5xx other than 503, first: {errors[:3]}"
    no_retry_after = [r for r in load.refused if r.status == 503 and "retry-after" not in r.headers]
    assert not no_retry_after, f"503 without Retry-After: {no_retry_after[:3]}"

    # Rows stored = events acknowledged.
    stored = {
        row[0]
        for row in await stack.fetch(
            "SELECT event_id FROM decision_event_keys WHERE source_id = $1",
            uuid.UUID(setup.source_id),
        )
    }
    lost = load.acknowledged - stored
    assert not lost, f"{len(lost)} acknowledged events not stored, e.g. {sorted(lost)[:5]}"
    unknown = stored - load.acknowledged - load.uncertain
    assert not unknown, f"{len(unknown)} stored events never sent, e.g. {sorted(unknown)[:5]}"
    decisions = await stack.fetchval("SELECT count(*) FROM decisions")
    assert decisions == len(stored), f"{decisions} decisions for {len(stored)} event keys"
    rolled = await stack.fetchval(
        "SELECT coalesce(sum(decisions), 0) FROM quality_rollups WHERE policy = '*'"
    )
    assert rolled == decisions, f"intake rollups count {rolled} decisions of {decisions}"

    # Deliveries: each delivered or dead; delivered ones reached the sink, one body each.
    by_status: dict[str, int] = defaultdict(int)
    delivered_keys = set()
    for row in await stack.fetch(
        "SELECT d.status, d.channel_id, d.event_id FROM deliveries d "
        "WHERE d.event_type = ANY($1::text[])",
        list(CHANNEL_EVENTS),
    ):
        by_status[row[0]] += 1
        if row[0] == "delivered":
            delivered_keys.add((setup.channels[str(row[1])], str(row[2])))
    assert set(by_status) <= {"delivered", "dead"}, f"deliveries by status: {dict(by_status)}"
    bodies: dict[tuple[str, str], set[str]] = defaultdict(set)
    for received in sink.received:
        bodies[(received.path, received.event_id)].add(received.digest)
    changed = {key: digests for key, digests in bodies.items() if len(digests) > 1}
    assert not changed, f"{len(changed)} deliveries sent with different bodies: {changed}"
    unreceived = delivered_keys - set(bodies)
    assert not unreceived, f"{len(unreceived)} delivered but never received: {unreceived}"

    # No job effect twice.
    twice = await stack.fetchval(
        "SELECT count(*) FROM (SELECT decision_id FROM audits WHERE NOT is_golden "
        "GROUP BY decision_id HAVING count(*) > 1) t"
    )
    assert twice == 0, f"{twice} decisions audited twice"
    audits = await stack.fetchval("SELECT count(*) FROM audits WHERE NOT is_golden")
    created = await stack.fetchval("SELECT coalesce(sum(audits_created), 0) FROM sampling_runs")
    assert created == audits, f"sampling runs say {created} audits, there are {audits}"
    jobs = {
        str(row[0]): (row[1], row[2])
        for row in await stack.fetch(
            "SELECT j.id, j.status, (SELECT count(*) FROM sampling_runs r WHERE r.job_id = j.id)"
            " FROM background_jobs j WHERE j.id = ANY($1::uuid[])",
            [uuid.UUID(job) for job in load.sampling_jobs],
        )
    }
    assert len(jobs) == len(load.sampling_jobs), "a sampling job acknowledged is missing"
    wrong = {job: state for job, state in jobs.items() if state[0] != "complete" or state[1] > 1}
    assert not wrong, f"sampling jobs not complete once (status, runs): {wrong}"

    verdicts = {
        str(row[0]): row[1] for row in await stack.fetch("SELECT audit_id, outcome FROM verdicts")
    }
    missing = set(load.verdicts) - set(verdicts)
    assert not missing, f"{len(missing)} acknowledged verdicts not stored"
    extra = set(verdicts) - set(load.verdicts) - load.uncertain_verdicts
    assert not extra, f"{len(extra)} verdicts stored that no auditor sent"
    changed_outcome = {a: o for a, o in load.verdicts.items() if verdicts[a] != o}
    assert not changed_outcome, f"verdicts stored with another outcome: {changed_outcome}"
    incorrect = sum(1 for outcome in verdicts.values() if outcome == "incorrect")
    disagreements = await stack.fetchval("SELECT count(*) FROM disagreements")
    assert disagreements == incorrect, f"{disagreements} disagreements, {incorrect} incorrect"
    opened_rows = await stack.fetch(
        "SELECT count(*), count(DISTINCT data->>'id') FROM events "
        "WHERE type = 'disagreement.opened'"
    )
    assert tuple(opened_rows[0]) == (disagreements, disagreements), (
        f"disagreement.opened events (all, distinct) {tuple(opened_rows[0])} "
        f"for {disagreements} disagreements"
    )
    audited = await stack.fetchval(
        "SELECT coalesce(sum(audited), 0) FROM quality_rollups WHERE policy = '*'"
    )
    assert audited == len(verdicts), f"rollups count {audited} audited of {len(verdicts)}"

    rejected = await stack.fetchval(
        "SELECT count(*) FROM rejected_batches WHERE source_id = $1", uuid.UUID(setup.source_id)
    )
    low, high = load.expected_rejections, load.expected_rejections + load.uncertain_rejections
    assert low <= rejected <= high, f"{rejected} rejected batches for {low} to {high} refused"
    announced = await stack.fetchval(
        "SELECT count(*) FROM events WHERE type = 'source.rejected_batch'"
    )
    assert announced == rejected, f"{announced} source.rejected_batch for {rejected} batches"

    return Reconciliation(
        acknowledged=len(load.acknowledged),
        uncertain=len(load.uncertain),
        stored=len(stored),
        deliveries=sum(by_status.values()),
        delivered=by_status["delivered"],
        dead=by_status["dead"],
        sink_requests=len(sink.received),
        sink_repeats=len(sink.received) - len(bodies),
        audits=audits,
        verdicts=len(verdicts),
        disagreements=disagreements,
        rejected_batches=rejected,
        sampling_jobs=len(load.sampling_jobs),
        quiescent_after=round(waited, 1),
    )
