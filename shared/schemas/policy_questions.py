"""Policy questions: asked on a policy code in a market, answered by its policy POCs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.schemas.common import PageQuery
from shared.schemas.fields import MarketCode, PolicyCode, ReviewerId

MAX_QUESTION_LENGTH = 4000
MAX_ANSWER_LENGTH = 20_000

PolicyQuestionStatus = Literal["open", "answered"]

# Surrounding whitespace is dropped first, so a question of blanks is an empty one (422).
QuestionText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION_LENGTH),
]
AnswerText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ANSWER_LENGTH)
]


class PolicyQuestionAsk(BaseModel):
    """A question on how a policy code applies in a market."""

    model_config = ConfigDict(extra="forbid")

    policy_code: PolicyCode
    market: MarketCode
    question: QuestionText


class PolicyQuestionAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: AnswerText


class PolicyQuestionPromote(BaseModel):
    """Where an answered question goes: the draft policy update ``policy_update_id``; none
    given, the latest draft of the question's market covering its policy code, else a new
    draft."""

    model_config = ConfigDict(extra="forbid")

    policy_update_id: uuid.UUID | None = None


class PolicyQuestionRead(BaseModel):
    """A question and, once given, its answer. ``asked_by`` and ``answered_by`` are reviewer
    ids (the name of the API key for a key bound to no reviewer)."""

    id: uuid.UUID
    policy_code: str
    market: str
    question: str
    status: PolicyQuestionStatus
    asked_by: str
    asked_at: datetime
    answer_due_at: datetime = Field(
        description="When the question becomes overdue (asked_at + the question SLA)."
    )
    answer: str | None
    answered_by: str | None
    answered_at: datetime | None
    overdue_notified_at: datetime | None
    promoted_to_update_id: uuid.UUID | None


class PolicyQuestionQuery(PageQuery):
    """Filters of the question list (newest first)."""

    market: MarketCode | None = None
    policy_code: PolicyCode | None = None
    status: PolicyQuestionStatus | None = None
    asked_by: ReviewerId | None = None
