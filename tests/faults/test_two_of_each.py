"""Two relays, two report workers and two notifiers at once, under load: every job is done
once, every message sent once (issue 12, "Faults")."""

from __future__ import annotations

import asyncio
import logging

from tests.faults.conftest import bring_up
from tests.support.fault_load import Load, Sink
from tests.support.fault_reconcile import reconcile
from tests.support.fault_stack import FaultStack

logger = logging.getLogger(__name__)


async def test_two_of_each_worker_and_relay(stack: FaultStack, sink: Sink) -> None:
    setup = await bring_up(stack, sink, relays=2, report_workers=2, notifiers=2)
    load = Load(setup, stack.api_urls, refuse_every=5, sample_every=3.0)
    async with load.running():
        await load.wait_for(
            lambda: len(load.acknowledged) > 300 and len(load.verdicts) > 10, within=120
        )
        await asyncio.sleep(3)
    result = await reconcile(stack, load, sink)
    logger.warning("two of each: %s", result.summary())
    # Nothing failed, so nothing was sent twice: two notifiers never send one message both.
    assert result.sink_repeats == 0, result.summary()
    assert result.delivered > 0
    assert result.sampling_jobs > 1
