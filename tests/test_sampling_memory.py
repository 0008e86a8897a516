"""Sampling a day holds a bounded number of the day's rows, however large the day (issue #12).

The report worker's resident memory keeps the peak of everything it ever held, and sampling
reruns a growing day again and again (the mixed workload: today, every 30 s): what one run
holds must not grow with the day beyond the sample itself. Measured with tracemalloc (the
Python objects allocated during a rerun of a day already sampled), a small day against one
ten times its size; no timing.
"""

from __future__ import annotations

import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.sampling import sample_market_day
from shared.core.settings import Settings
from shared.decisions.partitions import REGISTER_MISSING_EVENT_KEYS
from shared.models import SamplingPlan

SMALL_DAY = date(2026, 11, 23)
LARGE_DAY = date(2026, 11, 24)
SMALL = 5_000
LARGE = 25_000
SOURCE_ID = uuid.UUID("00000000-0000-0000-0000-0000000012ab")
# What the rerun of the large day may hold beyond the small day's: the larger sample (a
# tenth of the day's decision ids, audited already) and the sampler's candidates, a few
# hundred KiB. Both days span more than two fetches of the day's cursor; fetching 20,000 rows
# at a time, the large day's rerun held about 10 MiB more than the small day's.
ALLOWED_GROWTH_BYTES = 2 * 1024 * 1024


async def _insert_day(settings: Settings, day: date, count: int) -> None:
    """``count`` decisions of 50 moderators on ``day`` (Berlin: 10:00 UTC is the same day)."""
    assert settings.database_url is not None
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", "", 1))
    start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=10)
    try:
        await connection.copy_records_to_table(
            "decisions",
            columns=[
                "source_id", "event_id", "content_id", "content_type", "queue", "market",
                "language", "moderator_id", "action", "policy_labels", "decided_at",
                "handling_time_ms", "metadata", "intake_batch_id",
            ],
            records=[
                (
                    SOURCE_ID, f"{day}-{n}", f"content-{day}-{n}", "video", "de-video",
                    "DE", "de", f"mod-{n % 50}", "remove", ["spam"],
                    start + timedelta(milliseconds=n), 1000, "{}", SOURCE_ID,
                )
                for n in range(count)
            ],
        )  # fmt: skip
        await connection.execute(REGISTER_MISSING_EVENT_KEYS)
    finally:
        await connection.close()


async def _sample(sessionmaker: async_sessionmaker[AsyncSession], day: date) -> int:
    """Sample ``day`` in one transaction; returns the audits created."""
    async with sessionmaker() as session, session.begin():
        result = await sample_market_day(session, market="DE", day=day, seed_base="memory")
    return result.audits_created


async def _rerun_peak(sessionmaker: async_sessionmaker[AsyncSession], day: date) -> int:
    """The peak of the Python memory allocated while ``day``, sampled already, is sampled
    again (what the mixed workload's sampling mostly does)."""
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        created = await _sample(sessionmaker, day)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert created == 0
    return peak - start


async def test_a_rerun_holds_no_more_of_a_larger_day_than_its_sample(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session, session.begin():
        session.add(SamplingPlan(name="DE", market="DE", rate=0.1, min_per_moderator=0))
    await _insert_day(settings, SMALL_DAY, SMALL)
    await _insert_day(settings, LARGE_DAY, LARGE)
    assert await _sample(sessionmaker, SMALL_DAY) > 0
    assert await _sample(sessionmaker, LARGE_DAY) > 0
    # Once before measuring: the first use of a statement or codec allocates for good.
    await _rerun_peak(sessionmaker, SMALL_DAY)
    small = await _rerun_peak(sessionmaker, SMALL_DAY)
    large = await _rerun_peak(sessionmaker, LARGE_DAY)
    assert large - small < ALLOWED_GROWTH_BYTES, (small, large)
