"""CSV bytes to Arrow batches a slice at a time, each slice parsed on every core.

pyarrow's streaming reader (`open_csv`) parses one block after another on one thread;
its table reader (`read_csv`) parses the blocks of a buffer in parallel. So a piece of a
file is read in slices of SLICE_BYTES cut at line ends, and each slice is parsed whole by
`read_csv`: the parse uses every core while memory stays bounded by the slice. Lines are
cut where pyarrow itself cuts its blocks (it does not allow newlines inside values), so
the rows are the same as the streaming reader's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.io import csvrows
from toolkit.io.shards import Shard

if TYPE_CHECKING:
    import pyarrow as pa

# Bytes parsed at once: 16 blocks of 1 MiB for pyarrow's threads, while memory stays
# bounded by the slice (not tuned further; see scripts/bench_e2e.py for the end-to-end
# figure). A slice's table is combined into one block of rows, so the consumer gets a
# few big blocks instead of one per 1 MiB.
SLICE_BYTES = 16 << 20


def read_slices(
    path: Path,
    start: int,
    stop: int,
    bar: Any = None,
    digest: Any = None,
    size: int | None = None,
) -> Iterator[memoryview]:
    """Bytes [start, stop) of the file (stop -1: to its end) in slices of about `size`
    bytes (default SLICE_BYTES) that end at a line end (the last one where the range
    ends); `digest` (hashlib) and `bar` (tqdm) see every byte once, in file order. The
    digest is complete when the slices are.

    The part of a line that a slice cuts off is read again with the next slice (a few
    hundred bytes), so no slice is copied or zero-filled on the way."""
    end = math.inf if stop == -1 else stop
    position = start
    hashing = _Hashing(digest) if digest is not None else None
    try:
        with path.open("rb", buffering=0) as handle:
            while position < end:
                data, cut = _next_slice(handle, position, end, size or SLICE_BYTES)
                if not data:
                    return
                view = memoryview(data)[:cut]
                if hashing is not None:
                    hashing.update(view)
                if bar is not None:
                    bar.update(cut)
                yield view
                position += cut
    finally:
        if hashing is not None:
            hashing.close()


class _Hashing:
    """`digest.update` on a thread of its own, one slice at a time and in order.

    hashlib releases the GIL while it hashes, so a slice's SHA-256 (10 ms for 16 MiB)
    runs while the slice is parsed, not between two parses while the parser's threads
    wait: measured on a 2.4 GB CSV, reading with the digest took 10.0 s against 6.7-8.4 s
    without it, hashed in line.
    """

    def __init__(self, digest: Any) -> None:
        self._digest = digest
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="toolkit-hash")
        self._pending: Future[Any] | None = None

    def update(self, view: memoryview) -> None:
        self._wait()  # one slice in flight: memory stays bounded, the order kept
        self._pending = self._pool.submit(self._digest.update, view)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)


def _next_slice(handle: Any, position: int, end: float, size: int) -> tuple[bytes, int]:
    """(the bytes from `position`, where its slice ends: past its last line end, or at
    the end of the range); a line longer than `size` is read whole."""
    while True:
        count = int(min(size, end - position))
        data = _read_at(handle, position, count)
        if len(data) < count or position + len(data) >= end:
            return data, len(data)
        cut = data.rfind(b"\n") + 1
        if cut:
            return data, cut
        size *= 2


def _read_at(handle: Any, position: int, count: int) -> bytes:
    """`count` bytes from `position`, fewer only at the end of the file."""
    handle.seek(position)
    parts = []
    while count > 0 and (part := handle.read(count)):
        parts.append(part)
        count -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def parsed_batches(
    data: memoryview,
    read_options: Any,
    convert_options: Any,
    names: Sequence[str],
    rows: int,
) -> Iterator[pa.RecordBatch]:
    """One slice parsed by pyarrow's threads, as batches of at most `rows` rows with
    columns `names`."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(
        pa.py_buffer(data), read_options=read_options, convert_options=convert_options
    )
    table = table.rename_columns(list(names)).combine_chunks()
    yield from table.to_batches(max_chunksize=rows)


def later_options(read_options: Any, shard: Shard) -> Any:
    """The read options of the slices after the first of a piece: where the piece starts
    with the header, the header's cells (as written) name the columns of lines that lack it."""
    import pyarrow.csv as pa_csv

    if read_options.column_names:
        return read_options  # the piece starts after the header: every slice lacks it
    header = csvrows.header(shard.path, shard.name)
    return pa_csv.ReadOptions(block_size=read_options.block_size, column_names=header)
