"""Knowledge quizzes (questions, attempts, retake grants) and training plans (items, progress)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id

QUESTION_KINDS = ("label", "choice")
PLAN_KINDS = ("onboarding", "remedial")
PLAN_ITEM_KINDS = ("read_policy", "pass_quiz", "shadow_audits")


class Quiz(CreatedAtMixin, Base):
    """A knowledge check about a policy code or a policy update, assigned to reviewers.

    ``questions`` is a JSON list of ``{id, kind, prompt, content_id, options, answer}``; the
    answers never leave the API to an assignee before they submit an attempt.
    """

    __tablename__ = "quizzes"
    __table_args__ = (
        CheckConstraint("pass_mark >= 0 AND pass_mark <= 1", name="pass_mark"),
        CheckConstraint("policy_code IS NOT NULL OR policy_update_id IS NOT NULL", name="subject"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(Text)
    policy_code: Mapped[str | None] = mapped_column(String(64), index=True)
    # No policy-update table exists yet: the update's id is kept as text.
    policy_update_id: Mapped[str | None] = mapped_column(String(128), index=True)
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    pass_mark: Mapped[float] = mapped_column(Float)
    assignee_reviewer_ids: Mapped[list[str]] = mapped_column(
        ARRAY(String(128)), default=list, server_default="{}"
    )
    # A market assignment covers every reviewer whose profile lists the market.
    assignee_markets: Mapped[list[str]] = mapped_column(
        ARRAY(String(2)), default=list, server_default="{}"
    )
    # A team assignment covers every reviewer whose profile names the team.
    assignee_teams: Mapped[list[str]] = mapped_column(
        ARRAY(String(64)), default=list, server_default="{}"
    )
    due_at: Mapped[datetime | None]
    retakes_allowed: Mapped[bool] = mapped_column(default=False, server_default="false")
    created_by: Mapped[str | None] = mapped_column(String(64))


class QuizAttempt(CreatedAtMixin, Base):
    """One submitted, scored attempt of a reviewer at a quiz (``created_at``: when submitted)."""

    __tablename__ = "quiz_attempts"
    __table_args__ = (
        Index("ix_quiz_attempts_quiz_id_reviewer_id", "quiz_id", "reviewer_id", "created_at"),
        CheckConstraint("score >= 0 AND score <= 1", name="score"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    quiz_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"))
    reviewer_id: Mapped[str] = mapped_column(String(128))
    # {question id: the answer given}; questions left out are counted wrong.
    answers: Mapped[dict[str, str]] = mapped_column(JSONB)
    correct_count: Mapped[int]
    question_count: Mapped[int]
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool]
    retake_grant_id: Mapped[uuid.UUID | None]


class QuizRetakeGrant(CreatedAtMixin, Base):
    """One more attempt for a reviewer at a quiz without free retakes (used by one attempt)."""

    __tablename__ = "quiz_retake_grants"
    __table_args__ = (
        # At most one unused grant per reviewer and quiz.
        Index(
            "uq_quiz_retake_grants_unused",
            "quiz_id",
            "reviewer_id",
            unique=True,
            postgresql_where=text("used_by_attempt_id IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    quiz_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"))
    reviewer_id: Mapped[str] = mapped_column(String(128))
    # The retake's own due date (null: the quiz's).
    due_at: Mapped[datetime | None]
    granted_by: Mapped[str | None] = mapped_column(String(64))
    used_by_attempt_id: Mapped[uuid.UUID | None]


class TrainingPlan(CreatedAtMixin, Base):
    """An onboarding or remedial plan: items for its assignees, looked after by its owners."""

    __tablename__ = "training_plans"
    __table_args__ = (CheckConstraint("kind IN ('onboarding', 'remedial')", name="kind"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    owners: Mapped[list[str]] = mapped_column(ARRAY(String(128)), default=list, server_default="{}")
    created_by: Mapped[str | None] = mapped_column(String(64))


class TrainingPlanItem(Base):
    """One thing to do in a plan: read a policy, pass a quiz, or shadow ``count`` audits."""

    __tablename__ = "training_plan_items"
    __table_args__ = (
        CheckConstraint("kind IN ('read_policy', 'pass_quiz', 'shadow_audits')", name="kind"),
        Index("ix_training_plan_items_quiz_id", "quiz_id"),
    )

    plan_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("training_plans.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    policy_code: Mapped[str | None] = mapped_column(String(64))
    quiz_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("quizzes.id"))
    count: Mapped[int | None]
    due_at: Mapped[datetime]


class TrainingItemProgress(Base):
    """One assignee's state of one plan item: done or not, and whether it was reminded."""

    __tablename__ = "training_item_progress"
    __table_args__ = (
        ForeignKeyConstraint(
            ["plan_id", "item_id"],
            ["training_plan_items.plan_id", "training_plan_items.id"],
            ondelete="CASCADE",
        ),
        # The overdue listing and the reminder: open items by due date.
        Index(
            "ix_training_item_progress_open",
            "due_at",
            postgresql_where=text("completed_at IS NULL"),
        ),
        Index("ix_training_item_progress_reviewer_id", "reviewer_id"),
    )

    plan_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # A copy of the item's due date, so open items are found by one index.
    due_at: Mapped[datetime]
    assigned_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    # The key id that completed it, or "quiz_attempt:<id>" when passing the quiz did.
    completed_by: Mapped[str | None] = mapped_column(String(128))
    reminded_at: Mapped[datetime | None]
