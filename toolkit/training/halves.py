"""Rows cut in two halves at a block boundary, the second half worked on by a helper
thread while the calling thread does the first: both of 2 cores busy for numpy work,
which drops the GIL (the moments' block products, the metrics' predictions).

The helper is one thread for the whole process, made on first use (and made again in a
forked child, which inherits no threads). Callers that meet there take turns.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
THREADS = 2  # the calling thread and the helper

_helper: tuple[int, ThreadPoolExecutor] | None = None  # (the process it belongs to, it)
_lock = threading.Lock()


def middle(start: int, end: int, block_rows: int) -> int:
    """Where rows [start, end) are cut in two: the block boundary nearest their middle
    from above (the first half is the longer one when the blocks are odd in number)."""
    return min(end, start + -(-(end - start) // (2 * block_rows)) * block_rows)


def in_halves(work: Callable[[int, int, int], T], start: int, end: int, block_rows: int) -> list[T]:
    """[work(0, start, cut), work(1, cut, end)], the second on the helper thread.

    `work(slot, first, stop)` must use only what `slot` names as its own (buffers).
    """
    cut = middle(start, end, block_rows)
    later = _helper_pool().submit(work, 1, cut, end)
    try:
        first = work(0, start, cut)
    finally:
        second = later.result()  # waits even when the first half failed: no stray work
    return [first, second]


def _helper_pool() -> ThreadPoolExecutor:
    global _helper
    with _lock:
        if _helper is None or _helper[0] != os.getpid():
            _helper = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="toolkit-half"))
        return _helper[1]
