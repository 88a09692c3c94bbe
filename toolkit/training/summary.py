"""How a finished training run is shown: a human summary, or one JSON object."""

from __future__ import annotations

import math
from typing import Any

from toolkit.training.model import equations
from toolkit.training.train import TrainResult


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
    }
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
            f"  solved by {details['method']}; condition number of the scaled Gram matrix: "
            f"{details['condition_number']:.3g}"
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
    lines.append(f"  checkpoint: {result.checkpoint}")
    return "\n".join(lines)


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
