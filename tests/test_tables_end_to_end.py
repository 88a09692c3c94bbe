"""A raw table from CSV to predictions: `toolkit train` on Grunfeld's data with the text
column `firm` and blank cells, `toolkit export`, then `toolkit predict` on the same CSV and
`Predictor.predict` on records and a DataFrame, against statsmodels' formula API
(`invest ~ value + capital + C(firm)` on the mean-imputed table) in float64.

statsmodels solves the same least-squares problem by QR (pinv); toolkit by the normal
equations in float64. With Grunfeld's condition number the fitted values agree to ~1e-13
relative (measured 7e-14); rtol 1e-8 is the issue's bar for coefficients.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from click.testing import CliRunner

from toolkit.cli import cli
from toolkit.runtime import Predictor, UnknownLevelWarning


@pytest.fixture(scope="module")
def grunfeld(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    data = sm.datasets.grunfeld.load_pandas().data
    data["firm"] = data["firm"].astype(str)
    data.loc[[3, 17, 150], "capital"] = np.nan  # blank cells in the CSV
    path = tmp_path_factory.mktemp("grunfeld") / "grunfeld.csv"
    data.to_csv(path, index=False)
    return path, data


@pytest.fixture(scope="module")
def model(grunfeld: tuple[Path, pd.DataFrame]) -> Path:
    path, _ = grunfeld
    folder = path.parent
    runner = CliRunner()
    train = [
        "train", "--data", str(path), "--target", "invest", "--features",
        "value,capital,firm", "--dtype", "float64", "--missing", "mean",
        "--val-fraction", "0", "--out", str(folder / "m.pt"),
    ]  # fmt: skip
    result = runner.invoke(cli, train)
    assert result.exit_code == 0, result.output
    export = ["export", "--checkpoint", str(folder / "m.pt"), str(folder / "m.onnx")]
    result = runner.invoke(cli, [*export, "--unknown-level", "reference"])
    assert result.exit_code == 0, result.output
    return folder / "m.onnx"


def _statsmodels(data: pd.DataFrame) -> np.ndarray:
    filled = data.assign(capital=data.capital.fillna(data.capital.mean()))
    return smf.ols("invest ~ value + capital + C(firm)", data=filled).fit().fittedvalues.to_numpy()


def test_predict_on_the_raw_csv_equals_statsmodels(grunfeld, model):
    path, data = grunfeld
    result = CliRunner().invoke(cli, ["predict", str(model), "--input", str(path)])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(io.StringIO(result.stdout))["invest"].to_numpy()
    np.testing.assert_allclose(got, _statsmodels(data), rtol=1e-8, atol=1e-8)


def test_the_predictor_takes_records_and_frames_with_gaps(grunfeld, model):
    _, data = grunfeld
    predictor = Predictor(model)
    assert predictor.input_names == ["value", "capital", "firm"]
    expected = _statsmodels(data)
    np.testing.assert_allclose(predictor.predict(data)[:, 0], expected, rtol=1e-8, atol=1e-8)
    records = data.drop(columns=["invest", "year"]).to_dict("records")
    for i in (0, 3, 150):  # row 3 and 150 hold a missing capital (NaN)
        got = predictor.predict({**records[i], "capital": None if i else records[i]["capital"]})
        np.testing.assert_allclose(got[0, 0], expected[i], rtol=1e-8, atol=1e-8)
    # An unseen firm is the reference level (exported with --unknown-level reference).
    with pytest.warns(UnknownLevelWarning):
        unseen = predictor.predict({**records[0], "firm": "Ford"})
    reference = sorted(data.firm.unique())[0]
    np.testing.assert_allclose(unseen, predictor.predict({**records[0], "firm": reference}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.predict(records[:5])
