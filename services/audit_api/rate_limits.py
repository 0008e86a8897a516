"""Rate limits shared by every API replica: fixed-window counters in Redis.

Three limits, each per ``rate_limit_window_seconds``: failed authentications (API keys and
webhook signatures) per client IP, failed webhook signatures per source, and requests per API
key. A counter's key names its window, so it needs no reset and expires by itself.

They fail open: while Redis cannot be reached nothing is limited, because intake and reads
must keep working during a Redis outage (the outbox holds the work). That is logged once per
outage, and Redis is not asked again for a second, so an outage costs no request more than
one failed connection attempt.

A client (or source) found under its failure limit is not asked about again for a second by
this replica, unless it fails here meanwhile: steady intake from a platform costs no Redis
round trip per request, and a client blocked through another replica is refused here within
a second.

Requests per key are counted in Redis a few at a time: a replica reserves up to
``_KEY_RESERVATION`` requests of the key's window at once (one ``INCRBY``) and spends them
without asking again, so a busy key costs one Redis round trip per that many requests, not
per request. Never more than the limit is admitted across replicas (a reservation that
crosses it is cut to what was left); the price is that requests a replica reserved and did
not make before the window ended count as made: with N replicas serving one key, it may be
refused up to (N - 1) x (``_KEY_RESERVATION`` - 1) requests early in a window. The
reservation is a sixty-fourth of the limit at most, so a small limit is counted exactly.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.core.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

_PREFIX = "plumbline:rate"
# How long Redis is left alone after a failed call.
_PAUSE_AFTER_FAILURE_SECONDS = 1.0
# How long a client or source found under its failure limit is not looked up again.
_UNDER_LIMIT_SECONDS = 1.0
# Past this many remembered clients and sources, forget them all (memory stays bounded).
_MAX_REMEMBERED = 10_000
# The most requests of one key a replica reserves at once (see the module docstring).
_KEY_RESERVATION = 16


def create_redis_client(settings: Settings) -> Redis:
    """A Redis client for request-time calls: short timeouts, no retries, no connect at start.

    The API must start and serve while Redis is down, so nothing here waits for it.
    """
    if settings.redis_url is None:
        raise RuntimeError("PLUMBLINE_REDIS_URL is not resolved; start via `plumbline`")
    client: Redis = Redis.from_url(
        settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
    )
    return client


def _name(value: str) -> str:
    # Client-chosen text (a source name header) becomes a short, fixed-size key part.
    return hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


class RateLimits:
    """The API's rate limits (see the module docstring)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._window = settings.rate_limit_window_seconds
        self._per_client = settings.auth_failures_per_client
        self._per_source = settings.signature_failures_per_source
        self._per_key = settings.requests_per_key
        self._sign_ins = settings.sign_in_attempts_per_minute
        self._paused_until = 0.0
        self._unreachable = False
        # ("client" | "source", name) -> monotonic time until which it is known under limit.
        self._under_limit_until: dict[tuple[str, str], float] = {}
        # key id -> (window counter key, requests reserved and not made yet).
        self._key_allowance: dict[str, tuple[str, int]] = {}
        self._reservation = max(1, min(_KEY_RESERVATION, self._per_key // 64))

    def _window_keys(self, *parts: str) -> tuple[str, int]:
        """The counter key of the current window and the seconds until the window ends."""
        now = time.time()
        index = int(now // self._window)
        retry_after = max(1, math.ceil((index + 1) * self._window - now))
        return f"{_PREFIX}:{':'.join(parts)}:{index}", retry_after

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T | None:
        """Run a Redis call; None (and limits off) when Redis cannot be reached."""
        if time.monotonic() < self._paused_until:
            return None
        try:
            result = await operation()
        except (RedisError, OSError) as exc:
            self._paused_until = time.monotonic() + _PAUSE_AFTER_FAILURE_SECONDS
            if not self._unreachable:
                self._unreachable = True
                logger.warning(
                    "rate limits are off while Redis is unreachable", extra={"error": repr(exc)}
                )
            return None
        if self._unreachable:
            self._unreachable = False
            logger.info("Redis is reachable again: rate limits are on")
        return result

    def _subjects(self, *, client: str, source: str | None) -> list[tuple[str, str, int]]:
        """(kind, name, limit) of the failure counters this request falls under."""
        subjects: list[tuple[str, str, int]] = []
        if self._per_client:
            subjects.append(("client", client, self._per_client))
        if source and self._per_source:
            subjects.append(("source", source, self._per_source))
        return subjects

    def _failure_keys(self, *, client: str, source: str | None) -> list[tuple[str, int, int]]:
        """(key, limit, retry_after) of the failure counters this request falls under."""
        keys: list[tuple[str, int, int]] = []
        for kind, name, limit in self._subjects(client=client, source=source):
            key, retry_after = self._window_keys("auth-fail", kind, _name(name))
            keys.append((key, limit, retry_after))
        return keys

    async def failed_auth_wait(self, *, client: str, source: str | None) -> int | None:
        """Seconds to wait when this client, or the webhook source it names, has failed to
        authenticate too often in this window; None when it may go on."""
        subjects = [(kind, name) for kind, name, _ in self._subjects(client=client, source=source)]
        now = time.monotonic()
        if all(self._under_limit_until.get(subject, 0.0) > now for subject in subjects):
            return None
        keys = self._failure_keys(client=client, source=source)
        names = [key for key, _, _ in keys]
        counts = await self._call(lambda: self._redis.mget(names))
        if counts is None:
            return None
        for (_, limit, retry_after), count in zip(keys, counts, strict=True):
            if count is not None and int(count) >= limit:
                return retry_after
        if len(self._under_limit_until) >= _MAX_REMEMBERED:
            self._under_limit_until.clear()
        for subject in subjects:
            self._under_limit_until[subject] = now + _UNDER_LIMIT_SECONDS
        return None

    async def record_failed_auth(self, *, client: str, source: str | None) -> None:
        """Count one failed authentication against the client and the source it named."""
        keys = self._failure_keys(client=client, source=source)
        if not keys:
            return
        # Its next request is looked up again: this failure may have reached the limit.
        for kind, name, _ in self._subjects(client=client, source=source):
            self._under_limit_until.pop((kind, name), None)

        async def count() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, _, _ in keys:
                    pipe.incr(key)
                    pipe.expire(key, self._window * 2)
                await pipe.execute()

        await self._call(count)

    async def key_request_wait(self, key_id: str) -> int | None:
        """Count a request made with this API key; seconds to wait when it is over the limit."""
        if not self._per_key:
            return None
        key, retry_after = self._window_keys("key", key_id)
        window, left = self._key_allowance.get(key_id, ("", 0))
        if window == key and left > 0:
            self._key_allowance[key_id] = (key, left - 1)
            return None
        reservation = self._reservation

        async def count() -> int:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, reservation)
                pipe.expire(key, self._window * 2)
                reserved, _ = await pipe.execute()
            return int(reserved)

        reserved = await self._call(count)
        if reserved is None:
            return None  # Redis unreachable: not limited
        # What this reservation got: all of it below the limit, the rest up to the limit.
        granted = min(reservation, self._per_key - (reserved - reservation))
        if len(self._key_allowance) >= _MAX_REMEMBERED:
            self._key_allowance.clear()
        self._key_allowance[key_id] = (key, max(0, granted - 1))
        return retry_after if granted <= 0 else None

    async def sign_in_wait(self, *, email: str, client: str) -> int | None:
        """Count a console sign-in attempt for this address and from this client; seconds to
        wait when the address has had more than ``sign_in_attempts_per_minute`` in the last
        minute, or the client ten times that (an office signs in from one address at nine).

        A sliding window (this minute's count plus the last minute's, weighted by how much
        of it still lies within 60 s), so a burst across a minute boundary still counts.
        """
        now = time.time()
        minute = int(now // 60)
        into_minute = now - minute * 60
        retry_after = max(1, math.ceil(60 - into_minute))
        subjects = [f"email:{_name(email.strip().lower())}", f"client:{_name(client)}"]

        async def count() -> list[float]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for subject in subjects:
                    pipe.incr(f"{_PREFIX}:sign-in:{subject}:{minute}")
                    pipe.expire(f"{_PREFIX}:sign-in:{subject}:{minute}", 120)
                    pipe.get(f"{_PREFIX}:sign-in:{subject}:{minute - 1}")
                results = await pipe.execute()
            weight = 1 - into_minute / 60
            return [
                int(results[index]) + int(results[index + 2] or 0) * weight
                for index in range(0, len(results), 3)
            ]

        made = await self._call(count)
        if made is not None and (made[0] > self._sign_ins or made[1] > 10 * self._sign_ins):
            return retry_after
        return None
