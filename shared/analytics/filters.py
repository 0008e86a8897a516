"""What an analytics report may count: the viewer's reach, the filters and the day window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.analytics.schemas import AnalyticsFilters, BriefingQuery
from shared.core.errors import UnprocessableEntity
from shared.reports.rows import report_window
from shared.reports.service import Viewer, report_scope


@dataclass(frozen=True, slots=True)
class AnalyticsScope:
    """The rollup rows a report sums: market-local days ``day_from``..``day_to`` inclusive,
    and the slice filters (``None`` means no restriction)."""

    day_from: date
    day_to: date
    markets: tuple[str, ...] | None
    queue: str | None
    moderator_id: str | None
    policy: str | None

    @property
    def days(self) -> int:
        """How many days the window spans."""
        return (self.day_to - self.day_from).days + 1


def _invalid(parameter: str, message: str) -> UnprocessableEntity:
    return UnprocessableEntity(message, errors=[{"loc": ["query", parameter], "msg": message}])


def analytics_scope(
    viewer: Viewer,
    filters: AnalyticsFilters | BriefingQuery,
    *,
    max_days: int,
    today: date,
) -> AnalyticsScope:
    """The scope of a report ``viewer`` asked for: 403 beyond its reach, 422 for a window
    that is reversed or longer than ``max_days``.

    A moderator key counts only its own reviewer's numbers, a market-scoped key only its
    markets (``shared.reports.service.report_scope``, the one rule every report uses).
    """
    moderator_id = filters.moderator_id if isinstance(filters, AnalyticsFilters) else None
    reach = report_scope(viewer, market=filters.market, moderator_id=moderator_id)
    try:
        day_from, day_to = report_window(filters.from_, filters.to, today=today)
    except ValueError as exc:
        raise _invalid("from", str(exc)) from exc
    span = (day_to - day_from).days + 1
    if span > max_days:
        raise _invalid(
            "to", f"the range spans {span} days; a report covers at most {max_days} days"
        )
    return AnalyticsScope(
        day_from=day_from,
        day_to=day_to,
        markets=reach.markets,
        queue=filters.queue if isinstance(filters, AnalyticsFilters) else None,
        moderator_id=reach.only_moderator,
        policy=filters.policy if isinstance(filters, AnalyticsFilters) else None,
    )
