"""The confusion report: moderator action x expected action, and per-policy enforcement.

``GET /v1/reports/confusion`` and anything else that needs the numbers call
``confusion_cells`` / ``policy_enforcement_rows`` with a scope, or ``confusion_report`` with a
viewer's query. Both are sums of rollup rows (DESIGN.md "Analytics reports"):

- the matrix from ``action_confusion_rollups``: every moderator action against every expected
  action (the moderator's own when the verdict is effectively correct), all four actions on
  both axes, zeros included; ``share`` = the cell's verdicts / the verdicts on that
  moderator action (null when there are none);
- per policy code, from the ``enforcement_tp/fp/fn`` counters of the policy rows of
  ``quality_rollups`` (a verdict counts under the policies the moderator applied and those
  the auditor expected): precision = tp / (tp + fp), recall = tp / (tp + fn), each with its
  Wilson 95 % interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import get_args

from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.exports import TableSheet, rows_csv, rows_xlsx
from shared.analytics.filters import AnalyticsScope, analytics_scope
from shared.analytics.queries import sum_action_confusion, sum_quality_rollups
from shared.analytics.rollups import refresh_rollups
from shared.analytics.schemas import (
    ConfusionCell,
    ConfusionQuery,
    ConfusionReport,
    PolicyEnforcementRow,
)
from shared.analytics.slices import about_rows, join_notes, rate
from shared.models.analytics import NO_POLICY
from shared.reports.service import Viewer
from shared.schemas.decisions import Action
from shared.schemas.reports import ReportLanguage

# Both axes of the matrix, in this order.
ACTIONS: tuple[str, ...] = get_args(Action)
ENFORCEMENT_COUNTERS: tuple[str, ...] = (
    "audited",
    "enforcement_tp",
    "enforcement_fp",
    "enforcement_fn",
)

NO_AUDITS_NOTE = "no audits concern this policy"
NO_PRECISION_NOTE = "moderators never enforced this policy in audited decisions: no precision"
NO_RECALL_NOTE = "auditors never expected this policy enforced: no recall"


def confusion_matrix(verdicts: dict[tuple[str, str], int]) -> list[ConfusionCell]:
    """Every (action, expected action) cell, row by row in ``ACTIONS`` order, from the
    verdict counts of the cells that have any."""
    cells: list[ConfusionCell] = []
    for action in ACTIONS:
        row_total = sum(verdicts.get((action, expected), 0) for expected in ACTIONS)
        for expected in ACTIONS:
            count = verdicts.get((action, expected), 0)
            cells.append(
                ConfusionCell(
                    action=action,
                    expected_action=expected,
                    verdicts=count,
                    share=count / row_total if row_total else None,
                )
            )
    return cells


def policy_enforcement_row(
    policy: str, *, audited: int, tp: int, fp: int, fn: int, min_audits: int
) -> PolicyEnforcementRow:
    """One policy's precision and recall, each with its Wilson 95 % interval."""
    precision = rate(tp, tp + fp)
    recall = rate(tp, tp + fn)
    notes = [NO_AUDITS_NOTE] if audited == 0 else []
    if audited and precision.value is None:
        notes.append(NO_PRECISION_NOTE)
    if audited and recall.value is None:
        notes.append(NO_RECALL_NOTE)
    return PolicyEnforcementRow(
        policy=policy,
        tp=tp,
        fp=fp,
        fn=fn,
        **precision.fields("precision"),
        **recall.fields("recall"),
        small_sample=audited < min_audits,
        note=join_notes(notes),
    )


async def confusion_cells(session: AsyncSession, *, scope: AnalyticsScope) -> list[ConfusionCell]:
    """The 4 x 4 action matrix of the verdicts in ``scope`` (under ``scope.policy`` only the
    verdicts concerning that policy)."""
    sums = await sum_action_confusion(session, scope=scope)
    verdicts = {(str(group.key[0]), str(group.key[1])): group["verdicts"] for group in sums}
    return confusion_matrix(verdicts)


async def policy_enforcement_rows(
    session: AsyncSession, *, scope: AnalyticsScope, min_audits: int
) -> list[PolicyEnforcementRow]:
    """Precision and recall per policy code within ``scope`` (by code, byte order).

    Verdicts about no policy (``(none)``) have no enforcement to judge and are left out.
    """
    sums = await sum_quality_rollups(
        session, scope=scope, group_by=("policy",), counters=ENFORCEMENT_COUNTERS
    )
    return [
        policy_enforcement_row(
            str(group.key[0]),
            audited=group["audited"],
            tp=group["enforcement_tp"],
            fp=group["enforcement_fp"],
            fn=group["enforcement_fn"],
            min_audits=min_audits,
        )
        for group in sums
        if group.key[0] != NO_POLICY
    ]


async def confusion_report(
    session: AsyncSession,
    *,
    query: ConfusionQuery,
    viewer: Viewer,
    max_days: int,
    today: date,
) -> ConfusionReport:
    """The confusion report ``viewer`` asked for, within its reach (403 beyond, 422 for a
    bad window), counting every verdict committed before it was asked."""
    scope = analytics_scope(viewer, query, max_days=max_days, today=today)
    await refresh_rollups(session)
    return ConfusionReport(
        rows=await confusion_cells(session, scope=scope),
        policies=await policy_enforcement_rows(session, scope=scope, min_audits=query.min_audits),
        day_from=scope.day_from,
        day_to=scope.day_to,
    )


_SHEET_TITLES: Mapping[ReportLanguage, tuple[str, str]] = {
    "en": ("Confusion matrix", "Policies"),
    "de": ("Konfusionsmatrix", "Richtlinien"),
}
_METHOD: Mapping[ReportLanguage, tuple[tuple[str, str], ...]] = {
    "en": (
        (
            "Matrix",
            "Verdicts by moderator action and the action the auditor expected (the moderator's "
            "own when the verdict is correct, also after an overturn); share = of the verdicts "
            "on that moderator action",
        ),
        (
            "Precision, recall",
            "Per policy, a verdict counts under the policies the moderator applied and those "
            "the auditor expected: precision = TP / (TP + FP), recall = TP / (TP + FN)",
        ),
    ),
    "de": (
        (
            "Matrix",
            "Urteile nach Aktion des Moderators und der vom Prüfer erwarteten Aktion (bei "
            "korrektem Urteil die des Moderators, auch nach Aufhebung); Anteil = an den "
            "Urteilen über diese Aktion des Moderators",
        ),
        (
            "Präzision, Trefferquote",
            "Je Richtlinie zählt ein Urteil unter den Richtlinien, die der Moderator angewandt "
            "und die der Prüfer erwartet hat: Präzision = RP / (RP + FP), Trefferquote = "
            "RP / (RP + FN)",
        ),
    ),
}


def confusion_csv(report: ConfusionReport) -> bytes:
    """The matrix cells as CSV (header = the JSON keys of a cell)."""
    return rows_csv(report.rows, ConfusionCell)


def confusion_xlsx(report: ConfusionReport, query: ConfusionQuery) -> bytes:
    """A sheet for the matrix, one for the policies, then the About sheet, in ``query.lang``."""
    lang = query.lang
    matrix_title, policies_title = _SHEET_TITLES[lang]
    return rows_xlsx(
        [
            TableSheet(title=matrix_title, rows=report.rows, row_type=ConfusionCell),
            TableSheet(title=policies_title, rows=report.policies, row_type=PolicyEnforcementRow),
        ],
        about=about_rows(query, report, method=_METHOD[lang]),
        lang=lang,
    )
