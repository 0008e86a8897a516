"""A service command that has stopped ends its process at once: the interpreter's teardown
(about a second of CPU for what the services import, many seconds on a busy machine) would
count against ``plumbline run``'s 10 s to stop. Found by the fault suite
(tests/faults/test_run_sigterm.py: still running 10 s after SIGTERM under load, every child
killed after its grace). Other commands return their code as before."""

from __future__ import annotations

import os

import pytest

from services import cli


class _Exited(Exception):
    """Stands in for the end of the process."""


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The codes ``os._exit`` was called with (raising instead of ending the test run)."""
    codes: list[int] = []

    def record(code: int) -> None:
        codes.append(code)
        raise _Exited

    monkeypatch.setattr(os, "_exit", record)
    return codes


@pytest.mark.parametrize("command", ["relay", "report-worker", "notifier", "api", "run"])
def test_a_stopped_service_ends_its_process_at_once(
    command: str, exits: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service ran and stopped cleanly (by a signal, say).
    monkeypatch.setattr(cli, "run_relay", lambda: 0)
    monkeypatch.setattr(cli, "run_worker", lambda module, service: 0)
    monkeypatch.setattr(cli, "run_api", lambda: 0)
    monkeypatch.setattr(cli, "run_all", lambda: 0)
    with pytest.raises(_Exited):
        cli.main([command])
    assert exits == [0]


def test_a_failed_start_ends_with_its_code(
    exits: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "run_all", lambda: 1)
    with pytest.raises(_Exited):
        cli.main(["run"])
    assert exits == [1]


def test_other_commands_return_their_code(exits: list[int]) -> None:
    assert cli.main(["rollups", "rebuild", "--from", "2026-11-11", "--to", "2026-11-10"]) == 2
    assert exits == []
