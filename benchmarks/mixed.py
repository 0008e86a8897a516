"""Mixed workload on the stack ``make run`` starts: everything at once, paced, for ten minutes.

``python -m benchmarks.mixed [--duration 600] [--output FILE]`` measures what issue #12 asks
for under "Load": webhook intake, 20 auditors claiming and judging, report reads, console
pages and notifications to a local sink, all at the same time, on ``plumbline run`` exactly
as a user starts it: a fresh data directory, its embedded PostgreSQL and Redis, its default
settings and log level (only ``PLUMBLINE_INSECURE_TARGET_HOSTS=127.0.0.1``, so channels may
post to the local sink over plain HTTP, and the API port are set).

Everything is set up through the public API with the admin key ``plumbline run`` prints: a
source (signed webhooks) with its correction target on the sink, webhook channels on the sink
subscribed to ``disagreement.opened``, a sampling plan per market, 20 auditors (profiles and
API keys), a manager API key for the reports and a manager console account signed in through
the form. A seed of events is posted and sampled first, so the auditors have work from the
first second. Then, paced (open loop: a slow answer does not slow the schedule down):

- signed single events and batches at a steady rate (``benchmarks.run.EventFactory``);
- the day's sampling again every ``--sample-every`` seconds (what the report worker does
  daily, here often so the auditors' queue keeps filling), waiting for each job;
- 20 auditors: claim, judge for 0 to 2x ``--think-ms`` (uniform), submit; one verdict in five
  incorrect (``benchmarks.claims.verdict_body``), which opens a disagreement and a correction:
  notifications to every channel and to the source;
- report reads: the briefing JSON, accuracy by moderator, now and then the accuracy XLSX;
- console pages: the overview and the audits list.

The default rates load this 2-core machine to about half, so that the latencies are the
service's and not a queue's. They are derived from what each part cost in the run at the
earlier defaults (100 single events/s, 1 batch of 200/s, 20 auditors judging 1 s on average;
docs/benchmarks.md, 2026-12-01 03:30 UTC), which saturated the machine (both cores 96 % busy,
only 53 single events/s of the 100 scheduled got through, p99 1-4 s everywhere). CPU per second
of that run, by process, and how each part scales:

- load generator (httpx, signing): 61 % of a core for about 75 requests/s, 8 ms a request;
- API: 37 %: single events about 0.8 ms each and claims and verdicts about 9 ms each (the intake
  and claims sections), batch events 0.02 ms; the rest, about 15 %, the report and console
  reads (about 1.5 a second, heavy queries);
- PostgreSQL 38 %, report worker 21 % (intake rollups per event, sampling per decision of the
  day), notifier 14 % (13 ms a message at that load; 7 ms on a quiet machine), relay 9 %.

At 20 single events/s, one batch of 200 every 2 s, 20 auditors judging 3 s on average (about
6.5 claims and 6.5 verdicts a second, so 1.3 disagreements and 6.5 notifications a second) and
the same readers, the same per-request costs give about 35 requests/s for the generator (28 %
of a core), API 28 % (reads 15 %, claims and verdicts 11 %, intake 2 %), PostgreSQL about 21 %,
report worker 11 %, notifier 8 %, relay 4 %: about one core of the two, at costs measured on a
saturated machine (on a quiet one each request costs less). The auditors still find work:
sampling at 0.1 of the DE and AT events (two thirds of 120 events/s) makes about 8 audits a
second. The report gives the CPU each process used and the machine's busy share, mine and
others', so a reader can check the claim.

Output (markdown: with ``--output FILE`` the ``mixed`` section of that file, e.g.
``docs/benchmarks.md``, is replaced and the rest kept; else stdout): per endpoint the count,
throughput, p50/p99 and errors by status (target: none); each process's memory at start,
after the warm-up and at the end (RSS; PostgreSQL as the sum of the private memory of the
postmaster and its backends, since each backend's RSS also counts the shared buffers it has
touched); and the reconciliation once the stack has drained: decisions stored = events
acknowledged, intake rollups = rows, verdicts and disagreements = those acknowledged,
deliveries delivered = those expected from the events routed, sink arrivals = deliveries, no
message id with two different bodies. The exit status is 1 when a reconciliation check fails
or an endpoint answered an error; speed figures are reported, not judged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import psutil  # type: ignore[import-untyped]
from redis.asyncio import Redis

from benchmarks.bench_database import bench_command, plain_dsn
from benchmarks.claims import verdict_body
from benchmarks.report_file import machine_line, write_section
from benchmarks.run import SOURCE_NAME, EventFactory, create_source, percentile, read_backlog
from benchmarks.stack import (
    STACK_PROCESSES,
    PlumblineRun,
    ProcessUse,
    StackError,
    free_port,
    machine_busy,
    snapshot,
)
from shared.core.signing import SIGNATURE_HEADER, SOURCE_HEADER, sign_payload
from shared.markets import default_time_zone

REPO_ROOT = Path(__file__).resolve().parent.parent
SECTION = "mixed"
WEBHOOK_PATH = "/v1/webhooks/decisions"
MARKETS = ("DE", "AT")
AUDITOR_LANGUAGES = ["de"]
CHANNEL_EVENT = "disagreement.opened"
CORRECTIONS_PATH = "/corrections"
REQUEST_TIMEOUT_S = 60.0
# Requests of one kind allowed in flight at once; beyond that the pacer waits (and says so).
MAX_IN_FLIGHT = 64
# Well below uvicorn's keep-alive timeout (5 s): a client that reuses a connection the server
# is closing at that moment gets no answer, a race of the client's making, not the server's
# (on a loaded machine the two clocks of "idle" start seconds apart).
KEEPALIVE_EXPIRY_S = 2.0
# Memory is "flat" when the end is within this share of the after-warm-up figure, or within
# FLAT_SLACK_MIB of it (a 5 MiB Redis growing by 1 MiB is not a trend).
FLAT_GROWTH = 0.10
FLAT_SLACK_MIB = 8.0
# ... or when it levelled off: it grew less than this share over the second half of the run.
# PostgreSQL's backends fill their caches (catalog, plans of the statements each connection
# prepares) for minutes after the warm-up, up to a bound; a leak keeps climbing.
LEVELLED_GROWTH = 0.02
# The memory curve's step: ten points over the default ten minutes.
CURVE_EVERY_S = 60.0
PROCESSES = STACK_PROCESSES
# The default rates (the module docstring says why these).
DEFAULT_SINGLE_RATE = 20.0
DEFAULT_BATCH_RATE = 0.5
DEFAULT_THINK_MS = 3000.0

# Statuses that are answers, not errors, per endpoint (204: no audit left for this auditor).
EXPECTED_STATUSES: dict[str, frozenset[int]] = defaultdict(lambda: frozenset({200}))
EXPECTED_STATUSES.update(
    {
        "POST /v1/webhooks/decisions (single)": frozenset({202}),
        "POST /v1/webhooks/decisions (batch)": frozenset({202}),
        "POST /v1/webhooks/decisions (seed batch)": frozenset({202}),
        "POST /v1/audits/claim": frozenset({200, 204}),
        "POST /v1/audits/sample": frozenset({202}),
    }
)


class BenchmarkError(StackError):
    """The benchmark could not run (the stack did not start, a set-up call failed)."""


def say(message: str) -> None:
    """Progress on stderr (stdout may carry the report)."""
    print(f"[mixed {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    """Command-line settings of one run."""

    duration: float
    warmup: float
    output: Path | None
    single_rate: float
    batch_rate: float
    batch_size: int
    seed_events: int
    auditors: int
    think_ms: float
    sampling_rate: float
    sample_every: float
    briefing_every: float
    accuracy_every: float
    xlsx_every: float
    overview_every: float
    audits_page_every: float
    channels: int
    drain_timeout: float
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        """The command line (no server variables: the stack is ``plumbline run``'s own)."""
        return bench_command("benchmarks.mixed", self.argv)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mixed",
        description="Mixed workload on `plumbline run` (embedded servers, default settings).",
    )
    add = parser.add_argument
    add("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    add("--warmup", type=float, help="first seconds not timed (default 10%% of the duration)")
    add("--output", type=Path, help="replace the 'mixed' section of this file (default: stdout)")
    add("--single-rate", type=float, default=DEFAULT_SINGLE_RATE, help="single signed events/s")
    add("--batch-rate", type=float, default=DEFAULT_BATCH_RATE, help="batches per second")
    add("--batch-size", type=int, default=200, help="events per batch (1 to 1000)")
    add("--seed-events", type=int, default=30_000, help="events posted and sampled first")
    add("--auditors", type=int, default=20)
    add(
        "--think-ms",
        type=float,
        default=DEFAULT_THINK_MS,
        help="mean time an auditor takes to judge",
    )
    add("--sampling-rate", type=float, default=0.1, help="the plans' base rate")
    add("--sample-every", type=float, default=30.0, help="seconds between sampling rounds")
    add("--briefing-every", type=float, default=5.0, help="seconds between briefing reads")
    add("--accuracy-every", type=float, default=2.0, help="seconds between accuracy reads")
    add("--xlsx-every", type=float, default=60.0, help="seconds between accuracy XLSX reads")
    add("--overview-every", type=float, default=10.0, help="seconds between overview pages")
    add("--audits-page-every", type=float, default=5.0, help="seconds between audits pages")
    add("--channels", type=int, default=4, help="webhook channels on the sink")
    add("--drain-timeout", type=float, default=240.0, help="seconds to wait for the backlog")
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be between 1 and 1000")
    if args.duration <= 0 or args.auditors < 0 or args.channels < 1:
        parser.error("--duration must be positive, --channels at least 1")
    warmup = args.warmup if args.warmup is not None else args.duration / 10
    if not 0 <= warmup < args.duration:
        parser.error("--warmup must be shorter than --duration")
    return Options(
        duration=args.duration,
        warmup=warmup,
        output=args.output,
        single_rate=args.single_rate,
        batch_rate=args.batch_rate,
        batch_size=args.batch_size,
        seed_events=args.seed_events,
        auditors=args.auditors,
        think_ms=args.think_ms,
        sampling_rate=args.sampling_rate,
        sample_every=args.sample_every,
        briefing_every=args.briefing_every,
        accuracy_every=args.accuracy_every,
        xlsx_every=args.xlsx_every,
        overview_every=args.overview_every,
        audits_page_every=args.audits_page_every,
        channels=args.channels,
        drain_timeout=args.drain_timeout,
        argv=tuple(raw),
    )


# ------------------------------------------------------------------------- the sink


class SinkProcess:
    """``benchmarks.notifier_sink`` in its own process: every channel's target."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "sink.log"
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.notifier_sink", "--port", str(self.port)],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    async def wait_ready(self) -> None:
        """Until the sink answers its count."""
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/_bench/count")).status_code == 200:
                        return
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise BenchmarkError(f"the sink did not start: {self.log.read_text()}")
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class SinkTally:
    """What the sink received: arrivals, distinct messages, and any id with two bodies."""

    arrivals: int
    distinct: int
    two_bodies: int
    by_path: dict[str, int]


def tally_sink(lines: Sequence[str]) -> SinkTally:
    """Count ``GET /_bench/bodies`` lines (``path, event id, digest``): a message is one
    (path, event id), each channel having its own path."""
    bodies: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_path: Counter[str] = Counter()
    arrivals = 0
    for line in lines:
        if not line:
            continue
        path, event_id, digest = line.split("\t")
        arrivals += 1
        bodies[(path, event_id)].add(digest)
        by_path[path] += 1
    return SinkTally(
        arrivals=arrivals,
        distinct=len(bodies),
        two_bodies=sum(1 for digests in bodies.values() if len(digests) > 1),
        by_path=dict(by_path),
    )


async def read_sink(client: httpx.AsyncClient) -> SinkTally:
    """The sink's tally now."""
    response = await client.get("/_bench/bodies", timeout=60)
    response.raise_for_status()
    return tally_sink(response.text.split("\n"))


# ------------------------------------------------------------------------ recording


@dataclass(frozen=True)
class Sample:
    """One request: when it started (monotonic), its status (0: no answer) and its time."""

    started: float
    status: int
    ms: float
    error: str = ""


class Recorder:
    """Every request of the run, by endpoint."""

    def __init__(self) -> None:
        self.samples: dict[str, list[Sample]] = defaultdict(list)
        self.measure_from = math.inf
        self.measure_to = math.inf

    async def call(
        self, endpoint: str, send: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response | None:
        """Send one request and record it; None when no answer came (recorded as status 0)."""
        started = time.monotonic()
        try:
            response = await send()
        except httpx.HTTPError as exc:
            ms = (time.monotonic() - started) * 1000
            self.samples[endpoint].append(Sample(started, 0, ms, type(exc).__name__))
            return None
        ms = (time.monotonic() - started) * 1000
        self.samples[endpoint].append(Sample(started, response.status_code, ms))
        return response

    def timed(self, endpoint: str) -> list[Sample]:
        """The endpoint's requests started within the measured window."""
        return [
            s for s in self.samples[endpoint] if self.measure_from <= s.started < self.measure_to
        ]

    def errors(self, endpoint: str) -> Counter[str]:
        """Every unexpected answer of the whole run (warm-up and set-up included), by status."""
        expected = EXPECTED_STATUSES[endpoint]
        found: Counter[str] = Counter()
        for sample in self.samples[endpoint]:
            if sample.status == 0:
                found[f"no answer ({sample.error})"] += 1
            elif sample.status not in expected:
                found[str(sample.status)] += 1
        return found


@dataclass
class Tally:
    """What the generator was told: events accepted, verdicts acknowledged."""

    events_accepted: int = 0
    duplicates: int = 0
    # Events of requests that got no answer (they may or may not be stored).
    events_unanswered: int = 0
    verdicts: int = 0
    incorrect: int = 0
    # Verdicts sent without an answer (stored or not: the reconciliation allows either).
    verdicts_unanswered: int = 0
    claims: int = 0
    sampling_jobs_failed: int = 0
    late_sends: int = 0
    worst_lag_s: float = 0.0


# -------------------------------------------------------------------------- processes


GENERATOR = "load generator"


def snapshot_all(pids: dict[str, int]) -> dict[str, ProcessUse]:
    """Every stack process's use now, plus this generator's (without its children: the
    stack and the sink) and the sink's."""
    return snapshot(pids, alone=frozenset({GENERATOR}))


# ------------------------------------------------------------------------- set-up


@dataclass
class Setup:
    """Credentials and names the workload uses."""

    source_id: str
    secret: str
    admin: dict[str, str]
    manager: dict[str, str]
    auditor_keys: list[str]
    channel_paths: list[str]


async def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    """The JSON body of an answer that must have ``status`` (a PUT: 200 or 201)."""
    allowed = {200, 201} if response.request.method == "PUT" else {status}
    if response.status_code not in allowed:
        raise BenchmarkError(f"{what}: {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json() if response.content else {}
    return body


async def set_up(
    client: httpx.AsyncClient, admin_key: str, sink_url: str, options: Options
) -> Setup:
    """The source, its correction target, the channels, the plans, the people."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    source_id, secret = await create_source(client, admin_key)
    await expect(
        await client.put(
            f"/v1/sources/{source_id}/correction-target",
            json={"url": sink_url + CORRECTIONS_PATH},
            headers=admin,
        ),
        200,
        "PUT correction-target",
    )
    paths = [f"/hooks/{n:02d}" for n in range(options.channels)]
    for n, path in enumerate(paths):
        await expect(
            await client.post(
                "/v1/channels",
                json={
                    "name": f"mixed-{n:02d}",
                    "kind": "webhook",
                    "target": sink_url + path,
                    "language": "en",
                    "events": [CHANNEL_EVENT],
                },
                headers=admin,
            ),
            201,
            "POST /v1/channels",
        )
    for market in MARKETS:
        await expect(
            await client.post(
                "/v1/sampling-plans",
                json={
                    "name": f"mixed {market}",
                    "market": market,
                    "rate": options.sampling_rate,
                    "min_per_moderator": 0,
                },
                headers=admin,
            ),
            201,
            "POST /v1/sampling-plans",
        )
    keys = []
    for n in range(options.auditors):
        reviewer_id = f"auditor-{n:02d}"
        await expect(
            await client.put(
                f"/v1/reviewers/{reviewer_id}",
                json={"markets": list(MARKETS), "languages": AUDITOR_LANGUAGES},
                headers=admin,
            ),
            200,
            "PUT /v1/reviewers",
        )
        created = await expect(
            await client.post(
                "/v1/api-keys",
                json={"name": reviewer_id, "role": "qa_auditor", "reviewer_id": reviewer_id},
                headers=admin,
            ),
            201,
            "POST /v1/api-keys",
        )
        keys.append(str(created["key"]))
    manager = await expect(
        await client.post(
            "/v1/api-keys", json={"name": "mixed reports", "role": "manager"}, headers=admin
        ),
        201,
        "POST /v1/api-keys (manager)",
    )
    return Setup(
        source_id=source_id,
        secret=secret,
        admin=admin,
        manager={"Authorization": f"Bearer {manager['key']}"},
        auditor_keys=keys,
        channel_paths=paths,
    )


_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def sign_in_console(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    """A manager console account made over the admin API, signed in through the form."""
    email = f"mixed-lead-{secrets.token_hex(4)}@example.com"
    password = secrets.token_urlsafe(18)
    await expect(
        await client.post(
            "/v1/users",
            json={"email": email, "role": "manager", "password": password},
            headers=admin,
        ),
        201,
        "POST /v1/users",
    )
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


# ------------------------------------------------------------------------- the load


def sampled_days(now: datetime) -> list[tuple[str, date]]:
    """(market, local day) pairs the events can fall on: ``EventFactory`` dates decisions
    up to a day back, so yesterday and today in each market's time zone."""
    pairs = []
    for market in MARKETS:
        zone = ZoneInfo(default_time_zone(market))
        days = sorted(
            {(now - timedelta(days=1)).astimezone(zone).date(), now.astimezone(zone).date()}
        )
        pairs += [(market, day) for day in days]
    return pairs


class Workload:
    """The paced generators, sharing one recorder and one tally."""

    def __init__(self, options: Options, setup: Setup, recorder: Recorder, base_url: str) -> None:
        self.options = options
        self.setup = setup
        self.recorder = recorder
        self.tally = Tally()
        self.factory = EventFactory(seed=12)
        self.sequence = 0
        self.stop_at = math.inf
        limits = httpx.Limits(
            max_connections=MAX_IN_FLIGHT * 2,
            max_keepalive_connections=64,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        )
        self.intake = httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits)
        self.work = httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits)
        self.console = httpx.AsyncClient(
            base_url=base_url, timeout=REQUEST_TIMEOUT_S, follow_redirects=False, limits=limits
        )

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        for client in (self.intake, self.work, self.console):
            await client.aclose()

    # --- intake

    def _event_bodies(self, prefix: str, count: int) -> list[bytes]:
        bodies = []
        for _ in range(count):
            self.sequence += 1
            bodies.append(self.factory.event(f"{prefix}-{self.sequence}", self.sequence))
        return bodies

    async def post_events(self, endpoint: str, body: bytes, events: int) -> None:
        """One signed webhook request (signed now); counts what it accepted."""
        signature = sign_payload(self.setup.secret, body, int(time.time()))
        headers = {
            SOURCE_HEADER: SOURCE_NAME,
            SIGNATURE_HEADER: signature,
            "Content-Type": "application/json",
        }
        response = await self.recorder.call(
            endpoint,
            functools.partial(self.intake.post, WEBHOOK_PATH, content=body, headers=headers),
        )
        if response is None:
            self.tally.events_unanswered += events
        elif response.status_code == 202:
            answer = response.json()
            self.tally.events_accepted += int(answer["accepted"])
            self.tally.duplicates += int(answer["duplicates"])

    async def seed(self) -> None:
        """``--seed-events`` in batches of 1,000, before the clock starts."""
        left = self.options.seed_events
        while left > 0:
            size = min(1000, left)
            body = b'{"events":[' + b",".join(self._event_bodies("seed", size)) + b"]}"
            await self.post_events("POST /v1/webhooks/decisions (seed batch)", body, size)
            left -= size

    async def paced(self, rate: float, send: Callable[[], Awaitable[None]]) -> None:
        """Call ``send`` ``rate`` times a second until the stop, each call its own task (at
        most MAX_IN_FLIGHT at once: beyond that the schedule slips, and the tally says so)."""
        if rate <= 0:
            return
        gate = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()

        async def one() -> None:
            try:
                await send()
            finally:
                gate.release()

        started = time.monotonic()
        index = 0
        while True:
            due = started + index / rate
            # A stack that falls behind does not get the missed sends later: the load stops
            # on time, and the tally says how far behind the schedule was.
            if due >= self.stop_at or time.monotonic() >= self.stop_at:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await gate.acquire()
            lag = time.monotonic() - due
            if lag > 0.1:
                self.tally.late_sends += 1
            self.tally.worst_lag_s = max(self.tally.worst_lag_s, lag)
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            index += 1
        await asyncio.gather(*tasks)

    async def single_events(self) -> None:
        """Single signed events at ``--single-rate``."""

        async def send() -> None:
            (body,) = self._event_bodies("single", 1)
            await self.post_events("POST /v1/webhooks/decisions (single)", body, 1)

        await self.paced(self.options.single_rate, send)

    async def batches(self) -> None:
        """Batches of ``--batch-size`` at ``--batch-rate``."""

        async def send() -> None:
            events = self._event_bodies("batch", self.options.batch_size)
            body = b'{"events":[' + b",".join(events) + b"]}"
            await self.post_events("POST /v1/webhooks/decisions (batch)", body, len(events))

        await self.paced(self.options.batch_rate, send)

    # --- sampling

    async def sample_once(self) -> None:
        """Sample each market's days now and wait for the jobs (as the daily schedule would)."""
        jobs = []
        for market, day in sampled_days(datetime.now(UTC)):
            body = {"day": day.isoformat(), "market": market}
            response = await self.recorder.call(
                "POST /v1/audits/sample",
                functools.partial(
                    self.work.post, "/v1/audits/sample", json=body, headers=self.setup.admin
                ),
            )
            if response is not None and response.status_code == 202:
                jobs.append(str(response.json()["job_id"]))
        for job_id in jobs:
            while True:
                response = await self.recorder.call(
                    "GET /v1/jobs/{id}",
                    functools.partial(
                        self.work.get, f"/v1/jobs/{job_id}", headers=self.setup.admin
                    ),
                )
                status = response.json().get("status") if response is not None else None
                if status in ("complete", "failed") or response is None:
                    if status != "complete":
                        self.tally.sampling_jobs_failed += 1
                    break
                await asyncio.sleep(0.5)

    async def sampling(self) -> None:
        """A sampling round every ``--sample-every`` seconds."""
        while time.monotonic() + self.options.sample_every < self.stop_at:
            await asyncio.sleep(self.options.sample_every)
            await self.sample_once()

    # --- auditors

    async def auditor(self, index: int, key: str) -> None:
        """Claim, judge, submit, until the stop; wait a second when nothing is left."""
        rng = random.Random(f"mixed-auditor-{index}")
        headers = {"Authorization": f"Bearer {key}"}
        while time.monotonic() < self.stop_at:
            claimed = await self.recorder.call(
                "POST /v1/audits/claim",
                functools.partial(self.work.post, "/v1/audits/claim", headers=headers),
            )
            if claimed is None or claimed.status_code != 200:
                await asyncio.sleep(1.0)
                continue
            self.tally.claims += 1
            audit = claimed.json()
            await asyncio.sleep(rng.uniform(0, 2 * self.options.think_ms) / 1000)
            verdict = verdict_body(audit, rng)
            judged = await self.recorder.call(
                "POST /v1/audits/{id}/verdict",
                functools.partial(
                    self.work.post,
                    f"/v1/audits/{audit['id']}/verdict",
                    json=verdict,
                    headers=headers,
                ),
            )
            if judged is None:
                self.tally.verdicts_unanswered += 1
            elif judged.status_code == 200:
                self.tally.verdicts += 1
                self.tally.incorrect += verdict["outcome"] == "incorrect"

    # --- reads

    async def every(self, seconds: float, endpoint: str, get: Callable[[], Awaitable[Any]]) -> None:
        """One read every ``seconds`` (the first at a random point of the first period, so the
        readers do not all start together)."""
        if seconds <= 0:
            return
        due = time.monotonic() + random.uniform(0, seconds)
        while due < self.stop_at:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.recorder.call(endpoint, get)
            due += seconds

    def readers(self) -> list[Awaitable[None]]:
        """The report and console readers."""
        o, manager = self.options, self.setup.manager
        return [
            self.every(
                o.briefing_every,
                "GET /v1/reports/briefing (JSON)",
                lambda: self.work.get("/v1/reports/briefing", headers=manager),
            ),
            self.every(
                o.accuracy_every,
                "GET /v1/reports/accuracy (by moderator)",
                lambda: self.work.get(
                    "/v1/reports/accuracy", params={"group_by": "moderator"}, headers=manager
                ),
            ),
            self.every(
                o.xlsx_every,
                "GET /v1/reports/accuracy (XLSX)",
                lambda: self.work.get(
                    "/v1/reports/accuracy",
                    params={"group_by": "market", "format": "xlsx"},
                    headers=manager,
                ),
            ),
            self.every(
                o.overview_every,
                "GET /console/overview",
                lambda: self.console.get("/console/overview"),
            ),
            self.every(
                o.audits_page_every,
                "GET /console/audits",
                lambda: self.console.get("/console/audits", params={"status": "completed"}),
            ),
        ]

    async def run(self, seconds: float) -> None:
        """Everything at once for ``seconds``."""
        self.stop_at = time.monotonic() + seconds
        await asyncio.gather(
            self.single_events(),
            self.batches(),
            self.sampling(),
            *(self.auditor(n, key) for n, key in enumerate(self.setup.auditor_keys)),
            *self.readers(),
        )


# ------------------------------------------------------------------- reconciliation


@dataclass
class Reconciliation:
    """What is stored and delivered once the stack has drained, against what was sent."""

    drained: bool = False
    drain_s: float = 0.0
    pending_outbox: int = 0
    decisions: int = 0
    rolled_up: int = 0
    verdicts: int = 0
    incorrect_verdicts: int = 0
    disagreements: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    deliveries_by_status: dict[str, int] = field(default_factory=dict)
    expected_deliveries: int = 0
    sink: SinkTally = field(default_factory=lambda: SinkTally(0, 0, 0, {}))

    def checks(self, tally: Tally) -> list[tuple[str, str, str, bool]]:
        """(check, measured, expected, holds) rows."""
        delivered = self.deliveries_by_status.get("delivered", 0)
        not_delivered = sum(v for k, v in self.deliveries_by_status.items() if k != "delivered")
        stored_extra = self.decisions - tally.events_accepted
        return [
            (
                "decisions stored = events acknowledged",
                f"{self.decisions:,}",
                f"{tally.events_accepted:,}"
                + (
                    f" (+ up to {tally.events_unanswered:,} unanswered)"
                    if tally.events_unanswered
                    else ""
                ),
                0 <= stored_extra <= tally.events_unanswered,
            ),
            ("duplicates reported by intake", f"{tally.duplicates:,}", "0", tally.duplicates == 0),
            (
                "intake rollups = rows (quality_rollups, policy '*')",
                f"{self.rolled_up:,}",
                f"{self.decisions:,}",
                self.rolled_up == self.decisions,
            ),
            ("outbox rows not relayed", f"{self.pending_outbox:,}", "0", self.pending_outbox == 0),
            (
                "verdicts stored = verdicts acknowledged",
                f"{self.verdicts:,}",
                f"{tally.verdicts:,}"
                + (
                    f" (+ up to {tally.verdicts_unanswered:,} unanswered)"
                    if tally.verdicts_unanswered
                    else ""
                ),
                0 <= self.verdicts - tally.verdicts <= tally.verdicts_unanswered,
            ),
            (
                "disagreements = incorrect verdicts acknowledged",
                f"{self.disagreements:,} ({self.incorrect_verdicts:,} incorrect stored)",
                f"{tally.incorrect:,}",
                self.disagreements == self.incorrect_verdicts
                and 0 <= self.incorrect_verdicts - tally.incorrect <= tally.verdicts_unanswered,
            ),
            (
                "deliveries delivered = expected from the events routed",
                f"{delivered:,}" + (f" ({not_delivered:,} not delivered)" if not_delivered else ""),
                f"{self.expected_deliveries:,}",
                delivered == self.expected_deliveries and not_delivered == 0,
            ),
            (
                "sink arrivals (distinct channel, message id) = deliveries",
                f"{self.sink.distinct:,} ({self.sink.arrivals:,} requests)",
                f"{delivered:,}",
                self.sink.distinct == delivered,
            ),
            (
                "message ids with two different bodies",
                f"{self.sink.two_bodies:,}",
                "0",
                self.sink.two_bodies == 0,
            ),
        ]


async def drain_and_reconcile(
    database_url: str,
    sink: httpx.AsyncClient,
    *,
    source_id: str,
    tally: Tally,
    channels: int,
    patience: float,
) -> Reconciliation:
    """Wait (bounded) until the outbox is relayed, every decision rolled up and no delivery
    pending with the sink caught up; then count."""
    result = Reconciliation()
    # Each incorrect verdict: one disagreement.opened to every channel, one correction to
    # the source's target. (Acknowledged ones; an unanswered one that was stored too, which
    # the verdict check allows, is added once counted.)
    result.expected_deliveries = tally.incorrect * (channels + 1)
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        started = time.monotonic()
        while True:
            backlog = await read_backlog(connection)
            pending = int(
                await connection.fetchval(
                    "SELECT count(*) FROM deliveries WHERE status = 'pending'"
                )
            )
            delivered = int(
                await connection.fetchval(
                    "SELECT count(*) FROM deliveries WHERE status = 'delivered'"
                )
            )
            result.sink = await read_sink(sink)
            result.drain_s = time.monotonic() - started
            result.drained = (
                backlog.drained
                and pending == 0
                and delivered >= result.expected_deliveries
                and result.sink.distinct >= delivered
            )
            if result.drained or result.drain_s > patience:
                break
            await asyncio.sleep(1.0)
        result.pending_outbox = backlog.pending_outbox
        result.decisions = int(
            await connection.fetchval(
                "SELECT count(*) FROM decisions WHERE source_id = $1::uuid", source_id
            )
        )
        result.rolled_up = backlog.rolled_up
        row = await connection.fetchrow(
            "SELECT count(*) AS verdicts,"
            " count(*) FILTER (WHERE outcome = 'incorrect') AS incorrect FROM verdicts"
        )
        result.verdicts, result.incorrect_verdicts = int(row["verdicts"]), int(row["incorrect"])
        if 0 < result.incorrect_verdicts - tally.incorrect <= tally.verdicts_unanswered:
            result.expected_deliveries = result.incorrect_verdicts * (channels + 1)
        result.disagreements = int(await connection.fetchval("SELECT count(*) FROM disagreements"))
        result.events_by_type = {
            r["type"]: int(r["n"])
            for r in await connection.fetch("SELECT type, count(*) AS n FROM events GROUP BY type")
        }
        result.deliveries_by_status = {
            r["status"]: int(r["n"])
            for r in await connection.fetch(
                "SELECT status, count(*) AS n FROM deliveries GROUP BY status"
            )
        }
    finally:
        await connection.close()
    return result


# ------------------------------------------------------------------------ Redis keys

# Kept job results: arq's own prefix (``arq.constants.result_key_prefix``).
RESULT_KEYS = "arq:result:*"


@dataclass(frozen=True)
class RedisKeys:
    """What the queue's Redis holds at one moment: its keys, and those of them that are kept
    job results (each stays for its worker's ``keep_result``: a key per job for that long)."""

    total: int
    results: int


async def count_redis_keys(redis_url: str) -> RedisKeys:
    """Count the keys of the stack's Redis (one SCAN over a few thousand keys)."""
    client = Redis.from_url(redis_url)
    try:
        total = await client.dbsize()
        results = 0
        async for _ in client.scan_iter(match=RESULT_KEYS, count=1000):
            results += 1
    finally:
        await client.aclose()
    return RedisKeys(total=int(total), results=results)


# -------------------------------------------------------------------------- report


@dataclass
class Measurement:
    """Everything one run produced."""

    options: Options
    recorder: Recorder
    tally: Tally
    seconds: float
    memory: dict[str, dict[str, ProcessUse]]
    # (seconds since the load started, every process's use then), every CURVE_EVERY_S.
    curve: list[tuple[float, dict[str, ProcessUse]]]
    machine_busy: float
    reconciliation: Reconciliation
    trouble: list[str]
    started_at: datetime
    took_s: float
    stop_code: int | None
    stop_s: float | None
    # Keys in the queue's Redis at each memory point (start, after warm-up, end).
    redis_keys: dict[str, RedisKeys] = field(default_factory=dict)


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.1f}"


def endpoint_rows(recorder: Recorder, seconds: float) -> list[str]:
    """One table row per endpoint: count, rate, p50/p99, errors."""
    rows = []
    for endpoint in sorted(recorder.samples):
        timed = recorder.timed(endpoint)
        ms = [s.ms for s in timed]
        errors = recorder.errors(endpoint)
        error_text = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "none"
        statuses = Counter(s.status for s in timed)
        rows.append(
            f"| {endpoint} | {len(timed):,} | {len(timed) / seconds:,.2f} "
            f"| {_ms(percentile(ms, 50))} | {_ms(percentile(ms, 99))} "
            f"| {_ms(max(ms) if ms else math.nan)} "
            f"| {', '.join(f'{k}: {v:,}' for k, v in sorted(statuses.items()))} | {error_text} |"
        )
    return rows


def memory_rows(memory: dict[str, dict[str, ProcessUse]], seconds: float) -> list[str]:
    """One row per process: memory at each point, growth, CPU share over the measurement."""
    rows = []
    for name in [*PROCESSES, GENERATOR, "sink"]:
        points = [memory[point].get(name) for point in ("start", "after warm-up", "end")]
        if any(p is None for p in points):
            continue
        start, warm, end = (p for p in points if p is not None)
        growth = (end.memory_mib - warm.memory_mib) / warm.memory_mib if warm.memory_mib else 0.0
        cpu = end.cpu_s - warm.cpu_s
        rows.append(
            f"| {name} | {start.memory_mib:,.0f} | {warm.memory_mib:,.0f} | {end.memory_mib:,.0f} "
            f"| {growth:+.1%} | {cpu:,.1f} ({cpu / seconds:.0%}) "
            f"| {warm.processes} / {end.processes} |"
        )
    return rows


def curve_rows(curve: Sequence[tuple[float, dict[str, ProcessUse]]]) -> list[str]:
    """The memory curve: a header and one row per stack process (PostgreSQL also per
    process: its sum moves with the number of backends the pools hold)."""
    if not curve:
        return []
    # The last point is the end of the load, however soon after the one before.
    labels = [f"{t / 60:.0f} min" for t, _ in curve[:-1]] + ["end"]
    header = "| Process | " + " | ".join(labels) + " |"
    rows = [header, "| --- |" + " ---: |" * len(curve)]
    for name in PROCESSES:
        uses = [points.get(name) for _, points in curve]
        rows.append(
            f"| {name} | "
            + " | ".join("" if u is None else f"{u.memory_mib:,.0f}" for u in uses)
            + " |"
        )
        if name == "postgres":
            rows.append(
                "| postgres, per process (processes) | "
                + " | ".join(
                    ""
                    if u is None or not u.processes
                    else f"{u.memory_mib / u.processes:.1f} ({u.processes})"
                    for u in uses
                )
                + " |"
            )
    return rows


def growth_in_second_half(
    curve: Sequence[tuple[float, dict[str, ProcessUse]]], name: str
) -> float | None:
    """Growth of ``name`` from the curve's middle point to its last: near 0 for memory that
    warmed up and levelled off, as large as in the first half for a leak."""
    points = [p[name] for _, p in curve if name in p]
    if len(points) < 3 or points[len(points) // 2].memory_mib == 0:
        return None
    middle, last = points[len(points) // 2], points[-1]
    return (last.memory_mib - middle.memory_mib) / middle.memory_mib


def flat(
    memory: dict[str, dict[str, ProcessUse]],
    curve: Sequence[tuple[float, dict[str, ProcessUse]]],
) -> bool:
    """Every stack process ends within FLAT_GROWTH (or FLAT_SLACK_MIB) of its after-warm-up
    memory, or levelled off: less than LEVELLED_GROWTH over the second half of the curve."""
    for name in PROCESSES:
        warm, end = memory["after warm-up"].get(name), memory["end"].get(name)
        if warm is None or end is None or warm.memory_mib == 0:
            return False
        if end.memory_mib <= max(
            warm.memory_mib * (1 + FLAT_GROWTH), warm.memory_mib + FLAT_SLACK_MIB
        ):
            continue
        late = growth_in_second_half(curve, name)
        if late is None or late >= LEVELLED_GROWTH:
            return False
    return True


def redis_keys_line(keys: dict[str, RedisKeys]) -> str:
    """Redis's keys at the memory points: a count that climbs with the load is what its
    memory grows with (kept job results, until they expire)."""
    points = [p for p in ("start", "after warm-up", "end") if p in keys]
    if not points:
        return "Redis keys: not counted."
    return (
        f"Redis keys ({' / '.join(points)}): "
        + " / ".join(f"{keys[p].total:,}" for p in points)
        + f"; of them kept job results (`{RESULT_KEYS}`): "
        + " / ".join(f"{keys[p].results:,}" for p in points)
        + "."
    )


def render_report(m: Measurement) -> str:
    """The markdown report."""
    o, t, r = m.options, m.tally, m.reconciliation
    checks = r.checks(t)
    errors = sum(sum(m.recorder.errors(e).values()) for e in m.recorder.samples)
    cpu_total = psutil.cpu_count() or 1
    ours = sum(
        m.memory["end"][name].cpu_s - m.memory["after warm-up"][name].cpu_s
        for name in m.memory["end"]
        if name in m.memory["after warm-up"]
    ) / (cpu_total * m.seconds)
    lines = [
        "## Mixed workload on `make run`'s stack (issue #12)",
        "",
        f"- Command: `{o.command}` (from the repository root)",
        f"- Date: {m.started_at:%Y-%m-%d %H:%M} UTC "
        f"(the run took {timedelta(seconds=round(m.took_s))})",
        f"- Machine: {machine_line()}; {psutil.virtual_memory().total / 1024**3:.1f} GiB RAM; "
        "the stack, the load generator and the sink on this machine",
        "- Stack: `plumbline run` in a fresh data directory: embedded PostgreSQL and Redis, the "
        "API (1 uvicorn worker), relay, report worker and notifier as its children, every setting "
        "at its default (log level INFO) but `PLUMBLINE_API_PORT` and "
        "`PLUMBLINE_INSECURE_TARGET_HOSTS=127.0.0.1` (the sink is plain HTTP on loopback)",
        f"- Load for {o.duration:.0f} s, the first {o.warmup:.0f} s a warm-up (not timed, but "
        "its errors count): "
        f"{o.single_rate:g} single signed events/s; {o.batch_rate:g} batches/s of {o.batch_size} "
        f"events; {o.auditors} auditors claiming, judging for 0 to {2 * o.think_ms:.0f} ms "
        "(uniform), submitting (one verdict in five incorrect: a disagreement, a notification "
        f"to each of {o.channels} webhook channels and a correction to the source); the "
        f"day's sampling (rate {o.sampling_rate:g}, DE and AT, yesterday and today) every "
        f"{o.sample_every:g} s; the briefing JSON every {o.briefing_every:g} s, accuracy by "
        f"moderator every {o.accuracy_every:g} s, its XLSX every {o.xlsx_every:g} s; console "
        f"overview every {o.overview_every:g} s, audits list every {o.audits_page_every:g} s. "
        f"Before the clock: {o.seed_events:,} events in batches of 1,000, sampled once.",
        "- Rates: chosen to load the machine to about half, not saturate it (the module "
        "docstring derives them from the CPU each process used per request in a saturated "
        "run: about one core of the two for the defaults); over the measured "
        f"window the machine's {cpu_total} cores were {m.machine_busy:.0%} busy, "
        f"{ours:.0%} of them this benchmark's processes (the stack, the generator, the sink) "
        f"and {max(0.0, m.machine_busy - ours):.0%} other processes (a figure well above 0 "
        "means a disturbed run); the pacer fell more than 100 ms behind "
        f"{t.late_sends:,} times (worst {t.worst_lag_s * 1000:,.0f} ms)",
        "",
        "### Requests",
        "",
        f"Timed: requests started in the {m.seconds:.0f} s after the warm-up. Latency is the "
        "load generator's (request sent to answer read, httpx, same machine). Errors: any "
        "status other than the endpoint's answers (202 for intake and sampling, 200 or 204 for "
        "claims, 200 elsewhere) or no answer, over the whole run.",
        "",
        "| Endpoint | Requests | Per second | p50 ms | p99 ms | max ms | Statuses | Errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        *endpoint_rows(m.recorder, m.seconds),
        "",
        f"Errors in all: **{errors}** (target 0). Decisions accepted during the run: "
        f"{t.events_accepted - o.seed_events:,} (plus the seed), verdicts {t.verdicts:,} "
        f"({t.incorrect:,} incorrect), sampling jobs not complete: {t.sampling_jobs_failed}.",
        "",
        "### Processes",
        "",
        "Memory in MiB: RSS of the process and its children; PostgreSQL: the sum over the "
        "postmaster and its backends of their private memory (RSS less shared pages: RSS also "
        "counts the pages of the shared buffers each backend has touched, which fill up to "
        "`shared_buffers` as the cache warms: bounded, not a leak). Start: after the set-up "
        "and seed, before the load; after warm-up; end: when the load stopped, before the "
        "drain. CPU: user + system seconds over the measured window (share of one core).",
        "",
        "| Process | Start | After warm-up | End | End vs warm-up | CPU s (of a core) "
        "| Processes (warm-up / end) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *memory_rows(m.memory, m.seconds),
        "",
        f"Memory flat (every stack process ends within {FLAT_GROWTH:.0%} or "
        f"{FLAT_SLACK_MIB:.0f} MiB of its after-warm-up figure, or levelled off: it grew less "
        f"than {LEVELLED_GROWTH:.0%} from the middle of the curve below to its end): "
        f"**{'yes' if flat(m.memory, m.curve) else 'no'}**.",
        "",
        redis_keys_line(m.redis_keys),
        "",
        f"Memory over the run, MiB, every {CURVE_EVERY_S:.0f} s from the start of the load (a "
        "plateau is warm-up, a steady climb a leak). Growth from the middle of the curve to its "
        "end: "
        + ", ".join(
            f"{name} {g:+.1%}"
            for name in PROCESSES
            if (g := growth_in_second_half(m.curve, name)) is not None
        )
        + ".",
        "",
        *curve_rows(m.curve),
        "",
        "### Reconciliation",
        "",
        f"After the load the benchmark waited {r.drain_s:.1f} s for the stack to drain "
        f"({'drained' if r.drained else 'NOT drained within the timeout'}), then counted in "
        "the database and at the sink:",
        "",
        "| Check | Measured | Expected | |",
        "| --- | ---: | ---: | --- |",
        *(
            f"| {name} | {got} | {want} | {'holds' if ok else '**fails**'} |"
            for name, got, want, ok in checks
        ),
        "",
        "Events recorded: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(r.events_by_type.items())) or "none")
        + "; deliveries: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(r.deliveries_by_status.items())) or "none")
        + f"; sink requests by path: {len(r.sink.by_path)} paths, "
        f"{r.sink.arrivals - r.sink.distinct:,} repeated (allowed: at least once).",
        "",
        f"`plumbline run` on SIGTERM: exit code {m.stop_code} after "
        f"{'n/a' if m.stop_s is None else f'{m.stop_s:.1f} s'}. Children or servers that died "
        f"during the run: {len(m.trouble)}"
        + (f" ({'; '.join(m.trouble[:3])})" if m.trouble else "")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def passed(m: Measurement) -> bool:
    """Every reconciliation check holds, no endpoint erred, no process died."""
    return (
        all(ok for *_, ok in m.reconciliation.checks(m.tally))
        and not any(m.recorder.errors(e) for e in m.recorder.samples)
        and not m.trouble
    )


# ---------------------------------------------------------------------------- main


async def sample_memory(
    pids: dict[str, int],
    curve: list[tuple[float, dict[str, ProcessUse]]],
    *,
    until: asyncio.Task[None],
) -> None:
    """Every process's use every CURVE_EVERY_S while the load runs, and once when it ends."""
    started = time.monotonic()
    while True:
        curve.append((time.monotonic() - started, snapshot_all(pids)))
        done, _ = await asyncio.wait({until}, timeout=CURVE_EVERY_S)
        if done:
            curve.append((time.monotonic() - started, snapshot_all(pids)))
            return


async def measure(options: Options, stack: PlumblineRun, sink: SinkProcess) -> Measurement:
    """Set up, seed, run the load, drain, reconcile."""
    started_at = datetime.now(UTC)
    began = time.monotonic()
    await sink.wait_ready()
    recorder = Recorder()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=REQUEST_TIMEOUT_S) as client:
        setup = await set_up(client, stack.admin_key, sink.url, options)
    workload = Workload(options, setup, recorder, stack.base_url)
    pids = {**stack.pids, GENERATOR: os.getpid(), "sink": sink.process.pid}
    database_url = stack.database_url
    redis_url = stack.environment_of("api")["PLUMBLINE_REDIS_URL"]
    redis_keys: dict[str, RedisKeys] = {}
    try:
        await sign_in_console(workload.console, setup.admin)
        say(f"set up; seeding {options.seed_events:,} events and sampling them")
        await workload.seed()
        await workload.sample_once()
        memory = {"start": snapshot_all(pids)}
        redis_keys["start"] = await count_redis_keys(redis_url)
        say(f"load for {options.duration:.0f} s (warm-up {options.warmup:.0f} s)")
        load = asyncio.create_task(workload.run(options.duration))
        curve: list[tuple[float, dict[str, ProcessUse]]] = []
        sampler = asyncio.create_task(sample_memory(pids, curve, until=load))
        await asyncio.sleep(options.warmup)
        memory["after warm-up"] = snapshot_all(pids)
        redis_keys["after warm-up"] = await count_redis_keys(redis_url)
        cpu_before = psutil.cpu_times()
        recorder.measure_from = time.monotonic()
        await load
        recorder.measure_to = time.monotonic()
        cpu_after = psutil.cpu_times()
        memory["end"] = snapshot_all(pids)
        redis_keys["end"] = await count_redis_keys(redis_url)
        await sampler
        say("load done; waiting for the stack to drain")
    finally:
        await workload.aclose()
    async with httpx.AsyncClient(base_url=sink.url) as sink_client:
        reconciliation = await drain_and_reconcile(
            database_url,
            sink_client,
            source_id=setup.source_id,
            tally=workload.tally,
            channels=options.channels,
            patience=options.drain_timeout,
        )
    trouble = stack.trouble()
    stack.stop()
    return Measurement(
        options=options,
        recorder=recorder,
        tally=workload.tally,
        seconds=recorder.measure_to - recorder.measure_from,
        memory=memory,
        curve=curve,
        machine_busy=machine_busy(cpu_before, cpu_after),
        reconciliation=reconciliation,
        trouble=trouble,
        started_at=started_at,
        took_s=time.monotonic() - began,
        stop_code=stack.exit_code,
        stop_s=stack.stop_seconds,
        redis_keys=redis_keys,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 1 when a check fails or it could not run."""
    options = parse_options(argv)
    workdir = Path(tempfile.mkdtemp(prefix="plumbline-mixed-"))
    stack = PlumblineRun(workdir, extra_env={"PLUMBLINE_INSECURE_TARGET_HOSTS": "127.0.0.1"})
    sink: SinkProcess | None = None
    try:
        say(f"starting plumbline run in {workdir}")
        stack.start()
        sink = SinkProcess(workdir)
        measurement = asyncio.run(measure(options, stack, sink))
    except StackError as exc:
        say(f"failed: {exc}")
        say(f"logs kept in {workdir}")
        return 1
    finally:
        stack.stop()
        if sink is not None:
            sink.stop()
    report = render_report(measurement)
    if options.output is None:
        print(report)
    else:
        write_section(options.output, SECTION, report)
        say(f"report written to {options.output} (section {SECTION!r})")
    ok = passed(measurement)
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"a check failed; logs kept in {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
