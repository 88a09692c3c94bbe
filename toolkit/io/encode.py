"""The one encoder: raw Arrow columns to the model's float64 columns, per a `TablePlan`.

Training's blocks and the export's parity gate (its float64 reference) both use `encode`,
so the graph is checked against the very code the model was fitted with. Vectorised
throughout (pyarrow.compute for the level lookup, numpy fancy indexing for the one-hot):
no Python per row.

Raw values: numeric columns any integer or floating type (nulls are missing; NaN and
infinity too when "nan" / "inf" are among the plan's na_values); categorical ones
strings (large, dictionary-encoded), booleans or integers, compared by their
`columns.level_text` (nulls, "" and the na_values tokens are missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.columns import CATEGORICAL, ColumnPlan, TablePlan

if TYPE_CHECKING:
    import pyarrow as pa

# na_values tokens that make NaN, and infinity, missing in numeric columns that are not
# read from text (Parquet, tables in memory); CSV turns every token into a null itself.
NAN_TOKENS = ("nan",)
INF_TOKENS = ("inf", "infinity", "-inf", "+inf", "-infinity")


@dataclass
class Encoded:
    """What `encode` made of some rows."""

    block: np.ndarray  # float64 (rows, len(plan.encoded_names))
    missing: np.ndarray  # bool (rows, len(plan.columns)): the raw cell was missing
    unknown: np.ndarray  # int64 (rows,): categorical cells holding an unknown value

    @property
    def missing_rows(self) -> np.ndarray:
        """bool (rows,): rows with at least one missing cell."""
        return self.missing.any(axis=1)


def encode(data: Any, plan: TablePlan, out: np.ndarray | None = None) -> Encoded:
    """Encode `data` (a pyarrow RecordBatch or Table, or a mapping of column name to a
    pyarrow array or anything `pyarrow.array` takes, holding at least the plan's raw
    columns) per `plan`.

    Arrow arrays are read as they are (a NaN is a number: missing only when "nan" is
    among the na_values); anything else as pandas reads it (`pyarrow.array(...,
    from_pandas=True)`): a NaN in a numpy array or a list is missing, as in the ONNX
    graph's numeric inputs.

    Missing cells take the column's fill when it has one; else a numeric cell is NaN and
    a categorical one all zeros, and `missing` says which they were. Unknown levels
    encode as the reference (all zeros) and are counted in `unknown`. `out`: a float64
    array (or a view, such as the left part of a wider block) of the block's shape to
    write into.
    """
    arrays = [normalize(column_array(data, c.name), c.kind, c.raw_type) for c in plan.columns]
    n = len(arrays[0]) if arrays else 0
    block = np.empty((n, len(plan.encoded_names))) if out is None else out
    offsets = np.cumsum([0] + [column.width for column in plan.columns]).tolist()
    _numbers(block, plan, arrays, offsets)
    missing = np.zeros((n, len(plan.columns)), dtype=bool)
    unknown = np.zeros(n, dtype=np.int64)
    for j, (column, array) in enumerate(zip(plan.columns, arrays, strict=True)):
        gaps = missing_mask(array, column.kind, plan.na_values)
        missing[:, j] = gaps
        offset = offsets[j]
        if column.kind == CATEGORICAL:
            block[:, offset : offsets[j + 1]] = 0.0
            unknown += _one_hot(array, column, gaps, block, offset)
        elif column.fill is not None and gaps.any():
            block[gaps, offset] = column.fill
        if column.indicator:
            block[:, offsets[j + 1] - 1] = gaps
    return Encoded(block, missing, unknown)


def _numbers(
    block: np.ndarray, plan: TablePlan, arrays: Sequence[pa.Array], offsets: Sequence[int]
) -> None:
    """Write the numeric columns' values (NaN where null) into `block`: runs of adjacent
    ones at once, row-major (Arrow's conversion, as the all-number path)."""
    import pyarrow as pa

    j, count = 0, len(plan.columns)
    while j < count:
        if plan.columns[j].kind == CATEGORICAL:
            j += 1
            continue
        end = j + 1  # the run: numeric columns whose encoded columns are adjacent
        while (
            end < count
            and plan.columns[end].kind != CATEGORICAL
            and not plan.columns[end - 1].indicator
        ):
            end += 1
        if end - j == 1:
            block[:, offsets[j]] = numbers(arrays[j])
        else:
            run = pa.record_batch(list(arrays[j:end]), names=[str(k) for k in range(j, end)])
            tensor = np.asarray(run.to_tensor(null_to_nan=True, row_major=True))
            block[:, offsets[j] : offsets[j] + end - j] = tensor
        j = end


def _one_hot(
    array: pa.Array, column: ColumnPlan, gaps: np.ndarray, block: np.ndarray, offset: int
) -> np.ndarray:
    """Write the column's one-hot part (zeroed) into `block` at `offset`; the unknown
    cells (int64)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    known = [*column.levels, *column.other]
    index = pc.index_in(level_texts(array), value_set=pa.array(known, pa.string()))
    found = index.fill_null(-1).to_numpy(zero_copy_only=False)
    codes = column.code()
    # Index -1 (not found) picks the lookup's last entry: -2, "no column".
    lookup = np.array([codes[level] for level in known] + [-2], dtype=np.int64)
    code = lookup[found]
    if column.fill is not None and gaps.any():
        code[gaps] = codes[str(column.fill)]
    rows = np.flatnonzero(code >= 0)
    block[rows, offset + code[rows]] = 1.0
    return ((found < 0) & ~gaps).astype(np.int64)


def column_array(data: Any, name: str) -> pa.Array:
    """Column `name` of a RecordBatch, Table or mapping, as one Arrow array."""
    import pyarrow as pa

    value = data[name] if isinstance(data, Mapping) else data.column(name)
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    if isinstance(value, pa.Array):
        return value
    return pa.array(value, from_pandas=True)


def normalize(array: pa.Array, kind: str, raw_type: str) -> pa.Array:
    """The array as the encoder reads it: numeric -> float64; categorical: text as plain
    strings (dictionaries decoded; for any raw type: level texts such as "7" or "true"),
    integers as int64, booleans as they are."""
    import pyarrow as pa

    from toolkit.io.kinds import is_text

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        values = array.dictionary
        if pa.types.is_string_view(values.type):  # polars: take() has no string_view kernel
            values = values.cast(pa.string())
        array = values.take(array.indices)
    if kind != CATEGORICAL:
        return array if array.type == pa.float64() else array.cast(pa.float64(), safe=False)
    if is_text(array.type) or raw_type == "string":
        # Level texts as given ("7", "true": the ONNX graph's string inputs) or made so.
        return array if array.type == pa.string() else array.cast(pa.string())
    if raw_type == "int" and array.type != pa.int64():
        return array.cast(pa.int64())  # safe: 3.0 (pandas' integers with gaps) is 3
    return array


def level_texts(array: pa.Array) -> pa.Array:
    """A categorical array's values as level texts (`columns.level_text`): strings as
    they are, booleans "true"/"false", integers in decimal."""
    import pyarrow as pa

    return array if pa.types.is_string(array.type) else array.cast(pa.string())


def missing_mask(array: pa.Array, kind: str, na_values: Sequence[str]) -> np.ndarray:
    """bool (rows,): which cells of a normalised array are missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(array)
    gaps = (
        np.zeros(n, dtype=bool)
        if array.null_count == 0
        else array.is_null().to_numpy(zero_copy_only=False)
    )
    if kind == CATEGORICAL:
        if pa.types.is_string(array.type):
            tokens = pa.array(["", *na_values], pa.string())
            found = pc.is_in(array, value_set=tokens).fill_null(False)
            gaps |= found.to_numpy(zero_copy_only=False)
        elif na_values:
            found = pc.is_in(level_texts(array), value_set=pa.array(list(na_values), pa.string()))
            gaps |= found.fill_null(False).to_numpy(zero_copy_only=False)
        return gaps
    lowered = {token.strip().lower() for token in na_values}
    if lowered & set(NAN_TOKENS) or lowered & set(INF_TOKENS):
        values = numbers(array)
        if lowered & set(NAN_TOKENS):
            gaps |= np.isnan(values)
        if lowered & set(INF_TOKENS):
            gaps |= np.isinf(values)
    return gaps


def numbers(array: pa.Array) -> np.ndarray:
    """A float64 Arrow array as numpy (nulls as NaN)."""
    if array.null_count == 0:
        return array.to_numpy(zero_copy_only=False)
    return array.fill_null(np.nan).to_numpy(zero_copy_only=False)
