"""toolkit/training/report.py: the summary text and the JSON a finished run is shown as."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from conftest import train_json

from toolkit.training import TrainResult, to_json, to_text
from toolkit.training.model import ModelSpec


def test_summary_shows_metrics_equation_and_note(run):
    result = run("train")
    assert result.exit_code == 0, result.output
    assert "y = 1.0000*x1 + 1.0000*x2 - 1.0000" in result.stdout
    for column in ("MSE", "RMSE", "MAE", "R^2"):
        assert column in result.stdout
    assert "condition number of the scaled Gram matrix: 5.83" in result.stdout
    assert "note: 4 rows are too few to spare a validation split" in result.stderr


def test_json_has_the_documented_keys(run):
    report = train_json(run, "--solver", "sgd")
    for key in (
        "weights",
        "bias",
        "features",
        "targets",
        "solver",
        "device",
        "dtype",
        "checkpoint",
        "metrics",
        "optimality_gap",
    ):
        assert key in report
    assert set(report["metrics"]["train"]) >= {"mse", "rmse", "mae", "r2"}
    assert report["metrics"]["val"] is None
    assert report["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert set(report["optimality_gap"]) >= {"r2", "r2_exact", "r2_gap", "mse", "mse_exact"}


def _result(**changes) -> TrainResult:
    settings = {
        "spec": ModelSpec(("a",), ("y",), True, "float32"),
        "weight": np.array([[2.0]]),
        "bias": np.array([-0.5]),
        "solver": "exact",
        "device": "cpu",
        "checkpoint": Path("out/m.pt"),
        "hyperparameters": {"l2": 0.0},
        "metrics": {
            "train": {"mse": 0.25, "rmse": 0.5, "mae": 0.5, "r2": None, "rows": 4},
            "val": None,
        },
        "details": {"method": "cholesky", "condition_number": 1.0},
        "data": {"source": "d.csv", "train_rows": 4},
        "seconds": 0.5,
    }
    return TrainResult(**{**settings, **changes})


def test_text_summary_of_an_exact_run():
    assert to_text(_result()) == "\n".join(
        [
            "trained 1 target on 4 rows of d.csv with --solver exact (cpu, float32) in 0.50 s",
            "",
            "  y = 2.0000*a - 0.5000",
            "",
            "                  MSE        RMSE         MAE         R^2",
            "  train          0.25         0.5         0.5         n/a",
            "  val                               (no validation split)",
            "",
            "  solved by cholesky; condition number of the scaled Gram matrix: 1",
            "  checkpoint: out/m.pt",
        ]
    )


def test_json_is_strict_non_finite_floats_become_null():
    details = {"epochs_run": 3, "best_loss_standardized": math.inf}
    report = to_json(_result(solver="sgd", details=details, optimality_gap=None))
    assert report["details"]["best_loss_standardized"] is None
    assert report["checkpoint"] == "out/m.pt"
    assert report["optimality_gap"] is None  # present for iterative solvers, even when None
    assert "optimality_gap" not in to_json(_result())
    json.dumps(report, allow_nan=False)
