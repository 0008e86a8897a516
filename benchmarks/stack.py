"""``plumbline run`` as the benchmarks start it, and what its processes use.

A benchmark that measures the stack a user gets starts ``plumbline run`` exactly as ``make run``
does: a fresh data directory, its embedded PostgreSQL and Redis, every setting at its default
but the API port (and whatever the benchmark must add, such as a plain-HTTP target host).
``PlumblineRun`` starts it, reads its start-up block (the children's pids, the embedded servers'
pids, the admin key it generated) and stops it as Ctrl-C would; ``process_use`` and
``snapshot`` read each process's memory and CPU; ``machine_busy`` says how busy all the cores
were in between.

Used by ``benchmarks.mixed`` and ``benchmarks.run`` (which adds its CPU split and log
reading in a subclass).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

REPO_ROOT = Path(__file__).resolve().parent.parent
# Start-up (migrations, every child's imports) takes seconds on a quiet machine and minutes
# on a busy one.
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0
MIB = 1024 * 1024
# The processes ``plumbline run`` starts, by the names its start-up block gives them.
STACK_PROCESSES = ("api", "relay", "report-worker", "notifier", "postgres", "redis")


class StackError(RuntimeError):
    """``plumbline run`` did not start, or said something unexpected at start-up."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def default_environment(
    workdir: Path, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The caller's environment without any ``PLUMBLINE_*`` setting (``make run``'s
    defaults), plus the data directory, the port and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUMBLINE_")}
    env.update({"PLUMBLINE_DATA_DIR": str(workdir / "data"), "PLUMBLINE_API_PORT": str(port)})
    env.update(extra or {})
    return env


_STARTED = re.compile(r"started (\S+) \(pid (\d+)\)")
_POSTGRES = re.compile(r"embedded PostgreSQL in .* \(pid (\d+)\)")
_REDIS = re.compile(r"embedded Redis at \S+ in .* \(pid (\d+)\)")
# It prints its block once the API is ready, or after 90 s anyway ("not ready yet": a loaded
# machine), so the block is awaited in either form and then /readyz.
_STARTED_BLOCK = re.compile(r"Plumbline is running|Plumbline started; the API is not ready")
_ADMIN_KEY = re.compile(r"generated admin API key \(shown only now, keep it\): (\S+)")
_TROUBLE = re.compile(r"exited with code|died; restarting|did not start|start-up failed")


class PlumblineRun:
    """``plumbline run`` as a subprocess in ``workdir``, and what its start-up block says."""

    def __init__(
        self, workdir: Path, *, port: int | None = None, extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = default_environment(workdir, self.port, extra_env)
        self.out = workdir / "plumbline-run.out"
        self.err = workdir / "plumbline-run.err"
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: dict[str, int] = {}
        self.admin_key = ""
        self.exit_code: int | None = None
        self.stop_seconds: float | None = None

    def output(self) -> str:
        """What ``plumbline run`` printed (stdout and stderr: the children log to stderr)."""
        text = self.out.read_text(errors="replace") if self.out.exists() else ""
        return text + (self.err.read_text(errors="replace") if self.err.exists() else "")

    def start(self) -> None:
        """Start it and wait for the block that says it runs; read the pids and the key."""
        with self.out.open("wb") as stdout, self.err.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "run"],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                process_group=0,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            text = self.out.read_text(errors="replace")
            if _STARTED_BLOCK.search(text):
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"plumbline run did not start:\n{self.output()[-3000:]}")
            time.sleep(0.2)
        key = _ADMIN_KEY.search(text)
        postgres, redis = _POSTGRES.search(text), _REDIS.search(text)
        if key is None or postgres is None or redis is None:
            raise StackError(f"unexpected start-up output:\n{text[-3000:]}")
        self.admin_key = key.group(1)
        self.pids = {name: int(pid) for name, pid in _STARTED.findall(text)}
        self.pids["postgres"] = int(postgres.group(1))
        self.pids["redis"] = int(redis.group(1))
        self._wait_until_ready(deadline)

    def _wait_until_ready(self, deadline: float) -> None:
        """Until ``GET /readyz`` answers 200 (database, Redis and migrations fine)."""
        assert self.process is not None
        with httpx.Client(base_url=self.base_url, timeout=5) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200:
                        return
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise StackError(f"the API did not get ready:\n{self.output()[-3000:]}")
                time.sleep(0.5)

    def environment_of(self, name: str) -> dict[str, str]:
        """The environment a child runs with (its database and Redis URLs)."""
        raw = Path(f"/proc/{self.pids[name]}/environ").read_bytes()
        pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
        return {k.decode(): v.decode(errors="replace") for k, _, v in pairs}

    @property
    def database_url(self) -> str:
        """The embedded PostgreSQL's URL, as the API was given it."""
        return self.environment_of("api")["PLUMBLINE_DATABASE_URL"]

    def trouble(self) -> list[str]:
        """Lines saying a child or embedded server died or failed (there should be none)."""
        return [line for line in self.output().splitlines() if _TROUBLE.search(line)]

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C would; SIGKILL whatever is left after the grace period."""
        if self.process is None or self.process.poll() is not None:
            return
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.process.wait(STOP_TIMEOUT_S)
            self.stop_seconds = time.monotonic() - started
        except subprocess.TimeoutExpired:
            # Each child and Redis lead their process groups; PostgreSQL is a daemon of its
            # own, stopped by SIGQUIT (immediate shutdown) rather than left running.
            for name, pid in (("run", self.process.pid), *self.pids.items()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if name == "postgres":
                        os.kill(pid, signal.SIGQUIT)
                    else:
                        os.killpg(pid, signal.SIGKILL)
            self.process.wait()


# ----------------------------------------------------------------- memory and CPU


@dataclass(frozen=True)
class ProcessUse:
    """One process's memory (MiB) and CPU seconds so far."""

    memory_mib: float
    cpu_s: float
    processes: int


def process_use(name: str, pid: int, *, tree: bool = True) -> ProcessUse:
    """RSS (and CPU) of a process and, with ``tree``, its children. For PostgreSQL the sum
    over the postmaster and its backends of their private memory (RSS less shared pages, i.e.
    RssAnon): each backend's RSS also counts the pages of the shared buffers it has touched,
    which grow towards ``shared_buffers`` as the cache warms up, bounded and not a leak."""
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)] if tree else [root]
    except psutil.Error:
        return ProcessUse(0.0, 0.0, 0)
    memory = 0
    cpu = 0.0
    alive = 0
    for member in members:
        try:
            if name == "postgres":
                resident = member.memory_info()
                memory += resident.rss - resident.shared
            else:
                memory += member.memory_info().rss
            times = member.cpu_times()
            cpu += times.user + times.system
            alive += 1
        except psutil.Error:
            continue
    return ProcessUse(memory / MIB, cpu, alive)


def snapshot(
    pids: Mapping[str, int], *, alone: frozenset[str] = frozenset()
) -> dict[str, ProcessUse]:
    """Every named process's use now, with its children but for the names in ``alone``
    (a load generator whose children are the stack it measures)."""
    return {name: process_use(name, pid, tree=name not in alone) for name, pid in pids.items()}


def machine_busy(before: Any, after: Any) -> float:
    """Share of all CPUs not idle between two ``psutil.cpu_times()``."""
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0) - getattr(before, "iowait", 0))
    return 1 - idle / total if total else 0.0
