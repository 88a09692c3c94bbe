"""Validated rows parked on disk, so that solvers can pass over the data again.

The first pass over the data parses and checks it (the slow part: CSV text to numbers)
and writes the float64 rows here; later passes (the QR fallback, the metrics, every
epoch of an iterative solver) read them back at disk speed, a chunk at a time, so memory
stays bounded by the chunk size. The file is anonymous in the temporary folder ($TMPDIR):
it has no name to leave behind, and disappears when closed or when the process dies.

Data that was in memory to begin with (`toolkit.io.tables`) stays there: `MemorySpill`
keeps the checked blocks themselves, and `spill_for` picks the kind a source needs.
"""

from __future__ import annotations

import bisect
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import numpy as np

from toolkit.errors import SpillError

# Blocks waiting for the writer thread (each a few MB at most).
WRITE_QUEUE = 16


class RowSpill:
    """Rows of `width` float64 values: `append` them once, then read them in chunks."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.n_rows = 0
        self._failure: BaseException | None = None
        try:
            self._file = tempfile.TemporaryFile(prefix="toolkit-rows-")  # noqa: SIM115 (close())
        except OSError as error:
            self._failure = error
            self._raise_failure()
        # Writes go through a thread: the kernel's write-back throttling then stalls it,
        # not the parsing (measured: 2.8 s of a 8.2 s pass over a 2.4 GB CSV).
        self._pending: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=WRITE_QUEUE)
        self._writer = threading.Thread(target=self._write, name="toolkit-spill", daemon=True)
        self._writer.start()

    def append(self, rows: np.ndarray) -> None:
        """Queue `rows` for writing; the array must not be changed afterwards."""
        rows = self._as_rows(rows)
        self._raise_failure()
        self._pending.put(rows)
        self.n_rows += len(rows)

    def _as_rows(self, rows: np.ndarray) -> np.ndarray:
        """`rows` as C-contiguous float64 of this spill's width (a ValueError otherwise)."""
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        if rows.shape[1:] != (self.width,):
            raise ValueError(f"expected rows of {self.width} values, got shape {rows.shape}")
        return rows

    def _write(self) -> None:
        while (rows := self._pending.get()) is not None:
            try:
                if self._failure is None:
                    self._file.seek(0, 2)  # a read in between moved the position
                    self._file.write(memoryview(rows).cast("B"))
            except BaseException as error:  # reported by the next append or read
                self._failure = error
            finally:
                self._pending.task_done()
        self._pending.task_done()

    def _flush(self) -> None:
        self._pending.join()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is None:
            return
        error = self._failure
        if isinstance(error, OSError):
            folder = tempfile.gettempdir()
            needed = self.n_rows * self.width * 8
            raise SpillError(
                f"cannot park the parsed rows in the temporary folder {folder!r}: "
                f"{error.strerror or error}. They need about {needed / 1e9:.2g} GB so far "
                "(8 bytes per value); free space there, or set TMPDIR to a folder on a "
                "larger disk. Nothing was saved."
            ) from error
        raise error

    def n_chunks(self, rows: int) -> int:
        return -(-self.n_rows // rows)

    def chunks(self, rows: int, order: Iterable[int] | None = None) -> Iterator[np.ndarray]:
        """Chunks of `rows` rows (the last may be shorter), in order or as `order` lists them."""
        for k in range(self.n_chunks(rows)) if order is None else order:
            yield self.chunk(int(k), rows)

    def chunk(self, index: int, rows: int) -> np.ndarray:
        """Chunk `index` of the chunks of `rows` rows."""
        start = index * rows
        return self._read(start, min(rows, self.n_rows - start))

    def take(self, indices: Iterable[int]) -> np.ndarray:
        """The rows at `indices` (for small samples)."""
        picked = [self._read(int(i), 1) for i in indices]
        return np.concatenate(picked) if picked else np.empty((0, self.width))

    def _read(self, start: int, count: int) -> np.ndarray:
        self._flush()
        block = np.empty((count, self.width), dtype=np.float64)
        self._file.seek(start * self.width * 8)
        view = memoryview(block).cast("B")
        while view.nbytes:
            got = self._file.readinto(view)
            if not got:
                raise OSError("the spilled rows ended early; the temporary file was truncated")
            view = view[got:]
        return block

    def close(self) -> None:
        if self._writer.is_alive():
            self._pending.put(None)
            self._writer.join()
        self._file.close()

    def __enter__(self) -> RowSpill:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class MemorySpill(RowSpill):
    """A RowSpill for rows already in memory: it keeps the appended blocks, not a file.

    Reading a chunk that one appended block holds returns a view of it, without a copy
    (with no validation split, every chunk is one block). The blocks are the rows
    themselves: passes read them and never write to them.
    """

    def __init__(self, width: int) -> None:  # no file and no writer thread
        self.width = width
        self.n_rows = 0
        self._failure = None
        self._parts: list[np.ndarray] = []
        self._starts: list[int] = []  # the first row of each part

    def append(self, rows: np.ndarray) -> None:
        rows = self._as_rows(rows)
        if len(rows):
            self._starts.append(self.n_rows)
            self._parts.append(rows)
            self.n_rows += len(rows)

    def _read(self, start: int, count: int) -> np.ndarray:
        k = bisect.bisect_right(self._starts, start) - 1
        offset = start - self._starts[k] if count else 0
        if count and offset + count <= len(self._parts[k]):
            return self._parts[k][offset : offset + count]
        pieces, left = [], count
        while left > 0:
            piece = self._parts[k][offset : offset + left]
            pieces.append(piece)
            left -= len(piece)
            k, offset = k + 1, 0
        return np.concatenate(pieces) if pieces else np.empty((0, self.width))

    def close(self) -> None:
        self._parts.clear()
        self._starts.clear()


def spill_for(source: Any, width: int) -> RowSpill:
    """Where a source's rows wait for later passes: memory for in-memory data, else disk."""
    return MemorySpill(width) if getattr(source, "in_memory", False) else RowSpill(width)
