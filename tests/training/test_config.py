"""toolkit/training/config.py: the parameter table, its defaults and its error wording."""

from __future__ import annotations

import math

import pytest

from toolkit.defaults import SOLVER_DEFAULTS
from toolkit.errors import UsageError
from toolkit.training import TrainConfig
from toolkit.training.config import ITERATIVE_PARAMETERS


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


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dtype": "float16"}, "dtype 'float16' is not one of float32, float64."),
        ({"l2": -1.0}, "--l2 must be a finite number >= 0, got -1.0."),
        ({"l2": math.nan}, "--l2 must be a finite number >= 0, got nan."),
        ({"val_fraction": 1.0}, "--val-fraction must be in [0, 1), got 1.0."),
        ({"alpha": 1.0}, "--alpha must be in (0, 1) (the intervals' level is 1 - alpha), got 1.0."),
        (
            {"alpha": math.nan},
            "--alpha must be in (0, 1) (the intervals' level is 1 - alpha), got nan",
        ),
        ({"solver": "sgd", "lr": 0.0}, "--lr must be a finite number > 0, got 0.0."),
        ({"solver": "adam", "lr": math.inf}, "--lr must be a finite number > 0, got inf."),
        ({"solver": "sgd", "epochs": 0}, "--epochs must be at least 1, got 0."),
        (
            {"solver": "adam", "batch_size": -1},
            "--batch-size must be >= 0 (0 = full batch), got -1.",
        ),
        (
            {"solver": "sgd", "patience": -2},
            "--patience must be >= 0 (0 = never stop early), got -2.",
        ),
        ({"batch_size": 0}, "--batch-size applies to the iterative solvers (sgd, adam, lbfgs)"),
        ({"patience": 3}, "--patience applies to the iterative solvers"),
        ({"solver": "lbfgs", "batch_size": 8}, "--solver lbfgs uses the full batch"),
    ],
)
def test_each_bad_value_is_refused_with_its_flag(settings, message):
    with pytest.raises(UsageError) as caught:
        TrainConfig(**settings).hyperparameters()
    assert message in str(caught.value)


def test_the_table_checks_every_setting_the_solvers_default():
    for solver, defaults in SOLVER_DEFAULTS.items():
        assert list(ITERATIVE_PARAMETERS) == list(defaults), solver


def test_defaults_fill_what_was_not_given_in_the_table_order():
    hyper = TrainConfig(solver="adam", lr=0.5, l2=2.0).hyperparameters()
    assert list(hyper.items()) == [
        ("lr", 0.5),
        ("epochs", 300),
        ("batch_size", 256),
        ("patience", 20),
        ("l2", 2.0),
    ]
    assert TrainConfig(l2=1.5).hyperparameters() == {"l2": 1.5}
    assert TrainConfig(solver="lbfgs", val_fraction=0.0).hyperparameters()["batch_size"] == 0
