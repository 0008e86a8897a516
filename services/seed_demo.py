"""``plumbline seed-demo``: a realistic week of moderation decisions, through the real API.

It registers a source with ``POST /v1/sources``, then posts signed batches to
``POST /v1/webhooks/decisions`` exactly as a moderation platform would, so the demo also
exercises authentication, signing and intake. The data is deterministic for a given seed
and end day: moderators with a home market, shifts in the market's time zone, handling
times drawn per content type, and an action and policy mix close to a real operation.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson

from shared.core.signing import SIGNATURE_HEADER, SOURCE_HEADER, sign_payload

MAX_BATCH = 1000


@dataclass(frozen=True)
class Market:
    code: str
    time_zone: str
    share: float
    # (language, weight): Switzerland reviews German, French and Italian content.
    languages: tuple[tuple[str, float], ...]


MARKETS = (
    Market("DE", "Europe/Berlin", 0.50, (("de", 0.93), ("en", 0.07))),
    Market("AT", "Europe/Vienna", 0.15, (("de", 0.95), ("en", 0.05))),
    Market("CH", "Europe/Zurich", 0.15, (("de", 0.62), ("fr", 0.28), ("it", 0.10))),
    Market("FR", "Europe/Paris", 0.20, (("fr", 0.94), ("en", 0.06))),
)

# Content type: (weight, median handling seconds, log-normal sigma).
CONTENT_TYPES: dict[str, tuple[float, float, float]] = {
    "video": (0.38, 48.0, 0.55),
    "image": (0.27, 9.0, 0.50),
    "comment": (0.20, 7.0, 0.45),
    "text": (0.10, 14.0, 0.50),
    "live": (0.05, 75.0, 0.60),
}

# Policy code: relative frequency among enforced items.
POLICIES: dict[str, float] = {
    "spam": 0.26,
    "harassment": 0.17,
    "hate_speech": 0.14,
    "nudity": 0.12,
    "violent_graphic": 0.09,
    "misinformation": 0.08,
    "self_harm": 0.04,
    "dangerous_organizations": 0.03,
    "child_safety": 0.02,
    "ip_infringement": 0.05,
}

ACTIONS: dict[str, float] = {"approve": 0.56, "remove": 0.29, "restrict": 0.09, "escalate": 0.06}

# Shift name: local start hour; shifts are 8 hours.
SHIFTS = {"early": 6, "late": 14, "night": 22}


@dataclass(frozen=True)
class SeedOptions:
    """What to seed and where."""

    api_url: str
    admin_key: str
    days: int = 7
    moderators: int = 50
    seed: int = 7
    source_name: str = "demo-platform"
    decisions_per_shift: int = 120
    batch_size: int = MAX_BATCH
    # The seeded days end at the start of this day (UTC); default: today.
    end: datetime | None = None
    timeout_seconds: float = 60.0


@dataclass
class SeedSummary:
    """What ``seed_demo`` sent and what the API answered."""

    source_name: str
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    batches: int = 0


@dataclass(frozen=True)
class Moderator:
    moderator_id: str
    market: Market
    shift: str
    content_types: tuple[str, ...]
    # Above 1: slower than the median; error-prone moderators also over-remove a little.
    speed: float
    remove_bias: float
    work_days: frozenset[int] = field(default_factory=frozenset)


class SeedError(RuntimeError):
    """The API refused a request of the seeding."""


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def build_moderators(rng: random.Random, count: int) -> list[Moderator]:
    """``count`` moderators spread over the markets, each with a shift and specialisation."""
    moderators = []
    market_weights = {market.code: market.share for market in MARKETS}
    by_code = {market.code: market for market in MARKETS}
    for number in range(1, count + 1):
        market = by_code[_pick(rng, market_weights)]
        shift = _pick(rng, {"early": 0.45, "late": 0.40, "night": 0.15})
        # Most moderators are trained on two or three content types, not all of them.
        types = rng.sample(list(CONTENT_TYPES), k=rng.choice((2, 3, 3, 4)))
        # Five working days out of seven, staggered so weekends are covered.
        off = rng.randrange(7)
        work_days = frozenset(day for day in range(7) if day not in (off, (off + 1) % 7))
        moderators.append(
            Moderator(
                moderator_id=f"mod-{market.code.lower()}-{number:03d}",
                market=market,
                shift=shift,
                content_types=tuple(sorted(types)),
                speed=rng.lognormvariate(0.0, 0.25),
                remove_bias=rng.gauss(0.0, 0.04),
                work_days=work_days,
            )
        )
    return moderators


def _queue(market: Market, content_type: str, priority: bool) -> str:
    # Live streams and priority escalations go to their own queues, the rest by type.
    tier = "priority" if priority or content_type == "live" else "standard"
    return f"{market.code.lower()}-{content_type}-{tier}"


def _decision(
    rng: random.Random, moderator: Moderator, decided_at: datetime, event_id: str
) -> dict[str, Any]:
    content_type = rng.choice(moderator.content_types)
    _, median_seconds, sigma = CONTENT_TYPES[content_type]
    actions = dict(ACTIONS)
    actions["remove"] = max(0.05, actions["remove"] + moderator.remove_bias)
    action = _pick(rng, actions)
    labels: list[str] = []
    if action != "approve":
        labels.append(_pick(rng, POLICIES))
        if rng.random() < 0.12:  # some items break two policies at once
            second = _pick(rng, POLICIES)
            if second not in labels:
                labels.append(second)
    languages = dict(moderator.market.languages)
    seconds = rng.lognormvariate(math.log(median_seconds * moderator.speed), sigma)
    if action == "escalate":
        seconds *= 1.6  # writing up an escalation takes longer
    return {
        "event_id": event_id,
        "content_id": f"{content_type[:3]}-{rng.getrandbits(48):012x}",
        "content_type": content_type,
        "queue": _queue(moderator.market, content_type, priority=rng.random() < 0.08),
        "market": moderator.market.code,
        "language": _pick(rng, languages),
        "moderator_id": moderator.moderator_id,
        "action": action,
        "policy_labels": labels,
        "decided_at": decided_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "handling_time_ms": round(seconds * 1000),
        "metadata": {"demo": True, "shift": moderator.shift},
    }


def generate_decisions(
    *, seed: int, days: int, moderators: int, decisions_per_shift: int, end: datetime
) -> Iterator[dict[str, Any]]:
    """Decision events for ``days`` days before ``end``, in time order per shift.

    Deterministic: the same arguments always give the same events (ids included).
    """
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    people = build_moderators(rng, moderators)
    first_day = (end - timedelta(days=days)).date()
    counter = 0
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        for moderator in people:
            if day.weekday() not in moderator.work_days:
                continue
            zone = ZoneInfo(moderator.market.time_zone)
            shift_start = datetime(
                day.year, day.month, day.day, SHIFTS[moderator.shift], tzinfo=zone
            )
            # Busy and slow shifts: volume varies by about 20 % around the plan.
            planned = max(1, round(rng.gauss(decisions_per_shift, decisions_per_shift * 0.2)))
            # Spread over the 7 working hours of an 8-hour shift (one hour of breaks).
            offsets = sorted(rng.uniform(0, 7 * 3600) for _ in range(planned))
            for seconds in offsets:
                decided_at = shift_start + timedelta(seconds=seconds)
                if decided_at >= end:
                    continue  # a night shift of the last day runs past the seeded range
                counter += 1
                yield _decision(rng, moderator, decided_at, f"demo-{seed}-{counter:07d}")


def _batches(events: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)


def create_source(client: httpx.Client, admin_key: str, name: str) -> tuple[str, str]:
    """Register a source; when the name is taken, try ``name-2``, ``name-3``...

    Returns (name, secret). An existing source's secret cannot be read back, so a rerun of
    the demo gets a fresh source rather than rotating someone's secret.
    """
    for attempt in range(1, 50):
        candidate = name if attempt == 1 else f"{name}-{attempt}"
        response = client.post(
            "/v1/sources",
            json={"name": candidate},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        if response.status_code == httpx.codes.CONFLICT:
            continue
        if response.status_code != httpx.codes.CREATED:
            raise SeedError(f"POST /v1/sources: {response.status_code} {_problem(response)}")
        created = response.json()
        return str(created["name"]), str(created["secret"])
    raise SeedError(f"every source name {name}-N is taken")


def post_batch(
    client: httpx.Client, source: str, secret: str, events: list[dict[str, Any]]
) -> tuple[int, int]:
    """Sign and post one batch; returns (accepted, duplicates)."""
    body = orjson.dumps({"events": events})
    headers = {
        "Content-Type": "application/json",
        SOURCE_HEADER: source,
        SIGNATURE_HEADER: sign_payload(secret, body, int(time.time())),
    }
    response = client.post("/v1/webhooks/decisions", content=body, headers=headers)
    if response.status_code != httpx.codes.ACCEPTED:
        raise SeedError(f"POST /v1/webhooks/decisions: {response.status_code} {_problem(response)}")
    result = response.json()
    return int(result["accepted"]), int(result["duplicates"])


def seed_demo(
    options: SeedOptions,
    *,
    progress: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> SeedSummary:
    """Create a source and post the demo decisions through the API; returns the counts."""
    if not 1 <= options.batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    end = options.end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with httpx.Client(
        base_url=options.api_url, timeout=options.timeout_seconds, transport=transport
    ) as client:
        name, secret = create_source(client, options.admin_key, options.source_name)
        summary = SeedSummary(source_name=name)
        events = generate_decisions(
            seed=options.seed,
            days=options.days,
            moderators=options.moderators,
            decisions_per_shift=options.decisions_per_shift,
            end=end,
        )
        for batch in _batches(events, options.batch_size):
            accepted, duplicates = post_batch(client, name, secret, batch)
            summary.sent += len(batch)
            summary.accepted += accepted
            summary.duplicates += duplicates
            summary.batches += 1
            if progress is not None and summary.batches % 10 == 0:
                progress(f"posted {summary.sent} decisions")
    return summary
