"""The ``plumbline`` command: run everything on a laptop, or one part per process.

``plumbline run`` resolves the database and Redis (embedded servers when no URL is set),
applies migrations, makes sure an admin key exists, then supervises the API, the report
worker, the notifier and the outbox relay as child processes: a child or embedded server
that dies is started again with backoff (Redis on its port) while the rest keeps running,
and once the API is ready the URLs and the admin key are printed, last. The other
subcommands run one part each, for docker-compose and production; they fall back to the
same embedded servers when no URL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TextIO

from pydantic import ValidationError

from shared.core.settings import Settings, get_settings, settings_problems

if TYPE_CHECKING:
    from shared.schemas.users import UserCreate

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


# `plumbline run` names itself in its children's environment.
SUPERVISOR_PID_VARIABLE = "PLUMBLINE_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _stop_with_supervisor() -> None:
    """Under ``plumbline run``, have the kernel send this process SIGTERM when ``run`` dies,
    even by SIGKILL: a child left behind would keep its port, its connections and its jobs
    (and retry a vanished embedded server for good) beside the next ``run``."""
    supervisor = os.environ.get(SUPERVISOR_PID_VARIABLE)
    if supervisor is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(supervisor):
        # It died before we asked: that signal will never come.
        signal.raise_signal(signal.SIGTERM)


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


# A dead child or embedded server is started again after a delay that doubles from
# RESTART_MIN_SECONDS to RESTART_MAX_SECONDS while it keeps dying, and starts over once it
# has stayed up for RESTART_RESET_SECONDS: a crash now and then costs half a second, a
# crash loop (say, a port someone else holds) costs little CPU and log.
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
RESTART_RESET_SECONDS = 60.0
# How long `plumbline run` waits for the API's /readyz before it prints the start-up block
# anyway (with a note that the API is not ready yet).
READY_WAIT_SECONDS = 90.0


@dataclass
class Restarts:
    """When a dead process may start again: exponential backoff, reset after a good run."""

    failures: int = 0
    started_at: float = field(default_factory=time.monotonic)
    due_at: float | None = None

    def schedule(self) -> float:
        """Record a death; returns the delay before the restart."""
        now = time.monotonic()
        if now - self.started_at >= RESTART_RESET_SECONDS:
            self.failures = 0
        delay = min(RESTART_MAX_SECONDS, RESTART_MIN_SECONDS * 2.0 ** min(self.failures, 16))
        self.failures += 1
        self.due_at = now + delay
        return delay

    def due(self) -> bool:
        """Whether a scheduled restart may happen now."""
        return self.due_at is not None and time.monotonic() >= self.due_at

    def started(self) -> None:
        """Record a (re)start."""
        self.started_at = time.monotonic()
        self.due_at = None


@dataclass
class Child:
    """One supervised ``plumbline <command>`` process."""

    command: str
    process: subprocess.Popen[bytes]
    restarts: Restarts = field(default_factory=Restarts)


def _spawn(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # `python -m services.cli` works without the console script on PATH. Each child leads
    # its own process group: a terminal's Ctrl-C reaches only us, we stop the children in
    # order, and a SIGKILL to the group also takes uvicorn's worker processes.
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "services.cli", command],
        env={**env, SUPERVISOR_PID_VARIABLE: str(os.getpid())},
        stdin=subprocess.DEVNULL,
        process_group=0,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of a child's process group (uvicorn workers), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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
        _kill_group(child.process)


@dataclass
class SupervisedServer:
    """An embedded server ``plumbline run`` keeps alive, and how to start it again."""

    name: str
    server: EmbeddedServer
    restart: Callable[[], EmbeddedServer]
    restarts: Restarts = field(default_factory=Restarts)


def _supervised_servers(
    servers: Sequence[EmbeddedServer], data_dir: Path
) -> list[SupervisedServer]:
    """How to restart each embedded server: Redis on the same port, PostgreSQL on its
    socket, so the children's URLs stay right."""
    from shared.core.embedded import (
        EmbeddedRedis,
        start_embedded_postgres,
        start_embedded_redis,
    )

    supervised = []
    for server in servers:
        if isinstance(server, EmbeddedRedis):
            restart = functools.partial(start_embedded_redis, data_dir, port=server.port)
            supervised.append(SupervisedServer("Redis", server, restart))
        else:
            supervised.append(
                SupervisedServer("PostgreSQL", server, lambda: start_embedded_postgres(data_dir))
            )
    return supervised


def _heal_child(child: Child, env: dict[str, str]) -> None:
    """Schedule the restart of a child that died; restart it when that time has come."""
    if child.restarts.due_at is None:
        code = child.process.poll()
        if code is None:
            return
        _kill_group(child.process)
        delay = child.restarts.schedule()
        _say(
            f"{child.command} exited with code {code}; restarting it in {delay:.1f} s",
            stderr=True,
        )
    if child.restarts.due():
        child.process = _spawn(child.command, env)
        child.restarts.started()
        _say(f"{child.command} running again (pid {child.process.pid})")


def _heal_server(supervised: SupervisedServer) -> None:
    """The same for an embedded server (a failed start is retried with the same backoff)."""
    if supervised.restarts.due_at is None:
        if supervised.server.is_running():
            return
        # Reaps the process and drops the handles a later start would trip over.
        with contextlib.suppress(Exception):
            supervised.server.stop(0.5)
        delay = supervised.restarts.schedule()
        _say(
            f"embedded {supervised.name} (pid {supervised.server.pid}) died; "
            f"restarting it in {delay:.1f} s",
            stderr=True,
        )
    if supervised.restarts.due():
        try:
            supervised.server = supervised.restart()
        except Exception as exc:
            delay = supervised.restarts.schedule()
            _say(
                f"embedded {supervised.name} did not start ({exc}); retrying in {delay:.1f} s",
                stderr=True,
            )
            return
        supervised.restarts.started()
        _say(
            f"embedded {supervised.name} running again at {supervised.server.url} "
            f"(pid {supervised.server.pid})"
        )


def _api_ready(base_url: str) -> bool:
    """Whether the API answers ``/readyz`` with its readiness document. The document is
    checked too: until our API has bound its port, another process may hold it and answer."""
    import httpx

    try:
        response = httpx.get(f"{base_url}/readyz", timeout=1.0)
        return response.status_code == httpx.codes.OK and response.json()["status"] == "ready"
    except (httpx.HTTPError, ValueError, TypeError, KeyError):
        return False


def _supervise(
    children: Sequence[Child],
    servers: Sequence[SupervisedServer],
    stop: StopSignal,
    *,
    env: dict[str, str],
    on_ready: Callable[[bool], None],
    base_url: str,
) -> int:
    """Keep children and embedded servers alive until a stop signal; returns 0.

    ``on_ready(ready)`` is called once: when the API first answers /readyz (True), or
    after READY_WAIT_SECONDS without that (False).
    """
    announced = False
    give_up_waiting = time.monotonic() + READY_WAIT_SECONDS
    while not stop.requested:
        for supervised in servers:
            _heal_server(supervised)
        for child in children:
            _heal_child(child, env)
        if not announced:
            ready = _api_ready(base_url)
            if ready or time.monotonic() > give_up_waiting:
                announced = True
                on_ready(ready)
        time.sleep(0.2)
    return 0


def _public_host(host: str) -> str:
    """A host to put in a URL for the user: wildcard binds are reachable on loopback."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _print_started(
    base_url: str, *, ready: bool, generated_key: str | None, settings: Settings
) -> None:
    """The block a person looks for: URLs and the admin key, after the start-up logs."""
    if generated_key is not None:
        key_line = f"generated admin API key (shown only now, keep it): {generated_key}"
    elif _bootstrap_key(settings) is not None:
        key_line = "admin API key: the value of PLUMBLINE_BOOTSTRAP_ADMIN_KEY"
    else:
        key_line = "admin API key: created on an earlier run (new one: plumbline api-key create)"
    rule = "=" * 72
    lines = [
        rule,
        "Plumbline is running" if ready else "Plumbline started; the API is not ready yet",
        f"  API:   {base_url}",
        f"  docs:  {base_url}/docs",
        f"  console: {base_url}/console/ (first account: plumbline user create --email ... "
        "--role admin)",
        f"  {key_line}",
        "  stop:  Ctrl-C",
        rule,
    ]
    for line in lines:
        _say(line)


def run_all() -> int:
    """``plumbline run``: everything on one machine, until SIGINT or SIGTERM."""
    stop = StopSignal()
    servers: list[EmbeddedServer] = []
    children: list[Child] = []
    code = 0
    try:
        settings = get_settings()
        # Our own lines (migrations included) in the same format as the children's.
        _configure_logging(settings, "run")
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
            child = Child(command=command, process=_spawn(command, env))
            children.append(child)
            _say(f"started {command} (pid {child.process.pid})")

        base = f"http://{_public_host(resolved.api_host)}:{resolved.api_port}"
        supervised = _supervised_servers(servers, _data_dir(resolved))
        try:
            code = _supervise(
                children,
                supervised,
                stop,
                env=env,
                base_url=base,
                on_ready=lambda ready: _print_started(
                    base, ready=ready, generated_key=generated, settings=resolved
                ),
            )
        finally:
            # Stop the servers running now (a restarted one replaced the one started first).
            servers[:] = [entry.server for entry in supervised]
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


def api_server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options every API server takes from the settings (``plumbline api`` and the
    tests' live servers alike)."""
    return {
        # Forwarded headers are believed only from the load balancers named in the settings.
        "proxy_headers": bool(settings.api_forwarded_allow_ips),
        "forwarded_allow_ips": settings.api_forwarded_allow_ips or None,
        # The app sets up JSON logging; uvicorn's own config would add plain-text lines.
        "log_config": None,
        "access_log": False,
        "server_header": False,
    }


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
            timeout_graceful_shutdown=API_GRACEFUL_SHUTDOWN_SECONDS,
            **api_server_options(settings),
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


async def _create_user(settings: Settings, body: UserCreate) -> tuple[str, str | None]:
    """Create a person as ``POST /v1/users`` does: (their id, the one-time link or None)."""
    from services.audit_api.users.router import password_link_url
    from shared.core.db import create_sessionmaker, engine_from_settings, unit_of_work
    from shared.users.service import create_user

    engine = engine_from_settings(settings)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            user, token = await create_user(
                session,
                email=body.email,
                role=body.role,
                reviewer_id=body.reviewer_id,
                markets=body.markets,
                language=body.language,
                password=body.password.get_secret_value() if body.password is not None else None,
                password_link_ttl=timedelta(hours=settings.password_link_ttl_hours),
            )
        return str(user.id), password_link_url(settings, token) if token is not None else None
    finally:
        await engine.dispose()


def _read_password(stream: TextIO) -> str:
    """The password piped to ``--password-stdin``: its first line, without the line end."""
    return stream.readline().removesuffix("\n").removesuffix("\r")


def run_user_create(args: argparse.Namespace) -> int:
    """``plumbline user create``: a console account. Prints the one-time link that sets the
    password (only the link goes to stdout), or, with ``--password-stdin``, sets the password
    read from stdin (never from the command line, where other users and shell history see
    it)."""
    from shared.core.errors import DomainError
    from shared.schemas.users import UserCreate

    fields: dict[str, object] = {
        "email": args.email,
        "role": args.role,
        "reviewer_id": args.reviewer_id,
        "markets": args.market or None,
        "language": args.language,
    }
    if args.password_stdin:
        fields["password"] = _read_password(sys.stdin)
    try:
        body = UserCreate.model_validate(fields)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"]) or "person"
            _say(
                f"refused: {where}: {str(error['msg']).removeprefix('Value error, ')}", stderr=True
            )
        return 2
    with _resolved_settings(redis=False) as settings:
        try:
            user_id, link = asyncio.run(_create_user(settings, body))
        except DomainError as exc:
            _say(f"refused: {exc.detail or exc.title}", stderr=True)
            return 1
    if link is None:
        _say(
            f"created {body.role} {body.email} ({user_id}) with the password read from stdin",
            stderr=True,
        )
        return 0
    _say(
        f"created {body.role} {body.email} ({user_id}); send them this one-time link to set"
        " their password (shown only now)",
        stderr=True,
    )
    print(link)
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
    """``plumbline seed-demo``: a demo week of decisions and QA work, through the HTTP API.

    The API's address comes from the settings ``plumbline run`` uses (PLUMBLINE_API_HOST,
    PLUMBLINE_API_PORT) unless ``--api-url`` is given. Any failure is one line on stderr and
    exit code 1.
    """
    from services.seed_demo import SeedError, SeedOptions, seed_demo

    settings = get_settings()
    admin_key = args.admin_key or _bootstrap_key(settings)
    if not admin_key:
        _say("seed-demo needs --admin-key or PLUMBLINE_BOOTSTRAP_ADMIN_KEY", stderr=True)
        return 2
    api_url = args.api_url or f"http://{_public_host(settings.api_host)}:{settings.api_port}"
    options = SeedOptions(
        api_url=api_url,
        admin_key=admin_key,
        days=args.days,
        moderators=args.moderators,
        seed=args.seed,
        source_name=args.source,
        decisions_only=args.decisions_only,
    )
    try:
        summary = seed_demo(options, progress=_say)
    except SeedError as exc:
        _say(f"seed-demo failed: {exc}", stderr=True)
        return 1
    _say(
        f"seeded {summary.sent} decisions ({summary.accepted} new, "
        f"{summary.duplicates} already there) from source {summary.source_name!r}"
    )
    if not args.decisions_only:
        _say(
            f"{summary.reviewers} reviewer profiles, {summary.plans_created} new sampling plans, "
            f"{summary.days_sampled} days sampled, {summary.audits_judged} audits judged "
            f"({summary.judged_incorrect} incorrect), {summary.disputes_ruled} disputes ruled"
        )
    return 0


async def rebuild_rollups(
    settings: Settings, *, day_from: date | None, day_to: date | None
) -> tuple[int, int]:
    """Rebuild the analytics rollups; returns (days rebuilt or 0 for all, rows written).

    A range bounded at both ends commits day by day (short transactions, progress on
    stdout); an open end is rebuilt in one transaction up to the first or last day there is.
    """
    from shared.analytics.rollups import rebuild_quality_rollups
    from shared.core.db import create_sessionmaker, engine_from_settings, unit_of_work

    engine = engine_from_settings(settings)
    sessionmaker = create_sessionmaker(engine)
    try:
        if day_from is None or day_to is None:
            async with unit_of_work(sessionmaker) as session:
                return 0, await rebuild_quality_rollups(session, day_from=day_from, day_to=day_to)
        written = 0
        day = day_from
        while day <= day_to:
            started = time.monotonic()
            async with unit_of_work(sessionmaker) as session:
                rows = await rebuild_quality_rollups(session, day_from=day, day_to=day)
            written += rows
            _say(f"rebuilt {day.isoformat()}: {rows} rows in {time.monotonic() - started:.2f} s")
            day += timedelta(days=1)
        return (day_to - day_from).days + 1, written
    finally:
        await engine.dispose()


def run_rollups_rebuild(args: argparse.Namespace) -> int:
    """``plumbline rollups rebuild [--from DAY] [--to DAY]``: recompute the analytics rollups
    from the raw tables (market-local days, inclusive); without both bounds, the open ends
    reach the first and last day there is."""
    if args.day_from is not None and args.day_to is not None and args.day_from > args.day_to:
        _say("--from must not be after --to", stderr=True)
        return 2
    with _resolved_settings(redis=False) as settings:
        started = time.monotonic()
        days, written = asyncio.run(
            rebuild_rollups(settings, day_from=args.day_from, day_to=args.day_to)
        )
    scope = f"{days} days" if days else "every day"
    _say(f"rollups rebuilt for {scope}: {written} rows in {time.monotonic() - started:.1f} s")
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

    user = commands.add_parser("user", help="manage console accounts (people)")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    create_user = user_commands.add_parser(
        "create",
        help="create a person who signs in to the console; prints their one-time link",
        description="Create a person who signs in to the console. Prints the one-time link"
        " with which they set their password, unless --password-stdin reads it from stdin.",
    )
    create_user.set_defaults(handler=run_user_create)
    create_user.add_argument("--email", required=True)
    create_user.add_argument("--role", required=True, choices=ROLES)
    create_user.add_argument(
        "--reviewer-id", default=None, help="required for moderators and QA auditors"
    )
    create_user.add_argument(
        "--market", action="append", default=[], help="repeat for several; none: every market"
    )
    create_user.add_argument("--language", default="en", choices=("en", "de"))
    create_user.add_argument(
        "--password-stdin",
        action="store_true",
        help="set the password read from stdin (first line) instead of printing a link",
    )

    seed = add("seed-demo", run_seed_demo, "a demo week of decisions and QA work, via the API")
    seed.add_argument(
        "--api-url", default=None, help="default: from PLUMBLINE_API_HOST and PLUMBLINE_API_PORT"
    )
    seed.add_argument("--admin-key", default=None, help="default: $PLUMBLINE_BOOTSTRAP_ADMIN_KEY")
    seed.add_argument("--days", type=int, default=7)
    seed.add_argument("--moderators", type=int, default=50)
    seed.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    seed.add_argument("--source", default="demo-platform", help="source name to use")
    seed.add_argument(
        "--decisions-only", action="store_true", help="only the decisions, no QA work"
    )

    rollups = commands.add_parser("rollups", help="maintain the analytics rollups")
    rollup_commands = rollups.add_subparsers(
        dest="rollups_command", required=True, metavar="COMMAND"
    )
    rebuild = rollup_commands.add_parser(
        "rebuild", help="recompute the analytics rollups from the raw tables"
    )
    rebuild.set_defaults(handler=run_rollups_rebuild)
    rebuild.add_argument(
        "--from",
        dest="day_from",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="first day",
    )
    rebuild.add_argument(
        "--to",
        dest="day_to",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="last day",
    )

    revision = add("revision", run_revision, "autogenerate a migration (developers)")
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--rev-id", default=None, help="default: the next 000N number")
    return parser


# The commands that run until stopped. Once one has stopped cleanly (children, servers,
# pools and logs closed) nothing is left to tidy, yet the interpreter's teardown of all they
# import takes about a second of CPU, many seconds on a busy machine: time that counts
# against `plumbline run`'s 10 s to stop, after which it kills what is left.
SERVICE_COMMANDS = frozenset({"run", *CHILD_COMMANDS})


def _exit_without_teardown(code: int) -> NoReturn:
    """Flush the logs and standard streams, then end the process at once with ``code``."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``plumbline`` console script; returns the exit code (a service
    command that stopped ends the process instead, see ``SERVICE_COMMANDS``)."""
    args = build_parser().parse_args(argv)
    code = _run_command(args)
    if args.command in SERVICE_COMMANDS:
        _exit_without_teardown(code)
    return code


def _run_command(args: argparse.Namespace) -> int:
    if args.command != "run":
        # `run` installs its own handlers: it has children and servers to stop in order.
        _raise_on_signals()
    try:
        if args.command != "run":
            _stop_with_supervisor()
        code: int = args.handler(args)
    except (_Interrupted, KeyboardInterrupt):
        return 0  # a signal is how services are stopped; that is a clean exit
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        # Refused settings (a short bootstrap admin key, say): say which, not a traceback.
        for problem in settings_problems(exc):
            _say(f"refusing to start: {problem}", stderr=True)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
