"""The event loop every long-running Plumbline process runs on."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new uvloop event loop, as ``asyncio.run`` would.

    The workers and the relay spend most of their CPU in the event loop and its socket
    calls (arq's Redis commands, asyncpg, httpx): libuv's loop costs a fraction of asyncio's
    own per callback and per write. The API gets the same loop from uvicorn.
    """
    return uvloop.run(main)
