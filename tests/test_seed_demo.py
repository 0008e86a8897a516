"""The demo seeder: deterministic, valid decision events; signed batches as DESIGN.md says."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import orjson

from services.seed_demo import SeedOptions, generate_decisions, seed_demo
from shared.core.signing import verify_signature
from shared.schemas.decisions import DecisionEvent

END = datetime(2026, 11, 23, tzinfo=UTC)


def _events(seed: int = 7) -> list[dict[str, object]]:
    return list(
        generate_decisions(seed=seed, days=7, moderators=20, decisions_per_shift=30, end=END)
    )


def test_generation_is_deterministic_and_seed_dependent() -> None:
    assert _events() == _events()
    assert _events(seed=8) != _events()


def test_events_are_valid_and_realistic() -> None:
    events = _events()
    parsed = [DecisionEvent.model_validate(event) for event in events]
    assert len({event.event_id for event in parsed}) == len(parsed)
    assert all(event.decided_at < END for event in parsed)
    assert min(event.decided_at for event in parsed).date() >= datetime(2026, 11, 15).date()
    assert {event.market for event in parsed} <= {"DE", "AT", "CH", "FR"}
    assert all(event.queue.startswith(event.market.lower() + "-") for event in parsed)
    actions = Counter(event.action for event in parsed)
    assert actions["approve"] > actions["remove"] > actions["escalate"] > 0
    assert all(event.policy_labels == [] for event in parsed if event.action == "approve")
    assert all(event.policy_labels for event in parsed if event.action != "approve")
    assert len({event.moderator_id for event in parsed}) <= 20
    video = sorted(e.handling_time_ms or 0 for e in parsed if e.content_type == "video")
    comments = sorted(e.handling_time_ms or 0 for e in parsed if e.content_type == "comment")
    assert video[len(video) // 2] > comments[len(comments) // 2]


def test_seed_demo_creates_a_source_and_posts_signed_batches() -> None:
    secret = "whsec-demo"
    received: list[int] = []
    names: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sources":
            assert request.headers["Authorization"] == "Bearer admin-key"
            name = orjson.loads(request.content)["name"]
            names.append(name)
            if name == "demo-platform":  # taken: the seeder must pick another name
                return httpx.Response(409, json={"title": "Conflict"})
            return httpx.Response(201, json={"id": "x", "name": name, "secret": secret})
        assert request.url.path == "/v1/webhooks/decisions"
        assert request.headers["X-Plumbline-Source"] == "demo-platform-2"
        assert verify_signature(
            [secret],
            request.headers["X-Plumbline-Signature"],
            request.content,
            now=int(time.time()),
            tolerance=300,
        )
        events = orjson.loads(request.content)["events"]
        assert 1 <= len(events) <= 250
        received.append(len(events))
        return httpx.Response(202, json={"accepted": len(events), "duplicates": 0})

    summary = seed_demo(
        SeedOptions(
            api_url="http://api.test",
            admin_key="admin-key",
            days=2,
            moderators=5,
            decisions_per_shift=60,
            batch_size=250,
            end=END,
        ),
        transport=httpx.MockTransport(handle),
    )
    assert names == ["demo-platform", "demo-platform-2"]
    assert summary.source_name == "demo-platform-2"
    assert summary.sent == summary.accepted == sum(received) > 250
    assert summary.batches == len(received)
