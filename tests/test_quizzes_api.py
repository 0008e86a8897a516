"""Knowledge quizzes: answers hidden until submitting, scoring, due dates, retakes, scores."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from shared.models import AuditLogEntry, QuizAttempt, QuizRetakeGrant
from tests.conftest import auth, make_key
from tests.support.quizzes import (
    ALL_RIGHT,
    QUESTIONS,
    Sessionmaker,
    attempt,
    create_quiz,
    hours_from_now,
    quiz_body,
    reviewer_key,
)


async def attempts_stored(sessionmaker: Sessionmaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(QuizAttempt)) or 0


async def test_answers_hidden_before_submitting_and_scored_by_hand(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    quiz = await create_quiz(client, admin_key)
    assert [q["answer"] for q in quiz["questions"]] == ["hate_speech", "remove", "no"]
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    stranger = await reviewer_key(sessionmaker, "rev-9")

    seen = (await client.get(f"/v1/quizzes/{quiz['id']}", headers=auth(rev1))).json()
    assert [q["answer"] for q in seen["questions"]] == [None, None, None]
    assert seen["questions"][1]["options"] == ["approve", "remove", "restrict"]
    listed = (await client.get("/v1/quizzes", headers=auth(rev1))).json()
    assert [q["id"] for q in listed["items"]] == [quiz["id"]]
    assert all(q["answer"] is None for q in listed["items"][0]["questions"])
    assert (await client.get("/v1/quizzes", headers=auth(stranger))).json()["items"] == []
    hidden = await client.get(f"/v1/quizzes/{quiz['id']}", headers=auth(stranger))
    assert hidden.status_code == 404

    # q1 right, q2 wrong, q3 left out: 1 of 3 = 0.333 < 0.6.
    response = await attempt(client, quiz["id"], rev1, {"q1": "hate_speech", "q2": "approve"})
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["correct_count"] == 1
    assert result["question_count"] == 3
    assert result["score"] == pytest.approx(1 / 3)
    assert result["passed"] is False
    assert result["results"] == [
        {"question_id": "q1", "answer": "hate_speech", "correct_answer": "hate_speech",
         "correct": True},
        {"question_id": "q2", "answer": "approve", "correct_answer": "remove", "correct": False},
        {"question_id": "q3", "answer": None, "correct_answer": "no", "correct": False},
    ]  # fmt: skip
    # The reviewer sees the attempt (with the correct answers) again afterwards.
    own = (await client.get(f"/v1/quizzes/{quiz['id']}/attempts", headers=auth(rev1))).json()
    assert own["items"] == [result]

    # Two of three exactly at a pass mark of 2/3 passes (score >= pass mark).
    at_mark = await create_quiz(client, admin_key, pass_mark=2 / 3)
    rev2 = await reviewer_key(sessionmaker, "rev-2", role="qa_auditor")
    passed = await attempt(client, at_mark["id"], rev2, {**ALL_RIGHT, "q3": "yes"})
    assert passed.json()["passed"] is True
    assert passed.json()["score"] == pytest.approx(2 / 3)

    async with sessionmaker() as session:
        actions = list(
            await session.scalars(
                select(AuditLogEntry.action)
                .where(AuditLogEntry.entity_type == "quiz")
                .order_by(AuditLogEntry.id)
            )
        )
    assert actions == ["quiz.created", "quiz_attempt.submitted", "quiz.created",
                       "quiz_attempt.submitted"]  # fmt: skip


async def test_after_the_due_date_is_409_and_nothing_is_stored(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    quiz = await create_quiz(client, admin_key, due_at=past)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    response = await attempt(client, quiz["id"], rev1, ALL_RIGHT)
    assert response.status_code == 409
    assert "due" in response.json()["detail"]
    assert await attempts_stored(sessionmaker) == 0


async def test_second_attempt_needs_retakes_or_a_granted_retake(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    quiz = await create_quiz(client, admin_key)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    manager = await make_key(sessionmaker, "manager")
    assert (await attempt(client, quiz["id"], rev1, {"q1": "violence"})).status_code == 201
    again = await attempt(client, quiz["id"], rev1, ALL_RIGHT)
    assert again.status_code == 409
    assert await attempts_stored(sessionmaker) == 1

    grant = await client.post(
        f"/v1/quizzes/{quiz['id']}/retakes", json={"reviewer_id": "rev-1"}, headers=auth(manager)
    )
    assert grant.status_code == 201, grant.text
    twice = await client.post(
        f"/v1/quizzes/{quiz['id']}/retakes", json={"reviewer_id": "rev-1"}, headers=auth(manager)
    )
    assert twice.status_code == 409  # one unused retake at a time
    not_assigned = await client.post(
        f"/v1/quizzes/{quiz['id']}/retakes", json={"reviewer_id": "rev-9"}, headers=auth(manager)
    )
    assert not_assigned.status_code == 422
    retake = await attempt(client, quiz["id"], rev1, ALL_RIGHT)
    assert retake.status_code == 201
    assert retake.json()["passed"] is True
    assert (await attempt(client, quiz["id"], rev1, ALL_RIGHT)).status_code == 409  # grant used
    assert await attempts_stored(sessionmaker) == 2
    async with sessionmaker() as session:
        used = await session.scalar(select(QuizRetakeGrant.used_by_attempt_id))
    assert str(used) == retake.json()["id"]

    free = await create_quiz(client, admin_key, retakes_allowed=True)
    for _ in range(3):
        assert (await attempt(client, free["id"], rev1, ALL_RIGHT)).status_code == 201
    refused = await client.post(
        f"/v1/quizzes/{free['id']}/retakes", json={"reviewer_id": "rev-1"}, headers=auth(manager)
    )
    assert refused.status_code == 409


async def test_a_granted_retake_may_carry_its_own_due_date(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    quiz = await create_quiz(client, admin_key)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    assert (await attempt(client, quiz["id"], rev1, {})).status_code == 201
    late = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await client.post(
        f"/v1/quizzes/{quiz['id']}/retakes",
        json={"reviewer_id": "rev-1", "due_at": late},
        headers=auth(admin_key),
    )
    assert (await attempt(client, quiz["id"], rev1, ALL_RIGHT)).status_code == 409
    assert await attempts_stored(sessionmaker) == 1


@pytest.mark.parametrize(
    "given",
    [
        [{"question_id": "q9", "answer": "x"}],
        [{"question_id": "q1", "answer": "x"}, {"question_id": "q1", "answer": "y"}],
        [{"question_id": "q1"}],
    ],
)
async def test_answers_that_do_not_fit_are_422(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    given: list[dict[str, str]],
) -> None:
    quiz = await create_quiz(client, admin_key)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    response = await client.post(
        f"/v1/quizzes/{quiz['id']}/attempts", json={"answers": given}, headers=auth(rev1)
    )
    assert response.status_code == 422
    assert response.json()["errors"]
    assert await attempts_stored(sessionmaker) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"policy_code": None},
        {"pass_mark": 1.5},
        {"assignee_reviewer_ids": []},
        {"questions": [{**QUESTIONS[1], "answer": "ban"}]},
        {"questions": [QUESTIONS[0], QUESTIONS[0]]},
        {"questions": [{**QUESTIONS[1], "options": None}]},
        {"questions": [{**QUESTIONS[0], "answer": "Hate Speech!"}]},
        {"due_at": "2026-12-01T10:00:00"},
        {"assignee_reviewer_ids": [], "assignee_teams": ["de hate"]},
        {"assignee_reviewer_ids": [], "assignee_teams": []},
    ],
)
async def test_bad_quizzes_are_422(
    client: httpx.AsyncClient, admin_key: str, change: dict[str, Any]
) -> None:
    response = await client.post("/v1/quizzes", json=quiz_body(**change), headers=auth(admin_key))
    assert response.status_code == 422, response.text
    listed = await client.get("/v1/quizzes", headers=auth(admin_key))
    assert listed.json()["items"] == []


async def test_only_an_assignees_own_key_attempts(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    quiz = await create_quiz(client, admin_key)
    stranger = await reviewer_key(sessionmaker, "rev-9")
    assert (await attempt(client, quiz["id"], stranger, ALL_RIGHT)).status_code == 403
    assert (await attempt(client, quiz["id"], admin_key, ALL_RIGHT)).status_code == 403
    assert (await attempt(client, quiz["id"], "nope", ALL_RIGHT)).status_code == 401
    assert await attempts_stored(sessionmaker) == 0


async def _profile(client: httpx.AsyncClient, key: str, reviewer_id: str, market: str) -> None:
    response = await client.put(
        f"/v1/reviewers/{reviewer_id}",
        json={"markets": [market], "languages": ["de"]},
        headers=auth(key),
    )
    assert response.status_code in (200, 201)


async def test_market_assignment_and_scores_most_missed_first(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    # de-3 is assigned (DE) but never attempts: the completion rates count them.
    profiles = [("de-1", "DE"), ("de-2", "DE"), ("de-3", "DE"), ("at-1", "AT"), ("fr-1", "FR")]
    for reviewer_id, market in profiles:
        await _profile(client, admin_key, reviewer_id, market)
    quiz = await create_quiz(
        client,
        admin_key,
        assignee_reviewer_ids=[],
        assignee_markets=["DE", "at"],
        pass_mark=0.7,
        retakes_allowed=True,
    )
    keys = {r: await reviewer_key(sessionmaker, r) for r in ("de-1", "de-2", "at-1", "fr-1")}
    assert (await attempt(client, quiz["id"], keys["fr-1"], ALL_RIGHT)).status_code == 403
    fr_view = await client.get(f"/v1/quizzes/{quiz['id']}", headers=auth(keys["fr-1"]))
    assert fr_view.status_code == 404

    # First attempts: de-1 all right; de-2 misses q1 and q2; at-1 misses q2.
    await attempt(client, quiz["id"], keys["de-1"], ALL_RIGHT)
    await attempt(client, quiz["id"], keys["de-2"], {**ALL_RIGHT, "q1": "spam", "q2": "approve"})
    await attempt(client, quiz["id"], keys["at-1"], {**ALL_RIGHT, "q2": "restrict"})
    # de-2's retake (2 of 3, still failing at 0.7) misses q3: it must not count per question.
    await attempt(client, quiz["id"], keys["de-2"], {**ALL_RIGHT, "q3": "yes"})

    scores = (await client.get(f"/v1/quizzes/{quiz['id']}/scores", headers=auth(admin_key))).json()
    assert [(q["question_id"], q["wrong"], q["answered"]) for q in scores["questions"]] == [
        ("q2", 2, 3),
        ("q1", 1, 3),
        ("q3", 0, 3),
    ]
    assert scores["questions"][0]["wrong_share"] == pytest.approx(2 / 3)
    by_reviewer = {r["reviewer_id"]: r for r in scores["reviewers"]}
    assert by_reviewer["de-2"]["attempts"] == 2
    assert by_reviewer["de-2"]["best_score"] == pytest.approx(2 / 3)
    assert by_reviewer["de-2"]["passed"] is False
    assert by_reviewer["de-1"]["passed"] is True
    assert scores["markets"] == [
        {"market": "AT", "reviewers": 1, "passed": 0, "pass_rate": 0.0, "assigned": 1,
         "completion_rate": 1.0},
        {"market": "DE", "reviewers": 2, "passed": 1, "pass_rate": 0.5, "assigned": 3,
         "completion_rate": pytest.approx(2 / 3)},
    ]  # fmt: skip
    assert scores["teams"] == []  # no profile names a team
    # Assigned: de-1, de-2, de-3, at-1 (fr-1 is not); attempted: all but de-3.
    assert (scores["assigned"], scores["attempted"], scores["completion_rate"]) == (4, 3, 0.75)

    at_manager = await make_key(sessionmaker, "manager", markets=["AT"])
    scoped = (await client.get(f"/v1/quizzes/{quiz['id']}/scores", headers=auth(at_manager))).json()
    assert [r["reviewer_id"] for r in scoped["reviewers"]] == ["at-1"]
    assert [m["market"] for m in scoped["markets"]] == ["AT"]
    assert (scoped["assigned"], scoped["attempted"], scoped["completion_rate"]) == (1, 1, 1.0)
    assert scoped["questions"][0] == {
        "question_id": "q2", "prompt": "Which action fits?", "answered": 1, "wrong": 1,
        "wrong_share": 1.0,
    }  # fmt: skip


async def _team_profile(
    client: httpx.AsyncClient, key: str, reviewer_id: str, market: str, team: str | None
) -> None:
    response = await client.put(
        f"/v1/reviewers/{reviewer_id}",
        json={"markets": [market], "languages": ["de"], "team": team},
        headers=auth(key),
    )
    assert response.status_code in (200, 201), response.text


async def test_team_assignment_and_scores_per_team(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    profiles = [
        ("h-1", "DE", "de-hate"),
        ("h-2", "AT", "de-hate"),
        ("h-3", "DE", "de-hate"),
        ("s-1", "DE", "de-spam"),
        ("n-1", "FR", None),
    ]
    for reviewer_id, market, team in profiles:
        await _team_profile(client, admin_key, reviewer_id, market, team)
    # Assigned to the hate team, plus one reviewer of no team by id.
    quiz = await create_quiz(
        client,
        admin_key,
        assignee_reviewer_ids=["n-1"],
        assignee_teams=["de-hate"],
        pass_mark=0.6,
    )
    assert quiz["assignee_teams"] == ["de-hate"]
    assert quiz["assignee_markets"] == []
    keys = {r: await reviewer_key(sessionmaker, r) for r, _, _ in profiles}

    # Another team's reviewer: not assigned, nothing stored, the quiz is hidden.
    refused = await attempt(client, quiz["id"], keys["s-1"], ALL_RIGHT)
    assert refused.status_code == 403
    assert await attempts_stored(sessionmaker) == 0
    hidden = await client.get(f"/v1/quizzes/{quiz['id']}", headers=auth(keys["s-1"]))
    assert hidden.status_code == 404
    assert (await client.get("/v1/quizzes", headers=auth(keys["s-1"]))).json()["items"] == []
    # A team member sees the quiz (without answers) and lists it.
    seen = await client.get(f"/v1/quizzes/{quiz['id']}", headers=auth(keys["h-1"]))
    assert seen.status_code == 200
    assert [q["answer"] for q in seen.json()["questions"]] == [None, None, None]
    listed = (await client.get("/v1/quizzes", headers=auth(keys["h-2"]))).json()
    assert [q["id"] for q in listed["items"]] == [quiz["id"]]

    # h-1 3/3 passes, h-2 1/3 fails, h-3 2/3 passes (>= 0.6); n-1 (no team) passes.
    for reviewer_id, given in [
        ("h-1", ALL_RIGHT),
        ("h-2", {"q1": "hate_speech"}),
        ("h-3", {**ALL_RIGHT, "q3": "yes"}),
        ("n-1", ALL_RIGHT),
    ]:
        response = await attempt(client, quiz["id"], keys[reviewer_id], given)
        assert response.status_code == 201, response.text

    # Moving s-1 into the team assigns the quiz from then on.
    await _team_profile(client, admin_key, "s-1", "DE", "de-hate")
    moved = await attempt(client, quiz["id"], keys["s-1"], {"q2": "remove"})
    assert moved.status_code == 201
    assert moved.json()["passed"] is False

    scores = (await client.get(f"/v1/quizzes/{quiz['id']}/scores", headers=auth(admin_key))).json()
    # de-hate: h-1, h-3 passed; h-2, s-1 failed. n-1 has no team, so it counts in no team.
    assert scores["teams"] == [
        {"team": "de-hate", "reviewers": 4, "passed": 2, "pass_rate": 0.5, "assigned": 4,
         "completion_rate": 1.0},
    ]  # fmt: skip
    assert {r["reviewer_id"]: r["team"] for r in scores["reviewers"]} == {
        "h-1": "de-hate", "h-2": "de-hate", "h-3": "de-hate", "n-1": None, "s-1": "de-hate",
    }  # fmt: skip
    # DE: h-1, h-3 passed, s-1 failed; AT: h-2 failed; FR: n-1 passed.
    assert scores["markets"] == [
        {"market": "AT", "reviewers": 1, "passed": 0, "pass_rate": 0.0, "assigned": 1,
         "completion_rate": 1.0},
        {"market": "DE", "reviewers": 3, "passed": 2, "pass_rate": pytest.approx(2 / 3),
         "assigned": 3, "completion_rate": 1.0},
        {"market": "FR", "reviewers": 1, "passed": 1, "pass_rate": 1.0, "assigned": 1,
         "completion_rate": 1.0},
    ]  # fmt: skip

    # A market-scoped key counts only its markets' reviewers in the team's rate.
    at_manager = await make_key(sessionmaker, "manager", markets=["AT"])
    scoped = (await client.get(f"/v1/quizzes/{quiz['id']}/scores", headers=auth(at_manager))).json()
    assert scoped["teams"] == [
        {"team": "de-hate", "reviewers": 1, "passed": 0, "pass_rate": 0.0, "assigned": 1,
         "completion_rate": 1.0},
    ]  # fmt: skip


async def test_scores_follow_the_quizs_visibility(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    # The scores (with every question's prompt) are part of the quiz: a key that may not see
    # the quiz gets 404 for its scores too, as for the quiz itself.
    quiz = await create_quiz(client, admin_key, assignee_reviewer_ids=[], assignee_markets=["FR"])
    de_manager = auth(await make_key(sessionmaker, "manager", markets=["DE"]))
    fr_manager = auth(await make_key(sessionmaker, "manager", markets=["FR"]))
    assert (await client.get(f"/v1/quizzes/{quiz['id']}", headers=de_manager)).status_code == 404
    hidden = await client.get(f"/v1/quizzes/{quiz['id']}/scores", headers=de_manager)
    assert hidden.status_code == 404
    shown = await client.get(f"/v1/quizzes/{quiz['id']}/scores", headers=fr_manager)
    assert shown.status_code == 200


async def test_list_pages(client: httpx.AsyncClient, admin_key: str) -> None:
    created = [(await create_quiz(client, admin_key, title=f"Quiz {n}"))["id"] for n in range(3)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/quizzes", params=params, headers=auth(admin_key))).json()
        seen += [q["id"] for q in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created
    bad = await client.get("/v1/quizzes", params={"cursor": "x"}, headers=auth(admin_key))
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("role", "writes", "manages"),
    [
        ("admin", True, True),
        ("manager", True, True),
        ("policy_poc", True, False),
        ("qa_auditor", False, False),
        ("moderator", False, False),
    ],
)
async def test_roles(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    role: str,
    writes: bool,
    manages: bool,
) -> None:
    key = await make_key(sessionmaker, role, reviewer_id="someone")
    quiz = await create_quiz(client, admin_key)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    await attempt(client, quiz["id"], rev1, {})
    plan = await client.post(
        "/v1/training-plans",
        json={
            "title": "Remedial",
            "kind": "remedial",
            "owners": ["lead-1"],
            "items": [
                {
                    "id": "read",
                    "kind": "read_policy",
                    "policy_code": "hate_speech",
                    "due_at": hours_from_now(),
                }
            ],
        },
        headers=auth(admin_key),
    )
    calls = [
        ("POST", "/v1/quizzes", quiz_body(), writes, 201),
        ("GET", f"/v1/quizzes/{quiz['id']}/scores", None, writes, 200),
        ("POST", f"/v1/quizzes/{quiz['id']}/retakes", {"reviewer_id": "rev-1"}, manages, 201),
        (
            "POST",
            f"/v1/quizzes/{quiz['id']}/failures/assign-plan",
            {"plan_id": plan.json()["id"]},
            manages,
            200,
        ),
    ]
    for method, url, body, allowed, success in calls:
        response = await client.request(method, url, json=body, headers=auth(key))
        assert response.status_code == (success if allowed else 403), (url, response.text)
        assert (await client.request(method, url, json=body)).status_code == 401
    # Reading: every role may call; non-managers see only quizzes assigned to them.
    listed = await client.get("/v1/quizzes", headers=auth(key))
    assert listed.status_code == 200
    assert (len(listed.json()["items"]) > 0) is writes
    assert (await client.get("/v1/quizzes")).status_code == 401
    assert (await client.get(f"/v1/quizzes/{quiz['id']}")).status_code == 401
    assert (await client.get(f"/v1/quizzes/{quiz['id']}/attempts")).status_code == 401
    others = await client.get(
        f"/v1/quizzes/{quiz['id']}/attempts", params={"reviewer_id": "rev-1"}, headers=auth(key)
    )
    assert others.status_code == (200 if writes else 403)


async def test_concurrent_first_attempts_store_one(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    quiz = await create_quiz(client, admin_key)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    responses = await asyncio.gather(
        *(attempt(client, quiz["id"], rev1, ALL_RIGHT) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert await attempts_stored(sessionmaker) == 1
