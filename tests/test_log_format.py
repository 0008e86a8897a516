"""Log lines: readable on a terminal, JSON for everything else, and a setting forces either."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from shared.core.observability import configure_logging
from shared.core.settings import Settings


class _Stream(io.StringIO):
    def __init__(self, *, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _log_line(monkeypatch: pytest.MonkeyPatch, *, terminal: bool, json: bool | None) -> str:
    stream = _Stream(terminal=terminal)
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(service="relay", level="INFO", json=json)
    logging.getLogger("shared.core.outbox").warning(
        "Redis unreachable; retrying until it is back", extra={"error": "ConnectionError()"}
    )
    return stream.getvalue()


def test_a_terminal_gets_readable_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _log_line(monkeypatch, terminal=True, json=None)
    assert not line.startswith("{")
    assert "WARNING" in line
    assert "relay" in line
    assert "Redis unreachable; retrying until it is back  error=ConnectionError()" in line


def test_anything_else_gets_json(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = orjson.loads(_log_line(monkeypatch, terminal=False, json=None))
    assert entry["level"] == "warning"
    assert entry["service"] == "relay"
    assert entry["error"] == "ConnectionError()"


def test_the_setting_forces_either(monkeypatch: pytest.MonkeyPatch) -> None:
    assert orjson.loads(_log_line(monkeypatch, terminal=True, json=True))["service"] == "relay"
    assert not _log_line(monkeypatch, terminal=False, json=False).startswith("{")
    monkeypatch.setenv("PLUMBLINE_LOG_JSON", "false")
    assert Settings().log_json is False
    monkeypatch.delenv("PLUMBLINE_LOG_JSON")
    assert Settings().log_json is None
