"""A quiz attempt does not reveal the correct answers while a retake is possible (issue 7, 3).

Found on the landed code: every attempt's result listed each question's correct answer, so
on a quiz with retakes the second attempt copied them and scored 1.0.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from shared.models import Quiz
from shared.models.base import utcnow
from tests.conftest import auth, make_key
from tests.support.quizzes import ALL_RIGHT, Sessionmaker, attempt, create_quiz, reviewer_key

WRONG = {"q1": "spam", "q2": "approve", "q3": "yes"}
# What a reviewer who answered WRONG must not learn while they can try again.
SECRETS = ("hate_speech", "remove", '"no"')


def assert_hidden(result: dict[str, Any]) -> None:
    assert result["answers_shown"] is False
    assert [r["correct_answer"] for r in result["results"]] == [None, None, None]
    assert [r["correct"] for r in result["results"]] == [None, None, None]
    assert [r["answer"] for r in result["results"]] == ["spam", "approve", "yes"]
    text = str(result).replace("'", '"')
    assert not any(secret in text for secret in SECRETS)


async def own_attempts(client: httpx.AsyncClient, quiz_id: str, key: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/quizzes/{quiz_id}/attempts", headers=auth(key))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_free_retakes_hide_the_answers_until_the_due_date(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    quiz = await create_quiz(client, admin_key, retakes_allowed=True)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    first = await attempt(client, quiz["id"], rev1, WRONG)
    assert first.status_code == 201, first.text
    assert first.json()["score"] == 0
    assert_hidden(first.json())
    [listed] = await own_attempts(client, quiz["id"], rev1)
    assert_hidden(listed)
    # Quiz managers see the answers at any time.
    manager = await make_key(sessionmaker, "manager")
    [seen] = await own_attempts(client, quiz["id"], manager)
    assert seen["answers_shown"] is True
    assert [r["correct_answer"] for r in seen["results"]] == ["hate_speech", "remove", "no"]

    # Once the quiz is due, no attempt is possible any more: the answers are shown.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Quiz)
            .where(Quiz.id == uuid.UUID(quiz["id"]))
            .values(due_at=utcnow() - timedelta(minutes=1))
        )
    [after_due] = await own_attempts(client, quiz["id"], rev1)
    assert after_due["answers_shown"] is True
    assert [r["correct"] for r in after_due["results"]] == [False, False, False]
    assert [r["correct_answer"] for r in after_due["results"]] == ["hate_speech", "remove", "no"]


async def test_a_pending_granted_retake_hides_the_answers(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    quiz = await create_quiz(client, admin_key)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    manager = await make_key(sessionmaker, "manager")
    granted = await client.post(
        f"/v1/quizzes/{quiz['id']}/retakes", json={"reviewer_id": "rev-1"}, headers=auth(manager)
    )
    assert granted.status_code == 201, granted.text
    # A retake is pending when the first attempt is scored: nothing per question.
    first = await attempt(client, quiz["id"], rev1, WRONG)
    assert first.status_code == 201, first.text
    assert_hidden(first.json())
    # The retake uses the grant; no attempt is left, so now the answers are shown.
    second = await attempt(client, quiz["id"], rev1, ALL_RIGHT)
    assert second.status_code == 201, second.text
    assert second.json()["answers_shown"] is True
    assert second.json()["score"] == 1
    listed = await own_attempts(client, quiz["id"], rev1)
    assert [a["answers_shown"] for a in listed] == [True, True]


async def test_without_retakes_the_only_attempt_shows_the_answers(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    quiz = await create_quiz(client, admin_key)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    result = (await attempt(client, quiz["id"], rev1, WRONG)).json()
    assert result["answers_shown"] is True
    assert [r["correct_answer"] for r in result["results"]] == ["hate_speech", "remove", "no"]
    assert (await attempt(client, quiz["id"], rev1, ALL_RIGHT)).status_code == 409
