"""toolkit/estimator.py: LinearRegressor follows scikit-learn's contract and fits through toolkit.

References: scikit-learn's own `parametrize_with_checks` for the contract, and
`LinearRegression` / `Ridge` for the numbers (float64 data: the exact solver reaches the
least-squares optimum to float64's resolution, so the fits agree to ~1e-12 relative).
"""

from __future__ import annotations

import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from toolkit import LinearRegressor
from toolkit.errors import DataError, UsageError

# float64 data, well conditioned: two least-squares solvers agree to a few ulps of the
# coefficients' size; 1e-10 leaves room for the condition number.
RTOL_F64 = 1e-10


def data(n: int = 300, d: int = 4, t: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.arange(1, d + 1)
    w = rng.standard_normal((d, t))
    y = x @ w + 3.0 + 0.1 * rng.standard_normal((n, t))
    return x, y[:, 0] if t == 1 else y


# -- scikit-learn's contract -----------------------------------------------------------

COLLINEAR_DATA = (
    "the check fits make_classification(n_features=10), whose 2 redundant features are "
    "exact linear combinations of 2 others; the exact solver refuses collinear features "
    "(CollinearityError naming them) rather than return one of infinitely many least-"
    "squares solutions. The ridge instance (l2 > 0) passes it: "
    "test_array_api_check_passes_with_a_ridge"
)


UNDERDETERMINED = (
    "the check fits 30 features on as few as 27 rows (its weights repeat or drop rows): fewer "
    "rows than parameters, which toolkit refuses with a ValueError naming the counts (as "
    "`toolkit train` does) rather than return one of infinitely many solutions; the "
    "equivalences it checks are proven on determined data in "
    "tests/training/test_weights.py (zero weights, integer weights = repeated rows, ones)"
)


def expected_failures(estimator: LinearRegressor) -> dict[str, str]:
    """Each check an instance cannot meet, with the reason (all others must pass)."""
    failures = {"check_sample_weight_equivalence_on_dense_data": UNDERDETERMINED}
    if estimator.l2 == 0:
        failures["check_array_api_input"] = COLLINEAR_DATA
    return failures


# Every check of scikit-learn 1.9 for a regressor, its sample-weight checks included
# (zero weights equal dropped rows, integer weights repeated rows, ones no weights). The
# array-API check is skipped unless SCIPY_ARRAY_API=1 was set before scipy was imported.
@parametrize_with_checks(
    [LinearRegressor(device="cpu"), LinearRegressor(device="cpu", l2=0.5, dtype="float32")],
    expected_failed_checks=expected_failures,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.slow  # a fresh interpreter importing torch and scikit-learn: 3-8 s
def test_array_api_check_passes_with_a_ridge(tmp_path):
    # A fresh interpreter: SCIPY_ARRAY_API must be set before scipy is first imported.
    import subprocess
    import sys

    code = (
        "from sklearn.utils.estimator_checks import check_array_api_input as check\n"
        "from toolkit import LinearRegressor\n"
        "from toolkit.errors import CollinearityError\n"
        "check('LinearRegressor', LinearRegressor(device='cpu', l2=1e-3),"
        " array_namespace='numpy', expect_only_array_outputs=False)\n"
        "try:\n"
        "    check('LinearRegressor', LinearRegressor(device='cpu'),"
        " array_namespace='numpy', expect_only_array_outputs=False)\n"
        "except CollinearityError as error:\n"
        "    print('refused:', error)\n"
    )
    env = {**__import__("os").environ, "SCIPY_ARRAY_API": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "refused: features" in result.stdout and "are collinear" in result.stdout


# -- the numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("t", [1, 3])
def test_fit_equals_scikit_learn_linear_regression(t):
    x, y = data(t=t)
    ours = LinearRegressor(dtype="float64", device="cpu").fit(x, y)
    theirs = LinearRegression().fit(x, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=RTOL_F64, atol=0)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=RTOL_F64, atol=0)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x), rtol=RTOL_F64, atol=1e-12)
    assert ours.coef_.shape == theirs.coef_.shape and np.shape(ours.intercept_) == np.shape(
        theirs.intercept_
    )
    assert ours.score(x, y) == pytest.approx(theirs.score(x, y), rel=1e-12)


def test_ridge_and_no_intercept_equal_scikit_learn():
    x, y = data()
    ours = LinearRegressor(l2=2.5, dtype="float64", device="cpu").fit(x, y)
    theirs = Ridge(alpha=2.5, solver="cholesky").fit(x, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=RTOL_F64)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=RTOL_F64)
    plain = LinearRegressor(fit_intercept=False, dtype="float64", device="cpu").fit(x, y)
    reference = LinearRegression(fit_intercept=False).fit(x, y)
    np.testing.assert_allclose(plain.coef_, reference.coef_, rtol=RTOL_F64)
    assert plain.intercept_ == 0.0


def test_dtype_follows_the_features_unless_given():
    x, y = data()
    assert LinearRegressor(device="cpu").fit(x.astype(np.float32), y).coef_.dtype == np.float32
    assert LinearRegressor(device="cpu").fit(x, y).coef_.dtype == np.float64
    model = LinearRegressor(dtype="float32", device="cpu").fit(x, y)
    assert model.coef_.dtype == np.float32
    # float32 weights are the float64 optimum rounded once: within float32's half-ulp.
    exact = LinearRegression().fit(x, y).coef_
    np.testing.assert_allclose(model.coef_, exact, rtol=2**-24, atol=0)
    assert model.predict(x.astype(np.float32)).dtype == np.float32
    assert model.predict(x).dtype == np.float64  # float32 arithmetic, returned as X's dtype


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_iterative_solvers_reach_the_exact_fit(solver):
    x, y = data(n=400)
    model = LinearRegressor(solver=solver, dtype="float64", device="cpu").fit(x, y)
    exact = LinearRegression().fit(x, y)
    # The solvers' promise with their defaults (README): training R^2 within 1e-4 of exact.
    assert model.score(x, y) == pytest.approx(exact.score(x, y), abs=1e-4)
    assert isinstance(model.n_iter_, int) and 1 <= model.n_iter_ <= 300


# -- inputs ----------------------------------------------------------------------------


def frames(x: np.ndarray) -> dict[str, object]:
    columns = {f"f{j}": x[:, j] for j in range(x.shape[1])}
    return {
        "pandas": pd.DataFrame(columns),
        "polars": pl.DataFrame(columns),
        "pyarrow": pa.table(columns),
    }


@pytest.mark.parametrize("kind", ["pandas", "polars", "pyarrow"])
def test_dataframes_and_tables_fit_as_the_array_does_and_name_the_features(kind):
    x, y = data()
    frame = frames(x)[kind]
    model = LinearRegressor(device="cpu").fit(frame, y)
    reference = LinearRegressor(device="cpu").fit(x, y)
    # The same float64 values reach the same solver in the same order: bit for bit.
    np.testing.assert_array_equal(model.coef_, reference.coef_)
    assert list(model.feature_names_in_) == ["f0", "f1", "f2", "f3"]
    assert not hasattr(reference, "feature_names_in_")
    # A DataFrame arrives column-major: BLAS may add the 4 products in another order.
    np.testing.assert_allclose(model.predict(frame), reference.predict(x), rtol=1e-14, atol=1e-14)


def test_tables_with_integer_and_float32_columns():
    x, y = data()
    table = pa.table({"a": x[:, 0].astype(np.float32), "b": np.arange(len(x)), "c": x[:, 2]})
    model = LinearRegressor(device="cpu").fit(table, y)
    assert model.coef_.dtype == np.float64  # not every feature is float32
    features = np.column_stack([x[:, 0].astype(np.float32), np.arange(len(x)), x[:, 2]])
    np.testing.assert_allclose(model.coef_, LinearRegression().fit(features, y).coef_, rtol=1e-9)
    only32 = pa.table({"a": x[:, 0].astype(np.float32), "b": x[:, 1].astype(np.float32)})
    assert LinearRegressor(device="cpu").fit(only32, y).coef_.dtype == np.float32


def test_a_polars_null_is_named_by_row_and_column():
    x, y = data(n=50)
    frame = pl.DataFrame(
        {"a": x[:, 0], "b": [None if i == 7 else v for i, v in enumerate(x[:, 1])]}
    )
    with pytest.raises(DataError, match=r"row 7, column 'b': blank cell; expected a number"):
        LinearRegressor(device="cpu").fit(frame, y)


def test_a_string_column_is_encoded_and_a_list_column_refused_with_its_type():
    # Issue 15: text columns are categorical now (tests/test_estimator_tables.py has the
    # references); a type toolkit cannot read is still refused, naming the column.
    frame = pa.table({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": ["u", "v", "u", "v", "u"]})
    model = LinearRegressor(device="cpu").fit(frame, [1.0, 2.0, 3.0, 5.0, 4.0])
    assert list(model.encoded_feature_names_) == ["a", "b[v]"]
    frame = pa.table({"a": [1.0, 2.0, 3.0, 4.0], "b": [[1], [2], [3], [4]]})
    with pytest.raises(DataError, match=r"column 'b'"):
        LinearRegressor(device="cpu").fit(frame, [1.0, 2.0, 3.0, 5.0])


def test_target_names_come_from_a_named_y_and_never_clash_with_features(tmp_path):
    x, y = data()
    frame = pd.DataFrame(x, columns=["a", "b", "c", "y"])
    model = LinearRegressor(device="cpu").fit(frame, pd.Series(y, name="price"))
    card = model.export(tmp_path / "m.onnx").metadata
    assert card["target_names"] == '["price"]'
    unnamed = LinearRegressor(device="cpu").fit(frame, y)
    assert unnamed.export(tmp_path / "u.onnx").metadata["target_names"] == '["_y"]'


def test_too_few_samples_is_a_value_error_saying_why():
    with pytest.raises(ValueError, match=r"^3 samples cannot determine 5 parameters per target "):
        LinearRegressor(device="cpu").fit(np.eye(3, 4), [1.0, 2.0, 3.0])


def test_collinear_features_are_named():
    x, y = data()
    x = np.column_stack([x, x[:, 0] + x[:, 1]])
    with pytest.raises(DataError, match=r"features .* are collinear \(x4 ≈ 1\*x0 \+ 1\*x1\)"):
        LinearRegressor(device="cpu").fit(x, y)


def test_parameters_are_checked_in_fit_as_scikit_learn_does():
    x, y = data()
    with pytest.raises(ValueError, match=r"The 'l2' parameter of LinearRegressor must be"):
        LinearRegressor(l2=-1).fit(x, y)
    with pytest.raises(ValueError, match=r"The 'solver' parameter of LinearRegressor must be"):
        LinearRegressor(solver="newton").fit(x, y)
    with pytest.raises(UsageError, match=r"--epochs applies to the iterative solvers"):
        LinearRegressor(epochs=5, device="cpu").fit(x, y)


# -- in scikit-learn's tools -----------------------------------------------------------


def test_pipeline_and_cross_val_score_match_scikit_learn():
    x, y = data()
    ours = cross_val_score(make_pipeline(StandardScaler(), LinearRegressor(device="cpu")), x, y)
    theirs = cross_val_score(make_pipeline(StandardScaler(), LinearRegression()), x, y)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


@pytest.mark.slow  # two worker processes each import torch: 3-7 s
def test_grid_search_in_two_processes():
    x, y = data()
    grid = {"l2": [0.0, 10.0, 1000.0], "fit_intercept": [True, False]}
    search = GridSearchCV(LinearRegressor(device="cpu", dtype="float64"), grid, n_jobs=2, cv=3)
    search.fit(x, y)
    ridge = {"alpha": [1e-12, 10.0, 1000.0], "fit_intercept": [True, False]}
    reference = GridSearchCV(Ridge(), ridge, cv=3).fit(x, y)
    assert search.best_params_ == {"l2": 0.0, "fit_intercept": True}

    def scores(results: dict, penalty: str) -> dict:
        keys = zip(results[f"param_{penalty}"], results["param_fit_intercept"], strict=True)
        return dict(zip([(round(a), b) for a, b in keys], results["mean_test_score"], strict=True))

    ours, theirs = scores(search.cv_results_, "l2"), scores(reference.cv_results_, "alpha")
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        assert value == pytest.approx(theirs[key], rel=1e-9), key


@pytest.mark.parametrize("how", ["pickle", "joblib"])
def test_fitted_and_streaming_estimators_survive_a_round_trip(tmp_path, how):
    x, y = data()
    fitted = LinearRegressor(device="cpu").fit(x, y)
    streaming = LinearRegressor(device="cpu").partial_fit(x[:100], y[:100])
    for model in (fitted, streaming):
        if how == "pickle":
            copy = pickle.loads(pickle.dumps(model))
        else:
            joblib.dump(model, tmp_path / "m.joblib")
            copy = joblib.load(tmp_path / "m.joblib")
        np.testing.assert_array_equal(copy.predict(x), model.predict(x))
        assert copy.export(tmp_path / f"{how}.onnx").parity is not None
    # The stream goes on where it stopped, on either copy.
    copy = pickle.loads(pickle.dumps(streaming)).partial_fit(x[100:], y[100:])
    np.testing.assert_allclose(copy.coef_, fitted.coef_, rtol=1e-6)


def test_clone_is_unfitted_and_keeps_the_parameters():
    model = LinearRegressor(solver="lbfgs", l2=1.5, device="cpu").fit(*data())
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "coef_")


def test_training_warnings_become_python_warnings():
    # float32 cannot hold an offset of 1e6 to the digits the data has: train warns.
    x, y = data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LinearRegressor(dtype="float32", device="cpu").fit(x + 1e6, y + 1e7)
    assert any("float32 costs accuracy here" in str(w.message) for w in caught)


# -- partial_fit -----------------------------------------------------------------------

# partial_fit solves the normal equations once (no refinement pass: the rows are gone),
# fit refines to float64's last digit: they differ by about condition number * eps,
# here (columns scaled 1..4, random) well under 1e-13; 1e-10 leaves a wide margin.
RTOL_STREAM = 1e-10


@pytest.mark.parametrize("t", [1, 2])
def test_partial_fit_equals_one_fit_on_the_concatenation(t):
    x, y = data(n=1000, t=t)
    whole = LinearRegressor(dtype="float64", device="cpu").fit(x, y)
    stream = LinearRegressor(dtype="float64", device="cpu")
    for start, stop in [(0, 7), (7, 300), (300, 301), (301, 1000)]:
        stream.partial_fit(x[start:stop], y[start:stop])
    np.testing.assert_allclose(stream.coef_, whole.coef_, rtol=RTOL_STREAM)
    np.testing.assert_allclose(stream.intercept_, whole.intercept_, rtol=RTOL_STREAM)


def test_partial_fit_after_fit_goes_on_from_the_fit():
    x, y = data(n=600)
    model = LinearRegressor(dtype="float64", device="cpu").fit(x[:400], y[:400])
    model.partial_fit(x[400:], y[400:])
    reference = LinearRegression().fit(x, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=RTOL_STREAM)


def test_partial_fit_memory_does_not_grow_with_the_rows():
    x, y = data(n=20_000)
    model = LinearRegressor(device="cpu")
    sizes = []
    for start in range(0, 20_000, 2_000):
        model.partial_fit(x[start : start + 2_000], y[start : start + 2_000])
        sizes.append(len(pickle.dumps(model)))
    # O((d + t)^2) statistics plus at most 256 sample rows: constant after the first batch.
    assert max(sizes) == min(sizes) < 20_000


def test_partial_fit_waits_for_enough_rows_with_a_warning():
    x, y = data(n=20)
    model = LinearRegressor(device="cpu")
    with pytest.warns(UserWarning, match=r"no model yet: 2 rows so far cannot determine 5 "):
        model.partial_fit(x[:2], y[:2])
    assert not hasattr(model, "coef_")
    model.partial_fit(x[2:], y[2:])
    np.testing.assert_allclose(model.coef_, LinearRegression().fit(x, y).coef_, rtol=1e-6)


def test_partial_fit_refuses_the_iterative_solvers():
    with pytest.raises(UsageError, match=r"partial_fit streams into the exact solver's"):
        LinearRegressor(solver="sgd").partial_fit(*data(n=10))
    fitted = LinearRegressor(solver="lbfgs", device="cpu").fit(*data(n=50))
    with pytest.raises(UsageError, match=r"solver='lbfgs' needs the rows again each epoch"):
        fitted.partial_fit(*data(n=10))


def test_partial_fit_refuses_a_different_number_of_targets():
    x, y = data(n=50, t=2)
    model = LinearRegressor(device="cpu").partial_fit(x, y)
    with pytest.raises(ValueError, match=r"y has 1 target column\(s\), but .* fitted with 2"):
        model.partial_fit(x, y[:, 0])


# -- predict and export ----------------------------------------------------------------


def within_parity(got: np.ndarray, want: np.ndarray, x: np.ndarray, model: LinearRegressor) -> None:
    """The parity gate's own rule and tolerances: |a - b| <= atol + rtol * (|x| @ |W|^T + |b|)."""
    from toolkit.defaults import PARITY_TOLERANCES

    atol, rtol = PARITY_TOLERANCES[str(model.coef_.dtype)]
    weight = np.atleast_2d(model.coef_).astype(np.float64)
    scale = np.abs(x) @ np.abs(weight).T + np.abs(np.atleast_1d(model.intercept_))
    got, want = got.reshape(scale.shape), want.reshape(scale.shape)
    assert np.all(np.abs(got.astype(np.float64) - want) <= atol + rtol * scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("t", [1, 2])
def test_the_exported_model_predicts_what_the_estimator_predicts(tmp_path, dtype, t):
    from toolkit.runtime import Predictor

    x, y = data(t=t)
    model = LinearRegressor(dtype=dtype, device="cpu").fit(x, y)
    result = model.export(tmp_path / "m.onnx")
    assert result.parity is not None and result.parity.passed
    predictor = Predictor(tmp_path / "m.onnx")
    for rows in (x[:1], x):
        within_parity(predictor.predict(rows), model.predict(rows), rows, model)
    card = predictor.metadata
    assert card["solver"] == "exact" and card["dtype"] == dtype
    assert card["training_data_source"] == "<in-memory arrays>"
    assert card["feature_names"] == '["x0", "x1", "x2", "x3"]'


def test_a_streamed_model_exports_with_metrics_from_its_statistics(tmp_path):
    import json

    from toolkit.runtime import Predictor

    x, y = data(n=500)
    model = LinearRegressor(device="cpu")
    for start in range(0, 500, 100):
        model.partial_fit(x[start : start + 100], y[start : start + 100])
    model.export(tmp_path / "s.onnx")
    predictor = Predictor(tmp_path / "s.onnx")
    within_parity(predictor.predict(x), model.predict(x), x, model)
    metrics = json.loads(predictor.metadata["training_metrics"])["train"]
    # R^2 from the statistics: the float64 identity 1 - SSE/SST, ~1e-15 absolute.
    assert metrics["r2"] == pytest.approx(model.score(x, y), abs=1e-6)
    assert metrics["mae"] is None and metrics["rows"] == 500
    assert predictor.metadata["training_data_source"] == "<partial_fit stream> (5 batches)"


def test_the_checkpoint_is_the_one_toolkit_train_writes(tmp_path):
    from toolkit.export import export_model
    from toolkit.training import checkpoint

    x, y = data()
    model = LinearRegressor(dtype="float64", device="cpu").fit(x, y)
    path = model.save_checkpoint(tmp_path / "m.pt")
    payload = checkpoint.load(path)  # the schema check included
    np.testing.assert_array_equal(payload["state_dict"]["weight"].numpy()[0], model.coef_)
    assert payload["data"]["train_rows"] == 300 and payload["data"]["val_rows"] == 0
    assert export_model(path, tmp_path / "m.onnx").parity.passed


def test_predict_takes_the_fast_path_only_when_it_changes_nothing():
    x, y = data()
    model = LinearRegressor(device="cpu").fit(x, y)
    np.testing.assert_array_equal(model.predict(x), model.predict(x.tolist()))
    np.testing.assert_array_equal(model.predict(x[:1]), model.predict(np.asfortranarray(x[:1])))
    bad = x[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict(bad)
    with pytest.raises(ValueError, match=r"X has 3 features, but LinearRegressor is expecting 4"):
        model.predict(x[:, :3])


# -- sample_weight: weighted least squares -----------------------------------------------


@pytest.mark.parametrize("kind", ["numpy", "pandas"])
def test_sample_weight_fits_scikit_learns_weighted_least_squares(kind):
    # Reference: LinearRegression(...).fit(X, y, sample_weight=w), float64, well conditioned:
    # rtol 1e-8 (the tolerance; both sides keep 14+ digits).
    rng = np.random.default_rng(7)
    X, w = rng.normal(size=(120, 3)), rng.uniform(0, 3, 120)
    y = X @ [2.0, -1.0, 0.5] + 1.0 + rng.normal(size=120) * (1 + X[:, 0] ** 2)
    data = pd.DataFrame(X, columns=["a", "b", "c"]) if kind == "pandas" else X
    model = LinearRegressor(device="cpu", dtype="float64").fit(data, y, sample_weight=w)
    reference = LinearRegression().fit(X, y, sample_weight=w)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-8)
    streamed = LinearRegressor(device="cpu", dtype="float64")
    for rows in (slice(0, 50), slice(50, 120)):
        streamed.partial_fit(X[rows], y[rows], sample_weight=w[rows])
    np.testing.assert_allclose(streamed.coef_, reference.coef_, rtol=1e-8)


def test_negative_sample_weight_is_refused():
    X, y = np.arange(8.0).reshape(4, 2) ** 2, np.arange(4.0)
    with pytest.raises(ValueError, match="Negative values in data passed to"):
        LinearRegressor(device="cpu").fit(X, y, sample_weight=[1.0, -1.0, 1.0, 1.0])


def test_a_large_fit_runs_on_one_blas_thread_and_restores_the_count(monkeypatch):
    """The fit limits the BLAS to FIT_BLAS_THREADS while it runs (a speed setting: the
    coefficients equal an unlimited fit's and scikit-learn's), then puts the count back."""
    from threadpoolctl import threadpool_info

    import toolkit.api
    from toolkit import estimator_inputs

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before, during = blas_threads(), []
    train = toolkit.api.train

    def spy(*args, **kwargs):
        during.append(blas_threads())
        return train(*args, **kwargs)

    monkeypatch.setattr(toolkit.api, "train", spy)
    X, y = data(n=10_000, d=100)  # a million values and more: limited
    limited = LinearRegressor(dtype="float64").fit(X, y)
    monkeypatch.setattr(estimator_inputs, "FIT_BLAS_THREADS", None)
    free = LinearRegressor(dtype="float64").fit(X, y)
    assert during[0] == [1] * len(before) and during[1] == before
    assert blas_threads() == before
    np.testing.assert_allclose(limited.coef_, free.coef_, rtol=RTOL_F64)
    reference = LinearRegression().fit(X, y)
    np.testing.assert_allclose(limited.coef_, reference.coef_, rtol=RTOL_F64)
