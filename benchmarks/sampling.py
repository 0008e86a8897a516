"""Sampling benchmark: one market day of 1,000,000 decisions by 5,000 moderators.

``python -m benchmarks.sampling [--decisions N] [--moderators N] [--repeats N] [--output F]``

Loads the day into a fresh database (``plumbline_bench_sampling``, dropped and created, then
migrated to head) with ``COPY``, together with what the real plans look at: reviewer profiles
(most with a start date, some new, some without a profile so their first decision is looked
up), two weeks of verdicts for the low-accuracy boost, a market plan with every kind of boost,
a label quota and a binding daily cap, and a queue plan that wins over it for one queue.

Then it times the real job function, ``sample_daily_audits``, end to end (marking the job
running, streaming and selecting, inserting the audits, recording the run, completing the
job), ``--repeats`` times. Each repeat is a first run (the day's audits deleted before it)
followed by a rerun of the same day (the idempotent path: every selected decision is audited
already). The target is a first run under 30 s on this machine.

PostgreSQL comes from ``PLUMBLINE_BENCH_DATABASE_URL``, else ``PLUMBLINE_TEST_DATABASE_URL``
(any database on the server: the benchmark uses its own), else an embedded server under a
temporary directory. Results: a markdown table on stdout and in its section of
``docs/benchmarks.md`` (``--output`` names another file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from benchmarks.bench_database import drop_database, plain_dsn, recreate_database
from benchmarks.report_file import DEFAULT_REPORT, machine_line, write_section
from services.report_worker.sampling import sample_daily_audits
from shared.core.db import create_engine, create_sessionmaker
from shared.core.migrate import upgrade_to_head
from shared.core.queue import ArqRedis
from shared.core.settings import Settings, to_asyncpg_url
from shared.core.workers import WorkerState
from shared.decisions.partitions import REGISTER_MISSING_EVENT_KEYS
from shared.jobs import SampleDailyAudits

BENCH_DATABASE = "plumbline_bench_sampling"
TARGET_SECONDS = 30.0
DAY = date(2026, 11, 24)
MARKET = "DE"
ZONE = "Europe/Berlin"
# The local day in UTC (Berlin is UTC+1 in November).
DAY_START = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
QUEUES = [
    "de-video-standard", "de-video-priority", "de-image", "de-text", "de-comments",
    "de-live", "de-ads", "de-profiles",
]  # fmt: skip
QUEUE_PLAN_QUEUE = "de-live"
LABELS = [
    ("spam", 0.30), ("hate_speech", 0.10), ("harassment", 0.10), ("violent_graphic", 0.05),
    ("nudity", 0.10), ("scam", 0.08), ("self_harm", 0.02), ("csam", 0.0005),
    ("misinformation", 0.05),
]  # fmt: skip
ACTIONS = [("approve", 0.50), ("remove", 0.40), ("restrict", 0.08), ("escalate", 0.02)]
SOURCE_ID = uuid.UUID("5a3f1e0e-0000-4000-8000-000000000001")
BATCH_ID = uuid.UUID("5a3f1e0e-0000-4000-8000-000000000002")
DECISION_COLUMNS = [
    "source_id", "event_id", "content_id", "content_type", "queue", "market", "language",
    "moderator_id", "action", "policy_labels", "decided_at", "handling_time_ms", "metadata",
    "intake_batch_id",
]  # fmt: skip


@dataclass(frozen=True)
class Options:
    decisions: int
    moderators: int
    repeats: int
    output: Path


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--moderators", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=DEFAULT_REPORT)
    args = parser.parse_args(argv)
    return Options(args.decisions, args.moderators, args.repeats, args.output)


@contextlib.contextmanager
def server_url() -> Iterator[str]:
    """A PostgreSQL server: the configured one, or an embedded one for this run."""
    given = os.environ.get("PLUMBLINE_BENCH_DATABASE_URL") or os.environ.get(
        "PLUMBLINE_TEST_DATABASE_URL"
    )
    if given:
        yield to_asyncpg_url(given)
        return
    from shared.core.embedded import start_embedded_postgres

    with tempfile.TemporaryDirectory(prefix="plumbline-bench-") as directory:
        server = start_embedded_postgres(Path(directory) / "postgres")
        try:
            yield server.url
        finally:
            server.stop()


def _weighted(rng: random.Random, choices: Sequence[tuple[str, float]]) -> list[str]:
    return [name for name, share in choices if rng.random() < share]


def decision_records(options: Options) -> Iterator[tuple[Any, ...]]:
    """The day's decisions: moderators with uneven workloads, realistic labels and actions."""
    rng = random.Random(20261124)
    # Workloads vary tenfold between moderators (full-time, part-time, trainees).
    weights = [rng.uniform(0.2, 2.0) for _ in range(options.moderators)]
    moderators = rng.choices(range(options.moderators), weights=weights, k=options.decisions)
    action_names = [name for name, _ in ACTIONS]
    action_weights = [share for _, share in ACTIONS]
    actions = rng.choices(action_names, weights=action_weights, k=options.decisions)
    queues = rng.choices(QUEUES, k=options.decisions)
    step = 86_400 / options.decisions
    for n in range(options.decisions):
        yield (
            SOURCE_ID,
            f"evt-{n}",
            f"content-{n}",
            "video",
            queues[n],
            MARKET,
            "de",
            f"mod-{moderators[n]}",
            actions[n],
            _weighted(rng, LABELS),
            DAY_START + timedelta(seconds=n * step),
            rng.randrange(1_000, 60_000),
            "{}",
            BATCH_ID,
        )


async def load(connection: asyncpg.Connection, options: Options) -> None:
    """The day, the profiles, two weeks of verdicts and the plans."""
    rng = random.Random(7)
    await connection.execute(
        "INSERT INTO markets (code, default_language, time_zone) VALUES ($1, 'de', $2)",
        MARKET,
        ZONE,
    )
    await connection.executemany(
        "INSERT INTO queues (name, market_code) VALUES ($1, $2)",
        [(queue, MARKET) for queue in QUEUES],
    )
    # One moderator in ten is new (started within 30 days); one in ten has no profile.
    reviewers = []
    for index in range(options.moderators):
        if index % 10 == 9:
            continue
        started = DAY - timedelta(days=rng.randrange(0, 30) if index % 10 == 0 else 400)
        reviewers.append((f"mod-{index}", ["DE"], ["de"], started))
    await connection.copy_records_to_table(
        "reviewers", columns=["id", "markets", "languages", "started_on"], records=reviewers
    )
    await connection.copy_records_to_table(
        "decisions", columns=DECISION_COLUMNS, records=decision_records(options)
    )
    await connection.execute(REGISTER_MISSING_EVENT_KEYS)
    # Ten verdicts per moderator over the previous two weeks; a few moderators are sloppy.
    audits: list[tuple[Any, ...]] = []
    verdicts: list[tuple[Any, ...]] = []
    for index in range(options.moderators):
        accuracy = 0.6 if index % 25 == 0 else 0.95
        for n in range(10):
            audit_id = uuid.uuid4()
            decision_id = 10**12 + index * 10 + n  # historic decisions, not loaded
            day = DAY - timedelta(days=1 + n)
            outcome = "correct" if rng.random() < accuracy else "incorrect"
            audits.append(
                (audit_id, decision_id, "base", MARKET, QUEUES[0], "de", f"mod-{index}", [],
                 day, "completed", rng.random())
            )  # fmt: skip
            verdicts.append(
                (uuid.uuid4(), audit_id, decision_id, "auditor-1", f"mod-{index}", MARKET,
                 QUEUES[0], day, outcome, outcome, "{}")
            )  # fmt: skip
    await connection.copy_records_to_table(
        "audits",
        columns=[
            "id", "decision_id", "reason", "market", "queue", "language", "moderator_id",
            "policy_labels", "day", "status", "priority",
        ],
        records=audits,
    )  # fmt: skip
    await connection.copy_records_to_table(
        "verdicts",
        columns=[
            "id", "audit_id", "decision_id", "auditor_id", "moderator_id", "market", "queue",
            "day", "outcome", "effective_outcome", "policy_versions",
        ],
        records=verdicts,
    )  # fmt: skip
    await connection.execute(
        """
        INSERT INTO sampling_plans (id, name, market, rate, min_per_moderator,
            new_moderator_days, new_moderator_multiplier, low_accuracy_threshold,
            low_accuracy_multiplier, low_accuracy_window_days, label_boosts, label_quotas,
            action_boosts, daily_cap)
        VALUES ($1, 'DE market', 'DE', 0.1, 2, 30, 2.0, 0.85, 3.0, 14,
            '{"hate_speech": 2, "violent_graphic": 3, "self_harm": 3}', '{"csam": 200}',
            '{"approve": 1.5}', 120000)
        """,
        uuid.uuid4(),
    )
    await connection.execute(
        """
        INSERT INTO sampling_plans (id, name, queue, market, rate, min_per_moderator)
        VALUES ($1, 'DE live', $2, 'DE', 0.2, 1)
        """,
        uuid.uuid4(),
        QUEUE_PLAN_QUEUE,
    )
    await connection.execute("ANALYZE")


async def reset_day(connection: asyncpg.Connection) -> None:
    """Remove the day's audits and runs so that the next run is a first run again."""
    await connection.execute("DELETE FROM audits WHERE day = $1", DAY)
    await connection.execute("DELETE FROM sampling_runs")
    await connection.execute("DELETE FROM background_jobs")
    await connection.execute("VACUUM ANALYZE audits")


async def timed_job(ctx: WorkerState, connection: asyncpg.Connection) -> tuple[float, Any]:
    """Queue a job row as the API does and run the real job function; returns (s, result)."""
    job_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO background_jobs (id, kind, status, params) VALUES ($1, $2, 'queued', $3)",
        job_id,
        SampleDailyAudits.function,
        f'{{"day": "{DAY.isoformat()}", "market": "{MARKET}"}}',
    )
    started = time.perf_counter()
    await sample_daily_audits(ctx, SampleDailyAudits(job_id=job_id, day=DAY, market=MARKET))
    elapsed = time.perf_counter() - started
    row = await connection.fetchrow(
        "SELECT status, result, error FROM background_jobs WHERE id = $1", job_id
    )
    if row is None or row["status"] != "complete":
        raise RuntimeError(f"sampling job did not complete: {row and row['error']}")
    return elapsed, orjson.loads(row["result"])


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


async def run(options: Options, server: str) -> str:
    database_url = await recreate_database(server, BENCH_DATABASE)
    try:
        await asyncio.to_thread(upgrade_to_head, database_url)
        connection = await asyncpg.connect(plain_dsn(database_url))
        try:
            started = time.perf_counter()
            await load(connection, options)
            load_seconds = time.perf_counter() - started
            print(f"loaded {options.decisions:,} decisions in {load_seconds:.1f} s", flush=True)
            engine = create_engine(database_url, pool_size=2, max_overflow=0)
            # The report worker's state; the sampling job never touches Redis (the client
            # connects only when used).
            ctx = WorkerState(
                settings=Settings(database_url=database_url),
                engine=engine,
                sessionmaker=create_sessionmaker(engine),
                redis=ArqRedis(),
            )
            rows = []
            try:
                for repeat in range(1, options.repeats + 1):
                    await reset_day(connection)
                    first, result = await timed_job(ctx, connection)
                    rerun, again = await timed_job(ctx, connection)
                    if again["audits_created"] != 0:
                        raise RuntimeError("the rerun created audits: sampling is not idempotent")
                    rows.append((repeat, first, rerun, result))
                    print(
                        f"repeat {repeat}: first run {first:.2f} s "
                        f"({result['audits_created']:,} audits), rerun {rerun:.2f} s",
                        flush=True,
                    )
            finally:
                await engine.dispose()
        finally:
            await connection.close()
    finally:
        await drop_database(server, BENCH_DATABASE)
    return report(options, rows, load_seconds)


def report(
    options: Options, rows: list[tuple[int, float, float, dict[str, Any]]], load_seconds: float
) -> str:
    firsts = [first for _, first, _, _ in rows]
    reruns = [rerun for _, _, rerun, _ in rows]
    result = rows[-1][3]
    [market] = result["markets"]
    reasons: dict[str, int] = {}
    dropped = 0
    for plan in market["plans"]:
        dropped += plan["dropped_by_cap"]
        for reason, count in plan["by_reason"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    median_first = _median(firsts)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "## Sampling one market day",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; PostgreSQL and the job in one machine.",
        f"- Data: {options.decisions:,} decisions by {options.moderators:,} moderators in "
        f"{len(QUEUES)} queues of market {MARKET} on {DAY} ({ZONE}); loaded by COPY in "
        f"{load_seconds:.1f} s. Two plans (market plan with new-moderator, low-accuracy, label "
        "and action boosts, a label quota and a daily cap of 120,000; a queue plan).",
        "- Timed: the real job function `sample_daily_audits`, end to end. First run: the "
        "day's audits deleted before. Rerun: the same day again (every audit exists).",
        "- Command: `python -m benchmarks.sampling`",
        "",
        "| repeat | first run (s) | rerun (s) | decisions considered | audits created |",
        "|---:|---:|---:|---:|---:|",
    ]
    for repeat, first, rerun, run_result in rows:
        lines.append(
            f"| {repeat} | {first:.2f} | {rerun:.2f} | {run_result['decisions_considered']:,} "
            f"| {run_result['audits_created']:,} |"
        )
    lines += [
        f"| **median** | **{median_first:.2f}** | **{_median(reruns):.2f}** | | |",
        "",
        f"Target: first run under {TARGET_SECONDS:.0f} s: "
        f"**{'met' if median_first < TARGET_SECONDS else 'missed'}** "
        f"({median_first:.2f} s median). Audits by reason: "
        + ", ".join(f"{reason} {count:,}" for reason, count in reasons.items())
        + f"; {dropped:,} dropped by the cap. Peak RSS of the benchmark process "
        f"(loading included): "
        f"{peak_mib:,.0f} MiB.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    with server_url() as server:
        table = asyncio.run(run(options, server))
    print()
    print(table)
    command = "python -m benchmarks.sampling " + " ".join(argv or sys.argv[1:])
    write_section(
        options.output,
        "sampling",
        "## Daily audit sampling (issue #3)\n\n"
        f"- Command: `{command.strip()}`\n- Machine: {machine_line()}\n\n{table}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
