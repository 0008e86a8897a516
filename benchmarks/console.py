"""Console benchmark: server time of the QA lead's pages at the analytics benchmark's scale.

``python -m benchmarks.console [--size 10000000] [--requests 30] [--output F]`` measures what
issue #11's "Performance" section asks for: every console page under 100 ms server time at
10 M decisions.

1. builds the history with the reports benchmark's own builder (``benchmarks.report_seed.
   ReportSeeder``: 90 days of decisions, a 5 % audited sample, disputes, appeals, loaded by
   COPY) and rebuilds the rollups one market-local day at a time
   (``benchmarks.reports.time_rollups``), into a fresh database (``plumbline_bench_console``)
   migrated by ``plumbline migrate``;
2. starts ``plumbline api`` (``benchmarks.reports.Api``, as ``make run`` starts it), creates a
   manager over ``POST /v1/users`` and signs in through the console's sign-in form, as a
   browser does (session cookie, CSRF token);
3. times, after a warm-up, sequential requests over real HTTP of each console page: the
   overview over the last 30 days, the audits list (the overview's drill-down into one
   market's 30 days, first page), the reports page; and, in the same run, the baselines
   ``GET /healthz`` (the HTTP floor) and ``GET /v1/reports/briefing`` as JSON (the API's
   answer of the same figures the overview shows).

``--keep-database`` keeps the database; ``--reuse-database`` times the pages again on a kept
one (step 1 skipped; ``plumbline migrate`` brings it to head, migrations fill new rollup
tables from the rollups there are), e.g. after a change to the code under measure.

Server time is measured at the client on the same machine (loopback): the floor says what
HTTP itself costs. Medians and p95 per page; missing the target is reported, not an error.
PostgreSQL and Redis are found as by the other benchmarks (``benchmarks.bench_database``).
Results: a summary on stdout and the "console" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from benchmarks.bench_database import Backing, bench_command, plain_dsn, resolve_backing
from benchmarks.report_file import DEFAULT_REPORT, write_section
from benchmarks.report_seed import ReportSeeder, table_counts
from benchmarks.reports import (
    ROLLUP_TABLES,
    SEEDED_TABLES,
    Api,
    BenchmarkError,
    Machine,
    load_rebuild,
    machine_facts,
    say,
    time_rollups,
    vacuum_analyze,
)
from shared.core.db import create_engine, create_sessionmaker

BENCH_DATABASE = "plumbline_bench_console"
# The briefing's coarser rollups (migration 0014), kept with the others.
DAY_ROLLUP_TABLES = ("queue_day_rollups", "population_day_rollups")
SHARED_REDIS_DATABASE = 13
TARGET_MS = 100.0
WINDOW_DAYS = 30
REQUEST_TIMEOUT_SECONDS = 120.0
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Options:
    size: int
    requests: int
    warmup: int
    end_day: date
    seed: int
    output: Path
    keep_database: bool
    reuse_database: bool
    database: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return bench_command("benchmarks.console", self.argv)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.console",
        description="Time the QA lead's console pages at scale; writes docs/benchmarks.md.",
    )
    parser.add_argument("--size", type=int, default=10_000_000, help="decisions (10000000)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page (30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first (3)")
    parser.add_argument(
        "--end-day",
        type=date.fromisoformat,
        default=datetime.now(UTC).date() - timedelta(days=1),
        help="last UTC day of the 90 days of history (yesterday)",
    )
    parser.add_argument("--seed", type=int, default=8, help="random seed of the data (8)")
    parser.add_argument("--output", type=Path, default=DEFAULT_REPORT, help="report file")
    parser.add_argument(
        "--keep-database", action="store_true", help="do not drop the database at the end"
    )
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help="time the pages on --database as an earlier --keep-database run left it (give "
        "the same --size, --seed and --end-day): migrated to head, neither seeded nor its "
        "rollups rebuilt, kept at the end; needs PLUMBLINE_BENCH_DATABASE_URL",
    )
    parser.add_argument(
        "--database", default=BENCH_DATABASE, help=f"database to create ({BENCH_DATABASE})"
    )
    args = parser.parse_args(argv)
    if args.size < 1 or args.requests < 1:
        parser.error("--size and --requests must be at least 1")
    return Options(
        size=args.size,
        requests=args.requests,
        warmup=max(0, args.warmup),
        end_day=args.end_day,
        seed=args.seed,
        output=args.output,
        keep_database=args.keep_database,
        reuse_database=args.reuse_database,
        database=args.database,
        argv=tuple(sys.argv[1:] if argv is None else argv),
    )


@dataclass
class Timing:
    """Timings of one page (milliseconds), or why it was not measured."""

    name: str
    path: str
    baseline: bool = False
    samples: list[float] = field(default_factory=list)
    skipped: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        """95th percentile (linear interpolation between the closest ranks)."""
        ordered = sorted(self.samples)
        position = 0.95 * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    @property
    def met(self) -> bool:
        return not self.skipped and self.median < TARGET_MS and self.p95 < TARGET_MS


@dataclass
class Result:
    size: int
    tables: dict[str, int]
    # None when the run reused a kept database.
    seed_seconds: float | None
    rollup_seconds: float | None
    pages: list[Timing]
    load: tuple[float, float]


async def build_history(options: Options, backing: Backing) -> tuple[dict[str, int], float, float]:
    """The reports benchmark's history at ``options.size`` decisions, with its rollups."""
    seeder = ReportSeeder(end_day=options.end_day, seed=options.seed)
    engine = create_engine(backing.database_url)
    connection = await asyncpg.connect(plain_dsn(backing.database_url))
    try:
        await seeder.seed_reference(connection)
        await seeder.ensure_partitions(connection)
        say(f"seeding {options.size:,} decisions")
        started = time.perf_counter()
        await seeder.seed(connection, options.size)
        await vacuum_analyze(connection, SEEDED_TABLES)
        seed_seconds = time.perf_counter() - started
        tables = await table_counts(connection, SEEDED_TABLES)
        say(f"seeded in {seed_seconds:.0f} s: {tables}")
        rollup_days = await time_rollups(create_sessionmaker(engine), seeder, load_rebuild())
        await vacuum_analyze(connection, (*ROLLUP_TABLES, *DAY_ROLLUP_TABLES))
        say(f"rollups rebuilt in {sum(rollup_days):.0f} s")
    finally:
        await connection.close()
        await engine.dispose()
    return tables, seed_seconds, sum(rollup_days)


async def kept_history(backing: Backing) -> dict[str, int]:
    """The row counts of a database an earlier run kept, its rollups vacuumed and analysed
    (migrating it may have added rollup tables)."""
    connection = await asyncpg.connect(plain_dsn(backing.database_url))
    try:
        tables = await table_counts(connection, SEEDED_TABLES)
        if not tables["decisions"]:
            raise BenchmarkError("the reused database holds no decisions: seed it first")
        await vacuum_analyze(connection, (*ROLLUP_TABLES, *DAY_ROLLUP_TABLES))
    finally:
        await connection.close()
    say(f"reusing the kept database: {tables}")
    return tables


async def sign_in_manager(api: Api, client: httpx.AsyncClient) -> None:
    """A manager of every market, made over the admin API, signed in through the form."""
    email = f"bench-lead-{secrets.token_hex(4)}@example.com"
    password = secrets.token_urlsafe(18)
    created = await client.post(
        "/v1/users",
        json={"email": email, "role": "manager", "password": password},
        headers={"Authorization": f"Bearer {api.admin_key}"},
    )
    if created.status_code != 201:
        raise BenchmarkError(f"POST /v1/users answered {created.status_code}: {created.text}")
    form = await client.get("/console/sign-in")
    token = _CSRF_FIELD.search(form.text)
    if token is None:
        raise BenchmarkError("the sign-in page has no CSRF token")
    signed = await client.post(
        "/console/sign-in",
        data={"email": email, "password": password, "csrf_token": token.group(1)},
    )
    if signed.status_code != 303:
        raise BenchmarkError(f"console sign-in answered {signed.status_code}")


def pages(options: Options, market: str) -> list[Timing]:
    first = (options.end_day - timedelta(days=WINDOW_DAYS - 1)).isoformat()
    last = options.end_day.isoformat()
    window = f"from={first}&to={last}"
    return [
        Timing(f"overview, {WINDOW_DAYS} days", f"/console/overview?{window}"),
        Timing(
            f"audits (drill-down: {market}, {WINDOW_DAYS} days, first page)",
            f"/console/audits?{window}&market={market}&status=completed",
        ),
        Timing("reports page", "/console/reports"),
        Timing("GET /healthz (HTTP floor)", "/healthz", baseline=True),
        Timing(
            f"GET /v1/reports/briefing JSON, {WINDOW_DAYS} days (the overview's figures)",
            f"/v1/reports/briefing?{window}",
            baseline=True,
        ),
    ]


async def time_pages(api: Api, options: Options, market: str) -> list[Timing]:
    timings = pages(options, market)
    async with httpx.AsyncClient(
        base_url=api.base_url, timeout=REQUEST_TIMEOUT_SECONDS, follow_redirects=False
    ) as client:
        await sign_in_manager(api, client)
        api_headers = {"Authorization": f"Bearer {api.admin_key}"}
        for timing in timings:
            headers = api_headers if timing.path.startswith("/v1/") else {}
            try:
                for run in range(options.warmup + options.requests):
                    started = time.perf_counter()
                    response = await client.get(timing.path, headers=headers)
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        timing.samples.clear()
                        timing.skipped = f"answered {response.status_code}: {response.text[:200]}"
                        break
                    if run >= options.warmup:
                        timing.samples.append(elapsed)
            except httpx.HTTPError as exc:
                timing.samples.clear()
                timing.skipped = f"no answer ({exc!r})"
            if timing.skipped:
                say(f"{timing.name}: {timing.skipped}")
            else:
                say(f"{timing.name}: median {timing.median:.1f} ms, p95 {timing.p95:.1f} ms")
    return timings


async def busiest_market(backing: Backing, options: Options) -> str:
    """The market with the most audits in the window (the drill-down worth timing)."""
    connection = await asyncpg.connect(plain_dsn(backing.database_url))
    try:
        market = await connection.fetchval(
            "SELECT market FROM audits WHERE day >= $1 GROUP BY market ORDER BY count(*) DESC"
            " LIMIT 1",
            options.end_day - timedelta(days=WINDOW_DAYS - 1),
        )
    finally:
        await connection.close()
    return str(market or "DE")


async def measure(options: Options, backing: Backing, api: Api) -> Result:
    seed_seconds: float | None = None
    rollup_seconds: float | None = None
    if options.reuse_database:
        tables = await kept_history(backing)
    else:
        tables, seed_seconds, rollup_seconds = await build_history(options, backing)
    market = await busiest_market(backing, options)
    load_before = os.getloadavg()[0]
    try:
        await api.start()
        timings = await time_pages(api, options, market)
    finally:
        api.stop()
    return Result(
        size=options.size,
        tables=tables,
        seed_seconds=seed_seconds,
        rollup_seconds=rollup_seconds,
        pages=timings,
        load=(load_before, os.getloadavg()[0]),
    )


def render_report(
    options: Options,
    backing: Backing,
    machine: Machine,
    result: Result,
    started: datetime,
    finished: datetime,
) -> str:
    out: list[str] = ["## Console pages at scale (issue #11)", ""]
    out.append(
        f"- Date: {started:%Y-%m-%d %H:%M} UTC (the run took {finished - started}); "
        f"code: commit {machine.commit}."
    )
    out.append(f"- Command: `{options.command}`")
    competed = (
        "above the core count: other processes competed for the CPU"
        if max(result.load) > machine.cores
        else "within the core count"
    )
    out.append(
        f"- Machine: {machine.cpu}, {machine.cores} cores, {machine.ram_gib:.1f} GiB; "
        f"{machine.postgres} ({machine.postgres_settings}); Python {machine.python}. "
        f"1-minute load {result.load[0]:.2f} before and {result.load[1]:.2f} after the timed "
        f"requests ({competed})."
    )
    out.append(f"- PostgreSQL: {backing.database_origin}; Redis: {backing.redis_origin}.")
    out.append(
        f"- Data: {result.size:,} decisions over 90 days (the reports benchmark's "
        f"ReportSeeder, seed {options.seed}, ending {options.end_day}): "
        + ", ".join(f"{name} {count:,}" for name, count in result.tables.items())
        + (
            "; a database an earlier run seeded and kept, reused (migrated to head)."
            if result.seed_seconds is None or result.rollup_seconds is None
            else f"; seeded in {result.seed_seconds:.0f} s, rollups rebuilt in "
            f"{result.rollup_seconds:.0f} s."
        )
    )
    out.append(
        f"- Requests: {options.warmup} untimed, then {options.requests} timed, sequential, "
        "over HTTP on loopback, signed in as a manager of every market (a console session "
        "from the sign-in form); the API's briefing with an admin key."
    )
    out += ["", "| Page | Median ms | p95 ms | Under 100 ms |", "| --- | ---: | ---: | --- |"]
    for timing in result.pages:
        if timing.skipped:
            out.append(f"| {timing.name} | — | — | not measured: {timing.skipped} |")
            continue
        verdict = "baseline" if timing.baseline else ("**met**" if timing.met else "**not met**")
        out.append(f"| {timing.name} | {timing.median:,.1f} | {timing.p95:,.1f} | {verdict} |")
    return "\n".join(out) + "\n"


def summary_lines(result: Result) -> list[str]:
    return [
        f"{timing.name}: "
        + (timing.skipped or f"median {timing.median:.1f} ms, p95 {timing.p95:.1f} ms")
        + ("" if timing.baseline or timing.skipped else (" (met)" if timing.met else " (NOT met)"))
        for timing in result.pages
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it completed (a missed target is reported, not an error)."""
    options = parse_options(argv)
    started = datetime.now(UTC).replace(microsecond=0)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="plumbline-bench-console-") as directory,
            contextlib.ExitStack() as exits,
        ):
            workdir = Path(directory)
            say("preparing PostgreSQL and Redis")
            backing = resolve_backing(
                exits,
                workdir,
                database=options.database,
                shared_redis_database=SHARED_REDIS_DATABASE,
                keep_database=options.keep_database,
                reuse_database=options.reuse_database,
            )
            api = Api(backing, workdir)
            exits.callback(api.stop)
            say("plumbline migrate")
            api.migrate()
            machine = asyncio.run(machine_facts(backing))
            result = asyncio.run(measure(options, backing, api))
    except (BenchmarkError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130
    finished = datetime.now(UTC).replace(microsecond=0)
    write_section(
        options.output,
        "console",
        render_report(options, backing, machine, result, started, finished),
    )
    say(f"wrote {options.output}")
    for line in summary_lines(result):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
