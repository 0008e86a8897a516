"""Structured JSON logs and the request id that follows a request into the jobs it causes."""

from __future__ import annotations

import logging
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

# HTTP client loggers that would log credentials (see ``configure_logging``).
QUIET_HTTP_LOGGERS = ("httpx", "httpcore")
REDACTED = "[redacted]"

request_id_var: ContextVar[str | None] = ContextVar("plumbline_request_id", default=None)

# Attributes every LogRecord has; anything else passed via ``extra=`` is logged as a field.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The request id and the ``extra=`` fields of ``record``."""
    fields: dict[str, Any] = {}
    request_id = request_id_var.get()
    if request_id is not None:
        fields["request_id"] = request_id
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """One line for a person: local time, level, service, message, then ``key=value`` fields.

    ``10:07:20 WARNING  relay  Redis unreachable; retrying until it is back error=...``
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{when} {record.levelname:<7} {self.service:<13} {record.getMessage()}"
        fields = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        if fields:
            line = f"{line}  {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(*, service: str, level: str = "INFO", json: bool | None = None) -> None:
    """Route every logger (ours, uvicorn's, arq's) to stderr.

    JSON lines with ``json``, human-readable lines without; None decides by stderr: a
    terminal gets readable lines, anything else (a file, a collector) JSON.
    """
    if json is None:
        json = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "arq", "arq.worker", "arq.jobs"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Access logs per request would dominate the output; /metrics counts requests instead.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request's full URL at INFO (httpcore each step at DEBUG), and for
    # Slack, Teams and Lark channels the URL is the credential: only their warnings pass.
    for name in QUIET_HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``[redacted]``:
    for messages that may quote a credential (an HTTP client's error naming its URL)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
