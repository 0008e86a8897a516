"""Field types with their validation, shared by every schema."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

from annotated_types import Interval
from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from shared.markets import MARKET_CODES


def _assigned_market_code(code: str) -> str:
    if code not in MARKET_CODES:
        raise ValueError(f"{code!r} is not an assigned ISO 3166-1 alpha-2 country code")
    return code


# An assigned ISO 3166-1 alpha-2 code ("XX" is not a market). Lower case is accepted and
# stored upper case. The shape is checked in pydantic-core and only a well-formed code reaches
# the set lookup: one Python call of 0.3 µs, which 50,000 decisions a second can afford, for
# an error that says what is wrong (an alternation of the 249 codes in the pattern would
# quote all of them in every 422 and in the OpenAPI schema).
MarketCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z]{2}$", to_upper=True),
    AfterValidator(_assigned_market_code),
    Field(description="An ISO 3166-1 alpha-2 country code, such as DE (lower case is accepted)"),
]
PolicyCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
QueueName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
ReviewerId = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
LanguageTag = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=16)
]
TeamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
SourceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]

# PostgreSQL text cannot hold NUL. Bodies the API parses itself are screened for NUL in one
# place (services/audit_api/request_checks.py); webhooks parse their own bodies, so their
# string fields carry this pattern (checked in pydantic-core, no Python call per value).
NO_NUL_PATTERN = r"^[^\x00]*$"

# Ids of bigint (int64) columns: a larger number can name no row, and asyncpg refuses to send
# it (a 500 before this type). A 422, like every other malformed id.
INT64_MAX = 2**63 - 1
BigintId = Annotated[int, Interval(ge=1, le=INT64_MAX)]

# The dates the API accepts in any request (a query, a body, a webhook): far enough from
# Python's and PostgreSQL's limits that a day shifted into any time zone, a week added or a
# year subtracted never overflows (0001-01-01 and 9999-12-31 did), and wide enough for any
# real data. Decisions have a narrower window of their own (``Settings.earliest_date`` and
# the clock), which must lie inside this one.
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(2999, 12, 31)
EARLIEST_INSTANT = datetime.combine(EARLIEST_DATE, time.min, tzinfo=UTC)
LATEST_INSTANT = datetime.combine(LATEST_DATE, time.max, tzinfo=UTC)

Day = Annotated[date, Interval(ge=EARLIEST_DATE, le=LATEST_DATE)]
"""A calendar date within the API's window (``EARLIEST_DATE`` to ``LATEST_DATE``)."""
Instant = Annotated[AwareDatetime, Interval(ge=EARLIEST_INSTANT, le=LATEST_INSTANT)]
"""A date-time with a time zone, within the API's window (compared in UTC)."""
