"""Knowledge quizzes and training plans: requests and responses."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.schemas.common import PageQuery
from shared.schemas.fields import Instant, MarketCode, PolicyCode, ReviewerId, TeamName

NO_VIOLATION = "no_violation"
_POLICY_CODE = re.compile(r"^[a-z0-9_.-]{1,64}$")
QuestionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
ItemId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
AnswerText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- quizzes ---------------------------------------------------------------------------------


class QuestionCreate(_Strict):
    """A question: label a content example (answer: a policy code or ``no_violation``), or
    pick one of ``options``."""

    id: QuestionId
    kind: Literal["label", "choice"]
    prompt: str = Field(min_length=1, max_length=2000)
    content_id: str | None = Field(None, min_length=1, max_length=256)
    options: list[AnswerText] | None = Field(None, min_length=2, max_length=20)
    answer: AnswerText

    @model_validator(mode="after")
    def _answer_fits(self) -> QuestionCreate:
        if self.kind == "choice" and self.options is None:
            raise ValueError("a choice question needs options")
        if self.kind == "label":
            if self.content_id is None:
                raise ValueError("a label question needs the content_id of its example")
            if not _POLICY_CODE.fullmatch(self.answer):
                raise ValueError("a label answer is a policy code (or no_violation)")
        if self.options is not None:
            if len(set(self.options)) != len(self.options):
                raise ValueError("options must be unique")
            if self.answer not in self.options:
                raise ValueError("the answer must be one of the options")
        return self


class QuestionRead(BaseModel):
    """A question; ``answer`` is null for assignees (they see answers after submitting)."""

    id: str
    kind: str
    prompt: str
    content_id: str | None
    options: list[str] | None
    answer: str | None


class QuizCreate(_Strict):
    title: str = Field(min_length=1, max_length=300)
    policy_code: PolicyCode | None = None
    policy_update_id: str | None = Field(None, min_length=1, max_length=128)
    questions: list[QuestionCreate] = Field(min_length=1, max_length=200)
    pass_mark: float = Field(ge=0, le=1)
    assignee_reviewer_ids: list[ReviewerId] = Field(default_factory=list, max_length=5000)
    assignee_markets: list[MarketCode] = Field(default_factory=list, max_length=300)
    assignee_teams: list[TeamName] = Field(default_factory=list, max_length=300)
    due_at: Instant | None = None
    retakes_allowed: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> QuizCreate:
        if self.policy_code is None and self.policy_update_id is None:
            raise ValueError("a quiz is about a policy_code or a policy_update_id")
        if not (self.assignee_reviewer_ids or self.assignee_markets or self.assignee_teams):
            raise ValueError(
                "a quiz needs assignees: assignee_reviewer_ids, assignee_markets or assignee_teams"
            )
        ids = [question.id for question in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids must be unique")
        return self


class QuizRead(BaseModel):
    """A quiz; ``questions`` carry answers only for the roles that manage quizzes."""

    id: uuid.UUID
    title: str
    policy_code: str | None
    policy_update_id: str | None
    questions: list[QuestionRead]
    pass_mark: float
    assignee_reviewer_ids: list[str]
    assignee_markets: list[str]
    assignee_teams: list[str]
    due_at: datetime | None
    retakes_allowed: bool
    created_at: datetime


class QuizQuery(PageQuery):
    policy_code: PolicyCode | None = None
    policy_update_id: str | None = Field(None, max_length=128)


class AnswerGiven(_Strict):
    question_id: str = Field(min_length=1, max_length=64)
    answer: AnswerText


class AttemptCreate(_Strict):
    answers: list[AnswerGiven] = Field(max_length=200)


class QuestionResult(BaseModel):
    question_id: str
    answer: str | None
    correct_answer: str | None = Field(
        description="Null while the reviewer may still attempt the quiz (see answers_shown)."
    )
    correct: bool | None = Field(
        description="Null while the reviewer may still attempt the quiz (see answers_shown)."
    )


class AttemptRead(BaseModel):
    """A scored attempt. The correct answers, and which given answers were right, are shown
    to the reviewer only once they cannot attempt the quiz again; quiz managers always see
    them."""

    id: uuid.UUID
    quiz_id: uuid.UUID
    reviewer_id: str
    score: float
    passed: bool
    correct_count: int
    question_count: int
    submitted_at: datetime
    answers_shown: bool = Field(
        description="Whether ``results`` carry the correct answers (false while a retake is"
        " still possible for the reviewer)."
    )
    results: list[QuestionResult]


class AttemptQuery(PageQuery):
    reviewer_id: ReviewerId | None = None


class RetakeCreate(_Strict):
    reviewer_id: ReviewerId
    due_at: Instant | None = Field(
        None, description="The retake's own due date; by default the quiz's."
    )


class RetakeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    quiz_id: uuid.UUID
    reviewer_id: str
    due_at: datetime | None
    created_at: datetime


class ReviewerScore(BaseModel):
    reviewer_id: str
    markets: list[str]
    team: str | None
    attempts: int
    best_score: float
    passed: bool


class MarketScore(BaseModel):
    market: str
    reviewers: int = Field(description="Reviewers who attempted the quiz.")
    passed: int
    pass_rate: float | None = Field(description="passed / reviewers; null when none attempted.")
    assigned: int = Field(description="Reviewers the quiz is assigned to.")
    completion_rate: float | None = Field(
        description="Share of the assigned reviewers who attempted it; null when none is."
    )


class TeamScore(BaseModel):
    team: str
    reviewers: int = Field(description="Reviewers who attempted the quiz.")
    passed: int
    pass_rate: float | None = Field(description="passed / reviewers; null when none attempted.")
    assigned: int = Field(description="Reviewers the quiz is assigned to.")
    completion_rate: float | None = Field(
        description="Share of the assigned reviewers who attempted it; null when none is."
    )


class QuestionScore(BaseModel):
    question_id: str
    prompt: str
    answered: int = Field(description="Reviewers whose first attempt is counted.")
    wrong: int
    wrong_share: float


class QuizScores(BaseModel):
    """Per reviewer best score; per market and per team pass rate; per question, most-missed
    first."""

    quiz_id: uuid.UUID
    assigned: int = Field(description="Reviewers the quiz is assigned to (by id, market, team).")
    attempted: int = Field(description="Assigned reviewers with at least one attempt.")
    completion_rate: float | None = Field(
        description="attempted / assigned; null when the quiz is assigned to nobody."
    )
    reviewers: list[ReviewerScore]
    markets: list[MarketScore]
    teams: list[TeamScore]
    questions: list[QuestionScore]


class AssignPlanRequest(_Strict):
    plan_id: uuid.UUID


class AssignPlanResult(BaseModel):
    plan_id: uuid.UUID
    added: list[str]
    already_assigned: list[str]


# --- training plans ------------------------------------------------------------------------


class PlanItemCreate(_Strict):
    id: ItemId
    kind: Literal["read_policy", "pass_quiz", "shadow_audits"]
    policy_code: PolicyCode | None = None
    quiz_id: uuid.UUID | None = None
    count: int | None = Field(None, ge=1, le=10_000)
    due_at: Instant

    @model_validator(mode="after")
    def _fields_of_kind(self) -> PlanItemCreate:
        if self.kind == "read_policy" and self.policy_code is None:
            raise ValueError("a read_policy item needs a policy_code")
        if self.kind == "pass_quiz" and self.quiz_id is None:
            raise ValueError("a pass_quiz item needs a quiz_id")
        if self.kind == "shadow_audits" and self.count is None:
            raise ValueError("a shadow_audits item needs a count")
        if self.kind != "pass_quiz" and self.quiz_id is not None:
            raise ValueError("only a pass_quiz item has a quiz_id")
        if self.kind != "shadow_audits" and self.count is not None:
            raise ValueError("only a shadow_audits item has a count")
        return self


class PlanCreate(_Strict):
    title: str = Field(min_length=1, max_length=300)
    kind: Literal["onboarding", "remedial"]
    owners: list[ReviewerId] = Field(min_length=1, max_length=50)
    assignees: list[ReviewerId] = Field(default_factory=list, max_length=5000)
    items: list[PlanItemCreate] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique_items(self) -> PlanCreate:
        ids = [item.id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("item ids must be unique")
        return self


class PlanItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    policy_code: str | None
    quiz_id: uuid.UUID | None
    count: int | None
    due_at: datetime


class PlanRead(BaseModel):
    id: uuid.UUID
    title: str
    kind: str
    owners: list[str]
    assignees: list[str]
    items: list[PlanItemRead]
    created_at: datetime


class PlanQuery(PageQuery):
    kind: Literal["onboarding", "remedial"] | None = None
    reviewer_id: ReviewerId | None = Field(None, description="Plans assigning this reviewer.")


class CompleteItemRequest(_Strict):
    reviewer_id: ReviewerId | None = Field(
        None, description="Whose item: by default the caller's own reviewer."
    )


class ItemProgress(BaseModel):
    plan_id: uuid.UUID
    item_id: str
    kind: str
    reviewer_id: str
    due_at: datetime
    done: bool
    completed_at: datetime | None
    completed_by: str | None
    overdue: bool = Field(description="Not done and past its due date.")
    late: bool = Field(
        description="Done after its due date, or not done and past it: the mark stays once"
        " a late item is completed."
    )
    audits_done: int | None = Field(
        None,
        description="For shadow_audits items: audits the assignee completed (verdicts given)"
        " since the item was assigned, of the item's policy when it names one.",
    )


class AssigneeProgress(BaseModel):
    reviewer_id: str
    done: int
    total: int
    overdue: int
    late: int
    items: list[ItemProgress]


class OverdueQuery(PageQuery):
    market: MarketCode | None = None


class OverdueItem(BaseModel):
    plan_id: uuid.UUID
    plan_title: str
    plan_kind: str
    item_id: str
    kind: str
    reviewer_id: str
    due_at: datetime
    reminded_at: datetime | None
