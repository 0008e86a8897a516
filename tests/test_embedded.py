"""Embedded PostgreSQL and Redis: start, serve, keep data across a restart, stop."""

from __future__ import annotations

import socket
from pathlib import Path

import asyncpg
import pytest

from shared.core.embedded import (
    _pid_alive,
    _redis_command,
    start_embedded_postgres,
    start_embedded_redis,
)


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_postgres_keeps_data_across_restart_and_stops(tmp_path: Path) -> None:
    first = start_embedded_postgres(tmp_path)
    try:
        assert first.started
        assert first.url.startswith("postgresql+asyncpg://postgres@/postgres?host=")
        connection = await asyncpg.connect(_plain(first.url))
        try:
            # Room for every process's pool with two API workers (5 x 30), not the default 100.
            assert await connection.fetchval("SHOW max_connections") == "300"
            await connection.execute("CREATE TABLE kept (value text)")
            await connection.execute("INSERT INTO kept VALUES ('survives')")
        finally:
            await connection.close()
    finally:
        first.stop()
    assert not first.is_running()
    assert not _pid_alive(first.pid)

    second = start_embedded_postgres(tmp_path)
    try:
        assert second.started
        assert second.pid != first.pid
        connection = await asyncpg.connect(_plain(second.url))
        try:
            assert await connection.fetchval("SELECT value FROM kept") == "survives"
        finally:
            await connection.close()
    finally:
        second.stop()
    assert not _pid_alive(second.pid)


def test_postgres_already_running_is_found_not_restarted(tmp_path: Path) -> None:
    owner = start_embedded_postgres(tmp_path)
    try:
        guest = start_embedded_postgres(tmp_path)
        assert not guest.started
        assert guest.pid == owner.pid
        assert guest.url == owner.url
    finally:
        owner.stop()
    assert not owner.is_running()


def test_redis_keeps_data_across_restart_and_stops(tmp_path: Path) -> None:
    first = start_embedded_redis(tmp_path)
    try:
        assert first.started
        assert first.url == f"redis://127.0.0.1:{first.port}/0"
        assert (tmp_path / "redis").is_dir()
        assert _redis_command(first.port, "SET", "kept", "survives") == b"+OK\r\n"
    finally:
        first.stop()
    assert not first.is_running()
    assert not _pid_alive(first.pid)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", first.port), 0.5),
    ):
        pass

    second = start_embedded_redis(tmp_path)
    try:
        assert second.started
        # The port of last time is reused when free, so the URL stays the same.
        assert second.port == first.port
        assert _redis_command(second.port, "GET", "kept") == b"$8\r\nsurvives\r\n"
    finally:
        second.stop()
    assert not _pid_alive(second.pid)


def test_redis_already_running_is_found_not_restarted(tmp_path: Path) -> None:
    owner = start_embedded_redis(tmp_path)
    try:
        guest = start_embedded_redis(tmp_path)
        assert not guest.started
        assert (guest.pid, guest.url) == (owner.pid, owner.url)
    finally:
        owner.stop()
    assert not owner.is_running()


def test_redis_stale_state_file_is_ignored(tmp_path: Path) -> None:
    crashed = start_embedded_redis(tmp_path)
    assert crashed._process is not None
    crashed._process.kill()  # a crash: the state file still names the dead process
    crashed._process.wait()
    restarted = start_embedded_redis(tmp_path)
    try:
        assert restarted.started
        assert restarted.pid != crashed.pid
    finally:
        restarted.stop()
