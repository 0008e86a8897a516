"""Report schedules and their snapshots: ``/v1/report-schedules`` and ``/v1/report-snapshots``.

The request models check the shape (names, a 24-hour ``at``, an IANA ``timezone``, known
languages and formats); what depends on the report chosen (its query parameters, the files
it can write) and on the database (the channels) is checked in
``shared.report_schedules.service``.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.channels.languages import MessageLanguage
from shared.schemas.common import PageQuery

ScheduledReport = Literal["briefing", "accuracy", "trend", "comparison"]
Cadence = Literal["daily", "weekly", "monthly"]
SnapshotFormat = Literal["json", "csv", "xlsx", "pptx", "png"]

_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_CHANNELS = 50


def parse_at(value: str) -> time:
    """``"HH:MM"`` (24 hours, 00:00 to 23:59) as a time; ValueError otherwise."""
    match = _AT.match(value)
    if match is None:
        raise ValueError("must be a 24-hour time HH:MM, 00:00 to 23:59")
    return time(int(match.group(1)), int(match.group(2)))


def check_time_zone(value: str) -> str:
    """``value`` if it names an IANA time zone; ValueError (not echoing it) otherwise."""
    if not value or len(value) > 64:
        raise ValueError("must be an IANA time zone name such as Europe/Berlin")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("must be an IANA time zone name such as Europe/Berlin") from None
    return value


class ScheduleTiming(BaseModel):
    """When a schedule runs: validators shared by creation and change."""

    @field_validator("at", check_fields=False)
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        if value is not None:
            parse_at(value)
        return value

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)


class ReportScheduleCreate(ScheduleTiming):
    """``POST /v1/report-schedules``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    report: ScheduledReport
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "The report's query as `GET /v1/reports/{report}` takes it (without `format` and "
            "`lang`, which the schedule's `formats` and `lang` set). Without `from`/`to` each "
            "run covers the period ending with its slot: daily the previous local day, weekly "
            "the previous 7 days, monthly the previous calendar month (local to `timezone`)."
        ),
    )
    cadence: Cadence = Field(
        description="daily; weekly (on Mondays); monthly (on the 1st of the month)."
    )
    at: str = Field(description="Local time of day, 24-hour `HH:MM`.", examples=["08:00"])
    timezone: str = Field(description="IANA time zone of `at`.", examples=["Europe/Berlin"])
    lang: MessageLanguage = "en"
    formats: list[SnapshotFormat] = Field(
        default_factory=list,
        max_length=5,
        description=(
            "Files to write besides the JSON (always stored): accuracy csv/xlsx, trend and "
            "comparison csv/xlsx/png, briefing xlsx/pptx."
        ),
    )
    channel_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=MAX_CHANNELS,
        description="Team channels that get `report.ready` (e-mail channels with the files).",
    )


class ReportScheduleUpdate(ScheduleTiming):
    """``PATCH /v1/report-schedules/{id}``: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=128)
    params: dict[str, Any] | None = None
    cadence: Cadence | None = None
    at: str | None = None
    timezone: str | None = None
    lang: MessageLanguage | None = None
    formats: list[SnapshotFormat] | None = Field(None, max_length=5)
    channel_ids: list[uuid.UUID] | None = Field(None, max_length=MAX_CHANNELS)
    enabled: bool | None = None


class ReportScheduleRead(BaseModel):
    id: uuid.UUID
    name: str
    report: ScheduledReport
    params: dict[str, Any]
    cadence: Cadence
    at: str
    timezone: str
    lang: str
    formats: list[str]
    channel_ids: list[uuid.UUID]
    enabled: bool
    next_run_at: datetime = Field(description="The next slot (UTC) the schedule runs at.")
    created_at: datetime


class ReportScheduleQuery(PageQuery):
    report: ScheduledReport | None = None
    enabled: bool | None = None


class ReportRunAccepted(BaseModel):
    """A run was queued; poll ``GET /v1/jobs/{job_id}`` (its result names the snapshot)."""

    job_id: uuid.UUID


class SnapshotFileRead(BaseModel):
    format: str
    filename: str
    content_type: str
    size: int


class ReportSnapshotSummary(BaseModel):
    id: uuid.UUID
    schedule_id: uuid.UUID | None
    slot_at: datetime | None = Field(description="The scheduled slot; null for a run by hand.")
    report: str
    params: dict[str, Any] = Field(description="The query as run (with its period).")
    lang: str
    created_at: datetime
    files: list[SnapshotFileRead]


class ReportSnapshotRead(ReportSnapshotSummary):
    data: dict[str, Any] = Field(description="The report's JSON as the API answered it then.")


class ReportSnapshotQuery(PageQuery):
    schedule_id: uuid.UUID | None = None


class ReportRunResult(BaseModel):
    """What a run job leaves as its result."""

    snapshot_id: uuid.UUID
    schedule_id: uuid.UUID
