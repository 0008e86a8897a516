"""The demo seeder: deterministic, valid decision events; signed batches as DESIGN.md says;
against a real ``plumbline run``, every report filled once, however often it runs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.seed_demo import (
    CALIBRATION_TITLE,
    POLICY_UPDATE_TITLE,
    QUIZ_TITLE,
    TRAINING_PLAN_TITLE,
    SeedOptions,
    generate_decisions,
    seed_demo,
)
from shared.core.signing import verify_signature
from shared.schemas.decisions import DecisionEvent
from tests.support.plumbline_run import (
    ADMIN_KEY,
    REPO_ROOT,
    free_port,
    run_environment,
    start_run,
    stop_and_check,
    wait_ready,
)

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


def test_seed_demo_reuses_its_source_and_posts_signed_batches() -> None:
    secret = "whsec-rotated"
    received: list[int] = []
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path.startswith("/v1/sources"):
            assert request.headers["Authorization"] == "Bearer admin-key"
        if request.url.path == "/v1/sources" and request.method == "POST":
            # The demo source exists (an earlier run): its secret is rotated, not a new source.
            return httpx.Response(409, json={"title": "Conflict"})
        if request.url.path == "/v1/sources":
            items = [{"id": "other", "name": "other"}, {"id": "src-1", "name": "demo-platform"}]
            return httpx.Response(200, json={"items": items, "next_cursor": None})
        if request.url.path == "/v1/sources/src-1/rotate-secret":
            assert orjson.loads(request.content) == {"grace_period_seconds": 0}
            return httpx.Response(
                200, json={"id": "src-1", "name": "demo-platform", "secret": secret}
            )
        assert request.url.path == "/v1/webhooks/decisions"
        assert request.headers["X-Plumbline-Source"] == "demo-platform"
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
            decisions_only=True,
        ),
        transport=httpx.MockTransport(handle),
    )
    assert calls[:3] == [
        "POST /v1/sources",
        "GET /v1/sources",
        "POST /v1/sources/src-1/rotate-secret",
    ]
    assert summary.source_name == "demo-platform"
    assert summary.sent == summary.accepted == sum(received) > 250
    assert summary.batches == len(received)


@pytest.fixture
def base_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with run_environment(tmp_path) as env:
        yield env


def _seed(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "seed-demo", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_unreachable_api_is_one_line_and_exit_code_1(base_env: dict[str, str]) -> None:
    # Nothing listens there: the port comes from the same setting `plumbline run` reads.
    port = free_port()
    env = {**base_env, "PLUMBLINE_API_PORT": str(port), "PLUMBLINE_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}
    result = _seed(env)
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in result.stderr


def _snapshot(client: httpx.Client) -> dict[str, Any]:
    """What the reports are made of, counted through the API."""

    def every(path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {**params, "limit": 1000}
        while True:
            response = client.get(path, params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["items"])
            if not page["next_cursor"]:
                return items
            query["cursor"] = page["next_cursor"]

    quizzes = every("/v1/quizzes")
    policy_updates = every("/v1/policy-updates")
    readers = [
        client.get(f"/v1/policy-updates/{u['id']}/acknowledgements").json()
        for u in policy_updates
        if u["status"] == "published"
    ]
    return {
        "decisions": len(every("/v1/decisions")),
        "sources": len(every("/v1/sources")),
        "reviewers": sorted(r["id"] for r in every("/v1/reviewers")),
        "plans": sorted(p["market"] for p in every("/v1/sampling-plans")),
        "audits": len(every("/v1/audits")),
        "judged": len(every("/v1/audits", status="completed")),
        "disagreements": Counter(d["status"] for d in every("/v1/disagreements")),
        "calibrations": [(c["title"], c["status"]) for c in every("/v1/calibrations")],
        "quizzes": [q["title"] for q in quizzes],
        "attempts": sum(len(every(f"/v1/quizzes/{q['id']}/attempts")) for q in quizzes),
        "training_plans": [p["title"] for p in every("/v1/training-plans")],
        "policy_updates": [
            (u["title"], u["status"], sorted(u["translations"])) for u in policy_updates
        ],
        "acknowledged": sum(len(r["acknowledged"]) for r in readers),
        "pending": sum(len(r["pending"]) for r in readers),
        "policy_questions": Counter(q["status"] for q in every("/v1/policy-questions")),
    }


def test_seed_demo_fills_every_report_once(base_env: dict[str, str], tmp_path: Path) -> None:
    env = {**base_env, "PLUMBLINE_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}
    run = start_run(env, tmp_path, "seed")
    try:
        wait_ready(run)
        # No --api-url: seed-demo finds the API where `plumbline run` put it.
        seed_env = {**env, "PLUMBLINE_API_PORT": run.base_url.rsplit(":", 1)[1]}
        first = _seed(seed_env, "--days", "3", "--moderators", "12")
        assert first.returncode == 0, first.stdout + first.stderr
        with httpx.Client(
            base_url=run.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as client:
            seeded = _snapshot(client)
            assert seeded["decisions"] > 0
            assert seeded["sources"] == 1
            assert "qa-dach-1" in seeded["reviewers"]
            assert any(r.startswith("mod-") for r in seeded["reviewers"])
            assert seeded["plans"] == ["AT", "CH", "DE", "FR"]
            assert seeded["judged"] == seeded["audits"] > 0
            assert seeded["disagreements"]["upheld"] == 1
            assert seeded["disagreements"]["overturned"] == 1
            assert seeded["calibrations"] == [(CALIBRATION_TITLE, "closed")]
            assert seeded["quizzes"] == [QUIZ_TITLE]
            assert seeded["attempts"] == 2
            assert seeded["training_plans"] == [TRAINING_PLAN_TITLE]
            # The policy POC's side: one update published (with a German translation),
            # read by some of its reviewers; one question answered, one open.
            assert seeded["policy_updates"] == [(POLICY_UPDATE_TITLE, "published", ["de"])]
            assert seeded["acknowledged"] > 0
            assert seeded["pending"] > 0
            assert seeded["policy_questions"] == {"answered": 1, "open": 1}
            # Every temporary key of the run is revoked again: only the admin key works.
            keys = client.get("/v1/api-keys", params={"limit": 1000}).json()["items"]
            temporary = [k for k in keys if k["name"].startswith("seed-demo")]
            assert temporary
            assert all(k["revoked_at"] is not None for k in temporary)

            second = _seed(seed_env, "--days", "3", "--moderators", "12")
            assert second.returncode == 0, second.stdout + second.stderr
            assert _snapshot(client) == seeded
    except BaseException:
        run.process.kill()
        raise
    stop_and_check(run)
