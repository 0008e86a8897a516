"""The ``plumbline`` command: run everything on a laptop, or one part per process.

``plumbline run`` resolves the database and Redis (embedded servers when no URL is set),
applies migrations, makes sure an admin key exists, then supervises the API, the report
worker, the notifier and the outbox relay as child processes. The other subcommands run one
part each, for docker-compose and production; they fall back to the same embedded servers
when no URL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

from shared.core.settings import Settings, get_settings

# `plumbline run` must be gone within 10 s of SIGTERM: the children get this long to exit
# by themselves, the embedded servers the rest.
CHILD_GRACE_SECONDS = 5.0
SERVERS_STOP_SECONDS = 4.0
# Below CHILD_GRACE_SECONDS, so uvicorn finishes on its own before being killed.
API_GRACEFUL_SHUTDOWN_SECONDS = 3

CHILD_COMMANDS = ("api", "report-worker", "notifier", "relay")


class _Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException so no ``except Exception`` swallows it."""


class EmbeddedServer(Protocol):
    """What ``shared.core.embedded`` servers have in common."""

    url: str
    pid: int
    started: bool

    def is_running(self) -> bool: ...

    def stop(self, timeout: float = ...) -> None: ...


# ----------------------------------------------------------------------------- signals


class StopSignal:
    """Turns SIGINT and SIGTERM into a flag, or into ``_Interrupted`` while ``raising``."""

    def __init__(self) -> None:
        self.requested = False
        self.raising = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and not self.raising:
            return  # already shutting down; a second Ctrl-C must not cut the cleanup short
        self.requested = True
        if self.raising:
            raise _Interrupted


def _raise_on_signals() -> None:
    """For one-part commands: SIGTERM ends the command like Ctrl-C, through ``finally``."""

    def handle(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)


# ----------------------------------------------------------------------- resolution


def _data_dir(settings: Settings) -> Path:
    return settings.data_dir.expanduser().resolve()


def _start_embedded(
    settings: Settings, servers: list[EmbeddedServer], *, redis: bool, announce: bool
) -> Settings:
    """Start embedded servers for the URLs that are unset; return resolved settings.

    Each server in use (started here or found running) is appended to ``servers`` as soon
    as it is up, so the caller's cleanup sees it even when the next one fails to start.
    """
    from shared.core.embedded import start_embedded_postgres, start_embedded_redis

    updates: dict[str, object] = {}
    if settings.database_url is None:
        postgres = start_embedded_postgres(_data_dir(settings))
        servers.append(postgres)
        updates["database_url"] = postgres.url
        if announce:
            _say(f"embedded PostgreSQL in {postgres.pgdata} (pid {postgres.pid})")
    if redis and settings.redis_url is None:
        server = start_embedded_redis(_data_dir(settings))
        servers.append(server)
        updates["redis_url"] = server.url
        if announce:
            _say(f"embedded Redis at {server.url} in {server.directory} (pid {server.pid})")
    return settings.model_copy(update=updates)


def _stop_servers(servers: Sequence[EmbeddedServer], *, only_started: bool) -> None:
    """Stop servers in reverse start order (Redis before PostgreSQL) within one budget."""
    to_stop = [s for s in reversed(servers) if s.started or not only_started]
    # Servers found running belong to someone else, e.g. a `plumbline run` next door.
    deadline = time.monotonic() + SERVERS_STOP_SECONDS
    for index, server in enumerate(to_stop):
        # An even share of what is left: a quick Redis leaves PostgreSQL more time.
        share = (deadline - time.monotonic()) / (len(to_stop) - index)
        try:
            server.stop(max(0.5, share))
        except Exception as exc:
            _say(f"could not stop embedded server (pid {server.pid}): {exc}", stderr=True)


@contextlib.contextmanager
def _resolved_settings(*, redis: bool) -> Iterator[Settings]:
    """Settings with URLs, for a one-part command; embedded servers it starts stop on exit.

    The resolved URLs also go into this process's environment, because the API app (and
    uvicorn's worker processes) read their settings from there.
    """
    servers: list[EmbeddedServer] = []
    try:
        resolved = _start_embedded(get_settings(), servers, redis=redis, announce=False)
        if servers:
            os.environ.update(_url_environment(resolved))
            get_settings.cache_clear()
            resolved = get_settings()
        yield resolved
    finally:
        _stop_servers(servers, only_started=True)


def _url_environment(settings: Settings) -> dict[str, str]:
    env = {"PLUMBLINE_DATA_DIR": str(_data_dir(settings))}
    if settings.database_url is not None:
        env["PLUMBLINE_DATABASE_URL"] = settings.database_url
    if settings.redis_url is not None:
        env["PLUMBLINE_REDIS_URL"] = settings.redis_url
    return env


def _bootstrap_key(settings: Settings) -> str | None:
    # An empty variable (docker-compose's `${VAR:-}`) means unset, never an empty key.
    key = settings.bootstrap_admin_key
    return key.get_secret_value() if key is not None and key.get_secret_value() else None


async def ensure_admin_key(settings: Settings, *, generate: bool) -> str | None:
    """Ensure the bootstrap admin key; with ``generate``, create one when no admin key exists.

    Returns the plaintext of a generated key (shown once), else None.
    """
    from shared.api_keys.service import (
        create_api_key,
        ensure_bootstrap_admin_key,
        has_admin_key,
    )
    from shared.core.db import create_sessionmaker, engine_from_settings, unit_of_work

    key = _bootstrap_key(settings)
    if key is None and not generate:
        return None
    engine = engine_from_settings(settings)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            if key is not None:
                await ensure_bootstrap_admin_key(session, key=key)
                return None
            if await has_admin_key(session):
                return None
            _, plaintext = await create_api_key(
                session, name="admin (generated on first run)", role="admin"
            )
        return plaintext
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------------ run


@dataclass
class Child:
    """One supervised ``plumbline <command>`` process."""

    command: str
    process: subprocess.Popen[bytes]


def _spawn(command: str, env: dict[str, str]) -> Child:
    # `python -m services.cli` works without the console script on PATH. Each child leads
    # its own process group: a terminal's Ctrl-C reaches only us, we stop the children in
    # order, and a SIGKILL to the group also takes uvicorn's worker processes.
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "services.cli", command],
        env=env,
        stdin=subprocess.DEVNULL,
        process_group=0,
    )
    return Child(command=command, process=process)


def _stop_children(children: Sequence[Child], grace: float) -> None:
    """SIGTERM every child, SIGKILL the process groups of those still alive after ``grace``."""
    deadline = time.monotonic() + grace
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _say(f"{child.command} did not stop in time; killing it", stderr=True)
        # Also reaps what the leader left behind (uvicorn workers), whether it exited or not.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()


def _supervise(
    children: Sequence[Child], servers: Sequence[EmbeddedServer], stop: StopSignal
) -> int:
    """Wait for a stop signal (0) or for a child or embedded server to die (1)."""
    while not stop.requested:
        for child in children:
            code = child.process.poll()
            if code is not None:
                _say(f"{child.command} exited with code {code}; stopping everything", stderr=True)
                return 1
        for server in servers:
            if not server.is_running():
                _say(f"embedded server (pid {server.pid}) died; stopping everything", stderr=True)
                return 1
        time.sleep(0.1)
    return 0


def _public_host(host: str) -> str:
    """A host to put in a URL for the user: wildcard binds are reachable on loopback."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def run_all() -> int:
    """``plumbline run``: everything on one machine, until SIGINT or SIGTERM."""
    stop = StopSignal()
    servers: list[EmbeddedServer] = []
    children: list[Child] = []
    code = 0
    try:
        settings = get_settings()
        resolved = _start_embedded(settings, servers, redis=True, announce=True)
        if resolved.database_url is None:
            raise RuntimeError("database URL not resolved")
        from shared.core.migrate import upgrade_to_head

        upgrade_to_head(resolved.database_url)
        generated = asyncio.run(ensure_admin_key(resolved, generate=True))

        # Create the local encryption key file (when no key is configured) before four
        # processes race to create it.
        from shared.core.encryption import secret_box

        secret_box(resolved)

        env = {**os.environ, **_url_environment(resolved), "PYTHONUNBUFFERED": "1"}
        # From here a signal only sets the flag: an exception between Popen() and append()
        # would leave a child nobody stops.
        stop.raising = False
        for command in CHILD_COMMANDS:
            child = _spawn(command, env)
            children.append(child)
            _say(f"started {command} (pid {child.process.pid})")

        base = f"http://{_public_host(resolved.api_host)}:{resolved.api_port}"
        _say(f"API: {base}  docs: {base}/docs")
        if generated is not None:
            _say(f"generated admin API key (shown only now, keep it): {generated}")
        _say("press Ctrl-C to stop")
        code = _supervise(children, servers, stop)
    except _Interrupted:
        code = 0
    except Exception as exc:
        _say(f"start-up failed: {exc!r}", stderr=True)
        code = 1
    finally:
        stop.raising = False
        stop.requested = True
        _stop_children(children, CHILD_GRACE_SECONDS)
        _stop_servers(servers, only_started=False)
        _say("stopped")
    return code


# ----------------------------------------------------------------- one-part commands


def _configure_logging(settings: Settings, service: str) -> None:
    from shared.core.observability import configure_logging

    configure_logging(service=service, level=settings.log_level, json=settings.log_json)


def run_api() -> int:
    """``plumbline api``: the HTTP API under uvicorn."""
    import uvicorn

    with _resolved_settings(redis=True) as settings:
        _configure_logging(settings, "api")
        asyncio.run(ensure_admin_key(settings, generate=False))
        uvicorn.run(
            "services.audit_api.app:create_app",
            factory=True,
            host=settings.api_host,
            port=settings.api_port,
            workers=settings.api_workers,
            # Behind a proxy, set the forwarded-header trust there explicitly, not by default.
            proxy_headers=False,
            # The app sets up JSON logging; uvicorn's own config would add plain-text lines.
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=API_GRACEFUL_SHUTDOWN_SECONDS,
        )
    return 0


def run_worker(module: str, service: str) -> int:
    """``plumbline report-worker | notifier``: an arq worker from ``module.WorkerSettings``."""
    from shared.core.queue import run_worker as arq_run_worker

    with _resolved_settings(redis=True) as settings:
        _configure_logging(settings, service)
        worker_settings = importlib.import_module(module).WorkerSettings
        # Runs until SIGINT or SIGTERM (running jobs are cancelled and re-queued); a lost
        # Redis is waited for, never a reason to exit.
        arq_run_worker(worker_settings, settings=settings)
    return 0


async def _relay_until_stopped(settings: Settings) -> None:
    from shared.core.outbox import run_relay

    task = asyncio.create_task(run_relay(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run_relay() -> int:
    """``plumbline relay``: move outbox rows to arq until stopped."""
    with _resolved_settings(redis=True) as settings:
        _configure_logging(settings, "relay")
        asyncio.run(_relay_until_stopped(settings))
    return 0


def run_migrate() -> int:
    """``plumbline migrate``: upgrade the schema to head and ensure the bootstrap admin key."""
    from shared.core.migrate import upgrade_to_head

    with _resolved_settings(redis=False) as settings:
        assert settings.database_url is not None
        upgrade_to_head(settings.database_url)
        asyncio.run(ensure_admin_key(settings, generate=False))
    _say("database is at the latest migration")
    return 0


async def _create_key(
    settings: Settings, *, name: str, role: str, reviewer_id: str | None, markets: list[str]
) -> tuple[str, str]:
    from shared.api_keys.service import create_api_key
    from shared.core.db import create_sessionmaker, engine_from_settings, unit_of_work

    engine = engine_from_settings(settings)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            api_key, plaintext = await create_api_key(
                session, name=name, role=role, reviewer_id=reviewer_id, markets=markets or None
            )
        return str(api_key.id), plaintext
    finally:
        await engine.dispose()


def run_api_key_create(args: argparse.Namespace) -> int:
    """``plumbline api-key create``: print a new key (only the key goes to stdout)."""
    with _resolved_settings(redis=False) as settings:
        key_id, plaintext = asyncio.run(
            _create_key(
                settings,
                name=args.name,
                role=args.role,
                reviewer_id=args.reviewer_id,
                markets=[market.upper() for market in args.market],
            )
        )
    _say(f"created {args.role} key {key_id} ({args.name}); it is shown only now", stderr=True)
    print(plaintext)
    return 0


def run_revision(args: argparse.Namespace) -> int:
    """``plumbline revision -m MSG``: autogenerate a migration against an up-to-date schema."""
    from shared.core.migrate import make_revision, upgrade_to_head

    with _resolved_settings(redis=False) as settings:
        assert settings.database_url is not None
        # Autogenerate diffs the models against the database, which must be at head first.
        upgrade_to_head(settings.database_url)
        make_revision(settings.database_url, args.message, rev_id=args.rev_id)
    return 0


def run_seed_demo(args: argparse.Namespace) -> int:
    """``plumbline seed-demo``: post a demo week of decisions through the HTTP API."""
    from services.seed_demo import SeedOptions, seed_demo

    admin_key = args.admin_key or _bootstrap_key(get_settings())
    if not admin_key:
        _say("seed-demo needs --admin-key or PLUMBLINE_BOOTSTRAP_ADMIN_KEY", stderr=True)
        return 2
    options = SeedOptions(
        api_url=args.api_url,
        admin_key=admin_key,
        days=args.days,
        moderators=args.moderators,
        seed=args.seed,
        source_name=args.source,
    )
    summary = seed_demo(options, progress=_say)
    _say(
        f"seeded {summary.sent} decisions ({summary.accepted} accepted, "
        f"{summary.duplicates} duplicates) from source {summary.source_name!r}"
    )
    return 0


# ----------------------------------------------------------------------------- parser


def _say(message: str, *, stderr: bool = False) -> None:
    print(f"plumbline: {message}", file=sys.stderr if stderr else sys.stdout, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``plumbline`` command."""
    from shared.models.auth import ROLES

    parser = argparse.ArgumentParser(
        prog="plumbline",
        description="Plumbline: quality assurance back office for T&S moderation.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.set_defaults(handler=handler)
        return sub

    add("run", lambda _: run_all(), "run everything (API, workers, relay); embedded servers")
    add("api", lambda _: run_api(), "run the HTTP API")
    add(
        "report-worker",
        lambda _: run_worker("services.report_worker.worker", "report-worker"),
        "run the report worker",
    )
    add(
        "notifier",
        lambda _: run_worker("services.notifier.worker", "notifier"),
        "run the notifier worker",
    )
    add("relay", lambda _: run_relay(), "run the outbox relay")
    add("migrate", lambda _: run_migrate(), "apply migrations, ensure the bootstrap admin key")

    api_key = commands.add_parser("api-key", help="manage API keys")
    key_commands = api_key.add_subparsers(dest="key_command", required=True, metavar="COMMAND")
    create = key_commands.add_parser("create", help="create an API key and print it")
    create.set_defaults(handler=run_api_key_create)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True)
    create.add_argument("--reviewer-id", default=None)
    create.add_argument("--market", action="append", default=[], help="repeat for several")

    seed = add("seed-demo", run_seed_demo, "post a demo week of decisions through the API")
    seed.add_argument("--api-url", default="http://127.0.0.1:8000")
    seed.add_argument("--admin-key", default=None, help="default: $PLUMBLINE_BOOTSTRAP_ADMIN_KEY")
    seed.add_argument("--days", type=int, default=7)
    seed.add_argument("--moderators", type=int, default=50)
    seed.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    seed.add_argument("--source", default="demo-platform", help="source name to create")

    revision = add("revision", run_revision, "autogenerate a migration (developers)")
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--rev-id", default=None, help="default: the next 000N number")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``plumbline`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command != "run":
        # `run` installs its own handlers: it has children and servers to stop in order.
        _raise_on_signals()
    try:
        code: int = args.handler(args)
    except (_Interrupted, KeyboardInterrupt):
        return 0  # a signal is how services are stopped; that is a clean exit
    return code


if __name__ == "__main__":
    sys.exit(main())
