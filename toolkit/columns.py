"""The table plan: how raw columns (text, bool, numbers with gaps) become the model's columns.

One place for the encoding's rules, read by every tier: training builds a plan from its
scan of the data and stores it in the checkpoint, export writes the graph that applies it
and puts it in the model card, and the runtime, `predict` and `serve` read it back to
accept raw values. Standard library only: the runtime imports this module.

The rules (R's `lm` and statsmodels' `C(col)`: treatment coding):
- A categorical column's levels are texts (`level_text`): strings as they are, booleans
  "false"/"true", integers in decimal. They sort in the natural order of the raw type
  (numbers by value, false before true, strings by code point), and the first kept level
  is the reference: it has no column of its own.
- With more than `max_levels` distinct levels, the `max_levels - 1` most frequent are
  kept (ties: natural order) and the rest share the level OTHER (a column of its own,
  after the kept ones).
- Encoded columns, in the order of `columns`: a numeric column as itself; a categorical
  one as `name[level]` for each kept level but the reference, then `name[(other)]`; then
  `name[(missing)]` when it has a missing-value indicator (1 where the value was missing).
- Missing values (blank cells, nulls, empty strings, the `na_values` tokens) follow
  `missing`: "error", "drop" (the row), "mean" or "median" (numeric columns get that
  statistic of their observed training values, categorical ones their most frequent
  level). A value that is neither a kept level, a folded one nor missing is unknown:
  the reference level's encoding (all zeros) or an error, per `unknown_level`, which
  export decides.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from toolkit.defaults import MISSING_POLICIES
from toolkit.defaults import UNKNOWN_LEVELS as UNKNOWN_LEVEL_POLICIES

NUMERIC, CATEGORICAL = "numeric", "categorical"
KINDS = (NUMERIC, CATEGORICAL)
# The raw type of a column: "float" (any floating type), "int", "bool", "string" (text,
# large text and dictionary-encoded text).
RAW_TYPES = ("float", "int", "bool", "string")
OTHER = "(other)"
MISSING = "(missing)"
# Bounds a plan read from a model file must respect (a card is untrusted input).
MAX_PLAN_COLUMNS = 100_000
MAX_PLAN_LEVELS = 1_000_000


def level_text(value: Any) -> str:
    """The text of a raw categorical value: the level's name everywhere (card, names, ONNX)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an integer column read through a float (pandas with gaps)
    return str(value)


def level_order(raw_type: str, levels: Iterable[str]) -> list[str]:
    """`levels` (texts) in the natural order of `raw_type`."""
    if raw_type == "int":
        return sorted(levels, key=int)
    if raw_type == "bool":
        return sorted(levels, key=lambda text: text == "true")
    return sorted(levels)


def encoded_name(column: str, suffix: str) -> str:
    """`column[suffix]`: the name of one encoded column (a level, OTHER or MISSING)."""
    return f"{column}[{suffix}]"


@dataclass(frozen=True)
class ColumnPlan:
    """One raw feature column and how it is encoded."""

    name: str
    kind: str  # NUMERIC or CATEGORICAL
    raw_type: str  # one of RAW_TYPES
    levels: tuple[str, ...] = ()  # categorical: kept levels, natural order; [0] the reference
    other: tuple[str, ...] = ()  # categorical: seen levels folded into OTHER
    fill: float | str | None = None  # the imputed value (mean/median, or a level); None: none
    indicator: bool = False  # a `name[(missing)]` column follows
    missing_count: int = 0  # missing cells seen in the training data

    @property
    def encoded_names(self) -> list[str]:
        """The model columns this raw column becomes, in order."""
        if self.kind == NUMERIC:
            names = [self.name]
        else:
            names = [encoded_name(self.name, level) for level in self.levels[1:]]
            if self.other:
                names.append(encoded_name(self.name, OTHER))
        if self.indicator:
            names.append(encoded_name(self.name, MISSING))
        return names

    @property
    def width(self) -> int:
        return len(self.encoded_names)

    def code(self) -> dict[str, int]:
        """Categorical: level text -> its encoded column within this column's part (-1: the
        reference, all zeros). Folded levels map to OTHER's column."""
        codes = {level: index - 1 for index, level in enumerate(self.levels)}
        other = len(self.levels) - 1
        codes.update({level: other for level in self.other})
        return codes


@dataclass(frozen=True)
class TablePlan:
    """Every raw feature column, in the order of the data, and the policies that built them."""

    columns: tuple[ColumnPlan, ...]
    missing: str = "error"
    na_values: tuple[str, ...] = ()
    max_levels: int = 0
    unknown_level: str | None = None  # decided at export; None in a checkpoint
    notes: tuple[str, ...] = field(default=(), compare=False)  # what the scan decided, said

    @property
    def raw_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def encoded_names(self) -> list[str]:
        return [name for column in self.columns for name in column.encoded_names]

    @property
    def categorical(self) -> list[ColumnPlan]:
        return [column for column in self.columns if column.kind == CATEGORICAL]

    @property
    def trivial(self) -> bool:
        """True when the encoding is the identity: every column numeric, nothing imputed.

        Such models keep the plain matrix input; the others take one input per raw column.
        """
        return all(c.kind == NUMERIC and c.fill is None and not c.indicator for c in self.columns)

    def with_unknown_level(self, policy: str) -> TablePlan:
        if policy not in UNKNOWN_LEVEL_POLICIES:
            raise ValueError(
                f"unknown-level policy {policy!r}; expected one of "
                f"{', '.join(UNKNOWN_LEVEL_POLICIES)}"
            )
        return replace(self, unknown_level=policy)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (checkpoint key "table", card key "table")."""
        return {
            "columns": [_column_dict(column) for column in self.columns],
            "missing": self.missing,
            "na_values": list(self.na_values),
            "max_levels": self.max_levels,
            "unknown_level": self.unknown_level,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, value: Any) -> TablePlan:
        """A plan from `to_dict`'s values; anything malformed is a ValueError saying what."""
        _expect(isinstance(value, Mapping), "the table plan is not an object")
        columns = value.get("columns")
        _expect(
            isinstance(columns, list) and 0 < len(columns) <= MAX_PLAN_COLUMNS,
            "the table plan's columns are not a non-empty list",
        )
        plan = cls(
            columns=tuple(_column_from(item) for item in columns),
            missing=_choice(value.get("missing"), MISSING_POLICIES, "missing"),
            na_values=tuple(_texts(value.get("na_values", []), "na_values")),
            max_levels=_count(value.get("max_levels", 0), "max_levels"),
            unknown_level=(
                None
                if value.get("unknown_level") is None
                else _choice(value["unknown_level"], UNKNOWN_LEVEL_POLICIES, "unknown_level")
            ),
        )
        names = plan.raw_names
        _expect(len(set(names)) == len(names), "the table plan names a column twice")
        return plan

    @classmethod
    def from_json(cls, text: str) -> TablePlan:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise ValueError(f"the table plan is not JSON ({error.msg})") from error


def numeric_plan(names: Sequence[str]) -> TablePlan:
    """The identity plan of numeric columns (what every model before tables had)."""
    return TablePlan(tuple(ColumnPlan(name, NUMERIC, "float") for name in names))


def _column_dict(column: ColumnPlan) -> dict[str, Any]:
    return {
        "name": column.name,
        "kind": column.kind,
        "raw_type": column.raw_type,
        "levels": list(column.levels),
        "other": list(column.other),
        "fill": column.fill,
        "indicator": column.indicator,
        "missing_count": column.missing_count,
    }


def _column_from(item: Any) -> ColumnPlan:
    _expect(isinstance(item, Mapping), "a table plan column is not an object")
    name = item.get("name")
    _expect(isinstance(name, str) and name != "", "a table plan column has no name")
    kind = _choice(item.get("kind"), KINDS, f"column {name!r} kind")
    raw_type = _choice(item.get("raw_type"), RAW_TYPES, f"column {name!r} raw_type")
    levels = tuple(_texts(item.get("levels", []), f"column {name!r} levels"))
    other = tuple(_texts(item.get("other", []), f"column {name!r} other"))
    fill = item.get("fill")
    if kind == CATEGORICAL:
        _expect(len(levels) >= 1, f"categorical column {name!r} has no levels")
        _expect(
            len(set(levels + other)) == len(levels) + len(other),
            f"categorical column {name!r} names a level twice",
        )
        _expect(
            fill is None or fill in levels or fill in other,
            f"categorical column {name!r} fills with an unknown level",
        )
    else:
        _expect(not levels and not other, f"numeric column {name!r} has levels")
        _expect(
            fill is None
            or (
                isinstance(fill, int | float) and not isinstance(fill, bool) and math.isfinite(fill)
            ),
            f"numeric column {name!r} has a fill that is not a finite number",
        )
        fill = None if fill is None else float(fill)
    indicator = item.get("indicator", False)
    _expect(isinstance(indicator, bool), f"column {name!r} indicator is not true or false")
    return ColumnPlan(
        name,
        kind,
        raw_type,
        levels,
        other,
        fill,
        indicator,
        _count(item.get("missing_count", 0), f"column {name!r} missing_count"),
    )


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _choice(value: Any, allowed: Sequence[str], what: str) -> str:
    _expect(value in allowed, f"{what} is {value!r}; expected one of {', '.join(allowed)}")
    return str(value)


def _texts(value: Any, what: str) -> list[str]:
    _expect(
        isinstance(value, list)
        and len(value) <= MAX_PLAN_LEVELS
        and all(isinstance(text, str) for text in value),
        f"{what} is not a list of texts",
    )
    return list(value)


def _count(value: Any, what: str) -> int:
    _expect(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"{what} is not a count",
    )
    return int(value)
