"""SIGTERM to ``plumbline run`` under load: it exits 0 within 10 s with nothing of it left
running, and started again on the same data directory it finishes the work, with nothing
acknowledged lost and nothing done twice (issue 12, "Faults")."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path

from tests.support.fault_load import Load, Sink, provision
from tests.support.fault_reconcile import reconcile
from tests.support.fault_stack import FaultStack
from tests.support.plumbline_run import stop_and_check

logger = logging.getLogger(__name__)


async def test_sigterm_under_load_loses_nothing(sink: Sink) -> None:
    # Not the suite's `stack` fixture: `plumbline run` starts its own servers. Where that
    # fixture keeps its stacks, for the same reason (tests/faults/conftest.py).
    stack = FaultStack(Path(tempfile.mkdtemp(prefix="plumbline-faults-")))
    try:
        run = stack.start_plumbline_run()
        setup = await provision(run.base_url, stack.admin_key, sink)
        load = Load(setup, stack.api_urls, refuse_every=4)
        async with load.running():
            await load.wait_for(lambda: len(load.acknowledged) > 200 and len(load.verdicts) > 5)
            # Exit 0 within 10 s, every child and embedded server gone (in a thread, so the
            # load goes on meeting the shutdown meanwhile).
            await asyncio.to_thread(stop_and_check, run)
        refused_while_stopping = len(load.refused)

        # Again on the same data directory: its servers come back with their data.
        stack.run = stack.postgres = stack.redis = None
        stack.start_plumbline_run(name="run-2")
        result = await reconcile(stack, load, sink)
        logger.warning(
            "plumbline run stopped under load (%d requests refused or unanswered): %s",
            refused_while_stopping,
            result.summary(),
        )
        assert result.delivered > 0
    finally:
        stack.close()
    shutil.rmtree(stack.directory, ignore_errors=True)  # kept when the test failed
