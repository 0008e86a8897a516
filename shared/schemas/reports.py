"""The accuracy report: ``GET /v1/reports/accuracy`` (json, csv and xlsx)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.schemas.common import StrictQuery
from shared.schemas.fields import Day, MarketCode, PolicyCode, QueueName, ReviewerId

AccuracyGroup = Literal["moderator", "queue", "market", "policy", "day"]
ReportFormat = Literal["json", "csv", "xlsx"]
ReportLanguage = Literal["en", "de"]


class AccuracyQuery(StrictQuery):
    """What to count and how to group it; unknown parameters are refused (422)."""

    group_by: AccuracyGroup = Field(
        description=(
            "One row per moderator, queue, market, policy label or market-local day. "
            "Under `policy` a verdict counts once under each distinct policy label of its "
            "decision, and a decision without labels under `(none)`; the rows then add up to "
            "more than the verdicts."
        )
    )
    from_: Day | None = Field(
        None,
        alias="from",
        description=(
            "First day counted (inclusive), in each market's time zone: a verdict counts on "
            "its decision's market-local day. Default: `to` minus 29 days."
        ),
    )
    to: Day | None = Field(
        None,
        description="Last day counted (inclusive), market-local. Default: today in UTC.",
    )
    market: MarketCode | None = None
    queue: QueueName | None = None
    policy: PolicyCode | None = Field(
        None,
        description=(
            "Only verdicts concerning this policy code: applied by the moderator or expected "
            "by the auditor."
        ),
    )
    moderator_id: ReviewerId | None = Field(
        None,
        description="Only this moderator's verdicts. A moderator key may name only itself.",
    )
    format: ReportFormat = Field(
        "json", description="`csv` and `xlsx` return the same rows as a file to download."
    )
    lang: ReportLanguage = Field("en", description="Language of the XLSX headers and sheets.")


class AccuracyRow(BaseModel):
    """One slice: its verdicts, how many were correct, and the accuracy with its 95 % CI."""

    key: str = Field(
        description="The moderator id, queue, market code, policy code or ISO day of the slice."
    )
    audited: int = Field(description="Verdicts counted (golden audits never count).")
    correct: int = Field(
        description="Verdicts judged correct, including those overturned on dispute."
    )
    accuracy: float = Field(description="correct / audited.")
    ci_low: float = Field(description="Lower bound of the Wilson score interval at 95 %.")
    ci_high: float = Field(description="Upper bound of the Wilson score interval at 95 %.")


class AccuracyReport(BaseModel):
    rows: list[AccuracyRow] = Field(description="Sorted by key (byte order).")
