"""`toolkit.LinearRegressor` and `toolkit.train` on raw tables: text, bool, Categorical, gaps.

References: statsmodels' formula API (`C(col)`, treatment coding), and scikit-learn's
`OneHotEncoder(drop="first")` / `SimpleImputer` pipelines with `LinearRegression`, on
the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import toolkit
from toolkit import LinearRegressor

# float64 least squares on well-conditioned data: toolkit and scikit-learn agree to about
# 1e-12 (measured); the bound is 1e-8.
RTOL = 1e-8


@pytest.fixture(scope="module")
def shops() -> pd.DataFrame:
    """200 rows: a numeric x, a text city, a bool open flag and a small-int size; y linear."""
    rng = np.random.default_rng(11)
    n = 200
    frame = pd.DataFrame(
        {
            "x": rng.normal(10.0, 3.0, n),
            "city": rng.choice(["Oslo", "Bergen", "Tromsø", "Bodø"], n),
            "open": rng.random(n) < 0.4,
            "size": rng.integers(1, 4, n),
        }
    )
    effect = frame["city"].map({"Oslo": 0.0, "Bergen": 2.0, "Tromsø": -1.0, "Bodø": 0.5})
    frame["y"] = (
        1.5 * frame["x"] + effect + 3.0 * frame["open"] - frame["size"] + rng.normal(0, 0.3, n)
    )
    return frame


def reference(frame: pd.DataFrame, categorical: list[str], numeric: list[str]) -> dict:
    """scikit-learn's treatment coding (first level in sorted order dropped) + OLS."""
    encoder = OneHotEncoder(drop="first", sparse_output=False)
    columns = ColumnTransformer([("num", "passthrough", numeric), ("cat", encoder, categorical)])
    model = make_pipeline(columns, LinearRegression()).fit(frame[numeric + categorical], frame["y"])
    fitted = model[0].named_transformers_["cat"]
    names = list(numeric)
    for name, levels in zip(categorical, fitted.categories_, strict=True):
        names += [f"{name}[{_text(level)}]" for level in levels[1:]]
    coefficients = dict(zip(names, model[-1].coef_, strict=True))
    return {**coefficients, "(intercept)": model[-1].intercept_}


def _text(level: object) -> str:
    return str(level).lower() if isinstance(level, (bool, np.bool_)) else str(level)


def ours(model: LinearRegressor) -> dict:
    named = dict(zip(model.encoded_feature_names_, model.coef_, strict=True))
    return {**named, "(intercept)": model.intercept_}


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=RTOL), name


def test_pandas_text_bool_and_categorical_columns(shops):
    frame = shops.copy()
    frame["city"] = frame["city"].astype("category")
    X = frame[["x", "city", "open", "size"]]
    model = LinearRegressor(dtype="float64", device="cpu", categorical=["size"]).fit(X, frame["y"])
    assert list(model.feature_names_in_) == ["x", "city", "open", "size"]
    assert model.n_features_in_ == 4
    assert list(model.encoded_feature_names_) == [
        "x", "city[Bodø]", "city[Oslo]", "city[Tromsø]", "open[true]", "size[2]", "size[3]",
    ]  # fmt: skip
    assert_same(ours(model), reference(frame, ["city", "open", "size"], ["x"]))
    # predict encodes raw rows as fit did; equal to the product of the encoded columns
    np.testing.assert_allclose(model.predict(X.iloc[:5]), model.predict(X)[:5], rtol=0)
    with pytest.raises(ValueError, match="unseen in fit"):
        model.predict(X.iloc[:2].assign(city=["Oslo", "Trondheim"]))


def test_polars_and_bool_parquet_through_toolkit_train(shops, tmp_path):
    path = tmp_path / "shops.parquet"
    pq.write_table(pa.Table.from_pandas(shops, preserve_index=False), path)
    assert pq.read_schema(path).field("open").type == pa.bool_()
    options = {"targets": "y", "dtype": "float64", "val_fraction": 0.0}  # every row, as OLS
    from_file = toolkit.train(path, **options, out=tmp_path / "a.pt")
    frame = pl.from_pandas(shops)
    from_polars = toolkit.train(frame, **options, out=tmp_path / "b.pt")
    want = reference(shops, ["city", "open"], ["x", "size"])
    for result in (from_file, from_polars):
        got = dict(zip(result.spec.feature_names, result.weight[0], strict=True))
        assert_same({**got, "(intercept)": result.bias[0]}, want)
    assert from_file.table == from_polars.table
    model = LinearRegressor(dtype="float64", device="cpu").fit(frame.drop("y"), frame["y"])
    assert_same(ours(model), want)


def test_mean_imputation_of_nan_equals_simple_imputer(shops):
    frame = shops[["x", "size"]].astype(float)
    frame.loc[::9, "x"] = np.nan
    frame.loc[::13, "size"] = np.nan
    model = LinearRegressor(dtype="float64", device="cpu", missing="mean", missing_indicator=True)
    model.fit(frame, shops["y"])
    imputer = SimpleImputer(strategy="mean", add_indicator=True)
    expected = LinearRegression().fit(imputer.fit_transform(frame), shops["y"])
    order = ["x", "size", "x[(missing)]", "size[(missing)]"]  # scikit-learn's column order
    got = ours(model)
    np.testing.assert_allclose([got[name] for name in order], expected.coef_, rtol=RTOL)
    assert got["(intercept)"] == pytest.approx(expected.intercept_, rel=RTOL)
    np.testing.assert_allclose(
        model.predict(frame), expected.predict(imputer.transform(frame)), rtol=1e-10
    )
    # numpy arrays too: NaN is a missing value once a policy is chosen
    array = LinearRegressor(dtype="float64", device="cpu", missing="mean").fit(
        frame.to_numpy(), shops["y"]
    )
    assert not hasattr(array, "feature_names_in_")
    assert list(array.encoded_feature_names_) == ["x0", "x1"]


def test_drop_fits_the_complete_rows_and_predict_refuses_gaps(shops):
    frame = shops[["x", "city"]].copy()
    frame.loc[::7, "x"] = np.nan
    model = LinearRegressor(dtype="float64", device="cpu", missing="drop").fit(frame, shops["y"])
    kept = frame["x"].notna()
    complete = shops[kept]
    assert_same(ours(model), reference(complete, ["city"], ["x"]))
    with pytest.raises(ValueError, match=r"missing value\(s\) in column 'x'"):
        model.predict(frame)


def test_partial_fit_refuses_a_table(shops):
    with pytest.raises(ValueError, match="partial_fit streams numeric batches"):
        LinearRegressor(device="cpu").partial_fit(shops[["x", "city"]], shops["y"])


def test_a_table_model_exports_its_plan(shops, tmp_path):
    model = LinearRegressor(dtype="float64", device="cpu").fit(shops[["x", "city"]], shops["y"])
    path = Path(model.save_checkpoint(tmp_path / "model.pt"))
    from toolkit.training import checkpoint

    payload = checkpoint.load(path)
    assert payload["table"]["columns"][1]["levels"] == ["Bergen", "Bodø", "Oslo", "Tromsø"]
    assert payload["spec"]["feature_names"] == list(model.encoded_feature_names_)


def test_a_table_model_exports_to_a_file_that_takes_raw_values(shops, tmp_path):
    import warnings

    from toolkit.runtime import Predictor, UnknownLevelWarning

    frame = shops[["x", "city", "open"]]
    model = LinearRegressor(dtype="float64", device="cpu").fit(frame, shops["y"])
    result = model.export(tmp_path / "shops.onnx", unknown_level="reference")
    predictor = Predictor(result.output)
    assert predictor.table.unknown_level == "reference"
    assert predictor.input_names == ["x", "city", "open"]
    # The file and the estimator: the same model, summed in another order (float64 gate).
    np.testing.assert_allclose(predictor.predict(frame)[:, 0], model.predict(frame), rtol=1e-12)
    unseen = frame.head(2).assign(city=["Oslo", "Narvik"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = predictor.predict(unseen)[:, 0]
    assert [w.category for w in caught] == [UnknownLevelWarning]
    as_reference = unseen.assign(city=["Oslo", "Bergen"])  # Bergen: the reference level
    np.testing.assert_allclose(got, model.predict(as_reference), rtol=1e-12)


def test_sample_weight_on_a_table_equals_weighted_least_squares(shops):
    weights = np.linspace(0.5, 2.0, len(shops))
    X = shops[["x", "city"]]
    model = LinearRegressor(dtype="float64", device="cpu").fit(X, shops["y"], sample_weight=weights)
    design = pd.get_dummies(X, columns=["city"], drop_first=True, dtype=float)
    expected = LinearRegression().fit(design, shops["y"], sample_weight=weights)
    names = ["x", *(f"city[{c.removeprefix('city_')}]" for c in design.columns[1:])]
    got = ours(model)
    np.testing.assert_allclose([got[n] for n in names], expected.coef_, rtol=RTOL)
    assert got["(intercept)"] == pytest.approx(expected.intercept_, rel=RTOL)
