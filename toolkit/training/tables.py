"""Training on raw tables: the scan before the data pass, and the plan every process shares.

When the features hold categorical columns (text, booleans, dictionaries, or integers
named with --categorical) or missing values are filled (--missing mean/median), the
columns the model sees are not the file's: a `TablePlan` (toolkit/columns.py) says how
they are encoded. It is built before the main pass from one scan of the raw columns
(toolkit/io/scan.py): each process scans its own piece, every scan goes to every process
(in rank order) and each merges them alike, so every rank builds the same plan. The
source is then given the plan: its blocks are the encoded columns [encoded features |
targets | weight], and everything downstream (solvers, metrics, inference, the
collinearity message, the summary) works on them unchanged.

A table without categorical columns, read with the default options, is today's numeric
table: no scan, no plan, the early read (toolkit/training/early.py) as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.columns import CATEGORICAL, TablePlan, numeric_plan
from toolkit.errors import CheckpointError

if TYPE_CHECKING:
    from toolkit.io import DataSource
    from toolkit.io.tables_plan import TableOptions
    from toolkit.training.config import TrainConfig
    from toolkit.training.distributed import Group

# Columns named in a dropped-rows note before "and N more".
NOTE_COLUMNS = 10


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
    from toolkit.io.kinds import feature_kinds

    if not options.plain:
        return False
    return all(kind.kind != CATEGORICAL for kind in feature_kinds(source, options))


def needs_scan(source: DataSource, options: TableOptions) -> bool:
    """Whether the plan depends on the data: levels to collect or fills to compute."""
    from toolkit.io.kinds import feature_kinds

    if options.missing in ("mean", "median") or options.indicator:
        return True
    return any(kind.kind == CATEGORICAL for kind in feature_kinds(source, options))


def prepare(
    config: TrainConfig, source: DataSource, group: Group, stored: TablePlan | None = None
) -> Prepared:
    """Scan (when the plan depends on the data), build the plan, give it to `source`.

    `stored`: the plan of the run being resumed, used as it is (no scan). Every process
    calls this at the same point; an error on any is raised on all.
    """
    options = group.agree(lambda: options_of(config))
    if group.agree(lambda: is_plain(source, options)):
        return Prepared()
    if stored is not None:
        plan = stored
    elif group.agree(lambda: needs_scan(source, options)):
        plan = _scanned_plan(config, source, group, options)
    else:  # numeric columns read with --missing drop or --na-values: nothing to learn
        plan = _numeric_plan(source, options)
    group.agree(lambda: give_plan(source, plan, options))
    return Prepared(plan, list(plan.notes))


def _scanned_plan(
    config: TrainConfig, source: DataSource, group: Group, options: TableOptions
) -> TablePlan:
    from toolkit.io.scan import ScanStats, scan
    from toolkit.io.tables_plan import build_plan

    pieces = source.pieces(group.rank, group.world)
    mine = group.agree(lambda: scan(source, pieces, config.chunk_rows, options))
    stats = ScanStats.merge(group.gather(mine))  # in rank order: the same on every rank
    return group.agree(lambda: build_plan(stats, options, list(source.feature_names)))


def _numeric_plan(source: DataSource, options: TableOptions) -> TablePlan:
    from dataclasses import replace

    plan = numeric_plan(list(source.feature_names))
    return replace(plan, missing=options.missing, na_values=tuple(options.na_values))


def give_plan(source: DataSource, plan: TablePlan, options: TableOptions) -> None:
    """From now on `source`'s blocks are `plan`'s encoded columns (the io tier's glue)."""
    source.use_plan(plan, options)


def dropped_note(dropped: dict[str, Any] | None) -> list[str]:
    """The note on rows dropped for missing values (`--missing drop`), totalled over
    processes: {"rows": n, "columns": {name: cells}}."""
    if not dropped or not dropped.get("rows"):
        return []
    rows = int(dropped["rows"])
    cells = [(name, int(n)) for name, n in dropped.get("columns", {}).items() if n]
    shown = ", ".join(f"{name!r} {n:,}" for name, n in cells[:NOTE_COLUMNS])
    if len(cells) > NOTE_COLUMNS:
        shown += f" and {len(cells) - NOTE_COLUMNS} more columns"
    return [f"dropped {rows:,} row{'s' if rows != 1 else ''} with missing values: {shown}"]


def add_dropped(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Every process's dropped-row counts, added (column order: the first seen)."""
    total: dict[str, Any] = {"rows": 0, "columns": {}}
    for part in parts:
        if not part:
            continue
        total["rows"] += int(part.get("rows", 0))
        for name, n in part.get("columns", {}).items():
            total["columns"][name] = total["columns"].get(name, 0) + int(n)
    return total if total["rows"] else None


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
