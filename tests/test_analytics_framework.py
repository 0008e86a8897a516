"""The analytics read side every report stands on: scope, rollup sums and files.

Rollup rows are written directly here (what the report worker keeps is tested in
test_quality_rollups.py), so each sum below can be checked by hand against the rows.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest
from openpyxl import load_workbook
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics import schemas
from shared.analytics.exports import FIELD_LABELS, TableSheet, rows_csv, rows_xlsx
from shared.analytics.filters import AnalyticsScope, analytics_scope
from shared.analytics.queries import sum_action_confusion, sum_quality_rollups
from shared.core.auth import Principal, Role
from shared.core.errors import Forbidden, UnprocessableEntity
from shared.models import ActionConfusionRollup, QualityRollup

ROW_TYPES: list[type[BaseModel]] = [
    schemas.TrendRow,
    schemas.PopulationRow,
    schemas.ErrorsRow,
    schemas.ConfusionCell,
    schemas.PolicyEnforcementRow,
    schemas.ComparisonRow,
    schemas.RatesRow,
]


def _rollup(day: date, market: str, moderator: str, policy: str, **counts: int) -> QualityRollup:
    return QualityRollup(
        day=day,
        market=market,
        queue=f"{market.lower()}-q",
        moderator_id=moderator,
        policy=policy,
        **counts,
    )


def _scope(**overrides: Any) -> AnalyticsScope:
    values: dict[str, Any] = {
        "day_from": date(2026, 11, 1),
        "day_to": date(2026, 11, 30),
        "markets": None,
        "queue": None,
        "moderator_id": None,
        "policy": None,
    }
    values.update(overrides)
    return AnalyticsScope(**values)


@pytest.fixture
async def rollups(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    # Monday 2026-11-02 and Wednesday 11-04 share an ISO week; Monday 11-09 starts the next.
    async with sessionmaker() as session, session.begin():
        session.add_all(
            [
                _rollup(date(2026, 11, 2), "DE", "mod-a", "*", audited=10, correct=9),
                _rollup(date(2026, 11, 2), "DE", "mod-a", "hate_speech", audited=7, correct=6),
                _rollup(date(2026, 11, 2), "DE", "mod-a", "spam", audited=4, correct=4),
                _rollup(date(2026, 11, 4), "FR", "mod-b", "*", audited=5, correct=2),
                _rollup(date(2026, 11, 4), "FR", "mod-b", "spam", audited=5, correct=2),
                _rollup(date(2026, 11, 9), "DE", "mod-b", "*", audited=20, correct=19),
                _rollup(date(2026, 11, 9), "DE", "mod-b", "hate_speech", audited=20, correct=19),
                # Outside the window: never counted.
                _rollup(date(2026, 10, 31), "DE", "mod-a", "*", audited=100, correct=0),
            ]
        )
        session.add_all(
            [
                ActionConfusionRollup(
                    day=date(2026, 11, 2),
                    market="DE",
                    queue="de-q",
                    moderator_id="mod-a",
                    policy="*",
                    action="remove",
                    expected_action="approve",
                    verdicts=1,
                ),
                ActionConfusionRollup(
                    day=date(2026, 11, 9),
                    market="DE",
                    queue="de-q",
                    moderator_id="mod-b",
                    policy="*",
                    action="remove",
                    expected_action="approve",
                    verdicts=2,
                ),
                ActionConfusionRollup(
                    day=date(2026, 11, 9),
                    market="DE",
                    queue="de-q",
                    moderator_id="mod-b",
                    policy="*",
                    action="remove",
                    expected_action="remove",
                    verdicts=18,
                ),
            ]
        )


async def test_sums_read_the_total_rows_unless_policy_is_asked_for(
    sessionmaker: async_sessionmaker[AsyncSession], rollups: None
) -> None:
    async with sessionmaker() as session:
        (whole,) = await sum_quality_rollups(
            session, scope=_scope(), counters=["audited", "correct"]
        )
        # Totals rows only: 10 + 5 + 20 audited, 9 + 2 + 19 correct (policy rows not added).
        assert (whole["audited"], whole["correct"]) == (35, 30)

        by_policy = await sum_quality_rollups(
            session, scope=_scope(), group_by=["policy"], counters=["audited"]
        )
        assert [(row.key, row["audited"]) for row in by_policy] == [
            (("hate_speech",), 27),
            (("spam",), 9),
        ]
        (spam,) = await sum_quality_rollups(
            session, scope=_scope(policy="spam"), counters=["correct"]
        )
        assert spam["correct"] == 6


async def test_sums_group_by_iso_week_and_respect_markets_and_moderator(
    sessionmaker: async_sessionmaker[AsyncSession], rollups: None
) -> None:
    async with sessionmaker() as session:
        weeks = await sum_quality_rollups(
            session, scope=_scope(), group_by=["week"], counters=["audited"]
        )
        assert [(row.key[0], row["audited"]) for row in weeks] == [
            (date(2026, 11, 2), 15),
            (date(2026, 11, 9), 20),
        ]
        german = await sum_quality_rollups(
            session, scope=_scope(markets=("DE",)), group_by=["moderator"], counters=["audited"]
        )
        assert [(row.key, row["audited"]) for row in german] == [(("mod-a",), 10), (("mod-b",), 20)]
        (own,) = await sum_quality_rollups(
            session, scope=_scope(moderator_id="mod-b"), counters=["audited"]
        )
        assert own["audited"] == 25
        cells = await sum_action_confusion(session, scope=_scope())
        assert [(row.key, row["verdicts"]) for row in cells] == [
            (("remove", "approve"), 3),
            (("remove", "remove"), 18),
        ]
        with pytest.raises(ValueError, match="not quality_rollups counters"):
            await sum_quality_rollups(session, scope=_scope(), counters=["bogus"])


def test_scope_refuses_reversed_and_overlong_windows_and_foreign_reach() -> None:
    lead = Principal(key_id="k", role=Role.MANAGER, reviewer_id=None, markets=("DE",))
    with pytest.raises(ValidationError, match="must not be after"):
        schemas.TrendQuery.model_validate({"from": "2026-11-10", "to": "2026-11-01"})
    # Only `from`, later than the default `to` (today).
    filters = schemas.TrendQuery.model_validate({"from": "2026-12-10"})
    with pytest.raises(UnprocessableEntity, match="after"):
        analytics_scope(lead, filters, max_days=366, today=date(2026, 11, 30))
    long = schemas.TrendQuery.model_validate({"from": "2025-01-01", "to": "2026-11-01"})
    with pytest.raises(UnprocessableEntity, match="at most 366 days"):
        analytics_scope(lead, long, max_days=366, today=date(2026, 11, 30))
    with pytest.raises(Forbidden):
        analytics_scope(
            lead,
            schemas.TrendQuery.model_validate({"market": "FR"}),
            max_days=366,
            today=date(2026, 11, 30),
        )
    scope = analytics_scope(lead, schemas.TrendQuery(), max_days=366, today=date(2026, 11, 30))
    # Default: the 30 days ending today, within the key's markets.
    assert (scope.day_from, scope.day_to, scope.markets) == (
        date(2026, 11, 1),
        date(2026, 11, 30),
        ("DE",),
    )


@pytest.mark.parametrize("row_type", ROW_TYPES, ids=lambda row_type: row_type.__name__)
def test_every_report_column_has_an_english_and_a_german_header(row_type: type[BaseModel]) -> None:
    for name in row_type.model_fields:
        assert set(FIELD_LABELS[name]) == {"en", "de"}, name


def test_files_carry_the_json_rows_with_localised_headers() -> None:
    rows = [
        schemas.ComparisonRow(
            rank=1,
            key="=cmd",
            audited=40,
            correct=30,
            accuracy=0.75,
            ci_low=0.6,
            ci_high=0.86,
            below_target=True,
            rest_audited=100,
            rest_accuracy=0.9,
            p_value=0.01,
            q_value=0.02,
            significant=True,
            small_sample=False,
        ),
        schemas.ComparisonRow(
            rank=None,
            key="FR",
            audited=0,
            correct=0,
            accuracy=None,
            ci_low=None,
            ci_high=None,
            below_target=None,
            rest_audited=140,
            rest_accuracy=0.85,
            p_value=None,
            q_value=None,
            significant=False,
            small_sample=True,
            note="no audits",
        ),
    ]
    table = list(csv.reader(io.StringIO(rows_csv(rows, schemas.ComparisonRow).decode())))
    assert table[0] == list(schemas.ComparisonRow.model_fields)
    # Text that would run as a formula is neutralised; null is empty; booleans are JSON's.
    assert table[1][1] == "'=cmd"
    assert table[2][table[0].index("accuracy")] == ""
    assert table[1][table[0].index("significant")] == "true"

    content = rows_xlsx(
        [TableSheet(title="Vergleich", rows=rows, row_type=schemas.ComparisonRow)],
        about=[("Zeitraum", "2026-11-01 bis 2026-11-30")],
        lang="de",
    )
    workbook = load_workbook(io.BytesIO(content))
    sheet = workbook["Vergleich"]
    headers = [cell.value for cell in sheet[1]]
    assert headers[:3] == ["Rang", "Ausschnitt", "Geprüft"]
    assert sheet["B2"].value == "=cmd"
    assert sheet["B2"].data_type == "s"
    assert sheet.cell(row=2, column=headers.index("Genauigkeit") + 1).number_format == "0.0%"
    assert sheet.freeze_panes == "A2"
    assert workbook.sheetnames == ["Vergleich", "Info"]


def test_the_totals_index_covers_every_verdict_counter_and_no_decision_counter() -> None:
    """Reports over the verdict counters stay index-only scans only while the partial index
    includes every one of them; and the intake rollup's updates are HOT only while no index
    holds a decision counter (migration 0015), so those are read from the table."""
    from shared.analytics.queries import _QUALITY, QUALITY_COUNTERS
    from shared.models.analytics import DECISION_COUNTERS

    (totals,) = [
        index for index in _QUALITY.indexes if index.name == "ix_quality_rollups_totals_day"
    ]
    included = set(totals.dialect_options["postgresql"]["include"])
    assert set(QUALITY_COUNTERS) - set(DECISION_COUNTERS) <= included
    for index in _QUALITY.indexes:
        held = {column.name for column in index.columns}
        held |= set(index.dialect_options["postgresql"]["include"] or ())
        assert not held & set(DECISION_COUNTERS), index.name
