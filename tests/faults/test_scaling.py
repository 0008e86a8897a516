"""Scale beyond one machine (issue 12): two API processes on their own ports, two of each
worker and two relays against one database and one Redis; the load is split across both
APIs and the counts reconcile."""

from __future__ import annotations

import asyncio
import logging

from tests.faults.conftest import bring_up
from tests.support.fault_load import Load, Sink
from tests.support.fault_reconcile import reconcile
from tests.support.fault_stack import FaultStack

logger = logging.getLogger(__name__)


async def test_two_apis_two_of_each_reconcile(stack: FaultStack, sink: Sink) -> None:
    setup = await bring_up(stack, sink, apis=2, relays=2, report_workers=2, notifiers=2)
    assert len(set(stack.api_urls)) == 2
    load = Load(setup, stack.api_urls, senders=4, sample_every=3.0)
    async with load.running():
        await load.wait_for(
            lambda: len(load.acknowledged) > 400 and len(load.verdicts) > 10, within=120
        )
        await asyncio.sleep(3)
    result = await reconcile(stack, load, sink)
    logger.warning("two APIs, two of each: %s; served %s", result.summary(), dict(load.served))
    # Each API took its share (requests alternate between them).
    assert all(load.served[url] > 50 for url in stack.api_urls), load.served
    assert result.acknowledged == result.stored
