"""Agreement statistics of the ratings or counts in a request: computed, never stored."""

from __future__ import annotations

import numpy as np

from shared.core.errors import UnprocessableEntity
from shared.schemas.agreement import AgreementRequest, AgreementResult
from shared.stats.agreement import (
    AgreementSummary,
    encode_labels,
    summarize_counts,
    summarize_ratings,
)

# The ratio metric has no shortcut: its cost is the pairs of distinct values within units
# plus the pairs of distinct values overall. This many pairs take about half a second.
MAX_RATIO_PAIRS = 30_000_000


def _check_ratio_work(distinct_per_unit: np.typing.NDArray[np.int64], distinct: int) -> None:
    pairs = int(distinct_per_unit @ distinct_per_unit) + distinct * distinct
    if pairs > MAX_RATIO_PAIRS:
        raise UnprocessableEntity(
            f"too many distinct values for the ratio level ({distinct:,} values, {pairs:,}"
            f" pairs to weigh; at most {MAX_RATIO_PAIRS:,}): send fewer units or coarser values"
        )


def _from_counts(request: AgreementRequest) -> AgreementSummary:
    assert request.counts is not None
    counts = np.asarray(request.counts, dtype=np.int64)
    # Column values matter from the ordinal level up; nominal categories are only names.
    values = None
    if request.level != "nominal" and request.categories is not None:
        values = np.asarray(request.categories, dtype=np.float64)
    if request.level == "ratio":
        _check_ratio_work(np.count_nonzero(counts, axis=1), counts.shape[1])
    return summarize_counts(counts, request.level, values=values)


def _from_ratings(request: AgreementRequest) -> AgreementSummary:
    assert request.ratings is not None
    labelled = any(isinstance(category, str) for category in request.categories or ()) or any(
        isinstance(value, str) for row in request.ratings for value in row
    )
    if labelled:  # the schema admits strings at the nominal level only
        codes, categories = encode_labels(request.ratings, request.categories)
        return summarize_ratings(codes, "nominal", values=np.arange(len(categories)))
    matrix = np.array(request.ratings, dtype=np.float64)  # null becomes NaN: missing
    if request.level == "ratio":
        distinct_per_unit = np.array(
            [len(np.unique(column[~np.isnan(column)])) for column in matrix.T], dtype=np.int64
        )
        _check_ratio_work(distinct_per_unit, len(np.unique(matrix[~np.isnan(matrix)])))
    return summarize_ratings(matrix, request.level, values=request.categories)


def measure_agreement(request: AgreementRequest) -> AgreementResult:
    """Every agreement statistic of the request's data, null with a note where undefined."""
    summary = _from_counts(request) if request.counts is not None else _from_ratings(request)
    return AgreementResult.from_summary(summary)
