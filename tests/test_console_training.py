"""Console quizzes and training over real HTTP: writing a quiz, an assignee taking it
without the answer key, scores, retakes and remedial plans, plan progress and who is
overdue; the API's roles and CSRF."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import (
    Quiz,
    QuizAttempt,
    QuizRetakeGrant,
    TrainingItemProgress,
    TrainingPlan,
)
from tests.conftest import LiveServer
from tests.support.console import make_person
from tests.support.console_lead import (
    location,
    people,
    rows,
    signed_in,
    stored_plan,
    stored_quiz,
    text_of,
)

Sessionmaker = async_sessionmaker[AsyncSession]
NONE = "\u2013"  # what a page writes for "no value"


def quiz_form(**overrides: str) -> dict[str, str]:
    form = {
        "title": "Hate speech update",
        "policy_code": "hate_speech",
        "policy_update_id": "",
        "q0-kind": "label",
        "q0-content": "vid-1",
        "q0-prompt": "Label this video.",
        "q0-options": "",
        "q0-answer": "hate_speech",
        "q1-kind": "choice",
        "q1-content": "",
        "q1-prompt": "Which action fits?",
        "q1-options": "approve\nremove\nrestrict",
        "q1-answer": "remove",
        "pass_mark": "60",
        "due_at": "",
        "assignee_reviewer_ids": "rev-1, rev-2",
        "assignee_markets": "",
        "assignee_teams": "",
    }
    form.update(overrides)
    return form


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def count(sessionmaker: Sessionmaker, model: Any) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_manager_writes_a_quiz_from_the_form(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    who = await people(sessionmaker, lead="manager")
    async with signed_in(live_server.url, who["lead"]) as console:
        form = await console.page("/console/training/quizzes/new")
        assert form.status_code == 200
        assert 'for="q0-prompt"' in form.text
        created = await console.post("/console/training/quizzes", quiz_form())
        path = location(created)
        quiz = await console.page(path)
        assert quiz.status_code == 200
        # A quiz manager sees the answers and the scores.
        assert rows(quiz.text, "questions") == [
            ["Label this video. vid-1", NONE, "hate_speech"],
            ["Which action fits?", "approve, remove, restrict", "remove"],
        ]
        assert "Nobody has taken this quiz yet." in quiz.text
        overview = await console.page("/console/training")
        [listed] = rows(overview.text, "quiz-list")
        assert listed[:4] == ["Hate speech update", "hate_speech", "2", "60%"]
    async with sessionmaker() as session:
        stored = await session.scalar(select(Quiz))
    assert stored is not None
    assert stored.pass_mark == 0.6
    assert [q["id"] for q in stored.questions] == ["q1", "q2"]
    assert stored.assignee_reviewer_ids == ["rev-1", "rev-2"]


async def test_a_bad_quiz_form_comes_back_with_the_reasons_and_nothing_is_stored(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    who = await people(sessionmaker, poc=("policy_poc", "poc-1"))
    async with signed_in(live_server.url, who["poc"]) as console:
        await console.page("/console/training/quizzes/new")
        nobody = await console.post(
            "/console/training/quizzes", quiz_form(assignee_reviewer_ids="")
        )
        assert nobody.status_code == 422
        assert "a quiz needs assignees" in nobody.text
        # What was typed stays.
        assert 'value="Label this video."' in nobody.text
        off = await console.post("/console/training/quizzes", quiz_form(**{"q1-answer": "ban"}))
        assert off.status_code == 422
        assert "the answer must be one of the options" in off.text
        mark = await console.post("/console/training/quizzes", quiz_form(pass_mark="lots"))
        assert mark.status_code == 422
        none = await console.post(
            "/console/training/quizzes", quiz_form(**{"q0-prompt": "", "q1-prompt": ""})
        )
        assert none.status_code == 422
    assert await count(sessionmaker, Quiz) == 0


async def test_an_assignee_takes_the_quiz_and_sees_the_key_only_when_no_attempt_is_left(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    quiz_id = await stored_quiz(sessionmaker)
    who = await people(sessionmaker, rev=("qa_auditor", "rev-1"))
    path = f"/console/training/quizzes/{quiz_id}"
    async with signed_in(live_server.url, who["rev"]) as console:
        before = await console.page(path)
        assert before.status_code == 200
        assert "Submit answers" in before.text
        # The label question's answer is nowhere on the page before submitting.
        assert "hate_speech" not in text_of(before.text).replace("About hate_speech", "")
        assert "Correct answer" not in before.text
        blank = await console.post(f"{path}/attempts", {})
        assert blank.status_code == 422
        assert await count(sessionmaker, QuizAttempt) == 0
        done = await console.post(
            f"{path}/attempts", {"answer-0": "harassment", "answer-1": "remove", "answer-2": "no"}
        )
        assert location(done) == f"{path}#attempts"
        after = await console.page(path)
        assert "67%" in after.text
        assert "Passed" in after.text
        # Retakes are off: no attempt is left, so the correct answers are shown.
        assert "Correct answer" in after.text
        assert ["Label this video.", "harassment", "hate_speech"] in rows(after.text)
        assert "Submit answers" not in after.text
        again = await console.post(f"{path}/attempts", {"answer-0": "hate_speech"})
        assert again.status_code == 409
        assert "retakes are off" in again.text
    assert await count(sessionmaker, QuizAttempt) == 1


async def test_with_retakes_open_the_score_is_shown_but_not_the_answers(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    quiz_id = await stored_quiz(sessionmaker, retakes_allowed=True)
    who = await people(sessionmaker, rev=("moderator", "rev-2"))
    path = f"/console/training/quizzes/{quiz_id}"
    async with signed_in(live_server.url, who["rev"]) as console:
        await console.page(path)
        await console.post(f"{path}/attempts", {"answer-0": "spam", "answer-1": "approve"})
        after = await console.page(path)
        assert "0%" in text_of(after.text)
        assert "Not passed" in after.text
        assert (
            "The correct answers are shown once you cannot attempt this quiz again." in after.text
        )
        assert "Correct answer" not in after.text
        assert "hate_speech" not in text_of(after.text).replace("About hate_speech", "")
        assert "Take it again" in after.text


async def test_a_manager_grants_a_retake_and_adds_who_failed_to_a_remedial_plan(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    quiz_id = await stored_quiz(sessionmaker)
    plan_id = await stored_plan(
        sessionmaker,
        assignees=[],
        items=[
            {
                "id": "read",
                "kind": "read_policy",
                "policy_code": "hate_speech",
                "due_at": in_days(7),
            }
        ],
    )
    who = await people(sessionmaker, lead="manager", rev=("qa_auditor", "rev-1"))
    path = f"/console/training/quizzes/{quiz_id}"
    async with signed_in(live_server.url, who["rev"]) as rev:
        await rev.page(path)
        await rev.post(f"{path}/attempts", {"answer-0": "spam"})
    async with signed_in(live_server.url, who["lead"]) as lead:
        page = await lead.page(path)
        assert rows(page.text, "reviewer-scores") == [["rev-1", NONE, "1", "0%", "no"]]
        stranger = await lead.post(f"{path}/retakes", {"reviewer_id": "rev-9", "due_at": ""})
        assert stranger.status_code == 422
        assert "not an assignee" in stranger.text
        assert await count(sessionmaker, QuizRetakeGrant) == 0
        granted = await lead.post(f"{path}/retakes", {"reviewer_id": "rev-1", "due_at": ""})
        assert location(granted) == f"{path}#scores"
        twice = await lead.post(f"{path}/retakes", {"reviewer_id": "rev-1", "due_at": ""})
        assert twice.status_code == 409
        assert await count(sessionmaker, QuizRetakeGrant) == 1
        assigned = await lead.post(f"{path}/assign-plan", {"plan_id": str(plan_id)})
        assert location(assigned) == f"/console/training/plans/{plan_id}"
        plan = await lead.page(location(assigned))
        assert [row[0] for row in rows(plan.text, "progress")] == ["rev-1"]
        bad = await lead.post(f"{path}/assign-plan", {"plan_id": "not-a-plan"})
        assert bad.status_code == 422
    # The retake is open again for rev-1: the form is back, without the answers.
    async with signed_in(live_server.url, who["rev"]) as rev:
        page = await rev.page(path)
        assert "Take it again" in page.text
        assert "Correct answer" not in page.text


async def test_managers_see_plan_progress_and_who_is_overdue(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    plan_id = await stored_plan(
        sessionmaker,
        assignees=["rev-1", "rev-2"],
        items=[
            {
                "id": "read",
                "kind": "read_policy",
                "policy_code": "hate_speech",
                "due_at": in_days(-2),
            },
            {"id": "shadow", "kind": "shadow_audits", "count": 5, "due_at": in_days(10)},
        ],
    )
    who = await people(sessionmaker, lead="manager", rev=("qa_auditor", "rev-1"))
    plan_path = f"/console/training/plans/{plan_id}"
    async with signed_in(live_server.url, who["lead"]) as lead:
        overview = await lead.page("/console/training")
        overdue = rows(overview.text, "overdue-list")
        assert [(row[0], row[2]) for row in overdue] == [
            ("rev-1", "read (read_policy)"),
            ("rev-2", "read (read_policy)"),
        ]
        plan = await lead.page(plan_path)
        progress = {row[0]: row[1:3] for row in rows(plan.text, "progress")}
        assert progress == {"rev-1": ["0 / 2", "1"], "rev-2": ["0 / 2", "1"]}
        # A manager marks rev-2's reading done on their behalf.
        done = await lead.post(f"{plan_path}/complete", {"item_id": "read", "reviewer_id": "rev-2"})
        assert location(done) == plan_path
        again = await lead.post(
            f"{plan_path}/complete", {"item_id": "read", "reviewer_id": "rev-2"}
        )
        assert again.status_code == 409
        overview = await lead.page("/console/training")
        assert [row[0] for row in rows(overview.text, "overdue-list")] == ["rev-1"]
    async with signed_in(live_server.url, who["rev"]) as rev:
        overview = await rev.page("/console/training")
        # Not a plan manager: no overdue list, only the plans assigned to them.
        assert 'id="overdue-list"' not in overview.text
        assert [row[0] for row in rows(overview.text, "plan-list")] == ["DE hate speech refresher"]
        own = await rev.page(plan_path)
        assert [row[0] for row in rows(own.text, "progress")] == ["rev-1"]
        # Their own reading, they mark done themselves; another's they may not.
        other = await rev.post(f"{plan_path}/complete", {"item_id": "read", "reviewer_id": "rev-2"})
        assert other.status_code == 403
        mine = await rev.post(f"{plan_path}/complete", {"item_id": "read", "reviewer_id": ""})
        assert location(mine) == plan_path
    async with sessionmaker() as session:
        open_items = await session.scalar(
            select(func.count())
            .select_from(TrainingItemProgress)
            .where(TrainingItemProgress.completed_at.is_(None))
        )
    assert open_items == 2


async def test_roles_and_csrf_are_refused_as_the_api_refuses_them(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    quiz_id = await stored_quiz(sessionmaker)
    plan_id = await stored_plan(
        sessionmaker,
        assignees=["rev-1"],
        items=[
            {
                "id": "read",
                "kind": "read_policy",
                "policy_code": "hate_speech",
                "due_at": in_days(3),
            }
        ],
    )
    path = f"/console/training/quizzes/{quiz_id}"
    who = await people(
        sessionmaker,
        outsider=("moderator", "rev-9"),
        poc=("policy_poc", "poc-1"),
        rev=("qa_auditor", "rev-1"),
    )
    async with signed_in(live_server.url, who["outsider"]) as outsider:
        # Not assigned: the quiz is as unknown as a missing one; no writing, no plans.
        assert (await outsider.page(path)).status_code == 404
        assert (await outsider.page("/console/training/quizzes/new")).status_code == 403
        assert (await outsider.page(f"/console/training/plans/{plan_id}")).status_code == 403
        await outsider.page("/console/training")
        assert (await outsider.post("/console/training/quizzes", quiz_form())).status_code == 403
    async with signed_in(live_server.url, who["poc"]) as poc:
        # Policy POCs write quizzes and see answers, but retakes are for managers and admins.
        page = await poc.page(path)
        assert "Grant retake" not in page.text
        refused = await poc.post(f"{path}/retakes", {"reviewer_id": "rev-1"})
        assert refused.status_code == 403
    async with signed_in(live_server.url, who["rev"]) as rev:
        await rev.page(path)
        forged = await rev.http.post(f"{path}/attempts", data={"answer-0": "hate_speech"})
        assert forged.status_code == 403
        wrong = await rev.http.post(
            f"{path}/attempts", data={"answer-0": "hate_speech", "csrf_token": "guess"}
        )
        assert wrong.status_code == 403
    assert await count(sessionmaker, QuizAttempt) == 0
    assert await count(sessionmaker, QuizRetakeGrant) == 0


async def test_a_manager_writes_a_training_plan_from_the_form(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    quiz_id = await stored_quiz(sessionmaker)
    who = await people(sessionmaker, lead=("manager", "lead-1"), rev=("qa_auditor", "rev-1"))
    due = (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%d %H:%M")
    form = {
        "title": "Hate speech onboarding",
        "kind": "onboarding",
        "owners": "lead-1",
        "assignees": "rev-1, rev-2",
        "items": f"read, read_policy, hate_speech, {due}\nquiz, pass_quiz, {quiz_id}, {due}\n"
        f"shadow, shadow_audits, 20, {due}, hate_speech",
    }
    async with signed_in(live_server.url, who["rev"]) as rev:
        assert (await rev.page("/console/training/plans/new")).status_code == 403
    async with signed_in(live_server.url, who["lead"]) as lead:
        page = await lead.page("/console/training/plans/new")
        assert 'value="lead-1"' in page.text
        for bad_items, reason in (
            (f"read, read_policy, hate_speech, {due}, extra", "unexpected"),
            (f"quiz, pass_quiz, {uuid.uuid4()}, {due}", "does not exist"),
            ("read, read_policy, hate_speech, next week", "due_at"),
            (f"read, read_poilcy, hate_speech, {due}", "kind"),
        ):
            refused = await lead.post("/console/training/plans", {**form, "items": bad_items})
            assert refused.status_code == 422, bad_items
            assert reason in refused.text
            assert 'value="Hate speech onboarding"' in refused.text
        assert await count(sessionmaker, TrainingPlan) == 0
        created = await lead.post("/console/training/plans", form)
        plan = await lead.page(location(created))
        assert [row[:2] for row in rows(plan.text, "plan-items")] == [
            ["read", "Read a policy"],
            ["quiz", "Pass a quiz"],
            ["shadow", "Shadow audits"],
        ]
        assert [row[0] for row in rows(plan.text, "progress")] == ["rev-1", "rev-2"]
        overview = await lead.page("/console/training")
        assert ["Hate speech onboarding", "Onboarding", "3", "2", "lead-1"] in rows(
            overview.text, "plan-list"
        )


async def test_a_german_assignee_takes_the_quiz_in_german(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    quiz_id = await stored_quiz(sessionmaker)
    rev = await make_person(sessionmaker, "qa_auditor", reviewer_id="rev-1", language="de")
    path = f"/console/training/quizzes/{quiz_id}"
    async with signed_in(live_server.url, rev) as console:
        page = await console.page(path)
        assert "Antworten abgeben" in page.text
        await console.post(f"{path}/attempts", {"answer-0": "hate_speech", "answer-1": "remove"})
        after = await console.page(path)
        assert "Bestanden" in after.text
        assert "2 von 3 richtig" in after.text
        assert "Richtige Antwort" in after.text
