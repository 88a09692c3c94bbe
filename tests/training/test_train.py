"""toolkit/training/train.py: one job end to end: its fits, its split, its reproducibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_json, write_table_csv

from toolkit.training import TrainConfig, checkpoint, train

ITERATIVE = ["sgd", "adam", "lbfgs"]


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["state_dict"]


def test_default_train_recovers_the_seed_line(run):
    report = train_json(run)
    # The seed points lie exactly on y = x1 + x2 - 1; float32 storage is the only error.
    np.testing.assert_allclose(report["weights"], [[1.0, 1.0]], atol=1e-4, rtol=0)
    np.testing.assert_allclose(report["bias"], [-1.0], atol=1e-4, rtol=0)
    assert report["equations"] == ["y = 1.0000*x1 + 1.0000*x2 - 1.0000"]
    assert report["solver"] == "exact"
    assert report["checkpoint"] == "models/model.pt"
    assert Path("models/model.pt").is_file()


def test_validation_split_is_used_when_data_allows(run, scaled_csv):
    report = train_json(run, "--data", str(scaled_csv))
    # Rows are held out by a seeded hash: Binomial(2000, 0.2) rows, 400 +- 18 (5 sigma: 90).
    assert abs(report["data"]["val_rows"] - 400) <= 90
    assert report["data"]["train_rows"] + report["data"]["val_rows"] == 2000
    assert report["metrics"]["val"]["r2"] > 0.999
    none = train_json(run, "--data", str(scaled_csv), "--val-fraction", "0")
    assert none["metrics"]["val"] is None
    assert none["data"]["train_rows"] == 2000


def test_multi_target_model(run, write_csv):
    rows = [
        f"{a},{b},{2 * a - b + 1},{-a + 3 * b}" for a, b in [(0, 1), (1, 0), (2, 5), (3, 1), (4, 4)]
    ]
    path = write_csv("mt.csv", "a,b,u,v\n" + "\n".join(rows) + "\n")
    for solver in ("exact", "lbfgs"):
        report = train_json(
            run, "--data", str(path), "--target", "u", "--target", "v", "--solver", solver
        )
        assert report["targets"] == ["u", "v"]
        np.testing.assert_allclose(report["weights"], [[2, -1], [-1, 3]], atol=1e-4)
        np.testing.assert_allclose(report["bias"], [1, 0], atol=1e-4)
        assert set(report["metrics"]["train"]["per_target"]) == {"u", "v"}
        assert len(report["equations"]) == 2


@pytest.mark.parametrize("solver", ["exact", *ITERATIVE])
def test_no_intercept_model(run, tmp_path, solver):
    rng = np.random.default_rng(8)
    a, b = rng.uniform(0, 10, 300), rng.uniform(-5, 5, 300)
    y = 2 * a + 3 * b + 0.05 * rng.standard_normal(300)
    path = write_table_csv(tmp_path / "ni.csv", {"a": a, "b": b, "y": y})
    exact = train_json(run, "--data", str(path), "--no-intercept", "--out", "exact.pt")
    report = train_json(run, "--data", str(path), "--no-intercept", "--solver", solver)
    # Noise 0.05 on 240 training rows: the least-squares weights are within ~1e-3 of (2, 3).
    np.testing.assert_allclose(report["weights"], [[2, 3]], atol=3e-3)
    np.testing.assert_allclose(report["weights"], exact["weights"], atol=2e-4)
    assert report["bias"] == [0.0]
    assert "bias" not in weights_of(Path("models/model.pt"))


def test_no_intercept_on_an_exact_system(run, write_csv):
    path = write_csv("ni.csv", "a,b,y\n1,0,2\n0,1,3\n1,1,5\n2,1,7\n1,3,11\n")
    for solver in ("exact", "lbfgs"):
        report = train_json(run, "--data", str(path), "--no-intercept", "--solver", solver)
        np.testing.assert_allclose(report["weights"], [[2, 3]], atol=1e-5)


@pytest.mark.parametrize("solver", ["exact", "lbfgs"])
def test_float64_model_keeps_its_precision(run, solver):
    report = train_json(run, "--dtype", "float64", "--solver", solver)
    state = weights_of(Path("models/model.pt"))
    assert state["weight"].dtype == torch.float64
    np.testing.assert_allclose(
        report["weights"], [[1.0, 1.0]], atol=1e-10 if solver == "exact" else 1e-6
    )


def test_ridge_shrinks_and_matches_between_exact_and_lbfgs(run, scaled_csv):
    plain = train_json(run, "--data", str(scaled_csv), "--out", "a.pt")
    exact = train_json(run, "--data", str(scaled_csv), "--l2", "1e5", "--out", "b.pt")
    lbfgs = train_json(
        run, "--data", str(scaled_csv), "--l2", "1e5", "--solver", "lbfgs", "--out", "c.pt"
    )
    assert np.linalg.norm(exact["weights"]) < np.linalg.norm(plain["weights"])
    np.testing.assert_allclose(lbfgs["weights"], exact["weights"], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("solver", ["exact", *ITERATIVE])
def test_same_seed_gives_bit_identical_weights(tmp_path, scaled_csv, solver):
    first = train(TrainConfig(data=scaled_csv, solver=solver, seed=7, out=tmp_path / "a.pt"))
    second = train(TrainConfig(data=scaled_csv, solver=solver, seed=7, out=tmp_path / "b.pt"))
    for name, tensor in weights_of(tmp_path / "a.pt").items():
        assert torch.equal(tensor, weights_of(tmp_path / "b.pt")[name])
    assert first.metrics == second.metrics


def test_seed_changes_split_and_shuffling(tmp_path, scaled_csv):
    a = train(TrainConfig(data=scaled_csv, solver="sgd", seed=1, epochs=5, out=tmp_path / "a.pt"))
    b = train(TrainConfig(data=scaled_csv, solver="sgd", seed=2, epochs=5, out=tmp_path / "b.pt"))
    assert not np.array_equal(a.weight, b.weight)


def test_collinear_columns_fail_with_their_names(run, write_csv):
    path = write_csv("col.csv", "a,b,c,y\n1,2,3,1\n2,1,3,2\n3,5,8,2\n4,4,8,5\n5,0,5,3\n")
    result = run("train", "--data", str(path), "--val-fraction", "0")
    assert result.exit_code == 1
    assert "features 'a', 'b', 'c' are collinear" in result.output


def test_an_interrupt_while_reading_the_data_exits_130_and_saves_nothing(
    tmp_path, monkeypatch, run
):
    """The issue's case: a signal during the data pass printed "Aborted!" with exit 1."""
    import toolkit.training.readpass as readpass

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(readpass, "consume", interrupted)
    result = run("train", "--out", str(tmp_path / "m.pt"))
    assert result.exit_code == 130
    assert (
        result.output.strip() == "Error: interrupted before training finished; nothing was saved."
    )
    assert not (tmp_path / "m.pt").exists()


def test_a_tiny_file_whose_rows_all_hash_to_validation_still_trains(tmp_path):
    """The issue's case: 3 rows, all held out by the seeded hash (seed 225), and the default
    split dropped for tiny data: StopIteration used to escape."""
    path = tmp_path / "three.csv"
    path.write_text("a,y\n1,2\n2,3\n3,5\n")
    result = train(TrainConfig(data=path, seed=225, out=tmp_path / "m.pt"))
    assert result.data["train_rows"] == 3 and result.data["val_rows"] == 0
    np.testing.assert_allclose(result.weight[0], [1.5], rtol=1e-6)
