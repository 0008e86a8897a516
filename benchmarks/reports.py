"""Reports benchmark: rollup time and report latency at 1 M and 10 M decisions (issue #8).

``python -m benchmarks.reports [--sizes 1000000,10000000] [--requests 50] [--output F]``
(``make bench``) measures what issue #8's "Scale" section asks for, at each size in one run:

1. seeds a fresh database (``plumbline_bench_reports``, migrated to head by ``plumbline
   migrate``) with 90 days of history by COPY (``benchmarks/report_seed.py``: decisions, a
   5 % sample of audits with verdicts, disagreements, appeals, reference data), then grows it
   to the next size over the same 90 days;
2. rebuilds the rollups one market-local day at a time with
   ``shared.analytics.rollups.rebuild_quality_rollups(session, day_from=d, day_to=d)``, each
   day its own transaction, and reports the median and total seconds per day of data;
3. times 50 requests (after a warm-up) of each report through HTTP against ``plumbline api``
   (uvicorn, as ``make run`` starts it, pointed at the benchmark database): accuracy by
   moderator over 30 days, the trend by week over 90 days, the briefing as JSON; an endpoint
   that answers 404 is skipped with a note;
4. times the same accuracy report computed straight from the raw tables (the SQL of
   ``accuracy_rows`` as it was at commit dc63c0a: verdicts JOIN audits, GROUP BY moderator),
   in-process, 50 runs, and a raw scan of the decisions (coverage: decisions per moderator
   over the same 30 days), so the reader sees what the rollups save.

Targets: every report under 300 ms at 10 M decisions, and flat from 1 M to 10 M.

PostgreSQL comes from ``PLUMBLINE_BENCH_DATABASE_URL``, else ``PLUMBLINE_TEST_DATABASE_URL``
(any database of that server: the benchmark creates its own and drops it at the end, unless
``--keep-database``), else an embedded server. Redis (the API's readiness check needs one)
from ``PLUMBLINE_BENCH_REDIS_URL``, else ``PLUMBLINE_TEST_REDIS_URL`` with database 15, else
embedded. Results: a summary on stdout and the "reports" section of ``docs/benchmarks.md``
(replaced on each run). Missing a target is reported, not an error; speed is measured here,
never in timed tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchmarks.bench_database import (
    Backing,
    bench_command,
    plain_dsn,
    resolve_backing,
)
from benchmarks.report_file import DEFAULT_REPORT, write_section
from benchmarks.report_seed import ReportSeeder, SeedCounts, table_counts
from benchmarks.run import tail
from benchmarks.stack import free_port
from shared.core.db import create_engine, create_sessionmaker
from shared.models import Audit, Decision, Verdict
from shared.reports.rows import accuracy_row

BENCH_DATABASE = "plumbline_bench_reports"
SHARED_REDIS_DATABASE = 15
TARGET_MS = 300.0
# Flat: the 10 M median within this factor of the 1 M median (noise on a shared machine).
FLAT_FACTOR = 1.5
READY_TIMEOUT_SECONDS = 120.0
REQUEST_TIMEOUT_SECONDS = 120.0
ACCURACY_DAYS = 30
TREND_DAYS = 90
SEEDED_TABLES = (
    "decisions", "audits", "verdicts", "disagreements", "disagreement_changes", "appeals",
    "sampling_runs", "intake_batches", "reviewers", "markets", "queues", "policies",
)  # fmt: skip
ROLLUP_TABLES = ("quality_rollups", "action_confusion_rollups")

RebuildRollups = Callable[..., Awaitable[int]]


class BenchmarkError(RuntimeError):
    """The benchmark could not run (a server, service or the rollup code is missing)."""


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    """Command-line settings of one run."""

    sizes: tuple[int, ...]
    requests: int
    warmup: int
    end_day: date
    seed: int
    output: Path
    keep_database: bool
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        """The command line with the server variables it used (passwords hidden)."""
        return bench_command("benchmarks.reports", self.argv)


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    if not sizes or any(b <= a for a, b in itertools.pairwise(sizes)) or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be increasing positive integers")
    return sizes


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reports",
        description="Benchmark rollups and reports at growing history; writes docs/benchmarks.md.",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=(1_000_000, 10_000_000),
        help="decisions at each measurement, increasing, comma-separated (1000000,10000000)",
    )
    parser.add_argument("--requests", type=int, default=50, help="timed requests per report (50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first (5)")
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
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    return Options(
        sizes=args.sizes,
        requests=args.requests,
        warmup=max(0, args.warmup),
        end_day=args.end_day,
        seed=args.seed,
        output=args.output,
        keep_database=args.keep_database,
        argv=tuple(sys.argv[1:] if argv is None else argv),
    )


# ----------------------------------------------------------------------------- servers


class Api:
    """``plumbline migrate``, then ``plumbline api`` in its own process group."""

    def __init__(self, backing: Backing, workdir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_key = secrets.token_urlsafe(32)
        self.log = workdir / "api.log"
        self.env = {
            **os.environ,
            "PLUMBLINE_DATABASE_URL": backing.database_url,
            "PLUMBLINE_REDIS_URL": backing.redis_url,
            "PLUMBLINE_DATA_DIR": str(workdir / "data"),
            "PLUMBLINE_API_HOST": "127.0.0.1",
            "PLUMBLINE_API_PORT": str(self.port),
            "PLUMBLINE_API_WORKERS": "1",
            "PLUMBLINE_BOOTSTRAP_ADMIN_KEY": self.admin_key,
            "PLUMBLINE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PLUMBLINE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self, name: str) -> list[str]:
        return [sys.executable, "-m", "services.cli", name]

    def migrate(self) -> None:
        """Schema to head and the bootstrap admin key, with the project's migration code."""
        log = self.log.with_name("migrate.log")
        with log.open("wb") as handle:
            done = subprocess.run(
                self._command("migrate"),
                env=self.env,
                cwd=Path(__file__).resolve().parent.parent,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=600,
                check=False,
            )
        if done.returncode != 0:
            raise BenchmarkError(f"plumbline migrate failed:\n{tail(log)}")

    def spawn(self) -> None:
        """Start ``plumbline api`` (see ``start``)."""
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            self._command("api"),
            env=self.env,
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        handle.close()

    async def start(self) -> None:
        """Start the API and wait until ``/readyz`` answers 200."""
        self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last = "no answer"
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BenchmarkError(f"plumbline api exited:\n{tail(self.log)}")
                try:
                    response = await client.get("/readyz")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                await asyncio.sleep(0.3)
        raise BenchmarkError(f"the API was not ready in {READY_TIMEOUT_SECONDS:.0f} s: {last}")

    def stop(self) -> None:
        """SIGTERM the API's process group, SIGKILL it if it lingers."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def warnings(self) -> list[str]:
        """Lines the API logged (at WARNING and above, so each is news)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------ measurements


@dataclass
class Latency:
    """Timings of one report at one size (milliseconds), or why it was skipped."""

    name: str
    short: str
    samples: list[float] = field(default_factory=list)
    skipped: str | None = None
    rows: int | None = None

    @property
    def median(self) -> float:
        """Median of the timed runs."""
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        """99th percentile (linear interpolation between the closest ranks)."""
        ordered = sorted(self.samples)
        if len(ordered) == 1:
            return ordered[0]
        position = 0.99 * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class SizeResult:
    """Everything measured at one size."""

    size: int
    counts: SeedCounts
    tables: dict[str, int]
    seed_seconds: float
    rollup_days: list[float]
    rollup_rows: dict[str, int]
    reports: list[Latency]
    baselines: list[Latency]
    # 1-minute load average when the latency measurements began and ended (2 cores: above 2
    # means processes outside the benchmark were competing for the CPU).
    load: tuple[float, float]


def _window(options: Options, days: int) -> tuple[date, date]:
    return options.end_day - timedelta(days=days - 1), options.end_day


def report_requests(options: Options) -> list[tuple[str, str, str, dict[str, str]]]:
    """(column label, description, path, query) of each report timed through HTTP."""
    accuracy_from, accuracy_to = _window(options, ACCURACY_DAYS)
    trend_from, trend_to = _window(options, TREND_DAYS)
    return [
        (
            "accuracy",
            f"accuracy by moderator, {ACCURACY_DAYS} days",
            "/v1/reports/accuracy",
            {
                "group_by": "moderator",
                "from": accuracy_from.isoformat(),
                "to": accuracy_to.isoformat(),
            },
        ),
        (
            "trend",
            f"trend by week, {TREND_DAYS} days",
            "/v1/reports/trend",
            {"interval": "week", "from": trend_from.isoformat(), "to": trend_to.isoformat()},
        ),
        (
            "briefing",
            f"briefing JSON, {ACCURACY_DAYS} days",
            "/v1/reports/briefing",
            {"format": "json", "from": accuracy_from.isoformat(), "to": accuracy_to.isoformat()},
        ),
    ]


async def time_http(api: Api, options: Options) -> list[Latency]:
    """Each report: warm-up, then ``options.requests`` sequential requests, timed.

    A report that answers 404 (not built yet), another error or no answer at all is skipped
    with the reason; the others are still measured (a long run is not lost to one route).
    """
    results: list[Latency] = []
    headers = {"Authorization": f"Bearer {api.admin_key}"}
    async with httpx.AsyncClient(
        base_url=api.base_url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        for short, label, path, params in report_requests(options):
            latency = Latency(f"`GET {path}` ({label})", f"{short} (HTTP)")
            results.append(latency)
            try:
                await _time_report(client, latency, path, params, options)
            except httpx.HTTPError as exc:
                latency.samples.clear()
                latency.skipped = f"{path}: no answer ({exc!r}): skipped"
            if latency.skipped:
                say(latency.skipped)
            else:
                say(f"{label}: median {latency.median:.1f} ms, p99 {latency.p99:.1f} ms")
    return results


async def time_floor(api: Api, options: Options) -> Latency:
    """``GET /healthz`` timed like the reports: the cost of HTTP, the middleware and the
    client on this machine, which no report can go below."""
    latency = Latency("`GET /healthz` (no-op endpoint: the HTTP floor)", "floor (HTTP)")
    async with httpx.AsyncClient(base_url=api.base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        try:
            await _time_report(client, latency, "/healthz", {}, options)
        except httpx.HTTPError as exc:
            latency.samples.clear()
            latency.skipped = f"/healthz: no answer ({exc!r}): skipped"
    return latency


async def _time_report(
    client: httpx.AsyncClient,
    latency: Latency,
    path: str,
    params: dict[str, str],
    options: Options,
) -> None:
    first = await client.get(path, params=params)
    if first.status_code == 404:
        latency.skipped = f"{path} answered 404 (not in this build): skipped"
        return
    if first.status_code != 200:
        latency.skipped = f"{path} answered {first.status_code}: {first.text[:300]}: skipped"
        return
    body = first.json()
    if isinstance(body, dict) and isinstance(body.get("rows"), list):
        latency.rows = len(body["rows"])
    for _ in range(max(0, options.warmup - 1)):
        await client.get(path, params=params)
    for _ in range(options.requests):
        started = time.perf_counter()
        response = await client.get(path, params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            latency.samples.clear()
            latency.skipped = (
                f"{path} answered {response.status_code} during the timed requests: "
                f"{response.text[:300]}: skipped"
            )
            return
        latency.samples.append(elapsed)


def raw_accuracy_by_moderator(day_from: date, day_to: date) -> Any:
    """The accuracy report by moderator straight from the raw tables: the query of
    ``shared.reports.service.accuracy_rows`` at commit dc63c0a (``group_by="moderator"``, no
    filters), copied so that the baseline stays what it was whatever the report becomes."""
    audited = func.count().label("audited")
    correct = func.count().filter(Verdict.effective_outcome == "correct").label("correct")
    source = Verdict.__table__.join(Audit.__table__, Audit.id == Verdict.audit_id)
    key = Verdict.moderator_id.label("key")
    order = key.collate("C")
    return (
        select(key, audited, correct)
        .select_from(source)
        .where(
            Audit.is_golden.is_(False),
            Verdict.day >= day_from,
            Verdict.day <= day_to,
        )
        .group_by(key)
        .order_by(order)
    )


def raw_decisions_by_moderator(day_from: date, day_to: date) -> Any:
    """Coverage's other half from the raw table: decisions per moderator over the window
    (UTC bounds widened by a day, as a market-local window needs without a join)."""
    start = datetime.combine(day_from - timedelta(days=1), datetime.min.time(), UTC)
    stop = datetime.combine(day_to + timedelta(days=2), datetime.min.time(), UTC)
    key = Decision.moderator_id.label("key")
    return (
        select(key, func.count().label("decisions"))
        .where(Decision.decided_at >= start, Decision.decided_at < stop)
        .group_by(key)
        .order_by(key.collate("C"))
    )


async def time_raw(
    sessionmaker: async_sessionmaker[AsyncSession], options: Options
) -> list[Latency]:
    """The raw-table baselines, in-process: warm-up, then ``options.requests`` runs each."""
    day_from, day_to = _window(options, ACCURACY_DAYS)
    results: list[Latency] = []
    for short, label, query, convert in (
        (
            "raw accuracy",
            f"raw: accuracy by moderator, {ACCURACY_DAYS} days (verdicts JOIN audits)",
            raw_accuracy_by_moderator(day_from, day_to),
            True,
        ),
        (
            "raw decisions scan",
            f"raw: decisions by moderator, {ACCURACY_DAYS} days (coverage's scan of decisions)",
            raw_decisions_by_moderator(day_from, day_to),
            False,
        ),
    ):
        latency = Latency(label, short)
        for run in range(options.warmup + options.requests):
            async with sessionmaker() as session:
                started = time.perf_counter()
                result = await session.execute(query)
                rows = result.all()
                if convert:
                    report = [
                        accuracy_row(r.key, audited=r.audited, correct=r.correct) for r in rows
                    ]
                    assert len(report) == len(rows)
                elapsed = (time.perf_counter() - started) * 1000
            if run >= options.warmup:
                latency.samples.append(elapsed)
            latency.rows = len(rows)
        say(f"{label}: median {latency.median:.1f} ms, p99 {latency.p99:.1f} ms")
        results.append(latency)
    return results


def load_rebuild() -> RebuildRollups:
    """``shared.analytics.rollups.rebuild_quality_rollups`` (engineer R's; must exist)."""
    try:
        from shared.analytics.rollups import rebuild_quality_rollups
    except ImportError as exc:
        raise BenchmarkError(
            f"shared.analytics.rollups.rebuild_quality_rollups is not available ({exc})"
        ) from exc
    rebuild: RebuildRollups = rebuild_quality_rollups
    return rebuild


async def time_rollups(
    sessionmaker: async_sessionmaker[AsyncSession], seeder: ReportSeeder, rebuild: RebuildRollups
) -> list[float]:
    """Rebuild each market-local day on its own (one transaction each); seconds per day."""
    seconds: list[float] = []
    for day in seeder.local_days():
        started = time.perf_counter()
        async with sessionmaker() as session:
            await rebuild(session, day_from=day, day_to=day)
            await session.commit()
        seconds.append(time.perf_counter() - started)
    return seconds


async def vacuum_analyze(connection: asyncpg.Connection, tables: Sequence[str]) -> None:
    """What autovacuum would have done to a table that grew over 90 days."""
    for table in tables:
        exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
        if exists:
            await connection.execute(f'VACUUM (ANALYZE) "{table}"')


async def measure(options: Options, backing: Backing, api: Api) -> list[SizeResult]:
    """Seed, rebuild, measure at each size, growing the same database."""
    rebuild = load_rebuild()
    seeder = ReportSeeder(end_day=options.end_day, seed=options.seed)
    engine = create_engine(backing.database_url)
    sessionmaker = create_sessionmaker(engine)
    connection = await asyncpg.connect(plain_dsn(backing.database_url))
    results: list[SizeResult] = []
    try:
        await seeder.seed_reference(connection)
        created = await seeder.ensure_partitions(connection)
        if created:
            say(f"created partitions {', '.join(created)}")
        for size in options.sizes:
            say(f"seeding to {size:,} decisions")
            started = time.perf_counter()
            counts = await seeder.seed(connection, size)
            await vacuum_analyze(connection, SEEDED_TABLES)
            seed_seconds = time.perf_counter() - started
            tables = await table_counts(connection, SEEDED_TABLES)
            say(f"seeded in {seed_seconds:.0f} s: {tables}")
            say(f"rebuilding rollups of {len(seeder.local_days())} days")
            rollup_days = await time_rollups(sessionmaker, seeder, rebuild)
            await vacuum_analyze(connection, ROLLUP_TABLES)
            rollup_rows = await table_counts(connection, ROLLUP_TABLES)
            say(
                f"rollups: median {statistics.median(rollup_days):.2f} s/day, "
                f"total {sum(rollup_days):.0f} s; rows {rollup_rows}"
            )
            load_before = os.getloadavg()[0]
            floor = Latency("`GET /healthz` (no-op endpoint: the HTTP floor)", "floor (HTTP)")
            try:
                await api.start()
                floor = await time_floor(api, options)
                reports = await time_http(api, options)
            except BenchmarkError as exc:
                # The API did not start (a route being edited, say): the rest still counts.
                say(f"the API did not start: {exc}")
                reports = [
                    Latency(f"`GET {path}` ({label})", f"{short} (HTTP)", skipped=f"{exc}"[:300])
                    for short, label, path, _ in report_requests(options)
                ]
            finally:
                api.stop()
            baselines = [*await time_raw(sessionmaker, options), floor]
            load = (load_before, os.getloadavg()[0])
            results.append(
                SizeResult(
                    size, SeedCounts(**vars(counts)), tables, seed_seconds, rollup_days,
                    rollup_rows, reports, baselines, load,
                )
            )  # fmt: skip
    finally:
        await connection.close()
        await engine.dispose()
    return results


# ------------------------------------------------------------------------------ report


def say(message: str) -> None:
    """Progress on stdout, timestamped."""
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


@dataclass(frozen=True)
class Machine:
    """What a reader needs to compare runs."""

    cpu: str
    cores: int
    ram_gib: float
    postgres: str
    postgres_settings: str
    python: str
    commit: str


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def host_facts() -> tuple[str, float]:
    """The CPU model and the RAM in GiB, from /proc."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 1024**2
    return cpu, ram


async def machine_facts(backing: Backing) -> Machine:
    """CPU model, cores, RAM, PostgreSQL version and settings, Python, commit."""
    cpu, ram = await asyncio.to_thread(host_facts)
    connection = await asyncpg.connect(plain_dsn(backing.database_url))
    try:
        version = str(await connection.fetchval("SELECT version()")).split(" on ")[0]
        settings = []
        for name in ("shared_buffers", "work_mem", "effective_cache_size", "jit"):
            settings.append(f"{name}={await connection.fetchval(f'SHOW {name}')}")
    finally:
        await connection.close()
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes in the tree)"
    return Machine(
        cpu=cpu,
        cores=os.cpu_count() or 0,
        ram_gib=ram,
        postgres=version,
        postgres_settings=", ".join(settings),
        python=f"{platform.python_version()} ({platform.python_implementation()})",
        commit=commit,
    )


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _n(value: int) -> str:
    return f"{value:,}"


def _verdict_on_target(results: list[SizeResult]) -> list[str]:
    """One line per report: under the target at the largest size, and flat."""
    lines: list[str] = []
    first, last = results[0], results[-1]
    for index, latency in enumerate(last.reports):
        if latency.skipped:
            lines.append(f"- {latency.name}: not measured ({latency.skipped}).")
            continue
        under = latency.median < TARGET_MS and latency.p99 < TARGET_MS
        text = (
            f"- {latency.name}: median {_ms(latency.median)} ms, p99 {_ms(latency.p99)} ms at "
            f"{_n(last.size)} decisions: under {TARGET_MS:.0f} ms "
            + ("**met**" if under else "**not met**")
        )
        earlier = first.reports[index]
        if len(results) > 1 and not earlier.skipped:
            ratio = latency.median / earlier.median
            flat = ratio <= FLAT_FACTOR
            text += (
                f"; {ratio:.2f}x the median at {_n(first.size)} (flat = within "
                f"{FLAT_FACTOR}x): " + ("**met**" if flat else "**not met**")
            )
        lines.append(text + ".")
    return lines


def render_report(
    options: Options,
    backing: Backing,
    machine: Machine,
    results: list[SizeResult],
    started: datetime,
    finished: datetime,
    warnings: list[str],
) -> str:
    """The markdown section of ``docs/benchmarks.md``."""
    out: list[str] = []
    add = out.append
    add("## Reports over a growing history (issue #8)")
    add("")
    add(
        "Generated by `benchmarks/reports.py`; do not edit by hand, run it again "
        "(`make bench` or the command below)."
    )
    add("")
    add(f"- Command: `{options.command}` (from the repository root)")
    add(
        f"- Date: {started:%Y-%m-%d %H:%M} UTC (the run took {finished - started}); code: "
        f"commit {machine.commit}"
    )
    add(
        f"- Machine: {machine.cpu}, {machine.cores} logical cores (`nproc`), "
        f"{machine.ram_gib:.1f} GiB RAM, Python {machine.python}; API, PostgreSQL and the "
        "load generator on the same machine"
    )
    add(
        f"- PostgreSQL: {machine.postgres} ({machine.postgres_settings}); "
        f"{backing.database_origin}, database `{BENCH_DATABASE}` created fresh"
        + (", dropped at the end" if not options.keep_database else ", kept")
    )
    add(f"- Redis: {backing.redis_origin}")
    add("")
    add("### Results")
    add("")
    header = ["Decisions", "Verdicts", "Rollup s/day (median)", "Rollup total s (days)"]
    measured = [*results[0].reports, *results[0].baselines]
    header.extend(f"{latency.short} median / p99 ms" for latency in measured)
    header.append("raw accuracy / accuracy (medians)")
    add("| " + " | ".join(header) + " |")
    add("| " + " | ".join(["---:"] * len(header)) + " |")
    for result in results:
        cells = [
            _n(result.size),
            _n(result.counts.verdicts),
            f"{statistics.median(result.rollup_days):.2f}",
            f"{sum(result.rollup_days):,.0f} ({len(result.rollup_days)})",
        ]
        for latency in [*result.reports, *result.baselines]:
            if latency.skipped or not latency.samples:
                cells.append("skipped (404)" if latency.skipped and "404" in latency.skipped
                             else "skipped")  # fmt: skip
            else:
                cells.append(f"{_ms(latency.median)} / {_ms(latency.p99)}")
        accuracy, raw = result.reports[0], result.baselines[0]
        if accuracy.samples and raw.samples:
            cells.append(f"{raw.median / accuracy.median:.1f}x")
        else:
            cells.append("n/a")
        add("| " + " | ".join(cells) + " |")
    add("")
    add(
        "Columns: "
        + "; ".join(f"{latency.short} = {latency.name}" for latency in measured)
        + ". Rollup total: seconds summed over the days rebuilt (their number in brackets)."
    )
    add("")
    add(f"Targets: every report under {TARGET_MS:.0f} ms at the largest size, flat in size.")
    add("")
    out.extend(_verdict_on_target(results))
    add("")
    add("### Data and rollups at each size")
    add("")
    add(
        "| Decisions | Audits | Verdicts incorrect (as judged / effective) | Disagreements "
        "(disputed, overturned) | Appeals (reversed) | quality_rollups rows "
        "| action_confusion_rollups rows | Seeding s (COPY + VACUUM ANALYZE) "
        "| Load average during the latency runs |"
    )
    add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        c = result.counts
        add(
            f"| {_n(result.size)} | {_n(c.audits)} | {_n(c.incorrect)} "
            f"({c.incorrect / max(1, c.verdicts):.1%}) / {_n(c.effectively_incorrect)} "
            f"| {_n(c.disagreements)} ({_n(c.disputed)}, {_n(c.overturned)}) "
            f"| {_n(c.appeals)} ({_n(c.appeals_reversed)}) "
            f"| {_n(result.rollup_rows.get('quality_rollups', 0))} "
            f"| {_n(result.rollup_rows.get('action_confusion_rollups', 0))} "
            f"| {result.seed_seconds:,.0f} "
            f"| {result.load[0]:.1f} -> {result.load[1]:.1f} ({os.cpu_count()} cores) |"
        )
    add("")
    add("### Method")
    add("")
    add(
        f"- Data (`benchmarks/report_seed.py`, seed {options.seed}): {report_seed_shape()} "
        f"The history is the 90 UTC days ending {options.end_day.isoformat()}; each size adds "
        "its decisions over the same 90 days (so 10 M is ten times as dense as 1 M, not ten "
        "times as long), loaded with COPY in chunks of 100,000 (one transaction each), then "
        "`VACUUM (ANALYZE)` on the seeded tables, as autovacuum would have done over 90 days."
    )
    add(
        "- Rollup time: `shared.analytics.rollups.rebuild_quality_rollups(session, "
        "day_from=d, day_to=d)` for every market-local day that holds data (the 90 UTC days "
        "plus the day each side that time zones reach), one transaction each, commit "
        "included; the median and the total over the days. Then `VACUUM (ANALYZE)` of the "
        "rollup tables."
    )
    add(
        f"- Reports: `plumbline api` (uvicorn, 1 worker, as `make run` starts it; the relay "
        "and the report worker are not started: nothing is written during the measurement and "
        "their schedules would only add load), the bootstrap admin key; per report "
        f"{options.warmup} untimed requests, then {options.requests} sequential requests timed "
        "by the client (httpx, same machine), connection kept alive. p99 interpolates "
        "linearly between the closest ranks. An endpoint answering 404 is skipped. The "
        "floor: `GET /healthz` (no database, same middleware) timed the same way, the part "
        "of every report's time that is HTTP, uvicorn and the client rather than the report."
    )
    add(
        f"- Raw baseline: in the same run, in-process (SQLAlchemy session, no HTTP), "
        f"{options.requests} runs after {options.warmup} untimed ones of the accuracy-by-"
        "moderator query of `shared/reports/service.py` `accuracy_rows` as of commit dc63c0a "
        "(verdicts JOIN audits, non-golden, `GROUP BY moderator_id` over the 30 days), turned "
        "into rows by `accuracy_row`; and a scan of `decisions` counting each moderator's "
        "decisions over the same days (what audit coverage needs from the raw tables). The "
        "ratio column divides the raw accuracy median by the HTTP accuracy median."
    )
    add("")
    add("### Anomalies")
    add("")
    notes = [
        f"- {lat.name} at {_n(r.size)}: {lat.skipped}"
        for r in results
        for lat in r.reports
        if lat.skipped
    ]
    if warnings:
        notes.append(f"- `plumbline api` logged {len(warnings)} lines at WARNING or above:")
        notes.extend(f"  - `{line[:300]}`" for line in warnings[:10])
    out.extend(notes or ["None: every report answered 200 and the API logged no warnings."])
    return "\n".join(out)


def report_seed_shape() -> str:
    """One sentence on the seeded data's shape."""
    from benchmarks import report_seed as shape

    return (
        f"{len(shape.MARKETS)} markets ({', '.join(m for m, _ in shape.MARKETS)}, each in its "
        f"time zone from `shared/markets.py`), {len(shape.MARKETS) * len(shape.QUEUE_KINDS)} "
        f"queues, {shape.MODERATORS:,} moderators with uneven workloads, "
        f"{len(shape.POLICIES)} policy codes (one or two labels per enforcing decision), "
        f"actions {', '.join(f'{a} {s:.0%}' for a, s in zip(shape.ACTIONS, shape.ACTION_SHARES, strict=True))}; "  # noqa: E501
        f"{shape.AUDIT_SHARE:.0%} of decisions audited with a verdict (about 7 % judged "
        "incorrect, error types derived by `derive_error_type`, severities mixed); each "
        "incorrect verdict opens a disagreement (30 % disputed, about a third of the ruled "
        f"ones overturned); {shape.APPEAL_SHARE:.0%} of enforcing decisions appealed "
        f"({shape.APPEAL_REVERSED_SHARE:.0%} reversed)."
    )


def summary_lines(results: list[SizeResult]) -> Iterator[str]:
    """The short summary printed at the end."""
    for result in results:
        yield (
            f"{result.size:>12,} decisions: rollup {statistics.median(result.rollup_days):.2f} "
            f"s/day (median), {sum(result.rollup_days):.0f} s total"
        )
        for latency in [*result.reports, *result.baselines]:
            if latency.samples:
                yield (
                    f"{'':>14}{latency.name}: median {latency.median:.1f} ms, "
                    f"p99 {latency.p99:.1f} ms"
                )
            else:
                yield f"{'':>14}{latency.name}: {latency.skipped}"
    yield from _verdict_on_target(results)


# -------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it completed (a missed target is reported, not an error)."""
    options = parse_options(argv)
    started = datetime.now(UTC).replace(microsecond=0)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="plumbline-bench-reports-") as directory,
            contextlib.ExitStack() as exits,
        ):
            workdir = Path(directory)
            say("preparing PostgreSQL and Redis")
            backing = resolve_backing(
                exits,
                workdir,
                database=BENCH_DATABASE,
                shared_redis_database=SHARED_REDIS_DATABASE,
                keep_database=options.keep_database,
            )
            api = Api(backing, workdir)
            exits.callback(api.stop)
            say("plumbline migrate")
            api.migrate()
            machine = asyncio.run(machine_facts(backing))
            results = asyncio.run(measure(options, backing, api))
            warnings = api.warnings()
    except (BenchmarkError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130
    finished = datetime.now(UTC).replace(microsecond=0)
    write_section(
        options.output,
        "reports",
        render_report(options, backing, machine, results, started, finished, warnings),
    )
    say(f"wrote {options.output}")
    for line in summary_lines(results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
