"""From a scan of the raw table to its `TablePlan`: the options, and the plan's rules.

`TableOptions` gathers what the user chose (--categorical, --missing, --na-values,
--max-levels, --missing-indicator) and refuses impossible combinations. `build_plan`
turns a `ScanStats` (toolkit/io/scanner.py) into the plan every tier reads
(toolkit/columns.py): levels in natural order, the rarest folded into "(other)" past
`max_levels`, the fills of `mean`/`median`, and the indicators, with notes saying what
was decided.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from toolkit import defaults
from toolkit.columns import CATEGORICAL, OTHER, ColumnPlan, TablePlan, level_order
from toolkit.errors import DataError, UsageError
from toolkit.io.scanner import ColumnStats, ScanStats

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


@dataclass(frozen=True)
class TableOptions:
    """How raw columns are read and encoded: the user's choices, validated."""

    categorical: tuple[str, ...] = ()  # columns read as categories whatever their type
    missing: str = defaults.MISSING  # one of defaults.MISSING_POLICIES
    na_values: tuple[str, ...] = defaults.NA_VALUES  # texts that are missing, besides blanks
    max_levels: int = defaults.MAX_LEVELS
    indicator: bool = False  # --missing-indicator: a `col[(missing)]` column per gap column

    def __post_init__(self) -> None:
        if self.missing not in defaults.MISSING_POLICIES:
            raise UsageError(
                f"--missing {self.missing!r} is not a policy; expected one of "
                f"{', '.join(defaults.MISSING_POLICIES)}."
            )
        if self.indicator and self.missing in ("error", "drop"):
            raise UsageError(
                f"--missing-indicator needs --missing mean or median (with --missing "
                f"{self.missing} no missing value is left to indicate)."
            )
        if self.max_levels < 2:
            raise UsageError(
                f"--max-levels {self.max_levels}: expected at least 2 (a reference level "
                "and one more)."
            )
        for flag, names in (("--categorical", self.categorical), ("--na-values", self.na_values)):
            duplicates = sorted({c for c in names if names.count(c) > 1})
            if duplicates:
                raise UsageError(f"{flag} names {duplicates[0]!r} more than once.")
        if "" in self.na_values:
            raise UsageError("--na-values: a blank token; blank cells are missing already.")

    @property
    def plain(self) -> bool:
        """Whether the options change nothing for an all-numeric table (today's fast path)."""
        return (
            not self.categorical
            and self.missing == "error"
            and not self.na_values
            and not self.indicator
        )


def build_plan(stats: ScanStats, options: TableOptions, feature_names: Sequence[str]) -> TablePlan:
    """The plan of `feature_names` (raw, in order) from the scan's statistics.

    Deterministic: levels in `columns.level_order`; past `options.max_levels` distinct
    levels the `max_levels - 1` most frequent are kept (ties: natural order) and the
    rest share "(other)"; under mean/median numeric columns are filled with that
    statistic of their observed values and categorical ones with their most frequent
    level (ties: natural order first); with `options.indicator` every feature column
    that had a missing value gets a `col[(missing)]` column. `options.missing ==
    "error"` with missing values in the scan raises the DataError counting them, as
    do missing targets or weights under mean/median.
    """
    if options.missing == "error" and stats.missing_rows:
        raise stats.missing_error(stats.name)
    if options.missing in ("mean", "median"):
        _check_targets(stats)
    notes: list[str] = []
    columns = tuple(_column_plan(stats.columns[name], options, notes) for name in feature_names)
    if options.indicator:
        marked = [c.name for c in columns if c.indicator]
        notes.append(
            "missing-value indicators (1 where the value was missing) for the columns "
            f"that had missing values in training: {', '.join(map(repr, marked)) or 'none'}."
        )
    return TablePlan(
        columns,
        options.missing,
        tuple(options.na_values),
        options.max_levels,
        None,
        tuple(notes),
    )


def _check_targets(stats: ScanStats) -> None:
    from toolkit.io.rows import first_rows_text

    bad = [c for c in stats.columns.values() if c.role != "feature" and c.missing]
    if bad:
        parts = [
            f"{c.role} {c.name!r} has {c.missing} missing value{'s' if c.missing != 1 else ''} "
            f"(first rows: {first_rows_text(c.first_missing)})"
            for c in bad
        ]
        raise DataError(
            f"{'; '.join(parts)}. Targets and weights are never imputed: choose "
            "--missing drop, or fill them in."
        )


def _column_plan(stats: ColumnStats, options: TableOptions, notes: list[str]) -> ColumnPlan:
    """One feature column's plan (see `build_plan`); notes said go to `notes`."""
    impute = options.missing in ("mean", "median")
    indicator = options.indicator and stats.missing > 0
    if stats.kind != CATEGORICAL:
        fill = None
        if impute:
            if stats.count == 0:
                raise DataError(
                    f"column {stats.name!r}: every value is missing; there is no "
                    f"{options.missing} to fill with. Leave the column out with --features."
                )
            fill = stats.mean if options.missing == "mean" else stats.median
            if options.missing == "median" and not stats.median_exact:
                sample = 0 if stats.sketch_value is None else len(stats.sketch_value)
                notes.append(
                    f"column {stats.name!r}: the median ({fill!r}) is approximate: of a "
                    f"uniform sample of {sample:,} of its {stats.count:,} values."
                )
        if fill is not None and stats.missing:
            notes.append(_fill_note(stats, options.missing, fill))
        return ColumnPlan(
            stats.name, stats.kind, stats.raw_type, (), (), fill, indicator, stats.missing
        )
    if not stats.levels:
        raise DataError(
            f"column {stats.name!r}: every value is missing; a categorical column needs at "
            "least one level. Leave it out with --features."
        )
    raw_type = _integer_texts(stats, options)
    ordered = level_order(raw_type, stats.levels)
    rank = {level: position for position, level in enumerate(ordered)}
    by_count = sorted(ordered, key=lambda level: (-stats.levels[level], rank[level]))
    if len(ordered) > options.max_levels:
        kept_set = set(by_count[: options.max_levels - 1])
        kept = tuple(level for level in ordered if level in kept_set)
        other = tuple(level for level in ordered if level not in kept_set)
        notes.append(
            f"column {stats.name!r}: {len(ordered)} levels; kept the {len(kept)} most "
            f"frequent, {len(other)} share {OTHER!r} (--max-levels {options.max_levels})."
        )
    else:
        kept, other = tuple(ordered), ()
    if len(ordered) == 1:
        notes.append(
            f"column {stats.name!r}: one level only ({ordered[0]!r}), the reference: it adds "
            "no column to the model."
        )
    fill = by_count[0] if impute else None  # the mode; ties: natural order first
    if fill is not None and stats.missing:
        notes.append(_fill_note(stats, "most frequent level", fill))
    return ColumnPlan(
        stats.name, CATEGORICAL, raw_type, kept, other, fill, indicator, stats.missing
    )


def _integer_texts(stats: ColumnStats, options: TableOptions) -> str:
    """The raw type of a categorical column: "int" for a --categorical CSV column whose
    every level is an integer written plainly ("7", "-12"; not "007"), so that its levels
    sort by value as statsmodels' C(year) sorts them; else the type the scan saw."""
    if stats.raw_type != "string" or stats.name not in options.categorical:
        return stats.raw_type
    plain = all(_INTEGER.fullmatch(level) for level in stats.levels)
    return "int" if plain else stats.raw_type


def _fill_note(stats: ColumnStats, what: str, fill: float | str) -> str:
    cells = f"{stats.missing} missing value{'s' if stats.missing != 1 else ''}"
    return f"column {stats.name!r}: {cells} filled with its {what}, {fill!r}."


def needs_plan(source: Any, options: TableOptions) -> bool:
    """Whether `source` must be scanned and planned before training: some feature is
    categorical, or the options do something to missing values. Else its blocks are
    today's numbers, read on the fast path (a plan would be trivial)."""
    if not options.plain:
        return True
    return any(kind.kind == CATEGORICAL for kind in source.kinds(options))


def plan_source(source: Any, options: TableOptions, rows: int = defaults.CHUNK_ROWS) -> TablePlan:
    """Scan all of `source` in one process and build its plan (`scan` + `build_plan`)."""
    from toolkit.io.scanner import scan

    stats = scan(source, None, rows, options)
    return build_plan(stats, options, source.raw_feature_names)
