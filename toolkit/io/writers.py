"""Prediction writers: CSV, TSV, JSON Lines or Parquet, chunk by chunk into one binary sink.

A file's format is named by its suffix (OUTPUT_SUFFIXES); a suffix that names none is
refused with the list, rather than guessed. `--json` asks for JSON Lines: on stdout, or in
a file whose suffix says JSON. stdout gets CSV unless `--json` is given.
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

OUTPUT_FORMATS = ("csv", "tsv", "jsonl", "parquet")
OUTPUT_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")  # --json also accepts .json
_DELIMITERS = {"csv": ",", "tsv": "\t"}


def output_format(destination: str, as_json: bool = False) -> str:
    """The format `PredictionWriter` writes to `destination` ("-" is stdout).

    A file's suffix decides; an unknown suffix, or one that contradicts --json, is a
    usage error listing the supported ones.
    """
    if destination == STDIO:
        return "jsonl" if as_json else "csv"
    suffix = Path(destination).suffix.lower()
    if as_json:
        if suffix in _JSON_SUFFIXES:
            return "jsonl"
        raise UsageError(
            f"--json writes JSON Lines, but --output {destination!r} does not end in "
            f"{', '.join(_JSON_SUFFIXES)}; rename it, or drop --json to write the format "
            "its suffix names."
        )
    kind = OUTPUT_SUFFIXES.get(suffix)
    if kind is None:
        known = ", ".join(f"{s} ({k})" for s, k in OUTPUT_SUFFIXES.items())
        raise UsageError(
            f"cannot tell the format to write from the suffix of --output {destination!r}; "
            f"use one of {known}, or - for CSV on stdout."
        )
    return kind


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

                delimiter = _DELIMITERS[self.kind]
                try:  # an unquoted header reads best; older pyarrow lacks the option
                    options = pa_csv.WriteOptions(
                        quoting_style="needed", quoting_header="none", delimiter=delimiter
                    )
                except TypeError:
                    options = pa_csv.WriteOptions(quoting_style="needed", delimiter=delimiter)
                self._arrow = pa_csv.CSVWriter(self.sink, table.schema, write_options=options)
        self._arrow.write_table(table)
