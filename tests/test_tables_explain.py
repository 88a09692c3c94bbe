"""`--explain` for a table model, from CSV to explanations: `toolkit train` on Grunfeld's
data with the text column `firm` and imputed gaps (`--missing mean --missing-indicator`),
`toolkit export --explain`, then `Predictor.explain` on raw rows and `toolkit predict
--explain` on the CSV, against statsmodels' OLS on the encoded matrix built with pandas
(mean-imputed numeric columns, their indicators, treatment-coded `firm` and its
indicator), in float64.

Tolerances: statsmodels solves the least-squares problem by QR (pinv), toolkit by the
normal equations in float64; on Grunfeld the fitted values agree to ~1e-13 relative, and
the interval's standard error (sigma2 and the leverage from the inverse Gram matrix) to
about the same; rtol 1e-8 is the issue's bar. `contributions.sum + baseline ==
prediction` holds to float64 rounding of ~17 terms (rtol 1e-10 of the summed |terms|).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from click.testing import CliRunner

from toolkit.cli import cli
from toolkit.errors import InputError
from toolkit.runtime import Predictor, UnknownLevelWarning

FEATURES = ["value", "capital", "firm"]


@pytest.fixture(scope="module")
def grunfeld(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    data = sm.datasets.grunfeld.load_pandas().data
    data["firm"] = data["firm"].astype(str)
    data.loc[[3, 17, 150], "capital"] = np.nan  # blank cells in the CSV
    data.loc[[5, 60], "value"] = np.nan
    data.loc[[8, 99], "firm"] = ""
    path = tmp_path_factory.mktemp("grunfeld-explain") / "grunfeld.csv"
    data.to_csv(path, index=False)
    return path, data


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def models(grunfeld: tuple[Path, pd.DataFrame]) -> dict[str, Path]:
    path, _ = grunfeld
    folder = path.parent
    _run(
        "train", "--data", str(path), "--target", "invest", "--features", ",".join(FEATURES),
        "--dtype", "float64", "--missing", "mean", "--missing-indicator",
        "--val-fraction", "0", "--out", str(folder / "m.pt"),
    )  # fmt: skip
    found = {}
    for policy in ("error", "reference"):
        found[policy] = folder / f"{policy}.onnx"
        _run(
            "export", "--checkpoint", str(folder / "m.pt"), str(found[policy]),
            "--explain", "--unknown-level", policy,
        )  # fmt: skip
    return found


def _encoded(frame: pd.DataFrame, training: pd.DataFrame, fill: str) -> pd.DataFrame:
    """The encoded matrix by pandas: numeric columns filled with the training mean plus an
    indicator; firm treatment-coded (reference: the first level in sorted order), a
    missing firm as `fill` plus its indicator."""
    out = pd.DataFrame(index=frame.index)
    for name in ("value", "capital"):
        out[name] = frame[name].fillna(training[name].mean())
        out[f"{name}[(missing)]"] = frame[name].isna().astype(float)
    missing = frame["firm"].eq("")
    levels = sorted(training["firm"][training["firm"] != ""].unique())
    coded = pd.Categorical(frame["firm"].where(~missing, fill), categories=levels)
    dummies = pd.get_dummies(coded, dtype=float).iloc[:, 1:]
    dummies.columns = [f"firm[{level}]" for level in levels[1:]]
    dummies.index = frame.index
    out = pd.concat([out, dummies], axis=1)
    out["firm[(missing)]"] = missing.astype(float)
    return out


def _new_rows(data: pd.DataFrame) -> pd.DataFrame:
    """Training rows and rows with gaps in other places and combinations."""
    extra = data.loc[[0, 20, 40, 41, 200], FEATURES].copy()
    extra.loc[0, "value"] = np.nan
    extra.loc[20, ["value", "capital"]] = np.nan
    extra.loc[40, "firm"] = ""
    extra.loc[41, ["firm", "capital"]] = ["", np.nan]
    return pd.concat([data[FEATURES], extra], ignore_index=True)


def test_the_interval_and_contributions_equal_statsmodels(grunfeld, models):
    _, data = grunfeld
    predictor = Predictor(models["error"])
    column = next(c for c in predictor.table.columns if c.name == "firm")
    assert column.fill in set(data.firm) - {""}  # a missing firm is filled with a level
    train = _encoded(data, data, column.fill)
    assert list(train.columns) == predictor.feature_names
    fit = sm.OLS(data["invest"], sm.add_constant(train)).fit()
    rows = _new_rows(data)
    found = predictor.explain(rows)
    new = sm.add_constant(_encoded(rows, data, column.fill), has_constant="add")
    frame = fit.get_prediction(new).summary_frame(alpha=0.05)
    assert found.level == 0.95
    np.testing.assert_allclose(found.prediction[:, 0], frame["mean"], rtol=1e-8)
    np.testing.assert_allclose(found.lower[:, 0], frame["obs_ci_lower"], rtol=1e-8)
    np.testing.assert_allclose(found.upper[:, 0], frame["obs_ci_upper"], rtol=1e-8)
    stderr = np.sqrt(frame["mean_se"] ** 2 + fit.scale)
    np.testing.assert_allclose(found.stderr[:, 0], stderr, rtol=1e-8)
    # Contributions: w * (x_enc - the training rows' mean), by encoded column.
    weights = fit.params[predictor.feature_names].to_numpy()
    x = new[predictor.feature_names].to_numpy()
    expected = weights * (x - train.to_numpy().mean(axis=0))
    scale = np.abs(weights) * (np.abs(x) + np.abs(train.to_numpy()).mean(axis=0))
    assert np.all(np.abs(found.contributions[:, 0, :] - expected) <= 1e-8 * (1 + scale))
    terms = np.abs(found.contributions[:, 0, :]).sum(axis=1) + abs(found.baseline[0])
    total = found.contributions[:, 0, :].sum(axis=1) + found.baseline[0]
    assert np.all(np.abs(total - found.prediction[:, 0]) <= 1e-10 * terms)
    np.testing.assert_array_equal(found.prediction, predictor.predict(rows))


def test_unknown_levels_follow_the_exported_policy(grunfeld, models):
    _, data = grunfeld
    record = data.loc[0, FEATURES].to_dict()
    strict = Predictor(models["error"])
    with pytest.raises(InputError, match=r"row 1, column 'firm': unknown level 'Ford'"):
        strict.explain({**record, "firm": "Ford"})
    lenient = Predictor(models["reference"])
    with pytest.warns(UnknownLevelWarning, match="1 unknown level in 1 of 1 row"):
        unseen = lenient.explain({**record, "firm": "Ford"})
    reference = lenient.explain({**record, "firm": lenient.table.columns[2].levels[0]})
    np.testing.assert_array_equal(unseen.contributions, reference.contributions)
    np.testing.assert_array_equal(unseen.upper, reference.upper)
    assert lenient.unknown_levels_seen == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found, unknown = lenient.explain_counted([record, {**record, "firm": "Ford"}])
    np.testing.assert_array_equal(unknown, [0, 1])
    np.testing.assert_array_equal(found.prediction[1], unseen.prediction[0])
    empty, none = lenient.explain_counted(data.loc[[], FEATURES])
    assert empty.contributions.shape == (0, 1, len(lenient.feature_names)) and none.size == 0


def test_predict_explain_on_the_raw_csv(grunfeld, models):
    path, data = grunfeld
    output = _run("predict", str(models["error"]), "--input", str(path), "--explain")
    table = pd.read_csv(io.StringIO(output), keep_default_na=False)
    columns = Predictor(models["error"]).explain(data[FEATURES]).columns()
    assert list(table.columns) == list(columns)
    assert "invest:firm[General Motors]" in columns and "invest_upper" in columns
    for name, values in columns.items():  # CSV keeps float64's shortest round-trip text
        assert table[name].tolist() == values.tolist(), name


def test_predict_explain_reports_unknown_levels_by_policy(grunfeld, models, tmp_path):
    _, data = grunfeld
    rows = data[FEATURES].head(3).copy()
    rows.loc[1, "firm"] = "Ford"
    path = tmp_path / "in.csv"
    rows.to_csv(path, index=False)
    runner = CliRunner()
    strict = runner.invoke(
        cli, ["predict", str(models["error"]), "--input", str(path), "--explain"]
    )
    assert strict.exit_code != 0
    assert "row 3, column 'firm': unknown level 'Ford'" in strict.output
    lenient = runner.invoke(
        cli, ["predict", str(models["reference"]), "--input", str(path), "--explain"]
    )
    assert lenient.exit_code == 0, lenient.output
    assert "1 unknown level in 1 row" in lenient.output
