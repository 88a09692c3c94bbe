"""From a scan of the raw table to its `TablePlan`: the options, and the plan's rules.

`TableOptions` gathers what the user chose (--categorical, --missing, --na-values,
--max-levels, --missing-indicator) and refuses impossible combinations. `build_plan`
turns a `ScanStats` (toolkit/io/scan.py) into the plan every tier reads
(toolkit/columns.py): levels in natural order, the rarest folded into "(other)" past
`max_levels`, the fills of `mean`/`median`, and the indicators, with notes saying what
was decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit import defaults
from toolkit.errors import UsageError

if TYPE_CHECKING:
    from toolkit.columns import TablePlan
    from toolkit.io.scan import ScanStats


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
        duplicates = sorted({c for c in self.categorical if self.categorical.count(c) > 1})
        if duplicates:
            raise UsageError(f"--categorical names {duplicates[0]!r} more than once.")

    @property
    def plain(self) -> bool:
        """Whether the options change nothing for an all-numeric table (today's fast path)."""
        return (
            not self.categorical
            and self.missing == "error"
            and not self.na_values
            and not self.indicator
        )


def build_plan(
    stats: ScanStats, options: TableOptions, feature_names: Sequence[str]
) -> TablePlan:
    """The plan of `feature_names` (raw, in order) from the scan's statistics.

    Deterministic: levels in `columns.level_order`; past `options.max_levels` distinct
    levels the `max_levels - 1` most frequent are kept (ties: natural order) and the
    rest share "(other)"; under mean/median numeric columns are filled with that
    statistic of their observed values and categorical ones with their most frequent
    level (ties: natural order first); with `options.indicator` every feature column
    that had a missing value gets a `col[(missing)]` column. `options.missing ==
    "error"` with missing values in the scan raises the DataError counting them.
    """
    raise NotImplementedError
