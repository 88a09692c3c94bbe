"""toolkit/training/iterative.py: sgd, adam and lbfgs: convergence, early stopping, divergence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_json

from toolkit.errors import TrainingError
from toolkit.training import TrainConfig, checkpoint, train
from toolkit.training.iterative import EarlyStopping, shuffled_batches
from toolkit.training.rows import Rows
from toolkit.training.spill import RowSpill

ITERATIVE = ["sgd", "adam", "lbfgs"]


@pytest.mark.parametrize("solver", ITERATIVE)
def test_iterative_defaults_reach_exact_r2_on_seed(run, solver):
    exact = train_json(run, "--out", "exact.pt")
    report = train_json(run, "--solver", solver, "--out", f"{solver}.pt")
    assert abs(report["metrics"]["train"]["r2"] - exact["metrics"]["train"]["r2"]) <= 1e-4
    assert report["optimality_gap"]["r2_gap"] <= 1e-4
    np.testing.assert_allclose(report["weights"], [[1.0, 1.0]], atol=1e-3)


@pytest.mark.parametrize("solver", ITERATIVE)
def test_iterative_defaults_reach_exact_r2_on_features_scaled_1_to_100(run, scaled_csv, solver):
    exact = train_json(run, "--data", str(scaled_csv), "--out", "exact.pt")
    report = train_json(run, "--data", str(scaled_csv), "--solver", solver, "--out", f"{solver}.pt")
    for split in ("train", "val"):
        assert abs(report["metrics"][split]["r2"] - exact["metrics"][split]["r2"]) <= 1e-4
    gap = report["optimality_gap"]
    assert gap["r2_gap"] <= 1e-4
    # Converged, not merely close in R^2: the training MSE is within 0.1% of the optimum's.
    assert gap["mse"] <= gap["mse_exact"] * (1 + 1e-3)


def test_divergence_names_the_epoch_suggests_lr_and_keeps_old_checkpoint(run, scaled_csv):
    assert run("train").exit_code == 0
    before = Path("models/model.pt").read_bytes()
    result = run("train", "--data", str(scaled_csv), "--solver", "sgd", "--lr", "1000")
    assert result.exit_code == 1
    assert "Error: training diverged at epoch 1: the train loss became" in result.output
    assert "try a smaller --lr (now 1000, e.g. --lr 100)" in result.output
    assert "Traceback" not in result.output
    assert Path("models/model.pt").read_bytes() == before
    assert not Path("models/model.pt.resume").exists()


def test_divergence_raises_training_error(tmp_path, scaled_csv):
    with pytest.raises(TrainingError, match="diverged"):
        train(TrainConfig(data=scaled_csv, solver="sgd", lr=50.0, out=tmp_path / "m.pt"))


def test_early_stopping_keeps_the_best_epoch(tmp_path, scaled_csv):
    result = train(
        TrainConfig(data=scaled_csv, solver="lbfgs", epochs=50, patience=2, out=tmp_path / "m.pt")
    )
    assert result.details["stopped_early"]
    assert result.details["epochs_run"] == result.details["best_epoch"] + 2


def test_each_epochs_losses_are_kept_in_the_checkpoint(tmp_path, scaled_csv):
    # On standardized targets the training objective (no ridge) is SSE / (n var(y)): its
    # last value is 1 - R^2 of the saved float64 model (rel 1e-6: the same sums, rounded
    # differently, on an R^2 within 1e-4 of 1).
    settings = {"data": scaled_csv, "dtype": "float64", "epochs": 7, "patience": 0}
    result = train(TrainConfig(**settings, solver="adam", out=tmp_path / "m.pt"))
    history = checkpoint.load(tmp_path / "m.pt")["history"]
    assert len(history["train"]) == len(history["val"]) == 1 + 7  # epoch 0: initial weights
    assert history["train"][-1] == pytest.approx(1 - result.metrics["train"]["r2"], rel=1e-6)
    assert history["train"][0] > history["train"][-1]
    train(TrainConfig(data=scaled_csv, out=tmp_path / "exact.pt"))
    assert checkpoint.load(tmp_path / "exact.pt")["history"] is None


def test_progress_bar_shows_epochs_when_enabled(tmp_path, capsys):
    train(TrainConfig(solver="sgd", epochs=3, progress=True, out=tmp_path / "m.pt"))
    assert "sgd:" in capsys.readouterr().err
    train(TrainConfig(solver="sgd", epochs=3, progress=False, out=tmp_path / "m.pt"))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("solver", ITERATIVE)
def test_iterative_solvers_train_over_chunks_smaller_than_a_batch(tmp_path, scaled_csv, solver):
    # 1,600 training rows in chunks of 100: sgd and adam batches of 256 span chunks.
    settings = {"data": scaled_csv, "solver": solver, "chunk_rows": 100, "seed": 4}
    first = train(TrainConfig(**settings, out=tmp_path / "a.pt"))
    assert first.optimality_gap["r2_gap"] < 1e-4  # the solvers' tolerance, as in one chunk
    again = train(TrainConfig(**settings, out=tmp_path / "b.pt"))
    np.testing.assert_array_equal(again.weight, first.weight)  # seeded shuffles: bit-identical


def test_minibatches_mix_rows_across_chunks():
    rows = np.arange(40.0).repeat(2).reshape(40, 2)  # feature = target = row number
    with RowSpill(2) as spill:
        spill.append(rows)
        chunks = Rows([spill], chunk_rows=10, n_features=1)

        def tensors(block):
            t = torch.as_tensor(block)
            return t[:, :1], t[:, 1:]

        generator = torch.Generator().manual_seed(0)
        batches = [
            x[:, 0].tolist() for x, _ in shuffled_batches(chunks, tensors, 16, generator, "cpu")
        ]
    assert [len(b) for b in batches] == [16, 16, 8]  # full batches across chunk boundaries
    assert sorted(v for batch in batches for v in batch) == list(range(40))  # each row once
    first = batches[0][:10]  # one whole chunk (a seeded pick), its rows shuffled
    assert len({int(v) // 10 for v in first}) == 1
    assert first != sorted(first)


def test_early_stopping_counts_epochs_without_a_real_improvement():
    stopping = EarlyStopping(patience=2)
    stopping.update(1, 1.0)
    stopping.update(2, 0.5)
    stopping.update(3, 0.5 * (1 - 1e-9))  # below MIN_RELATIVE_IMPROVEMENT: no progress
    assert (stopping.best_epoch, stopping.bad_epochs, stopping.exhausted) == (2, 1, False)
    stopping.update(4, 0.7)
    assert stopping.exhausted
    assert stopping.state() == {"best_loss": 0.5, "best_epoch": 2, "bad_epochs": 2}
    restored = EarlyStopping(patience=2)
    restored.load_state(stopping.state())
    assert restored == stopping


def test_patience_0_never_stops():
    stopping = EarlyStopping(patience=0)
    for epoch in range(1, 50):
        stopping.update(epoch, 1.0)
    assert stopping.bad_epochs == 48
    assert not stopping.exhausted
