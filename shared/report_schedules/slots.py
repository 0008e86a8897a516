"""When a schedule runs and which days a run covers: pure functions over ``zoneinfo``.

A slot is a local time of day (``at``) on the days of the cadence (every day; Mondays;
the 1st of the month) in the schedule's IANA time zone, as a UTC instant. Daylight saving:

- 08:00 Europe/Berlin stays 08:00 local on both sides of a change (07:00 UTC in winter,
  06:00 UTC in summer), once a day.
- A local time that does not exist (02:30 on the spring-forward day) runs at the first
  instant after the gap: 03:00 local (the instant the clocks jump).
- A local time that exists twice (02:30 on the fall-back day) runs once, at its first
  occurrence (``fold=0``, still summer time).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.schemas.report_schedules import Cadence

WEEKLY_WEEKDAY = 0  # Monday
MONTHLY_DAY = 1


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of ``at`` on the local ``day`` in ``zone``.

    An ambiguous local time is its first occurrence; a local time in a gap is the end of the
    gap (the first instant after it).
    """
    wall = datetime.combine(day, at).replace(tzinfo=zone, fold=0)
    first = wall.astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return first
    # In a gap: fold=0 reads the wall time with the offset before the change (an instant
    # after the change), fold=1 with the offset after it (an instant before). The change
    # lies between; find it to the second.
    low = wall.replace(fold=1).astimezone(UTC)
    high = first
    if low > high:
        low, high = high, low
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def is_run_day(day: date, cadence: Cadence) -> bool:
    """Whether the cadence runs on the local ``day``."""
    if cadence == "daily":
        return True
    if cadence == "weekly":
        return day.weekday() == WEEKLY_WEEKDAY
    return day.day == MONTHLY_DAY


def next_slot(after: datetime, *, cadence: Cadence, at: time, timezone: str) -> datetime:
    """The first slot strictly after the instant ``after`` (aware), in UTC."""
    zone = ZoneInfo(timezone)
    day = after.astimezone(zone).date() - timedelta(days=1)
    while True:
        if is_run_day(day, cadence):
            slot = local_instant(day, at, zone)
            if slot > after:
                return slot
        day += timedelta(days=1)


def latest_slot(until: datetime, *, cadence: Cadence, at: time, timezone: str) -> datetime:
    """The last slot at or before the instant ``until`` (aware), in UTC: the one a late run
    catches up with."""
    zone = ZoneInfo(timezone)
    day = until.astimezone(zone).date() + timedelta(days=1)
    while True:
        if is_run_day(day, cadence):
            slot = local_instant(day, at, zone)
            if slot <= until:
                return slot
        day -= timedelta(days=1)


def report_period(slot: datetime, *, cadence: Cadence, timezone: str) -> tuple[date, date]:
    """The days (inclusive) a run at ``slot`` covers: the period ending the day before the
    slot's local day. Daily: that day; weekly: the 7 days before; monthly: the previous
    calendar month."""
    today = slot.astimezone(ZoneInfo(timezone)).date()
    last = today - timedelta(days=1)
    if cadence == "daily":
        return last, last
    if cadence == "weekly":
        return today - timedelta(days=7), last
    month_end = today.replace(day=1) - timedelta(days=1)
    first = month_end.replace(day=1)
    return first, month_end.replace(day=calendar.monthrange(month_end.year, month_end.month)[1])


__all__ = [
    "MONTHLY_DAY",
    "WEEKLY_WEEKDAY",
    "is_run_day",
    "latest_slot",
    "local_instant",
    "next_slot",
    "report_period",
]
