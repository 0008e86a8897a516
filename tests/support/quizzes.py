"""Builders for knowledge quizzes: a three-question quiz, answers, reviewer keys, attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import auth, make_key

Sessionmaker = async_sessionmaker[AsyncSession]

QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "q1",
        "kind": "label",
        "prompt": "Label this video.",
        "content_id": "vid-1",
        "answer": "hate_speech",
    },
    {
        "id": "q2",
        "kind": "choice",
        "prompt": "Which action fits?",
        "options": ["approve", "remove", "restrict"],
        "answer": "remove",
    },
    {
        "id": "q3",
        "kind": "choice",
        "prompt": "Is satire exempt?",
        "options": ["yes", "no"],
        "answer": "no",
    },
]


ALL_RIGHT = {"q1": "hate_speech", "q2": "remove", "q3": "no"}


def hours_from_now(hours: int = 24) -> str:
    """An ISO 8601 instant ``hours`` from now (UTC)."""
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def quiz_body(**overrides: Any) -> dict[str, Any]:
    """A valid quiz (``QUESTIONS``) for rev-1 and rev-2, due in a day."""
    body: dict[str, Any] = {
        "title": "Hate speech update",
        "policy_code": "hate_speech",
        "questions": QUESTIONS,
        "pass_mark": 0.6,
        "assignee_reviewer_ids": ["rev-1", "rev-2"],
        "due_at": hours_from_now(),
    }
    body.update(overrides)
    return body


async def create_quiz(client: httpx.AsyncClient, key: str, **overrides: Any) -> dict[str, Any]:
    """Create ``quiz_body(**overrides)`` with ``key``; the stored quiz."""
    response = await client.post("/v1/quizzes", json=quiz_body(**overrides), headers=auth(key))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def answers(**given: str) -> dict[str, Any]:
    """An attempt body from question id → answer."""
    return {"answers": [{"question_id": q, "answer": a} for q, a in given.items()]}


async def reviewer_key(
    sessionmaker: Sessionmaker, reviewer_id: str, role: str = "moderator"
) -> str:
    """A key of ``role`` bound to reviewer ``reviewer_id``."""
    return await make_key(sessionmaker, role, reviewer_id=reviewer_id)


async def attempt(
    client: httpx.AsyncClient, quiz_id: str, key: str, given: dict[str, str]
) -> httpx.Response:
    """Submit ``given`` (question id → answer) as an attempt on ``quiz_id``."""
    return await client.post(
        f"/v1/quizzes/{quiz_id}/attempts", json=answers(**given), headers=auth(key)
    )
