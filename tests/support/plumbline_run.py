"""``plumbline run`` as a subprocess: its environment, starting, waiting, stopping cleanly.

With PLUMBLINE_TEST_DATABASE_URL set, each run gets a fresh database of its own on that
server; otherwise an embedded PostgreSQL. Redis is always an embedded one of the run's own.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from shared.core.settings import to_asyncpg_url

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
ADMIN_KEY = "plk_cli_test_admin_key_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pid_gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its (new) parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def live_members_of_group(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (read from /proc, no psutil)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


async def _admin_sql(server_url: str, *statements: str) -> None:
    connection = await asyncpg.connect(
        to_asyncpg_url(server_url).replace("postgresql+asyncpg://", "postgresql://", 1)
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def run_environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for `plumbline run`: a fresh database of its own on the given server (or
    an embedded PostgreSQL), and always an embedded Redis of its own.

    Nothing is shared with another run, test session or engineer on the same servers: a
    fixed database name was dropped under a run by another's cleanup, and a shared Redis
    database would let one run's workers take another's jobs.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PLUMBLINE_") or key.startswith("PLUMBLINE_TEST_")
    }
    env["PLUMBLINE_DATA_DIR"] = str(tmp_path / "data")
    env["PLUMBLINE_LOG_LEVEL"] = "WARNING"
    database = os.environ.get("PLUMBLINE_TEST_DATABASE_URL")
    name = f"plumbline_cli_{uuid.uuid4().hex[:10]}"
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    if database:
        asyncio.run(_admin_sql(database, f'CREATE DATABASE "{name}"'))
        env["PLUMBLINE_DATABASE_URL"] = to_asyncpg_url(_with_path(database, f"/{name}"))
    try:
        yield env
    finally:
        if database:
            asyncio.run(_admin_sql(database, drop))


@dataclass
class Run:
    """A `plumbline run` subprocess and where its output goes."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path
    base_url: str

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def diagnostics(self) -> str:
        return f"stdout:\n{self.output()}\nstderr:\n{self.err.read_text(errors='replace')[-3000:]}"

    def pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"\(pid (\d+)", self.output())]

    def child_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"started \S+ \(pid (\d+)", self.output())]


def start_run(env: dict[str, str], tmp_path: Path, name: str, *, merged: bool = False) -> Run:
    """Start ``plumbline run``; with ``merged`` its stderr goes to the stdout file too."""
    port = free_port()
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    err.touch()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run"],
            cwd=REPO_ROOT,
            env={**env, "PLUMBLINE_API_PORT": str(port)},
            stdout=stdout,
            stderr=subprocess.STDOUT if merged else stderr,
            stdin=subprocess.DEVNULL,
        )
    return Run(process=process, out=out, err=err, base_url=f"http://127.0.0.1:{port}")


def wait_ready(run: Run, timeout: float = 180.0) -> None:
    # A bound, not a speed check: under a loaded CI machine (load 28 on 2 cores) starting the
    # embedded PostgreSQL and the children took over 60 s.
    deadline = time.monotonic() + timeout
    status: dict[str, int] = {}
    with httpx.Client(base_url=run.base_url, timeout=1.0) as client:
        for path in ("/healthz", "/readyz"):
            while True:
                assert run.process.poll() is None, f"run exited early\n{run.diagnostics()}"
                try:
                    status[path] = client.get(path).status_code
                except httpx.TransportError:
                    status[path] = 0
                if status[path] == 200:
                    break
                assert time.monotonic() < deadline, f"{status}\n{run.diagnostics()}"
                time.sleep(0.1)


def stop_and_check(run: Run) -> None:
    """SIGTERM: exit 0 within 10 s, and nothing it started is left running."""
    pids = run.pids()
    children = run.child_pids()
    assert len(children) == 4, run.diagnostics()
    started = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    try:
        code = run.process.wait(10)
    except subprocess.TimeoutExpired:
        run.process.kill()
        pytest.fail(f"still running 10 s after SIGTERM\n{run.diagnostics()}")
    assert code == 0, run.diagnostics()
    assert time.monotonic() - started < 10
    left = [pid for pid in pids if not pid_gone(pid)]
    # Every child and embedded server leads its own process group: nothing may remain there.
    left += [member for pid in pids for member in live_members_of_group(pid)]
    assert not left, f"left running: {left}\n{run.diagnostics()}"


def wait_for_output(run: Run, pattern: str, timeout: float = 30.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        match = re.search(pattern, run.output())
        if match:
            return match
        assert run.process.poll() is None, f"run exited early\n{run.diagnostics()}"
        assert time.monotonic() < deadline, f"no {pattern!r} in time\n{run.diagnostics()}"
        time.sleep(0.1)


def kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not pid_gone(pid):
        assert time.monotonic() < deadline, f"{pid} survived SIGKILL"
        time.sleep(0.05)
