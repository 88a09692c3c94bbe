"""toolkit/training/train.py: the solvers, defaults, reproducibility, resume and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import scaled_data, train_json, write_table_csv

from toolkit.errors import TrainingError, TrainingInterrupted, UsageError
from toolkit.training import TrainConfig, checkpoint, train

ITERATIVE = ["sgd", "adam", "lbfgs"]


@pytest.fixture(scope="module")
def scaled_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y, _, _ = scaled_data()
    path = tmp_path_factory.mktemp("data") / "scaled.csv"
    return write_table_csv(path, {**{f"f{i}": x[:, i] for i in range(4)}, "y": y})


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


def test_plain_sgd_without_standardization_diverges_on_the_scaled_data():
    # The tutorial's loop (SGD lr 0.01 on raw features) on the same data: it blows up,
    # which is why toolkit standardizes internally.
    x, y, _, _ = scaled_data()
    model = torch.nn.Linear(4, 1, dtype=torch.float64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)[:, None]
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(xs), ys)
        loss.backward()
        optimizer.step()
    assert not torch.isfinite(loss)


def test_saved_model_takes_raw_features(tmp_path, scaled_csv):
    x, y, w, _ = scaled_data()
    result = train(TrainConfig(data=scaled_csv, solver="adam", out=tmp_path / "m.pt"))
    _, model = checkpoint.model_from_checkpoint(checkpoint.load(tmp_path / "m.pt"))
    with torch.no_grad():
        predicted = model(torch.from_numpy(x).float()).double().numpy()[:, 0]
    # Noise is 0.1; a model on standardized inputs fed raw features would be far off.
    assert np.sqrt(np.mean((predicted - y) ** 2)) < 0.12
    np.testing.assert_allclose(result.weight[0], w, rtol=0.02, atol=2e-3)


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


def _interrupt_at(epoch: int):
    def callback(current: int, losses: dict[str, float]) -> None:
        if current == epoch:
            raise KeyboardInterrupt

    return callback


@pytest.mark.parametrize("chunk_rows", [65_536, 300])
@pytest.mark.parametrize("solver", ITERATIVE)
def test_resume_ends_bit_identical_to_an_uninterrupted_run(
    tmp_path, scaled_csv, solver, chunk_rows
):
    settings = {
        "data": scaled_csv,
        "solver": solver,
        "seed": 3,
        "patience": 0,
        "epochs": 12 if solver != "lbfgs" else 4,
        "chunk_rows": chunk_rows,
    }
    train(TrainConfig(**settings, out=tmp_path / "straight.pt"))
    out = tmp_path / "resumed.pt"
    with pytest.raises(TrainingInterrupted, match=r"interrupted after epoch 3 of .*--resume"):
        train(TrainConfig(**settings, out=out), on_epoch_end=_interrupt_at(3))
    assert checkpoint.resume_path(out).is_file()
    assert not out.exists()
    result = train(TrainConfig(**settings, out=out, resume=True))
    assert result.details["resumed_from_epoch"] == 3
    assert not checkpoint.resume_path(out).exists()
    straight, resumed = weights_of(tmp_path / "straight.pt"), weights_of(out)
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_resume_from_the_cli_continues_the_saved_run(run, tmp_path, scaled_csv):
    args = ["--data", str(scaled_csv), "--solver", "adam", "--epochs", "8", "--patience", "0"]
    train_json(run, *args, "--out", "straight.pt")
    with pytest.raises(TrainingInterrupted):
        train(
            TrainConfig(data=scaled_csv, solver="adam", epochs=8, patience=0, out=Path("r.pt")),
            on_epoch_end=_interrupt_at(5),
        )
    report = train_json(run, *args, "--out", "r.pt", "--resume")
    assert report["details"]["resumed_from_epoch"] == 5
    assert torch.equal(
        weights_of(Path("straight.pt"))["weight"], weights_of(Path("r.pt"))["weight"]
    )


def test_resume_refuses_other_settings(tmp_path, scaled_csv):
    with pytest.raises(TrainingInterrupted):
        train(
            TrainConfig(data=scaled_csv, solver="sgd", epochs=5, out=tmp_path / "m.pt"),
            on_epoch_end=_interrupt_at(2),
        )
    with pytest.raises(Exception, match=r"different settings: lr 0\.1 \(saved\) vs 0\.05 \(now\)"):
        train(
            TrainConfig(
                data=scaled_csv, solver="sgd", epochs=5, lr=0.05, out=tmp_path / "m.pt", resume=True
            )
        )


def test_resume_without_state_says_so(run):
    result = run("train", "--solver", "sgd", "--resume")
    assert result.exit_code == 1
    assert "--resume found no saved state at 'models/model.pt.resume'" in result.output


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


def test_constant_target_is_a_warning_not_an_error(run, write_csv):
    path = write_csv("c.csv", "a,y\n1,5\n2,5\n3,5\n")
    result = run("train", "--data", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert "warning: target 'y' is constant (every value is 5.0); R^2 is undefined" in result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"]["train"]["r2"] is None
    np.testing.assert_allclose(report["bias"], [5.0], atol=1e-6)


def test_fewer_rows_than_parameters_is_an_error(run, write_csv):
    path = write_csv("few.csv", "a,b,c,y\n1,2,3,4\n2,3,5,1\n")
    result = run("train", "--data", str(path))
    assert result.exit_code == 1
    assert (
        f"Error: {path}: 2 training rows cannot determine 4 parameters per target "
        "(3 weights and an intercept); expected at least 4 rows."
    ) in result.output


def test_collinear_columns_fail_with_their_names(run, write_csv):
    path = write_csv("col.csv", "a,b,c,y\n1,2,3,1\n2,1,3,2\n3,5,8,2\n4,4,8,5\n5,0,5,3\n")
    result = run("train", "--data", str(path), "--val-fraction", "0")
    assert result.exit_code == 1
    assert "features 'a', 'b', 'c' are collinear" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--lr", "0.1"],
            "--lr applies to the iterative solvers (sgd, adam, lbfgs), not to --solver exact",
        ),
        (["--epochs", "3"], "--epochs applies to the iterative solvers"),
        (["--resume"], "--resume continues an iterative run; --solver exact has none."),
        (["--solver", "lbfgs", "--batch-size", "8"], "--solver lbfgs uses the full batch"),
        (["--solver", "sgd", "--lr", "-1"], "--lr must be a finite number > 0, got -1.0."),
        (["--val-fraction", "1"], "Invalid value for '--val-fraction'"),
        (["--solver", "newton"], "Invalid value for '--solver'"),
    ],
)
def test_usage_errors_exit_2(run, args, message):
    result = run("train", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_library_raises_typed_usage_errors():
    with pytest.raises(UsageError, match="solver 'nope' is not one of exact, sgd, adam, lbfgs"):
        TrainConfig(solver="nope").hyperparameters()


def test_progress_bar_shows_epochs_when_enabled(tmp_path, capsys):
    train(TrainConfig(solver="sgd", epochs=3, progress=True, out=tmp_path / "m.pt"))
    assert "sgd:" in capsys.readouterr().err
    train(TrainConfig(solver="sgd", epochs=3, progress=False, out=tmp_path / "m.pt"))
    assert capsys.readouterr().err == ""


# -- streaming: chunks smaller than the data ----------------------------------------------


def test_exact_does_not_depend_on_chunk_rows(tmp_path, scaled_csv):
    runs = [
        train(TrainConfig(data=scaled_csv, dtype="float64", chunk_rows=rows, out=tmp_path / "m.pt"))
        for rows in (7, 256, 65_536)
    ]
    for other in runs[1:]:  # float64 statistics summed in other blocks: rounding only
        np.testing.assert_allclose(other.weight, runs[0].weight, rtol=1e-12)
        np.testing.assert_allclose(other.bias, runs[0].bias, rtol=1e-12)
        assert other.data["val_rows"] == runs[0].data["val_rows"]  # the same rows held out


@pytest.mark.parametrize("solver", ITERATIVE)
def test_iterative_solvers_train_over_chunks_smaller_than_a_batch(tmp_path, scaled_csv, solver):
    # 1,600 training rows in chunks of 100: sgd and adam batches of 256 span chunks.
    settings = {"data": scaled_csv, "solver": solver, "chunk_rows": 100, "seed": 4}
    first = train(TrainConfig(**settings, out=tmp_path / "a.pt"))
    assert first.optimality_gap["r2_gap"] < 1e-4  # the solvers' tolerance, as in one chunk
    again = train(TrainConfig(**settings, out=tmp_path / "b.pt"))
    np.testing.assert_array_equal(again.weight, first.weight)  # seeded shuffles: bit-identical


def test_minibatches_mix_rows_across_chunks():
    from toolkit.training.spill import RowSpill
    from toolkit.training.train import _Rows, _shuffled_batches

    rows = np.arange(40.0).repeat(2).reshape(40, 2)  # feature = target = row number
    with RowSpill(2) as spill:
        spill.append(rows)
        chunks = _Rows([spill], chunk_rows=10, n_features=1)

        def tensors(block):
            t = torch.as_tensor(block)
            return t[:, :1], t[:, 1:]

        generator = torch.Generator().manual_seed(0)
        batches = [
            x[:, 0].tolist() for x, _ in _shuffled_batches(chunks, tensors, 16, generator, "cpu")
        ]
    assert [len(b) for b in batches] == [16, 16, 8]  # full batches across chunk boundaries
    assert sorted(v for batch in batches for v in batch) == list(range(40))  # each row once
    first = batches[0][:10]  # one whole chunk (a seeded pick), its rows shuffled
    assert len({int(v) // 10 for v in first}) == 1
    assert first != sorted(first)
