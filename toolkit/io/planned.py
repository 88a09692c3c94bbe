"""A DataSource with a table plan: raw columns read, encoded, and missing values handled.

`planned_blocks` is what `DataSource.blocks` yields once the source has a plan
(`DataSource.with_plan`): float64 blocks [encoded features | targets | weight] made by
the one encoder (toolkit/io/encode.py). Missing values follow the plan's policy: "drop"
drops the rows with any missing feature, target or weight (and counts them in
`source.dropped`), "mean"/"median" leave them to the encoder's fills (a missing target
or weight is still an error), "error" counts every missing cell of the whole input and
refuses it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.columns import CATEGORICAL, NUMERIC
from toolkit.errors import DataError
from toolkit.io.blocks import check_finite, check_weights
from toolkit.io.encode import encode, missing_mask, normalize, numbers
from toolkit.io.formats import FORMATS
from toolkit.io.kinds import ColumnKind
from toolkit.io.reader import Batch
from toolkit.io.rows import row_ref

if TYPE_CHECKING:
    from toolkit.io.sources import DataSource


@dataclass
class Dropped:
    """What --missing drop dropped: rows, and missing cells per column (in those rows)."""

    rows: int = 0
    cells: dict[str, int] = field(default_factory=dict)

    def add(self, columns: Sequence[str], missing: np.ndarray) -> None:
        """Count the rows of `missing` (bool, rows x columns) that have a missing cell."""
        dropped = missing.any(axis=1)
        self.rows += int(dropped.sum())
        for column, count in zip(columns, missing.sum(axis=0).tolist(), strict=True):
            if count:
                self.cells[column] = self.cells.get(column, 0) + int(count)

    @classmethod
    def merge(cls, parts: Sequence[Dropped]) -> Dropped:
        """The counts of several processes' (or passes') drops together."""
        merged = cls()
        for part in parts:
            merged.rows += part.rows
            for column, count in part.cells.items():
                merged.cells[column] = merged.cells.get(column, 0) + count
        return merged

    def note(self) -> str:
        """ "dropped 12 rows with missing values (17 cells: 'x' 5, 'firm' 12)."\""""
        if not self.rows:
            return "dropped no rows: no value was missing."
        cells = sum(self.cells.values())
        each = ", ".join(f"{c!r} {n}" for c, n in self.cells.items())
        return (
            f"dropped {self.rows} row{'s' if self.rows != 1 else ''} with missing values "
            f"({cells} cell{'s' if cells != 1 else ''}: {each})."
        )


def raw_kinds(source: DataSource) -> list[ColumnKind]:
    """The kinds of every column a planned block is made from: features, targets, weight."""
    plan = source.plan
    assert plan is not None
    kinds = [ColumnKind(c.name, c.kind, c.raw_type) for c in plan.columns]
    numeric = [*source.target_names] + ([source.weight_name] if source.weight_name else [])
    return kinds + [ColumnKind(name, NUMERIC, "float") for name in numeric]


def arrow_types(kinds: Sequence[ColumnKind]) -> dict[str, Any]:
    """How a CSV reader converts each column: numbers float64, categories by raw type."""
    import pyarrow as pa

    types = {"int": pa.int64(), "bool": pa.bool_(), "string": pa.string()}
    return {k.name: types[k.raw_type] if k.kind == CATEGORICAL else pa.float64() for k in kinds}


def file_raw_batches(
    source: DataSource,
    pieces: Sequence[Any],
    kinds: Sequence[ColumnKind],
    rows: int,
    na_values: Sequence[str],
    bar: Any = None,
) -> Iterator[Batch]:
    """The raw `kinds` columns of file pieces, as reader Batches (rows as in the file)."""
    types = arrow_types(kinds)
    hint = [k.name for k in kinds if k.kind == NUMERIC and k.name in source.raw_feature_names]
    for piece in pieces:
        fmt = FORMATS[piece.shard.format]
        offset, count = 0, 0
        try:
            for data in fmt.raw_batches(
                piece,
                types,
                rows,
                na_values=na_values,
                categorical=hint,
                bar=bar,
                hashed=source._hashed,
            ):
                yield Batch(data, piece, offset, 0)
                offset += data.num_rows
                count += data.num_rows
        except OSError as error:
            raise DataError(
                f"{piece.shard.name}: cannot be read ({error.strerror or error})."
            ) from error
        if count == 0 and piece.whole:
            shard = piece.shard
            raise DataError(f"{shard.name}: {fmt.no_rows(shard, list(types))}")


def planned_blocks(
    source: DataSource, pieces: Sequence[Any], rows: int, bar: Any = None
) -> Iterator[np.ndarray]:
    """[encoded features | targets | weight] float64 blocks of `pieces`, per the plan."""
    plan = source.plan
    assert plan is not None
    kinds = raw_kinds(source)
    # Closed on any error: a CSV reader left open keeps pyarrow's threads alive.
    with contextlib.closing(source.raw_batches(pieces, kinds, rows, plan.na_values, bar)) as raw:
        for batch in raw:
            yield _planned_block(source, batch, kinds)


def _planned_block(source: DataSource, batch: Any, kinds: Sequence[ColumnKind]) -> np.ndarray:
    """One batch's block (see `planned_blocks`)."""
    plan = source.plan
    assert plan is not None
    width, d = len(plan.encoded_names), len(plan.columns)
    columns, data = source.columns, batch.data
    block = np.empty((data.num_rows, len(columns)))
    missing = np.empty((data.num_rows, len(kinds)), dtype=bool)
    missing[:, :d] = encode(data, plan, out=block[:, :width]).missing
    for j, kind in enumerate(kinds[d:]):  # targets and the weight: numbers, never imputed
        array = normalize(data.column(kind.name), NUMERIC, "float")
        missing[:, d + j] = missing_mask(array, NUMERIC, plan.na_values)
        block[:, width + j] = numbers(array)
    keep = None
    if plan.missing == "drop" and missing.any():
        source.dropped.add([k.name for k in kinds], missing)
        keep = np.flatnonzero(~missing.any(axis=1))
        block = block[keep]
    elif plan.missing != "drop":
        # Under mean/median only targets and weights are at fault.
        fault = missing if plan.missing == "error" else missing[:, d:]
        if fault.any():
            index = int(np.argmax(fault.any(axis=1)))
            name = kinds[int(np.argmax(fault[index])) + (d if fault is not missing else 0)].name
            where = f"{batch.name}, row {row_ref(batch, index).text}, column {name!r}"
            raise source.missing_error(f"{where}: missing value.")

    def row_of(i: int) -> int | None:
        return batch.row(int(i if keep is None else keep[i]))

    check_finite(block, columns, batch.name, row_of)
    if source.weight_name is not None:
        check_weights(block[:, -1], batch.name, row_of, source.weight_name)
    return block


def missing_error(source: DataSource, first: str = "") -> DataError:
    """The error about the missing values of `source`, counted over all its pieces.

    `first` (a sentence naming the first missing cell found) leads the message. Under
    --missing mean or median only targets and weights can be at fault: they are not
    imputed.
    """
    from toolkit.io.scanner import first_rows_text, scan
    from toolkit.io.tables_plan import TableOptions

    plan = source.plan
    if plan is None:
        kinds = [ColumnKind(name, NUMERIC, "float") for name in source.raw_feature_names]
        na_values: tuple[str, ...] = ()
    else:
        kinds = [ColumnKind(c.name, c.kind, c.raw_type) for c in plan.columns]
        na_values = plan.na_values
    stats = scan(source, None, options=TableOptions(na_values=na_values), kinds=kinds)
    if plan is None or plan.missing in ("error", "drop"):
        return stats.missing_error(source.name, first)
    lead = f"{first} " if first else f"{source.name}: "
    parts = [
        f"{c.role} {c.name!r} has {c.missing} missing value{'s' if c.missing != 1 else ''} "
        f"(first rows: {first_rows_text(c.first_missing)})"
        for c in stats.columns.values()
        if c.role != "feature" and c.missing
    ]
    return DataError(
        f"{lead}{'; '.join(parts)}. Targets and weights are never imputed: choose "
        "--missing drop, or fill them in."
    )
