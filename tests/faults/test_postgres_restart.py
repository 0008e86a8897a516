"""PostgreSQL restarted under load, cleanly (a fast shutdown) and not (SIGKILL of the
postmaster), then started again on the same socket: requests meanwhile get 503 problem
responses with ``Retry-After`` (never a 500, never a hang or a dropped connection), the pools
recover by themselves, and no acknowledged event or verdict is missing (issue 12, "Faults").
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from tests.faults.conftest import bring_up
from tests.support.fault_load import Load, Sink
from tests.support.fault_reconcile import reconcile
from tests.support.fault_stack import FaultStack

logger = logging.getLogger(__name__)

# Long enough for every sender and auditor to meet the outage more than once.
DOWN_SECONDS = 5.0


@pytest.mark.parametrize("clean", [True, False], ids=["fast-shutdown", "sigkill"])
async def test_requests_get_503_while_postgres_restarts(
    stack: FaultStack, sink: Sink, clean: bool
) -> None:
    setup = await bring_up(stack, sink)
    pids = {part.name: part.pid for part in stack.parts}
    load = Load(setup, stack.api_urls)
    async with load.running():
        await load.wait_for(lambda: len(load.acknowledged) > 200 and len(load.verdicts) > 5)
        stack.stop_postgres(clean=clean)
        answered_before = load.statuses.total()
        await asyncio.sleep(DOWN_SECONDS)
        answered_while_down = load.statuses.total() - answered_before
        stack.start_postgres()
        # The pools find their way back: intake and verdicts are acknowledged again.
        acknowledged = len(load.acknowledged)
        verdicts = len(load.verdicts)
        await load.wait_for(
            lambda: len(load.acknowledged) > acknowledged + 200 and len(load.verdicts) > verdicts
        )
        async with httpx.AsyncClient(base_url=stack.api_urls[0], timeout=10) as http:
            assert (await http.get("/readyz")).status_code == 200

    result = await reconcile(stack, load, sink)
    logger.warning(
        "PostgreSQL %s, %d answers while it was down: %s",
        "stopped" if clean else "killed",
        answered_while_down,
        result.summary(),
    )
    unavailable = [r for r in load.refused if r.status == 503]
    # The outage was met, and answered (reconcile: 503s only, each with Retry-After).
    assert unavailable, load.summary()
    assert all(r.headers.get("content-type") == "application/problem+json" for r in unavailable)
    # No request hung past the client's timeout, and no keep-alive connection was dropped
    # without an answer: every request got one.
    unanswered = [r for r in load.refused if r.status == 0]
    assert not unanswered, f"{len(unanswered)} requests without an answer: {unanswered[:3]}"
    # The pools recovered inside the same processes.
    assert {part.name: part.pid for part in stack.parts if part.alive()} == pids
