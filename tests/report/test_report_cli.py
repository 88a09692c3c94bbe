"""`toolkit report`: the three formats, what each section holds, and clean errors.

References: statsmodels for the numbers (rtol 1e-8, as in test_report_robust.py); the
checkpoint and ONNX file themselves for what the report copies from them (exact).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from report_data import Fit, fit, heteroskedastic

from toolkit.export import export_model
from toolkit.training import checkpoint

RTOL = 1e-8


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Fit:
    folder = tmp_path_factory.mktemp("report-cli")
    return fit(folder, *heteroskedastic(600, d=2, seed=11), val_fraction=0.2)


@pytest.fixture(scope="module")
def sgd_fit(tmp_path_factory: pytest.TempPathFactory) -> Fit:
    folder = tmp_path_factory.mktemp("report-sgd")
    x, y = heteroskedastic(300, d=2, seed=12)
    return fit(folder, x, y, solver="sgd", epochs=15, patience=0, name="sgd")


def _strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_holds_the_checkpoint_inference_and_the_diagnostics(run, fitted):
    result = run(
        "report",
        "--checkpoint",
        str(fitted.checkpoint),
        "--data",
        str(fitted.data),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    content = _strict_json(result.stdout)
    assert content["report"]["format"] == "toolkit.report"
    stored = checkpoint.load(fitted.checkpoint)
    assert content["inference"] == stored["inference"]
    assert content["model"]["weights"] == stored["state_dict"]["weight"].tolist()
    assert content["diagnostics"]["terms"] == ["(intercept)", "x0", "x1"]
    hc3 = content["diagnostics"]["targets"][0]["robust_stderr"]["HC3"]
    np.testing.assert_allclose(hc3, fitted.ols(cov_type="HC3").bse, rtol=RTOL)
    assert content["history"] is None  # the exact solver has no epochs


def test_text_prints_the_coefficient_table_and_the_diagnostics(run, fitted):
    result = run(
        "report",
        "--checkpoint",
        str(fitted.checkpoint),
        "--data",
        str(fitted.data),
        "--format",
        "text",
    )
    assert result.exit_code == 0, result.output
    text = result.stdout
    header = next(line for line in text.splitlines() if line.strip().startswith("term"))
    assert header.split() == [
        "term",
        "estimate",
        "std",
        "err",
        "t",
        "P>|t|",
        "lower",
        "upper",
        "VIF",
        "HC0",
        "se",
        "HC1",
        "se",
        "HC3",
        "se",
    ]
    ols = fitted.ols()
    slope = next(line for line in text.splitlines() if line.strip().startswith("x1 "))
    assert float(slope.split()[1]) == pytest.approx(ols.params[2], rel=1e-5)  # 6 digits shown
    assert float(slope.split()[2]) == pytest.approx(ols.bse[2], rel=1e-3)  # 4 digits shown
    assert "Durbin-Watson" in text and "Jarque-Bera" in text


def test_html_goes_to_models_report_html_by_default(run, fitted):
    result = run("report", "--checkpoint", str(fitted.checkpoint))
    assert result.exit_code == 0, result.output
    page = Path("models/report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "wrote models/report.html" in result.stderr
    assert list(Path("models").iterdir()) == [Path("models/report.html")]  # no temp file left


def test_an_iterative_fit_brings_its_loss_history(run, sgd_fit):
    result = run("report", "--checkpoint", str(sgd_fit.checkpoint), "--format", "json")
    content = _strict_json(result.stdout)
    history = content["history"]
    assert len(history["train"]) == 1 + content["model"]["details"]["epochs_run"] == 1 + 15
    page = run("report", "--checkpoint", str(sgd_fit.checkpoint), "--out", "r.html")
    assert page.exit_code == 0, page.output
    assert 'id="loss"' in Path("r.html").read_text()


def test_the_onnx_model_adds_its_card_and_parity(run, fitted, sgd_fit, tmp_path):
    export_model(fitted.checkpoint, tmp_path / "m.onnx")
    result = run(
        "report",
        "--checkpoint",
        str(fitted.checkpoint),
        "--model",
        str(tmp_path / "m.onnx"),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    onnx = _strict_json(result.stdout)["onnx"]
    assert onnx["weights_match"] is True
    assert (
        onnx["parity"]["passed"] is True and "CPUExecutionProvider" in onnx["parity"]["providers"]
    )
    assert onnx["card"]["feature_names"] == fitted.features
    # The same names with other weights: reported, not refused.
    export_model(sgd_fit.checkpoint, tmp_path / "other.onnx")
    other = run(
        "report",
        "--checkpoint",
        str(fitted.checkpoint),
        "--model",
        str(tmp_path / "other.onnx"),
        "--format",
        "text",
    )
    assert other.exit_code == 0, other.output
    assert "warning: the weights in" in other.stdout and "parity passed" in other.stdout


def test_a_ridge_fit_gets_a_note_not_robust_errors(run, tmp_path):
    ridge = fit(tmp_path, *heteroskedastic(200, d=2, seed=13), l2=0.5, name="ridge")
    assert checkpoint.load(ridge.checkpoint)["inference"]["leverage"] is None
    result = run(
        "report", "--checkpoint", str(ridge.checkpoint), "--data", str(ridge.data),
        "--format", "json",
    )  # fmt: skip
    content = _strict_json(result.stdout)
    assert content["diagnostics"]["targets"][0]["robust_stderr"] is None
    assert content["diagnostics"]["targets"][0]["durbin_watson"] is not None
    assert any("a ridge fit (--l2 0.5)" in note for note in content["notes"])


def test_a_checkpoint_from_before_the_inference_table_still_reports(run, fitted, tmp_path):
    import torch

    payload = torch.load(fitted.checkpoint, weights_only=True)
    del payload["inference"], payload["history"]  # as toolkit wrote them before
    torch.save(payload, tmp_path / "old.pt")
    result = run(
        "report", "--checkpoint", str(tmp_path / "old.pt"), "--data", str(fitted.data),
        "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    content = _strict_json(result.stdout)
    found = content["diagnostics"]["targets"][0]
    assert found["robust_stderr"] is None and found["durbin_watson"] is not None
    assert content["diagnostics"]["training_rows"] is True  # by the row count alone
    assert any("no inference table" in note for note in content["notes"])
    rows = run("report", "--checkpoint", str(tmp_path / "old.pt"), "--format", "text").stdout
    assert "(intercept)" in rows and "std err" not in rows  # estimates only


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--checkpoint", "missing.pt"], 1, r"checkpoint 'missing.pt' does not exist"),
        (["--data", "nowhere.csv"], 2, r"data file 'nowhere.csv' does not exist"),
        (["--data", "{wrong_columns}"], 2, r"lacks column x1 that the model .* Did you mean 'X1'"),
        (["--data", "{bad_cell}"], 1, r"row 3, column 'x1': expected a number, got 'abc'"),
        (["--model", "{other_model}"], 2, r"takes features \['a'\] .* pass the ONNX file"),
        (["--out", "{file}/r.html"], 1, r"cannot write .*r\.html"),
    ],
)
def test_errors_are_one_clean_line_with_the_exit_code(run, fitted, tmp_path, args, code, message):
    makers = {
        "wrong_columns": lambda: _csv(tmp_path / "w.csv", "x0,X1,y\n1,2,3\n"),
        "bad_cell": lambda: _csv(tmp_path / "b.csv", "x0,x1,y\n1,2,3\n1,abc,3\n"),
        "file": lambda: _csv(tmp_path / "f.txt", "not a folder"),
        "other_model": lambda: _other_model(tmp_path),
    }
    args = [
        makers[a[1:].split("}")[0]]() + a.split("}")[1] if a.startswith("{") else a for a in args
    ]
    if "--checkpoint" not in args:
        args = ["--checkpoint", str(fitted.checkpoint), *args]
    result = run("report", *args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1
    assert re.search(message, result.output), result.output


def test_html_without_matplotlib_says_which_extra_to_install(run, fitted, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    result = run("report", "--checkpoint", str(fitted.checkpoint))
    assert result.exit_code == 2
    assert "pip install 'toolkit[report]', or use --format json or text" in result.output


def _csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _other_model(folder: Path) -> str:
    from toolkit.training import TrainConfig, train

    data = _csv(folder / "a.csv", "a,y\n1,2\n2,4\n3,7\n4,8\n")
    train(TrainConfig(data=data, out=folder / "a.pt"))
    export_model(folder / "a.pt", folder / "a.onnx")
    return str(folder / "a.onnx")
