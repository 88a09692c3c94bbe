"""`toolkit predict`: stream a CSV or Parquet file (or stdin) through a Predictor.

Input is read in chunks (pyarrow's streaming CSV reader, or Parquet row batches), so
memory stays bounded by --chunk-rows whatever the file size. Each chunk goes through the
Predictor's input guard with file row numbers (CSV: the header is row 1), and the
predictions are written chunk by chunk: CSV, JSON Lines (--json) or Parquet (by the
output's suffix). A file output is written atomically: a failed run leaves no partial
file and an existing one untouched.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from toolkit.errors import DataError, UsageError
from toolkit.files import atomic_write
from toolkit.io.data import PARQUET_SUFFIXES
from toolkit.runtime import InputError, Predictor

STDIO = "-"
DEFAULT_CHUNK_ROWS = 65_536


@dataclass
class PredictSummary:
    rows: int
    output: str
    provider: str
    targets: list[str]


def predict_file(
    predictor: Predictor,
    source: str,
    destination: str,
    id_column: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    as_json: bool = False,
) -> PredictSummary:
    """Predict every row of `source` ("-" = stdin, CSV) into `destination` ("-" = stdout)."""
    wanted = list(predictor.feature_names) + ([id_column] if id_column else [])
    if id_column in predictor.feature_names:
        raise UsageError(
            f"--id {id_column!r} is a feature of the model; pick a column that is not."
        )
    rows = 0
    with _output(destination) as sink:
        writer = _Writer(sink, destination, predictor.target_names, id_column, as_json)
        for first_row, batch in _batches(source, wanted, chunk_rows, id_column):
            features = np.column_stack(
                [_column(batch, name, source, first_row) for name in predictor.feature_names]
            )
            try:
                prediction = predictor.predict(features, first_row=first_row)
            except InputError as error:
                raise DataError(f"{_display(source)}, {error}") from error
            ids = batch.column(id_column) if id_column else None
            writer.write(prediction, ids)
            rows += batch.num_rows
        writer.close()
    shown = "<stdout>" if destination == STDIO else destination
    return PredictSummary(rows, shown, predictor.provider, list(predictor.target_names))


def _batches(
    source: str, wanted: list[str], chunk_rows: int, id_column: str | None = None
) -> Iterator[tuple[int, Any]]:
    """(row number of the batch's first row as the user sees it, record batch)."""
    import pyarrow as pa

    if source != STDIO and Path(source).suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(source)
        except (pa.ArrowInvalid, OSError) as error:
            raise DataError(f"{source}: is not a readable Parquet file ({error}).") from error
        _require(parquet.schema_arrow.names, wanted, source)
        first = 1  # Parquet has no header: data row 1 is row 1
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=wanted):
            yield first, batch
            first += batch.num_rows
        return

    import pyarrow.csv as pa_csv

    from toolkit.io import data

    if source == STDIO:
        first_line = sys.stdin.buffer.readline()
        header = next(csv.reader([first_line.decode("utf-8-sig")]), [])
        stream: Any = _Prepend(first_line, sys.stdin.buffer)
        locate = None
    else:
        header = data.csv_header(Path(source), source)
        stream = source
        locate = data.csv_locator(Path(source), source)
    _require([name.strip() for name in header], wanted, source)
    # Features convert to float64 while parsing; the id column stays text.
    types = {name: pa.float64() for name in wanted}
    if id_column is not None:
        types[id_column] = pa.string()
    try:
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=max(1 << 20, chunk_rows * 64)),
            convert_options=pa_csv.ConvertOptions(
                include_columns=wanted,
                column_types=types,
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:  # the first block is parsed on opening
        raise _csv_error(source, str(error), wanted, locate, 2) from error
    first = 2  # the header is row 1
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as error:
            raise _csv_error(source, str(error), wanted, locate, first) from error
        for start in range(0, batch.num_rows, chunk_rows):
            part = batch.slice(start, chunk_rows)
            yield first, part
            first += part.num_rows


def _csv_error(source: str, message: str, wanted: list[str], locate: Any, first: int) -> DataError:
    """Files get the exact row (a second, diagnostic read); stdin gets the block's start."""
    from toolkit.io import data

    if locate is not None:
        return data.explain_csv_error(Path(source), source, message, wanted, locate)
    return DataError(f"<stdin>, at or after row {first}: {message.strip()}")


class _Prepend(io.RawIOBase):
    """stdin with its already-consumed header line put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        chunk = self._rest.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _column(batch: Any, name: str, source: str, first_row: int) -> np.ndarray:
    """One feature column as float64; blank and non-numeric cells name their row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = batch.column(name)
    if column.null_count:
        index = pc.index(pc.is_null(column), True).as_py()
        raise DataError(
            f"{_display(source)}, row {first_row + index}, column {name!r}: blank cell; "
            "expected a number."
        )
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    for index, value in enumerate(column.to_pylist()):
        try:
            float(value)
        except (TypeError, ValueError) as error:
            raise DataError(
                f"{_display(source)}, row {first_row + index}, column {name!r}: expected a "
                f"number, got {value!r}."
            ) from error
    return np.asarray(column.to_pylist(), dtype=np.float64)


def _require(columns: list[str], wanted: list[str], source: str) -> None:
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise UsageError(
            f"{_display(source)} lacks column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}; it has {', '.join(columns)}."
        )


@contextlib.contextmanager
def _output(destination: str) -> Iterator[IO[bytes]]:
    if destination == STDIO:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with atomic_write(destination) as handle:
        yield handle


class _Writer:
    """Writes prediction chunks as CSV, JSON Lines or Parquet."""

    def __init__(
        self,
        sink: IO[bytes],
        destination: str,
        targets: list[str],
        id_column: str | None,
        as_json: bool,
    ) -> None:
        self.sink, self.targets, self.id_column = sink, targets, id_column
        parquet = destination != STDIO and Path(destination).suffix.lower() in PARQUET_SUFFIXES
        self.kind = "json" if as_json else "parquet" if parquet else "csv"
        self._arrow: Any = None

    def write(self, prediction: np.ndarray, ids: Any) -> None:
        if self.kind == "json":
            id_values = ids.to_pylist() if ids is not None else None
            lines = io.StringIO()
            for i, row in enumerate(prediction.tolist()):
                record = {self.id_column: id_values[i]} if id_values is not None else {}
                record.update(zip(self.targets, row, strict=True))
                lines.write(json.dumps(record) + "\n")
            self.sink.write(lines.getvalue().encode())
            return
        import pyarrow as pa

        columns = [pa.array(prediction[:, t]) for t in range(prediction.shape[1])]
        if ids is not None:
            columns.insert(0, ids)
        names = ([self.id_column] if ids is not None else []) + self.targets
        self._write_table(pa.table(columns, names=names))

    def _write_table(self, table: Any) -> None:
        if self._arrow is None:
            if self.kind == "parquet":
                import pyarrow.parquet as pq

                self._arrow = pq.ParquetWriter(self.sink, table.schema)
            else:
                import pyarrow.csv as pa_csv

                try:  # an unquoted header reads best; older pyarrow lacks the option
                    options = pa_csv.WriteOptions(quoting_style="needed", quoting_header="none")
                except TypeError:
                    options = pa_csv.WriteOptions(quoting_style="needed")
                self._arrow = pa_csv.CSVWriter(self.sink, table.schema, write_options=options)
        self._arrow.write_table(table)

    def close(self) -> None:
        """Finish the file; an input without rows still gets a header (CSV) or schema."""
        if self._arrow is None and self.kind != "json":
            import pyarrow as pa

            fields = [pa.field(self.id_column, pa.string())] if self.id_column else []
            fields += [pa.field(name, pa.float64()) for name in self.targets]
            self._write_table(pa.schema(fields).empty_table())
        if self._arrow is not None:
            self._arrow.close()


def _display(source: str) -> str:
    return "<stdin>" if source == STDIO else str(source)
