"""Garbage-collector settings for processes that allocate many short-lived objects.

Intake validates up to 1,000 events per request into model objects. With CPython's default
thresholds (700 allocations), those allocations trigger a collection every few events, and
the older generations, full of long-lived objects, get traversed again and again: measured
here, 4.6 ms of collection for 2.7 ms of validation per 1,000-event batch. Reference counting
frees almost all of these objects anyway; the collector only exists for cycles, which are
rare on these paths.
"""

from __future__ import annotations

import gc

# Young-generation threshold: a collection per 50,000 net allocations instead of 700.
YOUNG_THRESHOLD = 50_000


def tune_for_throughput() -> None:
    """Freeze what start-up created and collect the young generation far less often."""
    gc.collect()
    # Objects alive after start-up (modules, app, settings) live for the process: moving them
    # to the permanent generation keeps every later full collection from walking them.
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
