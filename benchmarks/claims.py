"""Claim benchmark: concurrent QA auditors on the real API, latency and no double assignment.

``python -m benchmarks.claims [--auditors 20] [--claims 60] [--think-ms 500]
[--saturated-claims 40] [--audits 20000] [--api-workers 1] [--output FILE]`` measures what
issue #3 asks for: under 20 concurrent auditors, ``POST /v1/audits/claim`` has a p99 under
50 ms, and no audit is ever handed to two auditors.

The API is the production one, ``plumbline api`` (``python -m services.cli api``) in its own
process, after ``plumbline migrate``. PostgreSQL comes from ``PLUMBLINE_BENCH_DATABASE_URL``,
else ``PLUMBLINE_TEST_DATABASE_URL``, else an embedded server; the database
``plumbline_bench_claims`` (``--database``) is dropped and created fresh (and dropped at the
end). Redis comes from ``PLUMBLINE_BENCH_REDIS_URL``, else ``PLUMBLINE_TEST_REDIS_URL``
database 14 (out of the test suite's and the intake benchmark's way), else an embedded server.

The data: ``--audits`` pending audits of as many decisions, spread over four markets (DE, AT,
FR, IT) and 1,000 moderators, a few of whom are auditors themselves, with random priorities
and policy labels, and a wellbeing cap on one sensitive label: every claim runs the whole
rule set (markets, languages, own decisions, caps, lease expiry) over a realistic backlog.
The auditors work in DE and AT, in German. Each auditor loops: claim (timed), judge, submit a
verdict (timed too; one in five incorrect, which opens a disagreement and queues two
events). Two phases, all auditors at once in each:

- paced (the target's measure): judging takes 0 to 2 x ``--think-ms`` (uniform), a hundred
  times faster than people judge, so claims of different auditors overlap all the time;
- saturated (throughput): no time to judge, a closed loop in which a request mostly waits
  behind the other auditors' requests in the API process.

The first ``--warmup`` claims of each auditor in a phase are not timed (connection set-up,
cold caches), but every claim counts for the checks:

- no audit id was handed to two auditors (client side), and the audit log records exactly
  one claim per audit (server side);
- every claim got its verdict, by the auditor who claimed it; none went to its own
  moderator, none outside the auditors' markets and languages, none past the cap.

Besides the load generator's latencies, the summary gives the share of claims the API served
within 50 ms by its own clock (its ``GET /metrics`` histogram; one API worker only), and the
API's CPU time per request in each phase (user + system seconds of the API process and its
uvicorn workers, psutil, before and after the phase, over the claims and verdicts sent):
unlike latencies, that figure does not depend on what else runs on the machine.

The API runs with the settings ``make run`` gives it (log level ``INFO`` unless
``--log-level`` says otherwise, one uvicorn worker unless ``--api-workers``). The
summary (Markdown) goes to stdout and to its section of ``docs/benchmarks.md`` (``--output``
names another file). The exit status is 1 when a check fails; missing the latency target is
reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import psutil  # type: ignore[import-untyped]
from cryptography.fernet import Fernet

from benchmarks.bench_database import (
    drop_database,
    flush_redis,
    plain_dsn,
    recreate_database,
)
from benchmarks.report_file import DEFAULT_REPORT, machine_line, write_section
from services.notifier.http11 import notifier_http_transport

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "plumbline_bench_claims"
# The test suite flushes its own database and the intake benchmark uses 15.
SHARED_REDIS_DATABASE = 14

P99_TARGET_MS = 50.0
MARKETS = (("DE", "de", 0.4), ("AT", "de", 0.2), ("FR", "fr", 0.2), ("IT", "it", 0.2))
AUDITOR_MARKETS = ["AT", "DE"]
AUDITOR_LANGUAGES = ["de"]
LABELS = ("hate_speech", "spam", "harassment", "violent_graphic", "nudity")
SENSITIVE_LABEL = "violent_graphic"
SENSITIVE_DAILY_CAP = 5
MODERATORS = 1000
ACTIONS = ("remove", "approve", "restrict", "escalate")
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
# Below uvicorn's keep-alive timeout (``timeout_keep_alive``, 5 s).
KEEPALIVE_SECONDS = 2.0


class BenchmarkError(RuntimeError):
    """The benchmark could not run."""


@dataclass(frozen=True)
class Options:
    auditors: int
    claims: int
    warmup: int
    think_ms: float
    saturated_claims: int
    audits: int
    api_workers: int
    floor_requests: int
    log_level: str
    database: str
    output: Path
    argv: tuple[str, ...]


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.claims",
        description="Benchmark the auditor work queue (claims) on the real API.",
    )
    parser.add_argument("--auditors", type=int, default=20, help="concurrent auditors (20)")
    parser.add_argument(
        "--claims", type=int, default=60, help="claims per auditor, paced phase (60)"
    )
    parser.add_argument(
        "--floor-requests",
        type=int,
        default=200,
        help="GET /healthz requests per auditor for the floor (200; 0 skips it)",
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=500.0,
        help="mean time an auditor takes to judge an item, paced phase (500)",
    )
    parser.add_argument(
        "--saturated-claims",
        type=int,
        default=40,
        help="claims per auditor with no time to judge (40; 0 skips that phase)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed claims per auditor (3)")
    parser.add_argument("--audits", type=int, default=20_000, help="pending audits (20000)")
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn workers (1)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="the API's PLUMBLINE_LOG_LEVEL (INFO, the default of `make run`)",
    )
    parser.add_argument(
        "--database",
        default=BENCH_DATABASE,
        help=f"database created fresh and dropped at the end ({BENCH_DATABASE})",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_REPORT, help="report file (section 'claims')"
    )
    args = parser.parse_args(argv)
    if min(args.auditors, args.claims, args.audits, args.api_workers) < 1:
        parser.error("--auditors, --claims, --audits and --api-workers must be at least 1")
    if args.warmup < 0 or args.think_ms < 0 or args.saturated_claims < 0:
        parser.error("--warmup, --think-ms and --saturated-claims must not be negative")
    if args.warmup >= args.claims:
        parser.error("--warmup must be below --claims")
    return Options(
        auditors=args.auditors,
        claims=args.claims,
        warmup=args.warmup,
        think_ms=args.think_ms,
        saturated_claims=args.saturated_claims,
        audits=args.audits,
        api_workers=args.api_workers,
        floor_requests=args.floor_requests,
        log_level=args.log_level.upper(),
        database=args.database,
        output=args.output,
        argv=tuple(sys.argv[1:] if argv is None else argv),
    )


# ----------------------------------------------------------------- PostgreSQL and Redis


def resolve_servers(exits: contextlib.ExitStack, workdir: Path) -> tuple[str, str]:
    """The PostgreSQL server URL and the Redis URL (embedded servers stopped by ``exits``)."""
    server_url = os.environ.get("PLUMBLINE_BENCH_DATABASE_URL") or os.environ.get(
        "PLUMBLINE_TEST_DATABASE_URL"
    )
    if not server_url:
        from shared.core.embedded import start_embedded_postgres

        postgres = start_embedded_postgres(workdir / "servers")
        exits.callback(postgres.stop)
        server_url = postgres.url
    redis_url = os.environ.get("PLUMBLINE_BENCH_REDIS_URL")
    if not redis_url and (given := os.environ.get("PLUMBLINE_TEST_REDIS_URL")):
        redis_url = urlunsplit(urlsplit(given)._replace(path=f"/{SHARED_REDIS_DATABASE}"))
    if not redis_url:
        from shared.core.embedded import start_embedded_redis

        server = start_embedded_redis(workdir / "servers")
        exits.callback(server.stop)
        redis_url = server.url
    return server_url, redis_url


# ------------------------------------------------------------------------------ data


async def seed(database_url: str, *, audits: int, auditor_ids: list[str]) -> None:
    """``audits`` decisions, each with a pending audit, and the auditors' profiles."""
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        source_id = await connection.fetchval(
            "INSERT INTO sources (id, name, secret_encrypted) "
            "VALUES (gen_random_uuid(), 'bench-platform', $1) RETURNING id",
            Fernet(Fernet.generate_key()).encrypt(b"unused"),
        )
        rng = random.Random(3)
        rows = []
        weights = [weight for _, _, weight in MARKETS]
        # A few decisions by the auditors themselves: the claim must never hand them back.
        moderators = [f"mod-{n}" for n in range(MODERATORS)] + auditor_ids
        for n in range(audits):
            market, language, _ = rng.choices(MARKETS, weights)[0]
            labels = rng.sample(LABELS, rng.choice((1, 1, 2)))
            rows.append(
                (
                    f"evt-{n}",
                    f"content-{n}",
                    market,
                    language,
                    rng.choice(moderators),
                    rng.choice(ACTIONS),
                    labels,
                    rng.random(),
                )
            )
        await connection.execute(
            "INSERT INTO markets (code, default_language, time_zone) VALUES "
            "('DE', 'de', 'Europe/Berlin'), ('AT', 'de', 'Europe/Vienna'), "
            "('FR', 'fr', 'Europe/Paris'), ('IT', 'it', 'Europe/Rome')"
        )
        await connection.execute(
            "INSERT INTO policies (code) SELECT unnest($1::text[])", list(LABELS)
        )
        await connection.execute(
            """
            WITH given AS (
                SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],
                                     $6::text[], $7::text[], $8::text[], $9::float8[])
                    AS g(event_id, content_id, market, language, moderator_id, action,
                         labels, priority)
            ), stored AS (
                INSERT INTO decisions (source_id, event_id, content_id, content_type, queue,
                                       market, language, moderator_id, action, policy_labels,
                                       decided_at, metadata, intake_batch_id)
                SELECT $1, event_id, content_id, 'video', lower(market) || '-video-standard',
                       market, language, moderator_id, action, labels::text[],
                       now() - interval '1 day', '{}'::jsonb, gen_random_uuid()
                FROM given
                RETURNING id, event_id, queue, market, language, moderator_id, policy_labels,
                          decided_at
            ), keys AS (
                INSERT INTO decision_event_keys (source_id, event_id, decision_id, decided_at)
                SELECT $1, event_id, id, decided_at FROM stored
            )
            INSERT INTO audits (id, decision_id, reason, market, queue, language, moderator_id,
                                policy_labels, day, status, priority)
            SELECT gen_random_uuid(), s.id, 'base_rate', s.market, s.queue, s.language,
                   s.moderator_id, s.policy_labels, s.decided_at::date, 'pending', g.priority
            FROM stored s JOIN given g USING (event_id)
            """,
            source_id,
            [row[0] for row in rows],
            [row[1] for row in rows],
            [row[2] for row in rows],
            [row[3] for row in rows],
            [row[4] for row in rows],
            [row[5] for row in rows],
            ["{" + ",".join(row[6]) + "}" for row in rows],
            [row[7] for row in rows],
        )
        await connection.execute(
            "INSERT INTO reviewers (id, markets, languages) "
            "SELECT unnest($1::text[]), $2::text[], $3::text[] "
            "ON CONFLICT (id) DO UPDATE SET markets = EXCLUDED.markets, "
            "languages = EXCLUDED.languages",
            auditor_ids,
            AUDITOR_MARKETS,
            AUDITOR_LANGUAGES,
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


# ----------------------------------------------------------------------------- the API


@dataclass
class Api:
    """``plumbline api`` in its own process group."""

    process: subprocess.Popen[bytes]
    log: Path
    handle: BinaryIO

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.handle.close()
        return code


def run_migrate(env: dict[str, str], log: Path) -> None:
    with log.open("wb") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "migrate"],
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        raise BenchmarkError(
            f"plumbline migrate failed:\n{log.read_text(errors='replace')[-3000:]}"
        )


def start_api(env: dict[str, str], log: Path) -> Api:
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "api"],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    return Api(process, log, handle)


async def wait_ready(client: httpx.AsyncClient, api: Api) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        if api.process.poll() is not None:
            raise BenchmarkError(f"the API exited:\n{api.log.read_text(errors='replace')[-3000:]}")
        try:
            response = await client.get("/readyz")
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.2)
    raise BenchmarkError(f"the API was not ready within {READY_TIMEOUT_SECONDS:.0f} s: {last}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn's workers)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                total += times.user + times.system
    return total


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------------------ the run


@dataclass
class AuditorRun:
    """What one auditor was handed in one phase and how long each request took."""

    reviewer_id: str
    claimed: list[str] = field(default_factory=list)
    claim_ms: list[float] = field(default_factory=list)
    verdict_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def verdict_body(audit: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A verdict on a claimed audit: one in five incorrect (opening a disagreement)."""
    if rng.random() >= 0.2:
        return {"outcome": "correct"}
    enforced = audit["decision"]["action"] != "approve"
    return {
        "outcome": "incorrect",
        "expected_action": "approve" if enforced else "remove",
        "expected_labels": [] if enforced else ["hate_speech"],
        "severity": rng.choice(("critical", "major", "minor")),
        "comment": "benchmark",
    }


async def work(
    client: httpx.AsyncClient,
    key: str,
    run: AuditorRun,
    *,
    claims: int,
    think_ms: float,
    rng: random.Random,
) -> None:
    """Claim, judge (``think_ms`` on average) and submit ``claims`` audits, or until none left."""
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(claims):
        started = time.perf_counter()
        response = await client.post("/v1/audits/claim", headers=headers)
        run.claim_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code == 204:
            return
        if response.status_code != 200:
            run.errors.append(f"claim: {response.status_code} {response.text[:200]}")
            return
        audit = response.json()
        run.claimed.append(audit["id"])
        if "moderator_id" in audit or "moderator_id" in audit["decision"]:
            run.errors.append(f"the claim of {audit['id']} was not blind")
        if think_ms:
            await asyncio.sleep(rng.uniform(0, 2 * think_ms) / 1000)
        started = time.perf_counter()
        judged = await client.post(
            f"/v1/audits/{audit['id']}/verdict", json=verdict_body(audit, rng), headers=headers
        )
        run.verdict_ms.append((time.perf_counter() - started) * 1000)
        if judged.status_code != 200:
            run.errors.append(f"verdict: {judged.status_code} {judged.text[:200]}")
            return


LATENCY_METRIC = "plumbline_http_request_duration_seconds_bucket"
CLAIM_ROUTE = "/v1/audits/claim"


async def claim_histogram(client: httpx.AsyncClient) -> dict[str, float]:
    """The API's own claim latency histogram (cumulative counts by bucket bound, seconds)."""
    response = await client.get("/metrics")
    response.raise_for_status()
    buckets: dict[str, float] = {}
    for line in response.text.splitlines():
        if line.startswith(LATENCY_METRIC) and f'route="{CLAIM_ROUTE}"' in line:
            labels, _, value = line.rpartition(" ")
            bound = labels.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = float(value)
    return buckets


@dataclass
class Phase:
    """One way of working: auditors who take time to judge, or none at all (saturation)."""

    name: str
    claims: int
    think_ms: float
    warmup: int
    runs: list[AuditorRun] = field(default_factory=list)
    seconds: float = 0.0
    # Claims the API itself served within 50 ms, and all it served (from its histogram).
    server_within_target: float = 0.0
    server_claims: float = 0.0
    # Each uvicorn worker keeps its own metrics: the histogram is whole with one worker only.
    scrape_metrics: bool = True
    # The API process (its uvicorn workers are its children) and its CPU seconds in the phase.
    api_pid: int | None = None
    api_cpu_seconds: float = 0.0

    @property
    def timed_claims(self) -> list[float]:
        return [ms for run in self.runs for ms in run.claim_ms[self.warmup :]]

    @property
    def verdicts(self) -> list[float]:
        return [ms for run in self.runs for ms in run.verdict_ms]

    @property
    def claimed(self) -> list[str]:
        return [audit_id for run in self.runs for audit_id in run.claimed]

    @property
    def requests(self) -> int:
        """Claims and verdicts sent (a 204 claim counts: the API served it)."""
        return sum(len(run.claim_ms) + len(run.verdict_ms) for run in self.runs)

    @property
    def cpu_ms_per_request(self) -> float:
        """The API's CPU milliseconds per claim or verdict in this phase."""
        return 1000 * self.api_cpu_seconds / self.requests if self.requests else 0.0

    async def run(self, client: httpx.AsyncClient, keys: list[str], auditor_ids: list[str]) -> None:
        """Every auditor works at the same time, from the same start."""
        self.runs = [AuditorRun(reviewer_id) for reviewer_id in auditor_ids]
        before = await claim_histogram(client) if self.scrape_metrics else {}
        cpu_before = cpu_seconds(self.api_pid) if self.api_pid is not None else 0.0
        started = time.perf_counter()
        await asyncio.gather(
            *(
                work(
                    client,
                    key,
                    run,
                    claims=self.claims,
                    think_ms=self.think_ms,
                    rng=random.Random(f"{self.name}-{index}"),
                )
                for index, (key, run) in enumerate(zip(keys, self.runs, strict=True))
            )
        )
        self.seconds = time.perf_counter() - started
        if self.api_pid is not None:
            self.api_cpu_seconds = cpu_seconds(self.api_pid) - cpu_before
        after = await claim_histogram(client) if self.scrape_metrics else {}
        target = f"{P99_TARGET_MS / 1000:g}"
        self.server_within_target = after.get(target, 0) - before.get(target, 0)
        self.server_claims = after.get("+Inf", 0) - before.get("+Inf", 0)

    def row(self) -> str:
        """The phase's line in the summary table."""
        claims = self.timed_claims
        verdicts = self.verdicts
        p99 = percentile(claims, 0.99)
        return (
            f"| {self.name} | {len(self.claimed):,} in {self.seconds:.1f} s "
            f"({len(self.claimed) / self.seconds:,.0f}/s) "
            f"| {statistics.median(claims):.1f} / {percentile(claims, 0.9):.1f} / {p99:.1f} / "
            f"{max(claims):.1f} | {statistics.median(verdicts):.1f} / "
            f"{percentile(verdicts, 0.99):.1f} | {'met' if p99 < P99_TARGET_MS else 'missed'} "
            f"| {f'{self.server_share:.1%}' if self.server_claims else 'n/a'} "
            f"| {self.cpu_ms_per_request:.2f} "
            f"| {self.cpu_ceiling:,.0f} |"
        )

    @property
    def cpu_ceiling(self) -> float:
        """Claims per second one API worker could serve on one core at this CPU cost (each
        claim comes with its verdict: two requests)."""
        return 1000 / (2 * self.cpu_ms_per_request) if self.cpu_ms_per_request else 0.0

    @property
    def server_share(self) -> float:
        """The share of claims the API served within the target (its own clock)."""
        return self.server_within_target / self.server_claims if self.server_claims else 0.0


async def create_keys(
    client: httpx.AsyncClient, admin_key: str, auditor_ids: list[str]
) -> list[str]:
    keys = []
    for reviewer_id in auditor_ids:
        response = await client.post(
            "/v1/api-keys",
            json={"name": f"bench {reviewer_id}", "role": "qa_auditor", "reviewer_id": reviewer_id},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        if response.status_code != 201:
            raise BenchmarkError(f"could not create a key: {response.status_code} {response.text}")
        keys.append(response.json()["key"])
    response = await client.put(
        f"/v1/wellbeing/caps/{SENSITIVE_LABEL}",
        json={"daily_cap": SENSITIVE_DAILY_CAP},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    if response.status_code != 200:
        raise BenchmarkError(f"could not set the cap: {response.status_code} {response.text}")
    return keys


async def server_checks(database_url: str) -> dict[str, int]:
    """Counts that must match what the clients saw (or be zero, for the violations)."""
    in_scope = [AUDITOR_MARKETS, AUDITOR_LANGUAGES]
    capped = [SENSITIVE_LABEL, SENSITIVE_DAILY_CAP]
    queries: list[tuple[str, str, list[Any]]] = [
        ("claims logged", "SELECT count(*) FROM audit_log WHERE action = 'audit.claim'", []),
        (
            "audits claimed more than once",
            "SELECT count(*) FROM (SELECT entity_id FROM audit_log WHERE action = 'audit.claim'"
            " GROUP BY entity_id HAVING count(*) > 1) AS twice",
            [],
        ),
        ("verdicts", "SELECT count(*) FROM verdicts", []),
        (
            "verdicts not by the claimant",
            "SELECT count(*) FROM verdicts v JOIN audit_log l ON l.entity_id = v.audit_id::text"
            " AND l.action = 'audit.claim' WHERE l.actor_reviewer_id <> v.auditor_id",
            [],
        ),
        (
            "own decisions judged",
            "SELECT count(*) FROM verdicts WHERE auditor_id = moderator_id",
            [],
        ),
        (
            "outside markets or languages",
            "SELECT count(*) FROM audits WHERE status <> 'pending'"
            " AND (market <> ALL($1::text[]) OR language <> ALL($2::text[]))",
            in_scope,
        ),
        (
            "over the sensitive cap",
            "SELECT count(*) FROM (SELECT auditor_id FROM audits WHERE $1 = ANY(policy_labels)"
            " AND auditor_id IS NOT NULL GROUP BY auditor_id HAVING count(*) > $2) AS over",
            capped,
        ),
        ("disagreements opened", "SELECT count(*) FROM disagreements", []),
    ]
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        return {
            name: int(await connection.fetchval(query, *arguments))
            for name, query, arguments in queries
        }
    finally:
        await connection.close()


@dataclass
class Floor:
    """``GET /healthz`` from every auditor's connection at once, closed loop: what HTTP, the
    middleware and the routing cost without authentication or the database (the floor of
    CPU per request) and the most requests per second the API serves (the no-op ceiling)."""

    requests_per_client: int
    clients: int
    seconds: float = 0.0
    api_cpu_seconds: float = 0.0

    @property
    def requests(self) -> int:
        return self.requests_per_client * self.clients

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.api_cpu_seconds / self.requests if self.requests else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    async def run(self, client: httpx.AsyncClient, api_pid: int) -> None:
        async def loop() -> None:
            for _ in range(self.requests_per_client):
                response = await client.get("/healthz")
                if response.status_code != 200:
                    raise BenchmarkError(f"/healthz answered {response.status_code}")

        cpu_before = cpu_seconds(api_pid)
        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(self.clients)))
        self.seconds = time.perf_counter() - started
        self.api_cpu_seconds = cpu_seconds(api_pid) - cpu_before

    def lines(self, phases: list[Phase]) -> list[str]:
        """The floor and each phase against it, in the summary."""
        lines = [
            f"- Floor: `GET /healthz` ({self.requests:,} requests from {self.clients} connections, "
            f"closed loop): {self.cpu_ms_per_request:.3f} ms of API CPU per request, "
            f"{self.requests_per_second:,.0f} requests/s (the no-op ceiling)."
        ]
        for phase in phases:
            if not self.cpu_ms_per_request or not phase.seconds:
                continue
            rate = phase.requests / phase.seconds
            lines.append(
                f"- {phase.name}: {phase.cpu_ms_per_request / self.cpu_ms_per_request:.1f} x the "
                f"floor's CPU per request; claims and verdicts at {rate:,.0f} requests/s, "
                f"{rate / self.requests_per_second:.1%} of the no-op ceiling."
            )
        return lines


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (the value at or below which ``fraction`` of them fall)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


CHECKS_ZERO = (
    "audits claimed more than once",
    "verdicts not by the claimant",
    "own decisions judged",
    "outside markets or languages",
    "over the sensitive cap",
)


@dataclass
class Result:
    options: Options
    phases: list[Phase]
    server: dict[str, int]
    floor: Floor | None = None

    @property
    def claimed(self) -> list[str]:
        return [audit_id for phase in self.phases for audit_id in phase.claimed]

    def failures(self) -> list[str]:
        """Every check that does not hold (empty: all hold)."""
        problems = [error for phase in self.phases for run in phase.runs for error in run.errors]
        claimed = self.claimed
        if len(set(claimed)) != len(claimed):
            problems.append(f"{len(claimed) - len(set(claimed))} audits were handed out twice")
        if self.server["claims logged"] != len(claimed):
            problems.append(
                f"{self.server['claims logged']} claims logged, {len(claimed)} handed out"
            )
        if self.server["verdicts"] != len(claimed):
            problems.append(f"{self.server['verdicts']} verdicts for {len(claimed)} claims")
        problems += [f"{name}: {self.server[name]}" for name in CHECKS_ZERO if self.server[name]]
        return problems

    def markdown(self) -> str:
        """The summary, in Markdown."""
        options = self.options
        command = shlex.join(["python", "-m", "benchmarks.claims", *options.argv])
        lines = [
            "## Auditor work queue: concurrent claims",
            "",
            f"- Command: `{command}`",
            f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}. `plumbline api` with {options.api_workers} uvicorn "
            "worker(s); the load generator (one httpx process, on the notifier's HTTP/1.1 "
            "transport) and PostgreSQL on the same machine.",
            f"- Backlog: {options.audits:,} pending audits over DE, AT, FR, IT (1,000 "
            f"moderators, the auditors among them); {options.auditors} auditors working DE and "
            f"AT in German; a cap of {SENSITIVE_DAILY_CAP} '{SENSITIVE_LABEL}' items per "
            "auditor and day. One verdict in five is incorrect (a disagreement, two events).",
            f"- Paced: each auditor claims, takes 0 to {2 * options.think_ms:.0f} ms to judge "
            "(uniform) and submits, all auditors at once: their claims overlap all the time. "
            "Saturated: no time to judge, every auditor claims again as soon as its verdict "
            "is in: a closed loop that measures throughput, where a request's latency is "
            "mostly its wait behind the others in the one API process. The first "
            f"{options.warmup} claims of each auditor in a phase are not timed. Latencies "
            "are the load generator's (request sent to response read); the last column is "
            "the API's own histogram (`GET /metrics`), which leaves out the load generator's "
            "scheduling delays and counts every claim, warm-up included. API CPU per request: "
            "user + system CPU seconds of the API process and its uvicorn workers (psutil) "
            "over the phase, divided by the claims and verdicts sent (warm-up included); the "
            "last column is 1,000 / (2 x that): a claim and its verdict on one core. "
            f"API log level {options.log_level}.",
            "",
            "| phase | claims | claim latency p50 / p90 / p99 / max (ms) "
            f"| verdict p50 / p99 (ms) | p99 < {P99_TARGET_MS:.0f} ms "
            f"| claims the API served within {P99_TARGET_MS:.0f} ms "
            "| API CPU per request (ms) | claims/s one core could serve |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *(phase.row() for phase in self.phases),
            "",
            *([*self.floor.lines(self.phases), ""] if self.floor is not None else []),
            "| check | value |",
            "| --- | --- |",
            f"| audits handed out twice (client side) | "
            f"{len(self.claimed) - len(set(self.claimed))} |",
            *(f"| {name} | {value:,} |" for name, value in self.server.items()),
            "",
        ]
        failures = self.failures()
        lines.append(
            "Checks: " + ("all hold." if not failures else "FAILED: " + "; ".join(failures))
        )
        return "\n".join(lines) + "\n"


async def measure(
    options: Options, base_url: str, admin_key: str, api: Api, database_url: str
) -> Result:
    """Run the phases against the API, then check the database."""
    auditor_ids = [f"aud-{n}" for n in range(options.auditors)]
    scrape = options.api_workers == 1
    phases = [
        Phase("paced", options.claims, options.think_ms, options.warmup, scrape_metrics=scrape)
    ]
    if options.saturated_claims:
        phases.append(
            Phase(
                "saturated",
                options.saturated_claims,
                0.0,
                min(options.warmup, options.saturated_claims - 1),
                scrape_metrics=scrape,
            )
        )
    for phase in phases:
        phase.api_pid = api.process.pid
    connections = options.auditors + 5
    # Idle connections are dropped before uvicorn's keep-alive timeout (5 s) closes them: a
    # request sent on a connection the server is closing at that moment fails (ReadError).
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=KEEPALIVE_SECONDS,
    )
    # The notifier's HTTP/1.1 transport costs the load generator about a quarter of httpx's
    # own per request: on a 2-core machine the generator otherwise bounds the saturated phase.
    transport = notifier_http_transport(limits=limits)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=30, limits=limits, transport=transport
    ) as client:
        await wait_ready(client, api)
        keys = await create_keys(client, admin_key, auditor_ids)
        for phase in phases:
            print(f"phase {phase.name}: {options.auditors} auditors", flush=True)
            await phase.run(client, keys, auditor_ids)
        floor = None
        if options.floor_requests:
            print("floor: GET /healthz", flush=True)
            floor = Floor(options.floor_requests, options.auditors)
            await floor.run(client, api.process.pid)
    return Result(
        options=options, phases=phases, server=await server_checks(database_url), floor=floor
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    with contextlib.ExitStack() as exits:
        workdir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="plumbline-claims-")))
        server_url, redis_url = resolve_servers(exits, workdir)
        database_url = asyncio.run(recreate_database(server_url, options.database))
        exits.callback(lambda: asyncio.run(drop_database(server_url, options.database)))
        asyncio.run(flush_redis(redis_url))
        port = free_port()
        admin_key = "plk_bench_" + secrets.token_urlsafe(24)
        env = {
            **os.environ,
            "PLUMBLINE_DATABASE_URL": database_url,
            "PLUMBLINE_REDIS_URL": redis_url,
            "PLUMBLINE_DATA_DIR": str(workdir / "data"),
            "PLUMBLINE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PLUMBLINE_BOOTSTRAP_ADMIN_KEY": admin_key,
            "PLUMBLINE_API_HOST": "127.0.0.1",
            "PLUMBLINE_API_PORT": str(port),
            "PLUMBLINE_API_WORKERS": str(options.api_workers),
            "PLUMBLINE_LOG_LEVEL": options.log_level,
        }
        print(f"migrating {options.database} and seeding {options.audits:,} audits", flush=True)
        run_migrate(env, workdir / "migrate.log")
        auditor_ids = [f"aud-{n}" for n in range(options.auditors)]
        asyncio.run(seed(database_url, audits=options.audits, auditor_ids=auditor_ids))
        api = start_api(env, workdir / "api.log")
        exits.callback(api.stop)
        print(f"{options.auditors} auditors claiming on http://127.0.0.1:{port}", flush=True)
        result = asyncio.run(
            measure(options, f"http://127.0.0.1:{port}", admin_key, api, database_url)
        )
        summary = result.markdown()
        print(summary)
        command = "python -m benchmarks.claims " + " ".join(argv or sys.argv[1:])
        write_section(
            options.output,
            "claims",
            "## Auditor claims (issue #3)\n\n"
            f"- Command: `{command.strip()}`\n- Machine: {machine_line()}\n\n{summary}",
        )
        return 1 if result.failures() else 0
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
