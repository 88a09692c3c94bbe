"""`toolkit predict`: stream a CSV or Parquet file (or stdin) through a Predictor.

The input is read by the same reader as training's data (toolkit.io): the same format
detection (suffix, else magic bytes), the same chunks of at most --chunk-rows rows, and
the same errors naming the file, the row as seen in the file (CSV: the header is row 1),
the column and the value. Blank cells are refused there; NaN and infinity are left to
the Predictor, which refuses them unless it was made with allow_non_finite. A table
model's raw columns are read as training read them (`_table_input`: blank cells and the
plan's na_values tokens missing, categories as level texts). Predictions
are written chunk by chunk (toolkit.io.writers): CSV, TSV, JSON Lines or Parquet, as the
output's suffix says (an unknown suffix is refused before any row is read). A file output
is written atomically: a failed run, a full disk included, leaves no partial file and an
existing one untouched.
"""

from __future__ import annotations

import contextlib
import errno
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from toolkit.defaults import CHUNK_ROWS, STDIO
from toolkit.errors import DataError, OutputError, ToolkitError, UsageError
from toolkit.files import atomic_write
from toolkit.io import Batch, PredictionWriter, open_input, output_format
from toolkit.io.shards import row_text
from toolkit.runtime import InputError, Predictor
from toolkit.runtime.explain import NO_EXPLAIN, column_names

# The Predictor's messages about a cell start with "row N, " (N counted from `first_row`).
_ROW = re.compile(r"row (\d+), ")
# How the Predictor's message about NaN and infinity says to accept them.
PREDICTOR_NON_FINITE = "Predictor(..., allow_non_finite=True)"


@dataclass
class PredictSummary:
    rows: int
    output: str
    provider: str
    targets: list[str]
    # A table model exported with --unknown-level reference: unknown levels met (cells, rows).
    unknown_levels: tuple[int, int] = (0, 0)

    def unknown_note(self) -> str | None:
        """The warning a user sees when unknown levels were encoded as the reference."""
        cells, rows = self.unknown_levels
        if not cells:
            return None
        return (
            f"warning: {cells:,} unknown level{'s' if cells > 1 else ''} in {rows:,} "
            f"row{'s' if rows > 1 else ''} encoded as the reference level (the model was "
            "exported with --unknown-level reference)."
        )


def predict_file(
    predictor: Predictor,
    source: str,
    destination: str,
    id_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    as_json: bool = False,
    non_finite_hint: str | None = None,
    explain: bool = False,
) -> PredictSummary:
    """Predict every row of `source` ("-" = stdin) into `destination` ("-" = stdout).

    `id_column` is copied next to each row's prediction (from CSV as text, from Parquet
    as stored). `non_finite_hint` names how the caller's user accepts NaN and infinity
    (the CLI: "--allow-non-finite"), in place of the Predictor's own argument. `explain`
    adds the columns of `Explanation.columns` (a model exported with --explain).
    """
    if id_column in predictor.input_names:
        raise UsageError(
            f"--id {id_column!r} is a feature of the model; pick a column that is not."
        )
    columns = explained_columns(predictor, id_column) if explain else predictor.target_names
    if destination != STDIO and Path(destination).is_dir():
        raise UsageError(f"--output {destination!r} is a folder; expected a file path.")
    kind = output_format(destination, as_json)  # before any row is read
    text = [id_column] if id_column else []
    rows, cells, unknown_rows = 0, 0, 0
    if predictor.table is not None:  # raw columns, typed by the model's plan
        reading = _table_input(predictor, source, text, chunk_rows, non_finite_hint)
    else:
        reading = _numeric_input(predictor, source, text, chunk_rows)
    with reading as chunks, _output(destination) as sink:
        writer = PredictionWriter(sink, kind, columns, id_column)
        for features, batch in chunks:
            try:
                # Rows numbered from 0 within the batch; _in_file puts the file's row back.
                # Unknown levels counted here, said once at the end (not a warning per chunk).
                if explain:
                    prediction, unknown = _explained(predictor, features)
                else:
                    prediction, unknown = predictor.predict_counted(features, first_row=0)
                cells += int(unknown.sum())
                unknown_rows += int((unknown > 0).sum())
            except InputError as error:
                raise _in_file(error, batch, non_finite_hint) from error
            writer.write(prediction, batch.column(id_column) if id_column else None)
            rows += len(prediction)
        writer.close()
    shown = "<stdout>" if destination == STDIO else destination
    return PredictSummary(
        rows, shown, predictor.provider, list(predictor.target_names), (cells, unknown_rows)
    )


@contextlib.contextmanager
def _numeric_input(
    predictor: Predictor, source: str, text: list[str], chunk_rows: int
) -> Iterator[Iterator[tuple[Any, Batch]]]:
    """(float64 block of the features, its batch) per chunk: a numeric model's input."""
    with open_input(source, predictor.feature_names, text) as table:
        yield table.chunks(chunk_rows, finite=False)


@contextlib.contextmanager
def _table_input(
    predictor: Predictor,
    source: str,
    text: list[str],
    chunk_rows: int,
    non_finite_hint: str | None,
) -> Iterator[Iterator[tuple[Any, Batch]]]:
    """({raw column: values}, its batch) per chunk: a table model's raw columns, read as
    training read them (CSV: numbers, or categories by raw type; blank cells and the
    plan's na_values tokens null) and handed to the Predictor as numbers (NaN = missing)
    and level texts ("" = missing)."""
    import pyarrow as pa

    from toolkit.io import FORMATS, ColumnKind, Piece
    from toolkit.io.blocks import Prefetch
    from toolkit.io.planned import arrow_types

    plan = predictor.table
    assert plan is not None
    types = arrow_types([ColumnKind(c.name, c.kind, c.raw_type) for c in plan.columns])
    # Text for CSV's booleans: a cell that is not one is an unknown level (the model's
    # policy decides), not a parse error; raw_columns spells true and false as training.
    bools = [c.name for c in plan.categorical if c.raw_type == "bool"]
    types.update({name: pa.string() for name in [*bools, *text]})
    with open_input(source, [], [*plan.raw_names, *text]) as table:
        piece = Piece(table.shard)
        batches = FORMATS[table.shard.format].raw_batches(
            piece, types, chunk_rows, na_values=plan.na_values
        )

        def chunks() -> Iterator[tuple[Any, Batch]]:
            offset = 0
            try:
                for data in batches:
                    batch = Batch(data, piece, offset, 0)
                    try:
                        columns = raw_columns(predictor, batch)
                    except InputError as error:
                        raise _in_file(error, batch, non_finite_hint) from error
                    yield columns, batch
                    offset += data.num_rows
            finally:
                close = getattr(batches, "close", None)
                if close is not None:
                    close()  # a CSV reader left open keeps pyarrow's threads alive

        # Read and converted a few chunks ahead in a background thread, as numeric input is.
        reader = Prefetch(chunks())
        try:
            yield reader
        finally:
            reader.close()


def raw_columns(predictor: Predictor, batch: Batch) -> dict[str, Any]:
    """A batch's raw columns as the Predictor takes them; a cell that cannot be is an
    InputError naming its row within the batch (predict_file puts the file's row back)."""
    import numpy as np
    import pyarrow as pa

    from toolkit.columns import CATEGORICAL, NUMERIC
    from toolkit.io.encode import level_texts, missing_mask, normalize, numbers

    plan = predictor.table
    assert plan is not None
    columns: dict[str, Any] = {}
    for column in plan.columns:
        try:
            array = normalize(batch.column(column.name), column.kind, column.raw_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
            stored = batch.column(column.name).type
            raise DataError(
                f"{batch.name}, column {column.name!r}: holds {stored} values, which the "
                f"model's {column.kind} ({column.raw_type}) column cannot take ({error})."
            ) from error
        if column.kind == CATEGORICAL:
            if column.raw_type == "bool" and pa.types.is_string(array.type):
                array = _bool_texts(array)
            texts = level_texts(array).fill_null("")
            columns[column.name] = texts.to_numpy(zero_copy_only=False)
            continue
        values = numbers(array)
        missing = missing_mask(array, NUMERIC, plan.na_values)
        if not predictor.allow_non_finite:
            # NaN that is no blank cell nor token: refused, as training refused it.
            nan = np.flatnonzero(np.isnan(values) & ~missing)
            if len(nan):
                raise InputError(
                    f"row {int(nan[0])}, column {column.name!r}: expected a number or a "
                    f"blank cell, got {float(values[nan[0]])!r}; NaN and infinity are refused "
                    f"({PREDICTOR_NON_FINITE} accepts them)"
                )
        if missing.any():
            values = np.where(missing, np.nan, values)
        columns[column.name] = values
    return columns


# What pyarrow's CSV reader (training's) reads as a boolean.
_TRUE, _FALSE = ["1", "True", "TRUE", "true"], ["0", "False", "FALSE", "false"]


def _bool_texts(array: Any) -> Any:
    """CSV text of a boolean column with pyarrow's true and false spellings as "true" and
    "false" (the level texts); other texts stay, to be unknown levels."""
    import pyarrow as pa
    import pyarrow.compute as pc

    true = pc.is_in(array, value_set=pa.array(_TRUE))
    false = pc.is_in(array, value_set=pa.array(_FALSE))
    return pc.if_else(true, "true", pc.if_else(false, "false", array))


def explained_columns(predictor: Predictor, id_column: str | None = None) -> list[str]:
    """The output columns of `predict --explain`: per target `y`, `y_lower`, `y_upper`,
    `y_stderr` (models with inference), then `y:feature` for each feature's contribution."""
    if not predictor.explain_outputs:
        raise UsageError(
            NO_EXPLAIN.format(path=str(predictor.path), output=predictor.output_name) + "."
        )
    columns = column_names(predictor)
    if id_column in columns or len(set(columns)) < len(columns):
        clash = id_column if id_column in columns else "two of the explain columns"
        raise UsageError(
            f"--explain cannot name its columns: {clash!r} would appear twice among "
            f"{', '.join(columns)}; rename the column or the model's names."
        )
    return columns


def _explained(predictor: Predictor, features: Any) -> tuple[Any, Any]:
    """One chunk's explain columns side by side, as a (rows, columns) array, and its
    unknown levels per row (a table model's; zeros otherwise)."""
    import numpy as np

    found, unknown = predictor.explain_counted(features, first_row=0)
    return np.column_stack(list(found.columns().values())), unknown


def _in_file(error: InputError, batch: Batch, non_finite_hint: str | None) -> DataError:
    """The Predictor's message, after the file's name, with the row as seen in the file."""
    message = str(error)
    if non_finite_hint:
        message = message.replace(PREDICTOR_NON_FINITE, non_finite_hint)
    match = _ROW.match(message)
    if match:
        row = row_text(batch.row(int(match.group(1))))
        message = f"row {row}, {message[match.end() :]}"
    return DataError(f"{batch.name}, {message}")


@contextlib.contextmanager
def _output(destination: str) -> Iterator[IO[bytes]]:
    if destination == STDIO:
        try:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        except OSError as error:  # a full disk behind a redirection, say
            if error.errno == errno.EPIPE or isinstance(error, ToolkitError):
                raise  # a closed pipe (`| head`): click exits quietly
            code = errno.errorcode.get(error.errno or 0, "?")
            raise OutputError(
                f"cannot write predictions to stdout: {error.strerror or error} [{code}]; "
                "the output is incomplete.",
                error,
            ) from error
        return
    with atomic_write(destination) as handle:
        yield handle
