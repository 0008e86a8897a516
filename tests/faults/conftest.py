"""The fault suite's fixtures: a stack of its own per test (embedded servers it may kill),
the sink the channels deliver to, and the suite's one way to bring the parts up.

Runs only with ``make test-faults`` (``PLUMBLINE_FAULT_SUITE=1``; see tests/conftest.py).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.fault_load import Setup, Sink, provision
from tests.support.fault_stack import FaultStack

logger = logging.getLogger(__name__)


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Replaces the suite-wide table cleanup: a fault test never uses the shared servers."""


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Iterator[FaultStack]:
    """Embedded PostgreSQL and Redis of the test's own, migrated; no part running yet.

    Not under ``tmp_path``: a pytest session starting meanwhile takes the group and other
    bits off ``/tmp/pytest-of-<user>``, and PostgreSQL, which runs as its own user when we
    are root, could then no longer reach its data to restart. The directory is removed after
    a test that passed and kept (its path logged) after one that failed.
    """
    failed_before = request.session.testsfailed
    stack = FaultStack(Path(tempfile.mkdtemp(prefix="plumbline-faults-")))
    try:
        stack.start_servers()
        stack.migrate()
        yield stack
    finally:
        for part in stack.parts:
            tail = "\n".join(part.logs().splitlines()[-15:])
            logger.warning("%s (%s), last lines:\n%s", part.name, part.log, tail)
        stack.close()
        if request.session.testsfailed == failed_before:
            shutil.rmtree(stack.directory, ignore_errors=True)
        else:
            logger.warning("the stack's data and logs are kept in %s", stack.directory)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """The local receiver every channel of the test delivers to."""
    receiver = Sink()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def bring_up(
    stack: FaultStack,
    sink: Sink,
    *,
    apis: int = 1,
    relays: int = 1,
    report_workers: int = 1,
    notifiers: int = 1,
    auditors: int = 20,
) -> Setup:
    """Start the parts (the second of a kind is named ``<command>-2``), wait until every
    API is ready, provision the source, channels, plan and auditors through the first.

    The APIs start first and alone: eight interpreters importing at once on two cores
    made an API miss its readiness deadline.
    """
    for index in range(apis):
        stack.add("api", name="api" if index == 0 else f"api-{index + 1}")
    stack.wait_ready(timeout=150)
    for command, count in (
        ("relay", relays),
        ("report-worker", report_workers),
        ("notifier", notifiers),
    ):
        for index in range(count):
            stack.add(command, name=command if index == 0 else f"{command}-{index + 1}")
    return await provision(stack.api_urls[0], stack.admin_key, sink, auditors=auditors)
