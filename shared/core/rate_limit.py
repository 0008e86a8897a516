"""A rate limit shared by every process that asks Redis: at most one use per interval.

The notifier asks before each send to a channel, so ten notifiers together never send one
Slack webhook more than its rate. The limiter is GCRA (generic cell rate algorithm) with a
burst of one, in one Lua script: Redis keeps, per key, the earliest time of the next
allowed use (the "theoretical arrival time") and answers either "go" (moving that time on
by one interval) or how long to wait. The script runs atomically and reads Redis's own
clock, so processes on different machines agree without trusting their clocks, and two
allowed uses of one key are never closer than the interval.

It fails closed: while Redis cannot be asked, the answer is "wait" (a notifier without
Redis cannot run its jobs anyway, and sending unthrottled could break the limit). The API's
own limits (``services/audit_api/rate_limits.py``) are different on purpose: fixed-window
counters of failures and requests that fail open, so intake keeps working without Redis.
"""

from __future__ import annotations

import logging
import math

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KEY_PREFIX = "plumbline:rate-limit"
# How long to wait when Redis could not be asked.
UNREACHABLE_WAIT_SECONDS = 1.0

# KEYS[1]: the limited thing; ARGV[1]: the interval between uses, in microseconds.
# Returns 0 when this use is allowed (and counted), else the microseconds until one is.
_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local next_allowed = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_allowed > now then
  return next_allowed - now
end
local keep_ms = math.ceil(interval / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', now + interval), 'PX', keep_ms)
return 0
"""


class RateLimiter:
    """Uses of a key limited to a rate per second, shared through one Redis."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_GCRA)
        self._unreachable = False

    async def wait_seconds(self, key: str, *, per_second: float) -> float:
        """Take one use of ``key`` at ``per_second`` at most: 0.0 when taken now, else the
        seconds until one may be (nothing taken). Never raises for Redis: unreachable means
        wait ``UNREACHABLE_WAIT_SECONDS``."""
        if per_second <= 0 or not math.isfinite(per_second):
            raise ValueError(f"a rate must be a positive number, not {per_second}")
        interval_us = max(1, round(1_000_000 / per_second))
        try:
            wait_us = await self._script(keys=[f"{KEY_PREFIX}:{key}"], args=[interval_us])
        except (RedisError, OSError) as exc:
            if not self._unreachable:
                self._unreachable = True
                logger.warning(
                    "rate limit unavailable while Redis is unreachable: waiting",
                    extra={"error": repr(exc)},
                )
            return UNREACHABLE_WAIT_SECONDS
        if self._unreachable:
            self._unreachable = False
            logger.info("Redis is reachable again: rate limits are shared again")
        return int(wait_us) / 1_000_000
