"""Prediction writers: CSV, JSON Lines or Parquet, chunk by chunk into one binary sink.

The output format is JSON Lines when asked for, else Parquet when the destination's
suffix names it in the reader's registry (.parquet, .pq), else CSV.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from toolkit.defaults import STDIO
from toolkit.errors import UsageError
from toolkit.io.formats import by_suffix

OUTPUT_FORMATS = ("csv", "jsonl", "parquet")


def output_format(destination: str, as_json: bool = False) -> str:
    """The format `PredictionWriter` writes to `destination` ("-" is stdout)."""
    if as_json:
        return "jsonl"
    if destination != STDIO and by_suffix(Path(destination)) == "parquet":
        return "parquet"
    return "csv"


class PredictionWriter:
    """Writes prediction chunks, each with its optional id column in front, to `sink`."""

    def __init__(
        self, sink: IO[bytes], kind: str, targets: Sequence[str], id_column: str | None = None
    ) -> None:
        if kind not in OUTPUT_FORMATS:
            known = ", ".join(OUTPUT_FORMATS)
            raise UsageError(f"unknown output format {kind!r}; known formats: {known}.")
        self.sink, self.kind = sink, kind
        self.targets, self.id_column = list(targets), id_column
        self._arrow: Any = None

    def write(self, prediction: np.ndarray, ids: Any = None) -> None:
        """Write (rows, targets) predictions; `ids` is an Arrow array of the id column."""
        if self.kind == "jsonl":
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

    def close(self) -> None:
        """Finish the file; an input without rows still gets a header (CSV) or schema."""
        if self._arrow is None and self.kind != "jsonl":
            import pyarrow as pa

            fields = [pa.field(self.id_column, pa.string())] if self.id_column else []
            fields += [pa.field(name, pa.float64()) for name in self.targets]
            self._write_table(pa.schema(fields).empty_table())
        if self._arrow is not None:
            self._arrow.close()

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
