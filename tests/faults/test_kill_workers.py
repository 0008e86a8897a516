"""``kill -9`` of the report worker, the notifier and the relay in the middle of their work,
while decisions arrive and auditors judge; started again, they finish it, and nothing is
lost or done twice (issue 12, "Faults")."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg

from tests.faults.conftest import bring_up
from tests.support.fault_load import Load, Sink
from tests.support.fault_reconcile import reconcile
from tests.support.fault_stack import FaultStack, plain_dsn

logger = logging.getLogger(__name__)

# The bound for the notifier: what was in flight is delivered this soon after the
# restart (the quiescence wait below is bounded by it too).
DELIVERED_WITHIN_SECONDS = 60.0


async def _catch_sampling_running(stack: FaultStack, load: Load, attempts: int = 10) -> str:
    """Request sampling runs until one is seen running; kill -9 the report worker then.

    Returns the id of the job that was running when the worker died.
    """
    worker = stack.part("report-worker")
    connection = await asyncpg.connect(plain_dsn(stack.database_url))
    try:
        for _ in range(attempts):
            job_id = await load.sample()
            assert job_id is not None, load.summary()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                status = await connection.fetchval(
                    "SELECT status FROM background_jobs WHERE id = $1", uuid.UUID(job_id)
                )
                if status == "running":
                    worker.kill()
                    return job_id
                if status in ("complete", "failed"):
                    break
                await asyncio.sleep(0.005)
    finally:
        await connection.close()
    raise AssertionError(f"no sampling job seen running in {attempts} tries")


async def test_report_worker_killed_mid_sampling_run(stack: FaultStack, sink: Sink) -> None:
    setup = await bring_up(stack, sink)
    load = Load(setup, stack.api_urls)
    async with load.running():
        await load.wait_for(
            lambda: len(load.acknowledged) > 200 and len(load.verdicts) > 5, within=120
        )
        killed_job = await _catch_sampling_running(stack, load)
        # Decisions keep arriving (intake batches to roll up) while no worker runs.
        await asyncio.sleep(2)
        stack.part("report-worker").start()
        await asyncio.sleep(3)
    result = await reconcile(stack, load, sink)
    logger.warning("report worker killed mid-run of %s: %s", killed_job, result.summary())
    assert killed_job in load.sampling_jobs


async def test_notifier_killed_mid_delivery(stack: FaultStack, sink: Sink) -> None:
    setup = await bring_up(stack, sink)
    load = Load(setup, stack.api_urls, refuse_every=4)
    # Each answer takes a while, so deliveries are in flight when the notifier dies.
    sink.delay = 0.3
    async with load.running():
        await load.wait_for(lambda: sink.in_flight > 0 and len(sink.received) >= 3, within=120)
        stack.part("notifier").kill()
        in_flight_at_kill = sink.in_flight
        await asyncio.sleep(3)  # rejected batches and disagreements keep coming meanwhile
        sink.delay = 0.0
        stack.part("notifier").start()
        restarted = time.monotonic()
        await asyncio.sleep(3)
    left = DELIVERED_WITHIN_SECONDS - (time.monotonic() - restarted)
    result = await reconcile(stack, load, sink, within=left)
    logger.warning(
        "notifier killed with %d deliveries in flight: %s", in_flight_at_kill, result.summary()
    )
    assert in_flight_at_kill > 0
    assert result.delivered > 0


async def test_relay_killed_with_outbox_backlog(stack: FaultStack, sink: Sink) -> None:
    setup = await bring_up(stack, sink)
    load = Load(setup, stack.api_urls)
    pending = "SELECT count(*) FROM outbox_jobs WHERE enqueued_at IS NULL"
    async with load.running():
        await load.wait_for(lambda: len(load.acknowledged) > 150, within=120)
        stack.part("relay").kill()
        deadline = time.monotonic() + 30
        while (backlog := await stack.fetchval(pending)) < 50:
            assert time.monotonic() < deadline, f"backlog {backlog}: {load.summary()}"
            await asyncio.sleep(0.2)
        stack.part("relay").start()
        await asyncio.sleep(3)
    result = await reconcile(stack, load, sink)
    logger.warning("relay killed with %d outbox rows waiting: %s", backlog, result.summary())
