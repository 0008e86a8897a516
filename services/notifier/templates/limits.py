"""Keeping a message inside its target's limits: shorten text, never fail a message."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from services.notifier.templates.parts import DigestLine, MessageParts

ELLIPSIS = "…"
# The link after a cut Markdown text when the parts bring no "more" of their own.
MARKDOWN_MORE = {"en": "Read more in Plumbline", "de": "Mehr in Plumbline"}
MAX_DIGEST_LINE_CHARS = 1000


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


def fit_lines(
    head: str,
    lines: Sequence[str],
    limit: int,
    *,
    more: Callable[[int], str],
    hidden: int = 0,
) -> str:
    """``head``, then as many of ``lines`` as fit, one a line, in ``limit`` characters; the
    last line ``more(K)`` ("and K more") when K lines (with the ``hidden`` ones never given)
    are left out. Never longer than ``limit``, whatever the number of lines."""
    total = len(lines) + hidden
    if total == 0:
        return shorten(head, limit)
    head = shorten(head, max(limit - len(more(total)) - 1, 0))
    used = len(head)
    kept: list[str] = []
    for index, line in enumerate(lines):
        left_after = total - index - 1
        # Room for this line and, should anything remain, the "and K more" after it.
        reserve = len(more(left_after)) + 1 if left_after else 0
        if used + 1 + len(line) + reserve > limit:
            break
        kept.append(line)
        used += 1 + len(line)
    text = "\n".join([head, *kept]) if head else "\n".join(kept)
    omitted = total - len(kept)
    if omitted:
        text = f"{text}\n{more(omitted)}" if text else more(omitted)
    return text[:limit]


def markdown_text(parts: MessageParts, limit: int | None) -> str:
    """The text of a Markdown kind (Teams, Lark) in ``limit`` characters (None: uncut): cut
    with a link to the rest; a digest's lines after it as links, as many as fit, then "and
    K more"."""
    if parts.lines or parts.hidden_lines:
        return fit_lines(
            parts.text,
            [_markdown_line(line) for line in parts.lines],
            sys.maxsize if limit is None else limit,
            more=parts.and_more_text,
            hidden=parts.hidden_lines,
        )
    if limit is None:
        return parts.text
    more = ""
    if parts.link is not None:
        label = parts.more_label or MARKDOWN_MORE.get(parts.language, MARKDOWN_MORE["en"])
        more = f" [{label}]({parts.link.url})"
    return shorten(parts.text, limit, suffix=more)


def _markdown_line(line: DigestLine) -> str:
    # Brackets would end the link text early.
    title = line.title.replace("[", "(").replace("]", ")")
    shown = f"[{title}]({line.url})" if line.url else f"**{title}**"
    return shorten(f"- {shown}: {line.summary}", MAX_DIGEST_LINE_CHARS)
