"""Appeal outcomes posted by the appeals platform, and the appeal-overturn report."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.common import StrictQuery
from shared.schemas.decisions import MAX_BATCH_EVENTS, Action
from shared.schemas.fields import NO_NUL_PATTERN, Day, Instant, MarketCode, QueueName, ReviewerId

AppealOutcome = Literal["upheld", "reversed"]
AppealGroupBy = Literal["moderator", "queue", "market"]


class AppealEvent(BaseModel):
    """One appeal outcome: the appealed content, the decision appealed, what the appeal found."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=128, pattern=NO_NUL_PATTERN)
    content_id: str = Field(min_length=1, max_length=256, pattern=NO_NUL_PATTERN)
    original_event_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=NO_NUL_PATTERN,
        description=(
            "The event id (of the same source) of the decision appealed. When omitted, the "
            "appeal is linked to the source's latest decision on the same content."
        ),
    )
    original_action: Action | None = None
    outcome: AppealOutcome = Field(
        description="'reversed': the decision was wrong; 'upheld': it stands."
    )
    decided_at: Instant


class AppealBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[AppealEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class AppealOverturnQuery(StrictQuery):
    group_by: AppealGroupBy
    from_: Day | None = Field(
        None, alias="from", description="First day (inclusive); default 29 days before `to`."
    )
    to: Day | None = Field(None, description="Last day (inclusive); default today (UTC).")
    market: MarketCode | None = None
    queue: QueueName | None = None
    moderator_id: ReviewerId | None = None


class AppealOverturnRow(BaseModel):
    key: str
    appealed: int = Field(description="Decisions appealed (each counted once).")
    reversed: int = Field(description="Of those, decisions reversed by an appeal.")
    rate: float
    ci_low: float = Field(description="Wilson score interval at 95 %, lower bound.")
    ci_high: float = Field(description="Wilson score interval at 95 %, upper bound.")


class AppealOverturnReport(BaseModel):
    rows: list[AppealOverturnRow]
