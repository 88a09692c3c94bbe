"""`toolkit train --missing`: gaps dropped or filled, against pandas, statsmodels, scikit-learn.

The same CSV is read by pandas (blank cells are NaN) for the references: `dropna` and
statsmodels' OLS for `drop`, scikit-learn's `SimpleImputer` and `LinearRegression` for
`mean`, `median` and `--missing-indicator`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from conftest import train_json
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression

# float64 least squares on well-conditioned data: both references and toolkit keep about
# 13 digits (measured 1e-12 or better); the bound is 1e-8.
RTOL = 1e-8


@pytest.fixture(scope="module")
def gappy() -> pd.DataFrame:
    """300 rows: numeric x1, x2 and text g with gaps in different rows; y without gaps."""
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "x1": rng.normal(5.0, 2.0, n),
            "x2": rng.exponential(3.0, n),
            "g": rng.choice(["north", "south", "east"], n),
        }
    )
    frame["y"] = (
        2.0 * frame["x1"]
        - frame["x2"]
        + frame["g"].map({"north": 0.0, "south": 1.5, "east": -2.0})
        + rng.normal(0.0, 0.5, n)
    )
    frame.loc[rng.choice(n, 12, replace=False), "x1"] = np.nan
    frame.loc[rng.choice(n, 7, replace=False), "x2"] = np.nan
    frame["g"] = frame["g"].astype(object)
    frame.loc[rng.choice(n, 5, replace=False), "g"] = None
    return frame


@pytest.fixture(scope="module")
def gappy_csv(gappy: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gappy") / "gappy.csv"
    gappy.to_csv(path, index=False)  # NaN and None: blank cells
    return path


def weights(report: dict[str, Any]) -> dict[str, float]:
    named = dict(zip(report["features"], report["weights"][0], strict=True))
    return {**named, "(intercept)": report["bias"][0]}


def fit(run: Any, path: Path, *options: str) -> dict[str, Any]:
    args = ["--data", str(path), "--target", "y", "--dtype", "float64", "--val-fraction", "0"]
    return train_json(run, *args, *options)


def test_drop_equals_dropna_and_ols(run, gappy, gappy_csv):
    report = fit(run, gappy_csv, "--missing", "drop")
    kept = gappy.dropna()
    fitted = smf.ols("y ~ x1 + x2 + C(g)", data=kept).fit()
    ours = weights(report)
    for name, value in fitted.params.items():
        term = name.replace("C(g)[T.", "g[").replace("Intercept", "(intercept)")
        assert ours[term] == pytest.approx(value, rel=RTOL), name
    assert report["data"]["rows"] == len(kept)
    dropped = len(gappy) - len(kept)
    counts = gappy.isna().sum()
    cells = int(counts.sum())
    note = (
        f"dropped {dropped} rows with missing values ({cells} cells: 'x1' {counts['x1']}, "
        f"'x2' {counts['x2']}, 'g' {counts['g']})."
    )
    assert note in report["notes"]
    assert report["data"]["dropped"] == {"rows": dropped, "cells": counts[counts > 0].to_dict()}


@pytest.mark.parametrize("strategy", ["mean", "median"])
def test_mean_and_median_equal_simple_imputer(run, gappy, gappy_csv, strategy):
    report = fit(run, gappy_csv, "--features", "x1,x2", "--missing", strategy)
    x = SimpleImputer(strategy=strategy).fit_transform(gappy[["x1", "x2"]])
    reference = LinearRegression().fit(x, gappy["y"])
    ours = weights(report)
    np.testing.assert_allclose([ours["x1"], ours["x2"]], reference.coef_, rtol=RTOL)
    assert ours["(intercept)"] == pytest.approx(reference.intercept_, rel=RTOL)
    assert report["data"]["rows"] == len(gappy)  # nothing dropped


def test_missing_indicator_equals_simple_imputer_with_indicator(run, gappy, gappy_csv):
    report = fit(run, gappy_csv, "--features", "x1,x2", "--missing", "mean", "--missing-indicator")
    imputer = SimpleImputer(strategy="mean", add_indicator=True)
    x = imputer.fit_transform(gappy[["x1", "x2"]])
    reference = LinearRegression().fit(x, gappy["y"])
    # scikit-learn appends the indicators after every feature; toolkit puts each after its own.
    names = ["x1", "x2", "x1[(missing)]", "x2[(missing)]"]
    ours = weights(report)
    assert sorted(report["features"]) == sorted(names)
    assert report["features"] == ["x1", "x1[(missing)]", "x2", "x2[(missing)]"]
    np.testing.assert_allclose([ours[n] for n in names], reference.coef_, rtol=RTOL)
    assert ours["(intercept)"] == pytest.approx(reference.intercept_, rel=RTOL)


def test_categorical_gaps_take_the_most_frequent_level(run, gappy, gappy_csv):
    report = fit(run, gappy_csv, "--missing", "median")
    frame = gappy.copy()
    frame[["x1", "x2"]] = SimpleImputer(strategy="median").fit_transform(frame[["x1", "x2"]])
    frame["g"] = frame["g"].fillna(frame["g"].mode()[0])
    fitted = smf.ols("y ~ x1 + C(g) + x2", data=frame).fit()
    ours = weights(report)
    assert ours["g[south]"] == pytest.approx(fitted.params["C(g)[T.south]"], rel=RTOL)
    assert ours["x1"] == pytest.approx(fitted.params["x1"], rel=RTOL)


def test_na_values_are_missing(run, write_csv):
    rows = "".join(f"{i},{'NA' if i % 5 == 0 else i * i % 7},{3 * i + 1}\n" for i in range(1, 21))
    path = write_csv("na.csv", "a,b,y\n" + rows)
    report = train_json(
        run, "--data", str(path), "--missing", "drop", "--na-values", "NA",
        "--dtype", "float64", "--val-fraction", "0",
    )  # fmt: skip
    assert report["data"]["rows"] == 16
    assert report["data"]["dropped"] == {"rows": 4, "cells": {"b": 4}}


def test_default_error_counts_the_gaps(run, gappy_csv):
    result = run("train", "--data", str(gappy_csv), "--target", "y", "-q")
    assert result.exit_code == 1, result.output  # a data error, as the CLI exits today
    message = " ".join(result.output.split())
    assert "missing" in message and "--missing" in message
    for column in ("'x1'", "'x2'", "'g'"):
        assert column in message


def test_missing_indicator_needs_a_fill(run, gappy_csv):
    result = run("train", "--data", str(gappy_csv), "--missing-indicator", "--missing", "drop")
    assert result.exit_code == 2
    assert "--missing-indicator" in result.output and "--missing mean" in result.output
