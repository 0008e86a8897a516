"""Keeping a message inside its target's limits: shorten text, never fail a message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

ELLIPSIS = "…"


def shorten(text: str, limit: int, *, suffix: str = "") -> str:
    """``text`` if it fits in ``limit`` characters; else its start, an ellipsis and
    ``suffix`` (a "see the full message" link), ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    room = max(limit - len(suffix) - len(ELLIPSIS), 0)
    return (text[:room].rstrip() + ELLIPSIS + suffix)[:limit]


def fit_json(build: Callable[[int | None], dict[str, Any]], *, max_bytes: int) -> bytes:
    """The JSON of ``build(text_limit)`` with the largest text limit that fits ``max_bytes``.

    ``build(None)`` is the message uncut; a smaller limit must give a smaller message. Tries
    the whole message first, then cuts the text by what is over (bytes are at least
    characters, so each cut is enough or close), and at worst gives an empty text.
    """
    body = orjson.dumps(build(None))
    limit: int | None = None
    while len(body) > max_bytes:
        current = limit if limit is not None else _text_length(build)
        if current <= 0:
            break
        limit = max(current - (len(body) - max_bytes) - 16, 0)
        body = orjson.dumps(build(limit))
    return body


def _text_length(build: Callable[[int | None], dict[str, Any]]) -> int:
    # The uncut text is never longer than the whole message.
    return len(orjson.dumps(build(None)))
