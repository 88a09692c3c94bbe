"""What each raw column is: numeric or categorical, and its raw type.

From a Parquet or in-memory Arrow schema directly (text, large text and dictionary
columns: "string"; booleans: "bool"; integers: "int", numeric unless named with
--categorical; floats: "float"); from CSV by pyarrow's type inference on the file's
first block (a column blank throughout it is numeric), --categorical forcing text
(levels are then the cells as written, in code point order).
Dates, timestamps, lists and other types are refused. Targets and the weight column
are numeric always.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.columns import CATEGORICAL, NUMERIC
from toolkit.errors import DataError, UsageError
from toolkit.io.names import did_you_mean

if TYPE_CHECKING:
    import pyarrow as pa

    from toolkit.io.shards import Shard
    from toolkit.io.tables_plan import TableOptions

# A cell that reads as a number (what pyarrow's float parser accepts, give or take spaces).
NUMBER_TEXT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(inf|nan)\s*$"


@dataclass(frozen=True)
class ColumnKind:
    """One raw column: its name, kind (columns.NUMERIC/CATEGORICAL) and raw type."""

    name: str
    kind: str
    raw_type: str  # one of columns.RAW_TYPES


def raw_type_of(arrow_type: Any) -> str | None:
    """ "float", "int", "bool", "string" for the Arrow types toolkit reads; else None."""
    import pyarrow as pa

    types = pa.types
    if types.is_dictionary(arrow_type):
        return "string" if is_text(arrow_type.value_type) else None
    if is_text(arrow_type):
        return "string"
    if types.is_boolean(arrow_type):
        return "bool"
    if types.is_integer(arrow_type):
        return "int"
    if types.is_floating(arrow_type) or types.is_null(arrow_type):
        return "float"  # a column of nulls only (blank in CSV's first block): numeric
    return None


def is_text(arrow_type: Any) -> bool:
    """Whether an Arrow type holds text: string, large_string, string_view (polars)."""
    import pyarrow as pa

    types = pa.types
    return bool(
        types.is_string(arrow_type)
        or types.is_large_string(arrow_type)
        or types.is_string_view(arrow_type)
    )


def arrow_kind(
    name: str, arrow_type: Any, options: TableOptions, where: str, csv: bool = False
) -> ColumnKind:
    """The kind of a feature column of Arrow type `arrow_type` (`where` names the data in
    errors). --categorical on a float column is a UsageError, except in CSV, where it
    reads any column as text; a type toolkit cannot read is a DataError."""
    named = name in options.categorical
    raw = raw_type_of(arrow_type)
    if raw is None and csv and named:
        raw = "string"  # CSV cells are text: --categorical reads dates and the like as such
    if raw is None:
        raise DataError(
            f"{where}, column {name!r}: has type {arrow_type}; toolkit reads numbers, text "
            "and true/false. Leave the column out with --features, or convert it."
        )
    if named and csv:
        # CSV cells are text: a named column is read as text whatever the start of the
        # file looked like (a later cell may not be a number).
        return ColumnKind(name, CATEGORICAL, "string")
    if raw == "float" and named:
        if not csv:
            raise UsageError(
                f"--categorical names {name!r}, a column of floating-point numbers in "
                f"{where}; only integer, text and true/false columns can be categories."
            )
        raw = "string"
    if raw in ("string", "bool") or named:
        return ColumnKind(name, CATEGORICAL, raw)
    return ColumnKind(name, NUMERIC, raw)


def feature_kinds(
    source: Any, options: TableOptions, names: Sequence[str] | None = None
) -> list[ColumnKind]:
    """The kinds of `source`'s raw feature columns (or of `names`), in order.

    A DataSource of files reads the schemas (Parquet) or the first block (CSV) of its
    shards; an in-memory one its Arrow schema. The targets and the weight column must
    be numeric (a DataError if not). --categorical naming a column that is not a feature
    is a UsageError.
    """
    names = list(source.raw_feature_names if names is None else names)
    others = [*source.target_names] + ([source.weight_name] if source.weight_name else [])
    for column in options.categorical:
        if column not in names:
            role = "a target" if column in source.target_names else "not a feature"
            if column == source.weight_name:
                role = "the --weight column"
            close = did_you_mean(column, names) if role == "not a feature" else None
            meant = f" Did you mean {close!r}?" if close is not None else ""
            raise UsageError(
                f"--categorical names {column!r}, which is {role}; name feature columns only."
                + meant
            )
    schemas = source.arrow_schemas([*names, *others], options.na_values)
    kinds: list[ColumnKind] | None = None
    first_csv = False
    for where, schema, csv in schemas:
        found = [arrow_kind(c, schema.field(c).type, options, where, csv) for c in names]
        for column in others:
            if not csv:  # CSV: read as numbers, a text cell is refused with its row
                _check_numeric_target(column, schema.field(column).type, where, source)
        if kinds is None:
            kinds, first_csv = found, csv
            continue
        for first, other in zip(kinds, found, strict=True):
            # CSV text and a typed column agree when their level texts can (7 and "7").
            typed = not (csv or first_csv)
            if first.kind != other.kind or (typed and first.raw_type != other.raw_type):
                if first.kind == NUMERIC and other.kind == NUMERIC:
                    continue
                raise DataError(
                    f"{where}, column {first.name!r}: holds {other.kind} {other.raw_type} "
                    f"values where the first shard holds {first.kind} {first.raw_type} "
                    "ones; every shard must agree."
                )
    assert kinds is not None
    return kinds


def _check_numeric_target(column: str, arrow_type: Any, where: str, source: Any) -> None:
    raw = raw_type_of(arrow_type)
    if raw in ("float", "int"):
        return
    role = "the --weight column" if column == source.weight_name else "a target"
    raise DataError(
        f"{where}, column {column!r}: is {role} and has type {arrow_type}; expected "
        "numbers (a regression target is numeric; text targets are not supported)."
    )


def csv_schema(shard: Shard, names: Sequence[str], na_values: Sequence[str]) -> pa.Schema:
    """The types pyarrow infers for `names` from the first block of a CSV shard (blank
    cells and the `na_values` tokens read as nulls; a column of nulls only has type null).

    Where the first block cannot be parsed, or a text column holds mostly numbers (a stray
    typo, not categories), the column is taken as numeric: the reader then refuses the bad
    cell naming its row, column and value, with the hint to use --categorical.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from toolkit.io import csvslices
    from toolkit.io.csv import csv_options
    from toolkit.io.shards import Piece

    read_options, convert = csv_options([], Piece(shard), names)
    inferred = pa_csv.ConvertOptions(
        include_columns=convert.include_columns,
        null_values=["", *na_values],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    # Only the first block's bytes are handed to pyarrow: a reader opened on the file
    # would parse dozens of blocks ahead (0.4 s of a 400 MB file) to answer the first.
    size = read_options.block_size
    head = next(csvslices.read_slices(shard.path, 0, -1, size=size), memoryview(b""))
    try:
        first = pa_csv.read_csv(
            pa.py_buffer(head), read_options=read_options, convert_options=inferred
        )
    except pa.ArrowException:  # a malformed row: the reader names it
        return pa.schema([(name, pa.float64()) for name in names])
    types = [_numbers_as_such(first, field) for field in first.schema]
    return pa.schema([(name, kind) for name, kind in zip(names, types, strict=True)])


def _numbers_as_such(first: pa.Table, field: pa.Field) -> pa.DataType:
    """`field`'s type, or float64 for a text column whose cells are mostly numbers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_binary(field.type):  # a cell that is not UTF-8: the reader names it
        return pa.float64()
    if not first.num_rows or not is_text(field.type):
        return field.type
    values = first.column(field.name).drop_null()
    numbers = pc.sum(pc.match_substring_regex(values, NUMBER_TEXT)).as_py() or 0
    return pa.float64() if len(values) and numbers * 2 >= len(values) else field.type


def file_schemas(
    shards: Sequence[Shard], names: Sequence[str], na_values: Sequence[str] = ()
) -> list[tuple[str, Any, bool]]:
    """(name, Arrow schema of `names`, whether read from CSV) for every Parquet shard and
    the first CSV one (its types inferred from its first block)."""
    import pyarrow.parquet as pq

    schemas, csv_seen = [], False
    for shard in shards:
        if shard.format == "csv":
            if not csv_seen:
                schemas.append((shard.name, csv_schema(shard, names, na_values), True))
            csv_seen = True
        else:
            schemas.append((shard.name, pq.read_schema(shard.path), False))
    return schemas
