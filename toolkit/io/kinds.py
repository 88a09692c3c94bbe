"""What each raw column is: numeric or categorical, and its raw type.

From a Parquet or in-memory Arrow schema directly (text, large text and dictionary
columns: "string"; booleans: "bool"; integers: "int", numeric unless named with
--categorical; floats: "float"); from CSV by pyarrow's type inference on the file's
first block (a column blank throughout it is numeric), --categorical forcing text.
Dates, timestamps, lists and other types are refused. Targets and the weight column
are numeric always.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolkit.io.tables_plan import TableOptions


@dataclass(frozen=True)
class ColumnKind:
    """One raw column: its name, kind (columns.NUMERIC/CATEGORICAL) and raw type."""

    name: str
    kind: str
    raw_type: str  # one of columns.RAW_TYPES


def arrow_kind(name: str, arrow_type: Any, options: TableOptions, where: str) -> ColumnKind:
    """The kind of a feature column of Arrow type `arrow_type` (`where` names the data in
    errors): a UsageError for --categorical on a float column, a DataError for a type
    toolkit cannot read."""
    raise NotImplementedError


def feature_kinds(
    source: Any, options: TableOptions, names: Sequence[str] | None = None
) -> list[ColumnKind]:
    """The kinds of `source`'s raw feature columns (or of `names`), in order; the targets
    and the weight column are checked to be numeric. --categorical naming a column that
    is not a feature is a UsageError."""
    raise NotImplementedError
