"""Weighted least squares (`--weight COLUMN`, `TrainConfig(weight=...)`), end to end.

References: scikit-learn's `LinearRegression().fit(X, y, sample_weight=w)` for the weights,
its `mean_squared_error` / `mean_absolute_error` / `r2_score` with `sample_weight` for the
metrics, and statsmodels' `WLS(y, X, weights=w).fit()` for the inference. The data are
float64 and well conditioned, so both sides keep 14+ digits: rtol 1e-8 leaves room for
the different orders of summation (the issue's tolerance). Identities (weights of one,
integer weights against repeated rows, chunks and shards against one file) hold to
rounding: 1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from click.testing import CliRunner
from scipy import stats as distributions
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from toolkit.cli import cli
from toolkit.errors import DataError, UsageError
from toolkit.io import holdout_mask
from toolkit.training import TrainConfig, resume, train
from toolkit.training.model import ModelSpec
from toolkit.training.moments import Accumulator, merge

RTOL = 1e-8  # against scikit-learn and statsmodels (see the module docstring)
IDENTITY = 1e-12  # the same problem summed in another order
FEATURES = ["a", "b", "c"]


def table(n: int = 200, seed: int = 0, zeros: int = 0, integer: bool = False) -> pd.DataFrame:
    """Heteroskedastic rows with their weights (the first `zeros` weigh 0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1]
    noise = rng.normal(size=n) * (1 + np.abs(x[:, 0]))
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["y"] = x @ [1.5, -0.2, 7.0] + 3.0 + noise
    w = rng.integers(1, 5, n).astype(float) if integer else rng.uniform(0.1, 3.0, n)
    w[:zeros] = 0.0
    frame["w"] = w
    return frame


def fit(tmp_path, frame: pd.DataFrame, **options):
    path = tmp_path / options.pop("name", "data.csv")
    frame.to_csv(path, index=False)
    settings = {"val_fraction": 0.0, "dtype": "float64", "weight": "w"} | options
    return train(TrainConfig(data=path, out=tmp_path / "model.pt", **settings))


def sklearn_fit(frame: pd.DataFrame, intercept: bool = True) -> LinearRegression:
    model = LinearRegression(fit_intercept=intercept)
    return model.fit(frame[FEATURES].to_numpy(), frame["y"].to_numpy(), sample_weight=frame["w"])


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("solver", ["exact", "lbfgs"])
def test_weights_and_bias_match_scikit_learn(tmp_path, solver, intercept):
    frame = table()
    result = fit(tmp_path, frame, solver=solver, intercept=intercept)
    reference = sklearn_fit(frame, intercept)
    np.testing.assert_allclose(result.weight[0], reference.coef_, rtol=RTOL)
    np.testing.assert_allclose(result.bias[0], reference.intercept_, rtol=RTOL, atol=1e-12)


def test_ill_conditioned_weighted_fit_takes_the_qr_path_and_matches(tmp_path):
    frame = table(n=300)
    frame["c"] = frame["a"] + 1e-5 * frame["c"]  # nearly collinear: condition about 1e11
    result = fit(tmp_path, frame)
    assert result.details["method"] == "qr"
    # Reference: lstsq of sqrt(w)-scaled rows, whose error is about eps * cond (1e-5 here);
    # the refined solution is the exact one of the float64 data to a few ulps.
    root = np.sqrt(frame["w"].to_numpy())[:, None]
    design = np.hstack([np.ones((len(frame), 1)), frame[FEATURES].to_numpy()]) * root
    exact = np.linalg.lstsq(design, frame["y"].to_numpy() * root[:, 0], rcond=None)[0]
    np.testing.assert_allclose(result.weight[0], exact[1:], rtol=1e-4)


def test_metrics_are_scikit_learns_weighted_ones_on_both_splits(tmp_path):
    frame = table(n=400)
    result = fit(tmp_path, frame, val_fraction=0.25)
    # The held-out rows: the split hashes [features | targets], never the weights.
    block = frame[[*FEATURES, "y"]].to_numpy()
    held_out = holdout_mask(block, 0.25, TrainConfig().seed)
    x, y, w = frame[FEATURES].to_numpy(), frame["y"].to_numpy(), frame["w"].to_numpy()
    predicted = x @ result.weight[0] + result.bias[0]
    for name, rows in (("train", ~held_out), ("val", held_out)):
        got, weights = result.metrics[name], w[rows]
        assert got["rows"] == rows.sum()
        expected_mse = mean_squared_error(y[rows], predicted[rows], sample_weight=weights)
        assert got["mse"] == pytest.approx(expected_mse, rel=RTOL)
        expected_mae = mean_absolute_error(y[rows], predicted[rows], sample_weight=weights)
        assert got["mae"] == pytest.approx(expected_mae, rel=RTOL)
        expected_r2 = r2_score(y[rows], predicted[rows], sample_weight=weights)
        assert got["r2"] == pytest.approx(expected_r2, rel=RTOL)


def statsmodels_wls(frame: pd.DataFrame):
    exog = sm.add_constant(frame[FEATURES].to_numpy())
    return sm.WLS(frame["y"].to_numpy(), exog, weights=frame["w"].to_numpy()).fit()


def test_inference_is_statsmodels_wls(tmp_path):
    frame = table(n=150, seed=3)
    result = fit(tmp_path, frame, alpha=0.1)
    stats, reference = result.inference, statsmodels_wls(frame)
    target = stats["targets"][0]
    rows = target["coefficients"]
    for key, expected in (
        ("estimate", reference.params),
        ("stderr", reference.bse),
        ("t", reference.tvalues),
        ("p", reference.pvalues),
        ("lower", reference.conf_int(0.1)[:, 0]),
        ("upper", reference.conf_int(0.1)[:, 1]),
    ):
        np.testing.assert_allclose([row[key] for row in rows], expected, rtol=RTOL)
    assert (stats["n"], stats["df_resid"]) == (reference.nobs, reference.df_resid)
    for key, expected in (
        ("r2", reference.rsquared),
        ("r2_adj", reference.rsquared_adj),
        ("f", reference.fvalue),
        ("f_pvalue", reference.f_pvalue),
        ("ssr", reference.ssr),
        ("loglik", reference.llf),
        ("aic", reference.aic),
        ("bic", reference.bic),
    ):
        assert target[key] == pytest.approx(expected, rel=RTOL), key
    assert stats["condition_number"] == pytest.approx(reference.condition_number, rel=RTOL)
    assert any("weighted least squares" in note for note in stats["notes"])


def test_prediction_interval_from_the_leverage_is_statsmodels_with_weight_one(tmp_path):
    frame = table(n=120, seed=4)
    result = fit(tmp_path, frame)
    reference = statsmodels_wls(frame)
    new = np.array([[0.3, -5.0, 0.2], [2.0, 1.0, -0.1]])
    stats = result.inference
    leverage = stats["leverage"]
    centred = new - np.array(leverage["center"])
    h = leverage["constant"] + np.einsum(
        "ij,jk,ik->i", centred, np.array(leverage["inverse"]), centred
    )
    target = stats["targets"][0]
    quantile = distributions.t.ppf(0.975, stats["df_resid"])
    half = quantile * target["rse"] * np.sqrt(1.0 + h)
    centre = new @ result.weight[0] + result.bias[0]
    frame_ = reference.get_prediction(sm.add_constant(new), weights=1.0).summary_frame(0.05)
    np.testing.assert_allclose(centre - half, frame_["obs_ci_lower"], rtol=RTOL)
    np.testing.assert_allclose(centre + half, frame_["obs_ci_upper"], rtol=RTOL)


def test_zero_weights_count_in_n_and_make_the_log_likelihood_minus_infinity(tmp_path):
    frame = table(n=100, zeros=5)
    result = fit(tmp_path, frame)
    with np.errstate(divide="ignore"):
        reference = statsmodels_wls(frame)
    stats = result.inference
    assert (stats["n"], stats["df_resid"]) == (100, reference.df_resid) == (100, 96)
    target = stats["targets"][0]
    assert target["loglik"] == reference.llf == -math.inf
    np.testing.assert_allclose([r["stderr"] for r in target["coefficients"]], reference.bse, RTOL)
    np.testing.assert_allclose(result.weight[0], sklearn_fit(frame).coef_, rtol=RTOL)


def test_weights_of_one_give_the_unweighted_fit(tmp_path):
    frame = table().assign(w=1.0)
    weighted = fit(tmp_path, frame, name="weighted.csv", val_fraction=0.2)
    plain = fit(tmp_path, frame.drop(columns="w"), name="plain.csv", weight=None, val_fraction=0.2)
    np.testing.assert_allclose(weighted.weight, plain.weight, rtol=IDENTITY)
    np.testing.assert_allclose(weighted.bias, plain.bias, rtol=IDENTITY)
    for split in ("train", "val"):
        for key in ("mse", "mae", "r2"):
            assert weighted.metrics[split][key] == pytest.approx(
                plain.metrics[split][key], rel=IDENTITY
            )
    w_rows = weighted.inference["targets"][0]["coefficients"]
    p_rows = plain.inference["targets"][0]["coefficients"]
    np.testing.assert_allclose([r["stderr"] for r in w_rows], [r["stderr"] for r in p_rows], 1e-10)


@pytest.mark.parametrize("solver", ["exact", "lbfgs"])
def test_integer_weights_equal_repeated_rows(tmp_path, solver):
    frame = table(n=80, integer=True)
    weighted = fit(tmp_path, frame, name="weighted.csv", solver=solver)
    repeated = frame.loc[frame.index.repeat(frame["w"].astype(int))].drop(columns="w")
    plain = fit(tmp_path, repeated, name="repeated.csv", weight=None, solver=solver)
    tolerance = IDENTITY if solver == "exact" else 1e-9  # lbfgs stops within its own tolerance
    np.testing.assert_allclose(weighted.weight, plain.weight, rtol=tolerance)
    np.testing.assert_allclose(weighted.bias, plain.bias, rtol=tolerance)
    for key in ("mse", "mae", "r2"):
        assert weighted.metrics["train"][key] == pytest.approx(
            plain.metrics["train"][key], rel=tolerance
        )


def test_chunks_and_shards_give_the_same_fit_and_inference(tmp_path):
    frame = table(n=200, seed=5)
    whole = fit(tmp_path, frame)
    shards = tmp_path / "shards"
    shards.mkdir()
    for k, part in enumerate((frame[:70], frame[70:140], frame[140:])):
        part.to_csv(shards / f"part-{k}.csv", index=False)
    config = TrainConfig(
        data=shards,
        out=tmp_path / "s.pt",
        weight="w",
        val_fraction=0.0,
        chunk_rows=7,
        dtype="float64",
    )
    pieces = train(config)
    np.testing.assert_allclose(pieces.weight, whole.weight, rtol=IDENTITY)
    a, b = (r.inference["targets"][0] for r in (pieces, whole))
    for key in ("r2", "f", "loglik"):
        assert a[key] == pytest.approx(b[key], rel=1e-10)


def test_weighted_moments_are_numpys_and_merge_like_one_pass():
    rng = np.random.default_rng(1)
    x, y, w = rng.normal(size=(500, 2)), rng.normal(size=500), rng.uniform(0, 2, 500)
    whole = Accumulator()
    whole.add(x, y, w)
    parts = []
    for rows in np.array_split(np.arange(500), 4):
        part = Accumulator()
        part.add(x[rows], y[rows], w[rows])
        parts.append(part.moments())
    data = np.column_stack([x, y])
    mean = np.average(data, axis=0, weights=w)
    scatter = np.cov(data.T, aweights=w, ddof=0) * w.sum()
    for moments in (whole.moments(), merge(parts)):
        assert moments.n == 500 and moments.weight_sum == pytest.approx(w.sum(), rel=IDENTITY)
        np.testing.assert_allclose(moments.mean, mean, rtol=IDENTITY)
        np.testing.assert_allclose(moments.raw_scatter(), scatter, rtol=1e-11)
        assert moments.log_weights == pytest.approx(np.log(w).sum(), rel=IDENTITY)


def test_ones_as_weights_give_the_unweighted_moments():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 3)), rng.normal(size=300)
    weighted, plain = Accumulator(), Accumulator()
    weighted.add(x, y, np.ones(300))
    plain.add(x, y)
    a, b = weighted.moments(), plain.moments()
    np.testing.assert_allclose(a.mean, b.mean, rtol=IDENTITY, atol=0)
    np.testing.assert_allclose(a.scatter, b.scatter, rtol=IDENTITY, atol=1e-12)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("-0.5", r"data\.csv, row 4, column 'w': expected a weight >= 0, got -0\.5"),
        ("nan", r"data\.csv, row 4, column 'w': expected a finite number, got nan"),
        ("inf", r"data\.csv, row 4, column 'w': expected a finite number, got inf"),
        ("", r"data\.csv, row 4, column 'w': blank cell; expected a number"),
    ],
)
def test_bad_weights_are_refused_with_file_row_column_and_value(tmp_path, cell, message):
    lines = ["a,b,w,y", "1,2,1,3", "2,1,1,4", f"3,5,{cell},6", "4,4,1,9", "5,0,2,1"]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    config = TrainConfig(data=tmp_path / "data.csv", out=tmp_path / "m.pt", weight="w")
    with pytest.raises(DataError, match=message):
        train(config)


def test_all_zero_weights_are_refused_naming_the_column(tmp_path):
    frame = table(n=20).assign(w=0.0)
    with pytest.raises(DataError, match=r"every training row has weight 0 in column 'w'"):
        fit(tmp_path, frame)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--features", "a,w"], "'w' is the --weight column and cannot also be in --features"),
        (["--target", "w"], "'w' is the --weight column and cannot also be in --target"),
        ([], None),  # by default the weight column is neither a feature nor the target
    ],
)
def test_the_weight_column_is_neither_a_feature_nor_a_target(tmp_path, flags, message):
    table(n=40).to_csv(tmp_path / "data.csv", index=False)
    args = ["train", "--data", str(tmp_path / "data.csv"), "--weight", "w", "--json"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "m.pt"), *flags])
    if message is None:
        assert result.exit_code == 0, result.output
        assert '"features": [\n    "a",\n    "b",\n    "c"\n  ]' in result.output
        return
    assert result.exit_code == 2, result.output
    assert message in result.output
    with pytest.raises(UsageError):
        train(TrainConfig(data=tmp_path / "data.csv", weight="w", targets=("w",)))


def test_resume_fingerprint_names_the_weight_column():
    spec = ModelSpec(("a",), ("y",), True, "float32")
    prints = [
        resume.fingerprint(TrainConfig(weight=w), {}, spec, "sha", "cpu", 0.2, 1)
        for w in (None, "w", "v")
    ]
    assert [p.get("weight") for p in prints] == [None, "w", "v"]
    assert prints[0] != prints[1] != prints[2]
