"""The fault suite's stack: its own embedded PostgreSQL and Redis, and ``plumbline`` parts as
separate processes that a test may kill, stop and start again.

Nothing here touches the shared servers (``PLUMBLINE_TEST_DATABASE_URL`` and friends): a
fault test stops and kills its servers, so they are its own, under the stack's directory.

API (tests/faults and their support modules use only this)::

    stack = FaultStack(tmp_path)              # nothing runs yet
    stack.start_servers()                     # embedded PostgreSQL (unix socket) and Redis
    stack.migrate()                           # `plumbline migrate` (+ the bootstrap admin key)
    api = stack.add("api")                    # a Part, started; its own port
    stack.add("relay"); stack.add("report-worker"); stack.add("notifier")
    stack.add("api", name="api-2")            # any number of each; names must be unique
    stack.wait_ready()                        # every API answers /readyz 200

    part.kill()          # kill -9 of its whole process group (uvicorn workers too)
    part.terminate()     # SIGTERM, waits (SIGKILL after the timeout); returns the exit code
    part.start()         # start again (same name, same port, log appended)
    part.restart()       # kill -9 then start
    part.logs()          # everything it wrote (stdout and stderr), all its lives
    part.alive(), part.pid, part.url (APIs only)

    stack.stop_redis(clean=True|False)   # SIGTERM (append-only file flushed) or SIGKILL
    stack.start_redis()                  # again, on the same port (the parts keep its URL)
    stack.stop_postgres(clean=True|False)  # fast shutdown, or SIGKILL of the postmaster
    stack.start_postgres()               # again, on the same socket
    await stack.fetch(sql, *args)        # rows, on a short connection of its own
    await stack.fetchval(sql, *args)
    stack.api_urls                       # base URLs of the running APIs, in order added
    stack.close()                        # SIGKILL every part, stop both servers

    # `plumbline run` as a whole (instead of start_servers/migrate/add):
    run = stack.start_plumbline_run()    # tests.support.plumbline_run.Run; ready, servers
                                         # attached, so fetch() and stop_redis() work; may
                                         # be called again once that run has stopped

Every part gets ``PLUMBLINE_BOOTSTRAP_ADMIN_KEY`` (``stack.admin_key``), one encryption
key, ``PLUMBLINE_INSECURE_TARGET_HOSTS=127.0.0.1`` (channels may deliver to a local sink)
and no per-key rate limit (the load is many requests from few keys). ``FaultStack(...,
env={...})`` and ``add(..., env={...})`` add or override variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

from shared.core.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    start_embedded_postgres,
    start_embedded_redis,
)
from tests.support.plumbline_run import (
    REPO_ROOT,
    Run,
    free_port,
    live_members_of_group,
    pid_gone,
    start_run,
    wait_ready,
)

ADMIN_KEY = "plk_fault_suite_admin_key_0123456789abcdef"
PART_COMMANDS = ("api", "relay", "report-worker", "notifier")


def plain_dsn(url: str) -> str:
    """An asyncpg DSN from the settings' ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads and wait until none of it is left."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while live_members_of_group(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process group {pid} survived SIGKILL")
        time.sleep(0.02)


@dataclass
class Part:
    """One ``plumbline <command>`` process; it leads its own process group."""

    command: str
    name: str
    env: dict[str, str]
    log: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        """The API's base URL (APIs only)."""
        assert self.port is not None, f"{self.name} is not an API"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} never started"
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start it (again): same name, port and environment; output appended to its log."""
        assert not self.alive(), f"{self.name} is running"
        with self.log.open("ab") as out:
            out.write(f"\n==== start {self.starts + 1} of {self.name} ====\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", self.command],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        self.starts += 1

    def kill(self) -> None:
        """``kill -9`` of the part and everything in its process group; reaped."""
        if self.process is None:
            return
        _kill_group(self.process.pid)
        self.process.wait()

    def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM; its exit code, or None when it had to be killed after ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        _kill_group(self.process.pid)  # uvicorn workers the leader left behind
        return code

    def restart(self) -> None:
        """``kill -9``, then start again."""
        self.kill()
        self.start()

    def logs(self) -> str:
        """What it wrote, every life of it."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        """An API: until ``/readyz`` answers 200 (fails early when the process exits)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                assert self.alive(), f"{self.name} exited\n{self.logs()[-4000:]}"
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{self.name} not ready\n{self.logs()[-4000:]}"
                time.sleep(0.1)


@dataclass
class FaultStack:
    """Servers and parts of one fault test, all under ``directory``."""

    directory: Path
    env: Mapping[str, str] = field(default_factory=dict)
    admin_key: str = ADMIN_KEY
    parts: list[Part] = field(default_factory=list)
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    run: Run | None = None
    _redis_port: int | None = None
    _base_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "logs").mkdir(exist_ok=True)
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PLUMBLINE_") and key != "PYTEST_CURRENT_TEST"
        }
        self._base_env = {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            "PLUMBLINE_DATA_DIR": str(self.data_dir),
            "PLUMBLINE_BOOTSTRAP_ADMIN_KEY": self.admin_key,
            "PLUMBLINE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PLUMBLINE_INSECURE_TARGET_HOSTS": "127.0.0.1",
            "PLUMBLINE_REQUESTS_PER_KEY": "0",
            "PLUMBLINE_LOG_LEVEL": "INFO",
            "PLUMBLINE_LOG_JSON": "true",
            **self.env,
        }

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    # ------------------------------------------------------------------ servers

    def start_servers(self) -> None:
        """Start the embedded PostgreSQL and Redis of this stack."""
        self.start_postgres()
        self.start_redis()

    def start_postgres(self) -> None:
        """Start PostgreSQL (again): the same unix socket, so the parts' URL holds."""
        assert self.postgres is None or not self.postgres.is_running()
        self.postgres = start_embedded_postgres(self.data_dir)

    def stop_postgres(self, *, clean: bool = True) -> None:
        """A fast shutdown, or (``clean=False``) SIGKILL of the postmaster."""
        assert self.postgres is not None
        if clean:
            self.postgres.stop(10.0)
            return
        os.kill(self.postgres.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not pid_gone(self.postgres.pid):
            assert time.monotonic() < deadline, "PostgreSQL survived SIGKILL"
            time.sleep(0.02)
        # Drops pgserver's handles (the server is dead, so nothing else happens).
        self.postgres.stop(0.5)

    def start_redis(self) -> None:
        """Start Redis (again) on its first port, replaying its append-only file."""
        assert self.redis is None or not self.redis.is_running()
        self.redis = start_embedded_redis(self.data_dir, port=self._redis_port)
        self._redis_port = self.redis.port

    def stop_redis(self, *, clean: bool = True) -> None:
        """SIGTERM (Redis flushes its append-only file), or (``clean=False``) SIGKILL."""
        assert self.redis is not None
        if not clean:
            os.kill(self.redis.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while not pid_gone(self.redis.pid):
                assert time.monotonic() < deadline, "Redis survived SIGKILL"
                time.sleep(0.02)
        self.redis.stop(3.0)

    @property
    def database_url(self) -> str:
        assert self.postgres is not None, "no PostgreSQL started or attached"
        return self.postgres.url

    @property
    def redis_url(self) -> str:
        assert self.redis is not None, "no Redis started or attached"
        return self.redis.url

    def part_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a part: the servers' URLs, the stack's settings, ``extra``."""
        return {
            **self._base_env,
            "PLUMBLINE_DATABASE_URL": self.database_url,
            "PLUMBLINE_REDIS_URL": self.redis_url,
            **(extra or {}),
        }

    def migrate(self) -> None:
        """``plumbline migrate``: the schema at head and the bootstrap admin key."""
        result = subprocess.run(
            [sys.executable, "-m", "services.cli", "migrate"],
            cwd=REPO_ROOT,
            env=self.part_env(),
            capture_output=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")[-4000:]

    # -------------------------------------------------------------------- parts

    def add(
        self,
        command: str,
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> Part:
        """A new ``plumbline <command>`` part (started unless ``start=False``)."""
        assert command in PART_COMMANDS, command
        name = name or command
        assert all(part.name != name for part in self.parts), f"two parts named {name}"
        extra = dict(env or {})
        port = None
        if command == "api":
            port = free_port()
            extra["PLUMBLINE_API_PORT"] = str(port)
            extra.setdefault("PLUMBLINE_LOG_LEVEL", "WARNING")
        part = Part(
            command=command,
            name=name,
            env=self.part_env(extra),
            log=self.directory / "logs" / f"{name}.log",
            port=port,
        )
        self.parts.append(part)
        if start:
            part.start()
        return part

    def part(self, name: str) -> Part:
        """The part called ``name``."""
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(name)

    def of(self, command: str) -> list[Part]:
        """Every part running ``command``, in the order added."""
        return [part for part in self.parts if part.command == command]

    @property
    def api_urls(self) -> list[str]:
        if self.run is not None:
            return [self.run.base_url]
        return [part.url for part in self.of("api")]

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Every API answers ``/readyz`` with 200; every other part still runs."""
        for part in self.parts:
            if part.command == "api":
                part.wait_ready(timeout)
        for part in self.parts:
            assert part.alive(), f"{part.name} exited\n{part.logs()[-4000:]}"

    def start_plumbline_run(self, name: str = "run") -> Run:
        """``plumbline run`` on this stack's data directory (its own embedded servers), ready;
        its servers are then attached, so ``fetch`` and the server faults work on them."""
        # Again after an earlier run stopped (its servers with it): fine; next to running
        # servers of this stack: not.
        for server in (self.postgres, self.redis):
            assert server is None or not server.is_running(), "the stack's servers run"
        env = {
            key: value
            for key, value in self._base_env.items()
            if key not in ("PLUMBLINE_LOG_LEVEL", "PLUMBLINE_LOG_JSON")
        }
        env["PLUMBLINE_LOG_LEVEL"] = "WARNING"
        self.run = start_run(env, self.directory / "logs", name, merged=True)
        wait_ready(self.run, timeout=120)
        # Found running (``started`` False): attached, not owned; the run stops them.
        self.postgres = start_embedded_postgres(self.data_dir)
        self.redis = start_embedded_redis(self.data_dir)
        self._redis_port = self.redis.port
        return self.run

    # ------------------------------------------------------------------ database

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """The rows of ``query``, on a connection of its own (survives server restarts)."""
        connection = await asyncpg.connect(plain_dsn(self.database_url), timeout=10)
        try:
            rows: list[asyncpg.Record] = await connection.fetch(query, *args)
            return rows
        finally:
            await connection.close()

    async def fetchval(self, query: str, *args: Any) -> Any:
        """The first column of the first row of ``query``."""
        rows = await self.fetch(query, *args)
        return rows[0][0] if rows else None

    # ------------------------------------------------------------------- the end

    def close(self) -> None:
        """SIGKILL every part (and a `plumbline run`), then stop both servers."""
        for part in self.parts:
            part.kill()
        if self.run is not None:
            if self.run.process.poll() is None:
                self.run.process.send_signal(signal.SIGTERM)
                try:
                    self.run.process.wait(15)
                except subprocess.TimeoutExpired:
                    self.run.process.kill()
                    self.run.process.wait()
            for pid in self.run.pids():
                if not pid_gone(pid):
                    _kill_group(pid)
        if self.redis is not None and self.redis.is_running():
            self.redis.stop(3.0)
        if self.postgres is not None and self.postgres.is_running():
            self.postgres.stop(10.0)
