"""What a finished training run produced, and how it is shown, judged and saved.

`TrainResult` is the run's outcome; `to_text` and `to_json` show it; `optimality_gap`
compares an iterative solution with the exact one; `checkpoint_payload` is what the
checkpoint stores (its layout is described in `toolkit.training.checkpoint`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.coefficients import table_lines
from toolkit.errors import CollinearityError
from toolkit.training import checkpoint, exact
from toolkit.training.metrics import summarize
from toolkit.training.model import ModelSpec, equations, state_dict
from toolkit.training.rows import Split, combine_r, combine_sums, group_metric_sums

if TYPE_CHECKING:
    from toolkit.columns import TablePlan
    from toolkit.io.planned import Dropped
    from toolkit.training.distributed import Group

# A float32 model whose training R^2 trails the float64 solution's by more than this gets
# a warning: rounding, not the data, is costing accuracy.
ROUNDING_COST_R2 = 1e-6
# The iterative solvers' promise (README, tests/training/test_convergence.py): their
# training R^2 ends within this of the exact fit's; further is a warning.
OPTIMALITY_TOLERANCE_R2 = 1e-5
# Plain numeric columns a table model's summary names before "and N more".
SUMMARY_COLUMNS = 10


@dataclass
class TrainResult:
    """What a run produced; `to_text` and `to_json` show it."""

    spec: ModelSpec
    weight: np.ndarray  # (t, d) float64, exactly as saved in the model's dtype
    bias: np.ndarray  # (t,) float64; zeros without an intercept
    solver: str
    device: str
    checkpoint: Path
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    details: dict[str, Any]
    data: dict[str, Any]
    optimality_gap: dict[str, Any] | None = None
    # An iterative run's losses at epochs 0, 1, ...: {"train": [...], "val": [...]}, standardized.
    history: dict[str, list[float]] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rank: int = 0  # this process's rank under torchrun; only rank 0 prints and writes
    inference: dict[str, Any] | None = None  # toolkit.training.inference; None: not computed
    moments: exact.Moments | None = None  # of the training rows: partial_fit goes on from them
    table: TablePlan | None = None  # how raw columns became the features (None: numeric)

    def __post_init__(self) -> None:
        # An iterative run's details arrive with its losses; the checkpoint keeps them apart.
        if self.history is None:
            self.history = self.details.pop("history", None)


def to_json(result: TrainResult) -> dict[str, Any]:
    """The `--json` object. Non-finite floats become null so the output is strict JSON."""
    payload: dict[str, Any] = {
        "weights": result.weight.tolist(),
        "bias": result.bias.tolist(),
        "features": list(result.spec.feature_names),
        "targets": list(result.spec.target_names),
        "equations": equations(result.spec, result.weight, result.bias, max_terms=10**9),
        "solver": result.solver,
        "device": result.device,
        "dtype": result.spec.dtype,
        "intercept": result.spec.intercept,
        "checkpoint": str(result.checkpoint),
        "metrics": result.metrics,
        "hyperparameters": result.hyperparameters,
        "details": result.details,
        "data": result.data,
        "notes": result.notes,
        "seconds": result.seconds,
        "inference": result.inference,
    }
    if result.table is not None:
        payload["table"] = result.table.to_dict()
    if result.solver != "exact":
        payload["optimality_gap"] = result.optimality_gap
    return _strict(payload)


def to_text(result: TrainResult) -> str:
    """The human summary printed after training."""
    data = result.data
    lines = [
        f"trained {result.spec.n_targets} target{'s' if result.spec.n_targets > 1 else ''} on "
        f"{data['train_rows']:,} rows of {data['source']} with --solver {result.solver} "
        f"({result.device}, {result.spec.dtype}) in {result.seconds:.2f} s",
        "",
    ]
    lines += table_summary(result.table)
    lines += ["  " + line for line in equations(result.spec, result.weight, result.bias)]
    lines += ["", f"  {'':7}{'MSE':>12}{'RMSE':>12}{'MAE':>12}{'R^2':>12}"]
    for split in ("train", "val"):
        metrics = result.metrics[split]
        if metrics is None:
            lines.append(f"  {split:7}{'(no validation split)':>48}")
            continue
        values = [metrics["mse"], metrics["rmse"], metrics["mae"], metrics["r2"]]
        lines.append(f"  {split:7}" + "".join(_cell(v) for v in values))
    lines.append("")
    details = result.details
    if result.solver == "exact":
        lines.append(
            f"  solved by {details['method']}{_refined(details)}; condition number of the "
            f"scaled Gram matrix: {details['condition_number']:.3g}"
        )
    else:
        stop = (
            f", stopped early (best epoch {details['best_epoch']})"
            if details["stopped_early"]
            else ""
        )
        lines.append(
            f"  epochs: {details['epochs_run']}{stop}; monitored {details['monitored']} loss"
        )
        gap = result.optimality_gap
        if gap is not None:
            lines.append(
                f"  optimality gap vs exact on the training rows: R^2 {_plain(gap['r2'])} vs "
                f"{_plain(gap['r2_exact'])} (gap {_plain(gap['r2_gap'], '.2e')}), "
                f"MSE {_plain(gap['mse'], '.6g')} vs {_plain(gap['mse_exact'], '.6g')}"
            )
    if result.inference is not None:
        lines += ["", *table_lines(result.inference), ""]
    lines.append(f"  checkpoint: {result.checkpoint}")
    return "\n".join(lines)


def table_summary(plan: TablePlan | None) -> list[str]:
    """The raw columns of a table model: each encoded one on a line (kind, levels, fill),
    the plain numeric ones together (none: [])."""
    if plan is None:
        return []
    lines = [f"  raw columns ({len(plan.columns)}, --missing {plan.missing}):"]
    plain = [c.name for c in plan.columns if c.kind == "numeric" and c.fill is None]
    if plain:
        shown = ", ".join(plain[:SUMMARY_COLUMNS])
        more = f" and {len(plain) - SUMMARY_COLUMNS} more" if len(plain) > SUMMARY_COLUMNS else ""
        lines.append(f"    numeric as they are: {shown}{more}")
    for column in plan.columns:
        if column.name not in plain:
            lines.append(f"    {column.name}: {_column_text(column)}")
    return [*lines, ""]


def _column_text(column: Any) -> str:
    if column.kind == "categorical":
        levels = len(column.levels) + len(column.other)
        what = f"categorical {column.raw_type}, {levels} level{'s' if levels != 1 else ''}"
        what += f", reference {column.levels[0]!r}"
        if column.other:
            what += f", {len(column.other)} folded into (other)"
    else:
        what = f"numeric {column.raw_type}"
    if column.missing_count:
        what += f", {column.missing_count:,} missing"
    if isinstance(column.fill, str):
        what += f" filled with {column.fill!r}"
    elif column.fill is not None:
        what += f" filled with {column.fill:.6g}"
    if column.indicator:
        what += ", indicator column"
    return what


def _cell(value: float | None) -> str:
    return f"{'n/a':>12}" if value is None else f"{value:>12.6g}"


def _plain(value: float | None, spec: str = ".6f") -> str:
    return "n/a" if value is None else format(value, spec)


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------
# Judged and saved


def optimality_gap(
    group: Group,
    split: Split,
    spec: ModelSpec,
    l2: float,
    metrics: dict[str, Any],
    notes: list[str],
) -> dict[str, Any] | None:
    """How far an iterative solution is from the exact one on the same training rows."""
    rows = split.train
    try:
        fit = exact.solve(
            split.moments,
            spec.n_features,
            spec.feature_names,
            spec.intercept,
            l2,
            rows.pairs,
            combine_r(group),
            combine_sums(group),
        )
    except CollinearityError as error:
        notes.append(f"no optimality gap: the exact solution is not unique ({error})")
        return None
    sums = group_metric_sums(
        group, rows, fit.weight, fit.bias, split.train_shift, unit=split.target_unit
    )
    best = summarize(sums, spec.target_names)
    assert best is not None  # the same rows the model's own metrics came from
    model_metrics = metrics["train"]
    return {
        "r2": model_metrics["r2"],
        "r2_exact": best["r2"],
        "r2_gap": None if best["r2"] is None else best["r2"] - model_metrics["r2"],
        "mse": model_metrics["mse"],
        "mse_exact": best["mse"],
        "mse_excess": model_metrics["mse"] - best["mse"],
    }


def rounding_cost(spec: ModelSpec, saved: Any, wide: Any) -> list[str]:
    """A warning when the model's dtype costs accuracy against float64 (large offsets)."""
    if wide is None or wide["r2"] is None or saved["r2"] is None:
        return []
    if wide["r2"] - saved["r2"] <= ROUNDING_COST_R2:
        return []
    return [
        f"warning: {spec.dtype} costs accuracy here: the saved model's training R^2 is "
        f"{saved['r2']:.9g} (MSE {saved['mse']:.6g}) against {wide['r2']:.9g} (MSE "
        f"{wide['mse']:.6g}) with float64 weights and arithmetic; large offsets or scales "
        "lose digits in float32. Train with --dtype float64 to keep them."
    ]


def far_from_optimum(gap: dict[str, Any] | None, notes: list[str]) -> list[str]:
    """A loud warning when an iterative run stopped short of the exact optimum."""
    if gap is None or gap["r2_gap"] is None or abs(gap["r2_gap"]) <= OPTIMALITY_TOLERANCE_R2:
        return []
    if any("costs accuracy here" in note for note in notes):
        return []  # the dtype's rounding, already explained, is what costs the accuracy
    return [
        f"warning: the model is short of the least-squares optimum: training R^2 "
        f"{gap['r2']:.9g} against the exact solution's {gap['r2_exact']:.9g} (gap "
        f"{gap['r2_gap']:.2e}, more than {OPTIMALITY_TOLERANCE_R2:g}). Allow more --epochs or "
        "--patience, or use --solver exact."
    ]


def data_info(
    name: str, sha256: str, split: Split, processes: int, dropped: Dropped | None
) -> dict[str, Any]:
    """The checkpoint's and --json's `data`: what was trained on."""
    return {
        "source": name,
        "sha256": sha256,
        "rows": split.n_train + split.n_val,
        "train_rows": split.n_train,
        "val_rows": split.n_val,
        "val_fraction": split.fraction,
        "processes": processes,
        **({"dropped": {"rows": dropped.rows, "cells": dropped.cells}} if dropped else {}),
    }


def checkpoint_payload(result: TrainResult, seed: int, sample: np.ndarray) -> dict[str, Any]:
    """The checkpoint of a finished run: the model, how it was trained, on what, how well."""
    import platform

    import pyarrow

    import toolkit
    from toolkit.training.device import torch_version

    spec = result.spec
    sample_array = np.ascontiguousarray(sample[:, : spec.n_features], dtype=np.float64)
    return {
        "format": checkpoint.FORMAT,
        "format_version": checkpoint.FORMAT_VERSION,
        "spec": spec.to_dict(),
        "state_dict": state_dict(spec, result.weight, result.bias),
        "training": {
            "solver": result.solver,
            "hyperparameters": dict(result.hyperparameters),
            "seed": seed,
            "device": result.device,
            **{k: v for k, v in result.details.items() if v is not None},
        },
        "data": dict(result.data),
        "metrics": result.metrics,
        "optimality_gap": result.optimality_gap,
        "history": result.history,
        "inference": result.inference,
        **({"table": result.table.to_dict()} if result.table is not None else {}),
        "parity_sample": sample_array,
        "versions": {
            "toolkit": toolkit.__version__,
            "torch": torch_version(),
            "numpy": np.__version__,
            "pyarrow": pyarrow.__version__,
            "python": platform.python_version(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _refined(details: dict[str, Any]) -> str:
    passes = details.get("refinement_passes") or 0
    return f", refined in {passes} pass{'es' if passes > 1 else ''}" if passes else ""
