"""Training on raw tables: the scan before the data pass, and the plan every process shares.

When the features hold categorical columns (text, booleans, dictionaries, or integers
named with --categorical) or missing values are filled (--missing mean/median), the
columns the model sees are not the file's: a `TablePlan` (toolkit/columns.py) says how
they are encoded. It is built before the main pass from one scan of the raw columns
(toolkit/io/scanner.py): each process scans its own piece, every scan goes to every process
(in rank order) and each merges them alike, so every rank builds the same plan. The
source is then given the plan: its blocks are the encoded columns [encoded features |
targets | weight], and everything downstream (solvers, metrics, inference, the
collinearity message, the summary) works on them unchanged.

A table without categorical columns, read with the default options, is today's numeric
table: no scan, no plan, the early read (toolkit/training/early.py) as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.columns import CATEGORICAL, TablePlan, numeric_plan
from toolkit.errors import CheckpointError, DataError
from toolkit.io.names import is_number

if TYPE_CHECKING:
    from toolkit.io import DataSource
    from toolkit.io.planned import Dropped
    from toolkit.io.tables_plan import TableOptions
    from toolkit.training.config import TrainConfig
    from toolkit.training.distributed import Group


_TEXT_WARNING = "is encoded as categorical"
_FLAT = re.compile(r"^feature '(.+?)' is (?:constant|zero in every row)")


@dataclass
class Prepared:
    """What the scan decided: the plan (None for a plain numeric table) and its notes."""

    plan: TablePlan | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def table(self) -> TablePlan | None:
        """The plan a checkpoint stores: a non-trivial one only."""
        return None if self.plan is None or self.plan.trivial else self.plan


def options_of(config: TrainConfig) -> TableOptions:
    """The io tier's table options from the run's settings."""
    from toolkit.io.tables_plan import TableOptions

    return TableOptions(
        categorical=tuple(config.categorical),
        missing=config.missing,
        na_values=tuple(config.na_values),
        max_levels=config.max_levels,
        indicator=config.missing_indicator,
    )


def option_values(config: TrainConfig) -> dict[str, Any]:
    """The settings a plan was built with, by option: what `--resume` must share."""
    return {
        "categorical": list(config.categorical),
        "missing": config.missing,
        "missing_indicator": config.missing_indicator,
        "na_values": list(config.na_values),
        "max_levels": config.max_levels,
    }


def is_plain(source: DataSource, options: TableOptions) -> bool:
    """Whether `source` is read as today: default options and numeric features only."""
    if not options.plain:
        return False
    return all(kind.kind != CATEGORICAL for kind in source.kinds(options))


def needs_scan(source: DataSource, options: TableOptions) -> bool:
    """Whether the plan depends on the data: levels to collect or fills to compute."""
    if options.missing in ("mean", "median") or options.indicator:
        return True
    return any(kind.kind == CATEGORICAL for kind in source.kinds(options))


def prepare(
    config: TrainConfig,
    source: DataSource,
    group: Group,
    stored: TablePlan | None = None,
    plain: bool | None = None,
) -> tuple[DataSource, Prepared]:
    """Scan (when the plan depends on the data), build the plan; the source reading
    through it (`source` itself for a plain numeric table) and what was decided.

    `stored`: the plan of the run being resumed, used as it is (no scan); `plain`:
    `is_plain`'s answer when already known. Every process calls this at the same point;
    an error on any is raised on all.
    """
    options = group.agree(lambda: options_of(config))
    if plain is None:
        plain = group.agree(lambda: is_plain(source, options))
    if plain:
        return source, Prepared()
    if stored is not None:
        plan = stored
    elif group.agree(lambda: needs_scan(source, options)):
        plan = _scanned_plan(config, source, group, options)
    else:  # numeric columns read with --missing drop or --na-values: nothing to learn
        plan = _numeric_plan(source, options)
    group.agree(lambda: refuse_single_levels(plan, source.name))
    planned = group.agree(lambda: source.with_plan(plan))
    notes = [*plan.notes, *numbers_as_text(plan, config.categorical)]
    return planned, Prepared(plan, notes + no_intercept_warning(plan, config.intercept))


def refuse_single_levels(plan: TablePlan, name: str) -> None:
    """A categorical column with one level (and no indicator) encodes to no column at all:
    it would vanish from the model silently. R's `lm` refuses such a factor; so does this."""
    for column in plan.categorical:
        if len(column.levels) + len(column.other) == 1 and not column.indicator:
            raise DataError(
                f"{name}: column {column.name!r} holds one level ({column.levels[0]!r}) in "
                "every row, so it cannot explain anything (a categorical "
                "column needs 2 levels). Leave it out with --features."
            )


def no_intercept_warning(plan: TablePlan, intercept: bool) -> list[str]:
    """Without an intercept, treatment coding pins each reference level's effect at 0,
    where R's `lm(y ~ 0 + f)` would give every level of the first factor a column."""
    if intercept or not plan.categorical:
        return []
    references = ", ".join(f"{c.name!r} ({c.levels[0]!r})" for c in plan.categorical)
    return [
        "warning: without an intercept, the reference levels of the categorical columns, "
        f"{references}, have no column: their effect is fixed at 0 (R's lm(y ~ 0 + f) "
        "would give every level of the first factor its own column). Keep the intercept "
        "to fit every level."
    ]


def numbers_as_text(plan: TablePlan, named: tuple[str, ...]) -> list[str]:
    """A warning for each text column not named with --categorical whose levels are mostly
    numbers: a typo in a numeric column ('abc', '1,5') makes the whole column categorical."""
    warnings = []
    for column in plan.categorical:
        if column.raw_type != "string" or column.name in named:
            continue
        levels = [*column.levels, *column.other]
        texts = [level for level in levels if not is_number(level)]
        if texts and len(texts) * 2 <= len(levels):
            warnings.append(
                f"warning: column {column.name!r} {_TEXT_WARNING} because some of "
                f"its values are not numbers (such as {texts[0]!r}), though "
                f"{len(levels) - len(texts)} of its {len(levels)} distinct values are. If it "
                "is numeric, fix those cells or list them in --na-values."
            )
    return warnings


def with_warnings(error: DataError, prepared: Prepared) -> DataError:
    """`error` with what the table explains of it, if anything: the text-column warnings
    (`numbers_as_text`: a typo that made a column categorical often makes the fit fail,
    too few rows for its dummies), and for a level's column that is constant, that the
    level is in no training row. (Notes are not shown after an error.)"""
    found = [note.removeprefix("warning: ") for note in prepared.notes if _TEXT_WARNING in note]
    plan = prepared.table
    flat = _FLAT.search(str(error)) if plan is not None else None
    if flat is not None and flat.group(1) not in plan.raw_names:  # type: ignore[union-attr]
        found.insert(
            0,
            f"{flat.group(1)!r} is the 0/1 column of one level, and no training row holds "
            "that level, or every one does: the validation split may hold out all its rows "
            "(train with --val-fraction 0) or the level is in none of the rows.",
        )
    if not found:
        return error
    hinted = type(error)(f"{error} Note: {' '.join(found)}")
    hinted.quiet = getattr(error, "quiet", False)  # type: ignore[attr-defined]
    return hinted


def _scanned_plan(
    config: TrainConfig, source: DataSource, group: Group, options: TableOptions
) -> TablePlan:
    from toolkit.io.scanner import ScanStats, scan
    from toolkit.io.tables_plan import build_plan

    pieces = source.pieces(group.rank, group.world)
    mine = group.agree(lambda: scan(source, pieces, config.chunk_rows, options))
    stats = ScanStats.merge(group.gather(mine))  # in rank order: the same on every rank
    return group.agree(lambda: build_plan(stats, options, list(source.raw_feature_names)))


def _numeric_plan(source: DataSource, options: TableOptions) -> TablePlan:
    from dataclasses import replace

    plan = numeric_plan(list(source.raw_feature_names))
    return replace(plan, missing=options.missing, na_values=tuple(options.na_values))


def dropped_rows(parts: list[Dropped | None]) -> Dropped | None:
    """What `--missing drop` dropped on every process, added in rank order (None: nothing)."""
    from toolkit.io.planned import Dropped

    total = Dropped.merge([part for part in parts if part is not None])
    return total if total.rows else None


def stored_plan(saved: dict[str, Any] | None, config: TrainConfig, where: str) -> TablePlan | None:
    """The plan a resumed run's saved state holds, checked against this run's options.

    `saved`: the state's `table` entry ({"options": ..., "plan": ...}) or None.
    """
    if not saved:
        if option_values(config) != option_values(_default_config()):
            raise CheckpointError(
                f"cannot resume from {where!r}: it was saved by a run without table options "
                f"(--categorical, --missing, ...), and this run sets "
                f"{_changed({}, option_values(config))}. Rerun with the saved settings, or "
                "drop --resume to start anew."
            )
        return None
    now = option_values(config)
    if saved.get("options") != now:
        raise CheckpointError(
            f"cannot resume from {where!r}: its table was encoded with other options: "
            f"{_changed(saved.get('options') or {}, now)}. Rerun with the saved settings, "
            "or drop --resume to start anew."
        )
    try:
        return TablePlan.from_dict(saved.get("plan"))
    except ValueError as error:
        raise CheckpointError(f"cannot resume from {where!r}: {error}.") from error


def _changed(saved: dict[str, Any], now: dict[str, Any]) -> str:
    defaults = option_values(_default_config())
    parts = []
    for key, value in now.items():
        before = saved.get(key, defaults[key])
        if before != value:
            parts.append(f"--{key.replace('_', '-')} {_shown(before)} (saved) vs {_shown(value)}")
    return "; ".join(parts)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) if value else "(none)"
    return str(value)


def _default_config() -> TrainConfig:
    from toolkit.training.config import TrainConfig

    return TrainConfig()
