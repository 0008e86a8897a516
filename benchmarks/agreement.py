"""Krippendorff's alpha benchmark: ours beside the `krippendorff` package, in one run.

``python -m benchmarks.agreement [--repeats N] [--units N] [--raters N] [--missing F]``
times what issue #4 asks for: alpha of 10,000 units x 50 raters with 20 % of the ratings
missing, at the nominal level (5 categories) and the interval level (a 1-7 scale), and the
ordinal and ratio levels on the same data for completeness. Each repeat times ours and the
package's on the same matrix, alternating so that drift affects both; the table gives the
medians and their ratio (ours / package: at most 1 means no slower), and checks the two
alphas agree to 1e-9. Prints a markdown table; the `krippendorff` package is a test
dependency (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import krippendorff
import numpy as np
from numpy.typing import NDArray

from benchmarks.report_file import DEFAULT_REPORT, machine_line, write_section
from shared.stats.agreement import Level, krippendorff_alpha

# Level, number of scale points, and how raters agree: with probability AGREEMENT a rater
# gives the unit's own value, else any value of the scale.
CASES: tuple[tuple[Level, int], ...] = (
    ("nominal", 5),
    ("interval", 7),
    ("ordinal", 7),
    ("ratio", 7),
)
AGREEMENT = 0.7


def ratings(units: int, raters: int, missing: float, scale: int, seed: int) -> NDArray[np.float64]:
    """A raters x units matrix of values 1..scale, ``missing`` of them NaN."""
    generator = np.random.default_rng(seed)
    truth = generator.integers(1, scale + 1, units)
    noise = generator.integers(1, scale + 1, (raters, units))
    data = np.where(generator.random((raters, units)) < AGREEMENT, truth, noise).astype(float)
    data[generator.random((raters, units)) < missing] = np.nan
    return data


def timed(compute: Callable[[], float]) -> tuple[float, float]:
    """The value and the wall-clock milliseconds of one call."""
    started = time.perf_counter()
    value = compute()
    return value, (time.perf_counter() - started) * 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--missing", type=float, default=0.2)
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_REPORT, help="report file (section 'agreement')"
    )
    options = parser.parse_args(argv)
    lines: list[str] = []

    def say(line: str = "", *, to_stderr: bool = False) -> None:
        print(line, file=sys.stderr if to_stderr else sys.stdout)
        if not to_stderr:
            lines.append(line)

    say("## Krippendorff's alpha (issue #4)")
    say()
    say(f"- Command: `python -m benchmarks.agreement {' '.join(argv or sys.argv[1:])}`".rstrip())
    say(f"- Machine: {machine_line()}")
    say(
        f"- {options.units:,} units x {options.raters} raters, {options.missing:.0%} missing,"
        f" median of {options.repeats} repeats; numpy {np.__version__}, krippendorff"
        f" {version('krippendorff')}"
    )
    say()
    say("| level | values | ours (ms) | krippendorff (ms) | ours / krippendorff | alpha |")
    say("| --- | --- | ---: | ---: | ---: | ---: |")
    failures = 0
    for seed, (level, scale) in enumerate(CASES):
        data = ratings(options.units, options.raters, options.missing, scale, seed)
        # One untimed call each first: imports, caches and the allocator's first pages.
        krippendorff_alpha(data, level)
        krippendorff.alpha(data, level_of_measurement=level)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(options.repeats):
            value, ours_ms = timed(lambda: krippendorff_alpha(data, level))  # noqa: B023
            reference, their_ms = timed(
                lambda: float(krippendorff.alpha(data, level_of_measurement=level))  # noqa: B023
            )
            ours.append(ours_ms)
            theirs.append(their_ms)
            if abs(value - reference) > 1e-9:
                failures += 1
                say(f"{level}: ours {value!r} but krippendorff {reference!r}", to_stderr=True)
        ours_median, their_median = statistics.median(ours), statistics.median(theirs)
        say(
            f"| {level} | 1..{scale} | {ours_median:.1f} | {their_median:.1f} |"
            f" {ours_median / their_median:.2f} | {value:.4f} |"
        )
    write_section(options.output, "agreement", "\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
