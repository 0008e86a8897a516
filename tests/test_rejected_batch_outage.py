"""A refused webhook whose refusal cannot be recorded because the database is away is a
503 (send again), not a 4xx whose rejected batch the source's owners never hear of.

Found by the fault suite (tests/faults/test_postgres_restart.py): a batch refused while
PostgreSQL restarted was answered 422 and its rejected batch was lost.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import DBAPIError

from services.audit_api.decisions.service import (
    DecidedAtWindow,
    receive_decisions,
    record_rejection,
)
from services.audit_api.decisions.writer import DecisionWriter
from shared.core.db import create_engine, create_sessionmaker, is_connection_error
from shared.core.errors import UnprocessableEntity
from shared.sources.service import SigningSource

# Nothing listens on port 1: every connection attempt is refused at once.
UNREACHABLE_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/postgres"


def _source() -> SigningSource:
    return SigningSource(
        id=uuid.uuid4(),
        name="platform",
        secret="whsec_outage",
        previous_secret=None,
        previous_expires_at=None,
        loaded_at=0.0,
    )


async def test_a_rejection_that_cannot_be_recorded_raises_the_outage() -> None:
    engine = create_engine(UNREACHABLE_DATABASE)
    try:
        with pytest.raises((OSError, DBAPIError)) as raised:
            await record_rejection(
                create_sessionmaker(engine),
                source=_source(),
                error=UnprocessableEntity("event 0 is invalid"),
            )
    finally:
        await engine.dispose()
    # The API answers such an error 503 with Retry-After (services/audit_api/problems.py).
    assert is_connection_error(raised.value)


async def test_an_invalid_batch_meets_the_outage_not_its_422() -> None:
    engine = create_engine(UNREACHABLE_DATABASE)
    sessionmaker = create_sessionmaker(engine)
    now = datetime.now(UTC)
    try:
        with pytest.raises((OSError, DBAPIError)) as raised:
            await receive_decisions(
                source=_source(),
                body=b'{"events": []}',
                max_events=1000,
                window=DecidedAtWindow.around(
                    now,
                    earliest_date=(now - timedelta(days=365)).date(),
                    future_tolerance=timedelta(0),
                ),
                writer=DecisionWriter(
                    UNREACHABLE_DATABASE.replace("+asyncpg", "")
                ),  # never started
                sessionmaker=sessionmaker,
            )
    finally:
        await engine.dispose()
    assert is_connection_error(raised.value)
    assert not isinstance(raised.value, UnprocessableEntity)
