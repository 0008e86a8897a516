"""Requests per API key, counted in Redis a few at a time (``RateLimits.key_request_wait``)."""

from __future__ import annotations

import uuid

from services.audit_api.rate_limits import RateLimits, create_redis_client
from shared.core.settings import Settings


async def test_two_replicas_never_admit_more_than_the_limit_together(settings: Settings) -> None:
    # 640 a window: each replica reserves 10 requests at a time.
    own = settings.model_copy(update={"requests_per_key": 640, "rate_limit_window_seconds": 3600})
    redis = create_redis_client(own)
    try:
        replicas = [RateLimits(redis, own), RateLimits(redis, own)]
        key_id = str(uuid.uuid4())
        admitted = 0
        for turn in range(1000):
            wait = await replicas[turn % 2].key_request_wait(key_id)
            if wait is None:
                admitted += 1
            else:
                assert 1 <= wait <= 3600
        # Never over the limit; at most one replica's unspent reservation short of it.
        assert 640 - 9 <= admitted <= 640
        # One replica alone is counted exactly.
        alone = RateLimits(redis, own.model_copy(update={"requests_per_key": 5}))
        other = str(uuid.uuid4())
        answers = [await alone.key_request_wait(other) for _ in range(7)]
        assert answers[:5] == [None] * 5
        assert all(wait is not None for wait in answers[5:])
    finally:
        await redis.aclose()
