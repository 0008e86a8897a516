"""Agreement statistics: ``POST /v1/metrics/agreement``.

The request carries either reliability data (``ratings``: one list per rater, one value per
unit, null where that rater did not rate that unit) or unit counts (``counts``: one list per
unit, how many raters chose each category). Values are numbers, or strings at the nominal
level only: the ordinal level needs values with an order, and the order of numbers is the
only one JSON carries (for labelled ordinal scales, send their ranks). The response holds
every statistic, null where the data leave it undefined, with ``notes`` saying why.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.stats.agreement import AgreementSummary

Level = Literal["nominal", "ordinal", "interval", "ratio"]

# Bounds that keep one request to well under a second of computation.
MAX_RATERS = 1_000
MAX_UNITS = 100_000
MAX_CATEGORIES = 1_000
MAX_CELLS = 1_000_000

# All in pydantic-core: a million ratings validate in about 0.15 s.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Label = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)]
Rating = Number | Label | None
Category = Number | Label
# A count is how many raters chose a category for a unit. Bounded so that every sum of
# products the statistics form stays inside int64 (10**30 was a 500).
MAX_COUNT = 1_000_000
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]


def _number_level_problem(level: Level, value: float | str, where: str) -> str | None:
    """Why ``value`` cannot be a rating at ``level``, or None when it can."""
    if level == "nominal":
        return None
    if isinstance(value, str):
        return (
            f"{where} is the string {value[:40]!r}; at the {level} level values must be"
            " numbers (strings are allowed at the nominal level only)"
        )
    if level == "ratio" and value < 0:
        return f"{where} is {value}; the ratio level needs non-negative numbers"
    return None


class AgreementRequest(BaseModel):
    """Ratings or counts to measure agreement on, at a level of measurement."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"level": "nominal", "ratings": [["spam", "ok", None], ["spam", "ok", "ok"]]},
                {"counts": [[3, 0], [1, 2], [0, 3]], "categories": ["remove", "approve"]},
            ]
        },
    )

    level: Level = Field(
        "nominal",
        description=(
            "Level of measurement for Krippendorff's alpha. The kappas, AC1 and percent"
            " agreement are nominal statistics whatever the level."
        ),
    )
    ratings: list[Annotated[list[Rating], Field(max_length=MAX_UNITS)]] | None = Field(
        None,
        max_length=MAX_RATERS,
        description="One list per rater, one value per unit, null where missing.",
    )
    counts: list[Annotated[list[Count], Field(max_length=MAX_CATEGORIES)]] | None = Field(
        None,
        max_length=MAX_UNITS,
        description="One list per unit: how many raters chose each category (in one order).",
    )
    categories: list[Category] | None = Field(
        None,
        min_length=1,
        max_length=MAX_CATEGORIES,
        description=(
            "The declared category set (Gwet's AC1 depends on it); by default the values"
            " observed. With counts: the category (numeric value at the interval and ratio"
            " levels) of each column."
        ),
    )

    @field_validator("ratings")
    @classmethod
    def _check_ratings(
        cls, ratings: list[list[float | str | None]] | None, info: ValidationInfo
    ) -> list[list[float | str | None]] | None:
        if ratings is None:
            return None
        if len(ratings) < 2:
            raise ValueError("at least two raters are needed: send one list per rater")
        n_units = len(ratings[0])
        if n_units == 0:
            raise ValueError("the raters' lists are empty: send one value (or null) per unit")
        for rater, row in enumerate(ratings):
            if len(row) != n_units:
                raise ValueError(
                    f"rater {rater} has {len(row)} values but rater 0 has {n_units}: every"
                    " rater needs one value (or null) per unit"
                )
        if len(ratings) * n_units > MAX_CELLS:
            raise ValueError(f"at most {MAX_CELLS:,} ratings (raters x units) per request")
        level = info.data.get("level")
        if level is not None and level != "nominal":
            for rater, row in enumerate(ratings):
                for unit, value in enumerate(row):
                    if value is not None and (
                        problem := _number_level_problem(level, value, f"ratings[{rater}][{unit}]")
                    ):
                        raise ValueError(problem)
        return ratings

    @field_validator("counts")
    @classmethod
    def _check_counts(cls, counts: list[list[int]] | None) -> list[list[int]] | None:
        if counts is None:
            return None
        if not counts:
            raise ValueError("send at least one unit (one list of counts per unit)")
        n_categories = len(counts[0])
        if n_categories == 0:
            raise ValueError("each unit needs one count per category")
        for unit, row in enumerate(counts):
            if len(row) != n_categories:
                raise ValueError(
                    f"unit {unit} has {len(row)} counts but unit 0 has {n_categories}: every"
                    " unit needs one count per category"
                )
        if len(counts) * n_categories > MAX_CELLS:
            raise ValueError(f"at most {MAX_CELLS:,} counts (units x categories) per request")
        if max(sum(row) for row in counts) < 2:
            raise ValueError("no unit has two or more ratings: agreement needs at least two raters")
        return counts

    @field_validator("categories")
    @classmethod
    def _check_categories(
        cls, categories: list[float | str] | None, info: ValidationInfo
    ) -> list[float | str] | None:
        if categories is None:
            return None
        if len(set(categories)) != len(categories):
            raise ValueError("categories must not repeat")
        level = info.data.get("level")
        if level is not None:
            for index, category in enumerate(categories):
                if problem := _number_level_problem(level, category, f"categories[{index}]"):
                    raise ValueError(problem)
        return categories

    @model_validator(mode="after")
    def _check_shape(self) -> Self:
        if self.ratings is None and self.counts is None:
            raise ValueError(
                "send either ratings (one list per rater) or counts (one list per unit)"
            )
        if self.ratings is not None and self.counts is not None:
            raise ValueError("send ratings or counts, not both")
        if self.ratings is not None and self.categories is not None:
            declared = set(self.categories)
            for rater, row in enumerate(self.ratings):
                for unit, value in enumerate(row):
                    if value is not None and value not in declared:
                        raise ValueError(
                            f"ratings[{rater}][{unit}] = {value!r} is not one of the categories"
                        )
        if self.counts is not None:
            if self.categories is not None and len(self.categories) != len(self.counts[0]):
                raise ValueError(
                    f"{len(self.categories)} categories for {len(self.counts[0])} columns of"
                    " counts: declare one category per column"
                )
            if self.level in ("interval", "ratio") and self.categories is None:
                raise ValueError(
                    f"counts at the {self.level} level need categories: the numeric value of"
                    " each column"
                )
        return self


class AgreementResult(BaseModel):
    """Every statistic; null where the data leave it undefined, and ``notes`` say why."""

    n_units: int = Field(description="Units (items) in the input, rated or not.")
    n_raters: int = Field(description="Raters (with counts: the most ratings any unit has).")
    krippendorff_alpha: float | None = Field(description="At the requested level.")
    fleiss_kappa: float | None = Field(
        description="Null unless every unit has the same number of ratings."
    )
    cohen_kappa: float | None = Field(description="Exactly two raters, units both rated.")
    gwet_ac1: float | None = Field(
        description="Gwet's formula for missing ratings, over the declared category set."
    )
    percent_agreement: float | None = Field(
        description="Fleiss' P-bar: mean share of agreeing rater pairs, units with 2+ ratings."
    )
    notes: list[str] = Field(description="Why a statistic is null, and what was left out.")

    @classmethod
    def from_summary(cls, summary: AgreementSummary) -> AgreementResult:
        """The response for a computed summary (the endpoint's and calibration results')."""
        return cls(
            n_units=summary.n_units,
            n_raters=summary.n_raters,
            krippendorff_alpha=summary.krippendorff_alpha,
            fleiss_kappa=summary.fleiss_kappa,
            cohen_kappa=summary.cohen_kappa,
            gwet_ac1=summary.gwet_ac1,
            percent_agreement=summary.percent_agreement,
            notes=list(summary.notes),
        )
