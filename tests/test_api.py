"""toolkit/api.py and the package's lazy names: each stage is one function, as the CLI runs it."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from conftest import train_json

import toolkit
from toolkit.errors import UsageError


def test_train_is_the_run_toolkit_train_makes(run, tmp_path):
    result = toolkit.train(out=tmp_path / "api.pt")
    report = train_json(run, "--out", str(tmp_path / "cli.pt"))
    # The seed data: both the same run of the same code, so the same weights, bit for bit.
    assert result.weight.tolist() == report["weights"]
    assert result.bias.tolist() == report["bias"]
    assert result.metrics == report["metrics"]
    assert result.checkpoint == tmp_path / "api.pt" and result.checkpoint.is_file()


def test_train_takes_a_dataframe_and_a_target_by_name(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((200, 2)), columns=["a", "b"])
    frame["price"] = 3 * frame["a"] - frame["b"] + 2
    result = toolkit.train(frame, targets="price", dtype="float64", out=tmp_path / "m.pt")
    # The rows lie exactly on the plane: least squares recovers it to float64's digits.
    np.testing.assert_allclose(result.weight, [[3.0, -1.0]], rtol=1e-12)
    np.testing.assert_allclose(result.bias, [2.0], rtol=1e-12)
    assert result.spec.target_names == ("price",)


def test_train_options_are_checked_with_the_cli_s_words():
    with pytest.raises(UsageError, match=r"--lr applies to the iterative solvers"):
        toolkit.train(lr=0.1)


def test_export_is_the_package_called_and_writes_what_toolkit_export_writes(run, tmp_path):
    toolkit.train(out=tmp_path / "m.pt")
    result = toolkit.export(tmp_path / "m.pt", tmp_path / "api.onnx")
    assert isinstance(result, toolkit.ExportResult) and result.parity.passed
    run("export", str(tmp_path / "cli.onnx"), "--checkpoint", str(tmp_path / "m.pt"))
    assert (tmp_path / "api.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    importlib.import_module("toolkit.export.convert")  # sets toolkit.export to the package
    assert toolkit.export(tmp_path / "m.pt", tmp_path / "again.onnx").output.is_file()


def test_the_public_names_resolve_and_others_do_not():
    from toolkit.runtime import Predictor
    from toolkit.training import TrainConfig, TrainResult

    assert toolkit.Predictor is Predictor and toolkit.TrainConfig is TrainConfig
    assert toolkit.TrainResult is TrainResult
    assert {"train", "export", "LinearRegressor", "Predictor"} <= set(dir(toolkit))
    with pytest.raises(AttributeError, match=r"module 'toolkit' has no attribute 'fit'"):
        _ = toolkit.fit
