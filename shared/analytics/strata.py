"""The post-stratified estimate's sums over strata, in SQL (one place for the formula).

``shared.analytics.population`` sums the strata of a window when it reads
``quality_rollups``; ``shared.analytics.day_rollups`` sums those of each day into
``population_day_rollups``. Both use ``strata_sum_columns``, so a window's sums read from the
day rows are the same sums (added day by day) as those read from the strata.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, cast, func, literal
from sqlalchemy.sql.expression import Label
from sqlalchemy.sql.selectable import Subquery


def strata_sum_columns(strata: Subquery) -> list[Label[Any]]:
    """Aggregates over the rows of ``strata`` (one row per stratum, with columns
    ``decisions`` N_h, ``audited`` n_h and ``correct`` x_h), labelled ``decisions``,
    ``covered`` (sum N_h over the strata with an audit), ``weighted_correct`` (sum N_h p_h),
    ``variance_sum`` (sum N_h^2 p_h (1 - p_h) / n_h (1 - n_h / N_h), the finite population
    correction held at 0 when n_h > N_h), ``audited`` and ``correct``."""
    # Float arithmetic throughout (float8 in PostgreSQL): numeric would be exact but several
    # times slower over tens of thousands of strata, and the estimate is a float anyway.
    big_n = cast(strata.c.decisions, Float)
    small_n = cast(strata.c.audited, Float)
    share_correct = cast(strata.c.correct, Float) / small_n  # p_h
    one, zero = literal(1.0, Float), literal(0.0, Float)
    # FILTER runs before the aggregate's argument: no division by an empty stratum's n_h.
    audited = strata.c.audited > 0
    finite_correction = func.greatest(zero, one - small_n / big_n)
    return [
        cast(func.sum(strata.c.decisions), BigInteger).label("decisions"),
        cast(func.coalesce(func.sum(strata.c.decisions).filter(audited), 0), BigInteger).label(
            "covered"
        ),
        func.coalesce(func.sum(big_n * share_correct).filter(audited), zero).label(
            "weighted_correct"
        ),
        func.coalesce(
            func.sum(
                big_n * big_n * share_correct * (one - share_correct) / small_n * finite_correction
            ).filter(audited, strata.c.decisions > 0),
            zero,
        ).label("variance_sum"),
        cast(func.sum(strata.c.audited), BigInteger).label("audited"),
        cast(func.sum(strata.c.correct), BigInteger).label("correct"),
    ]
