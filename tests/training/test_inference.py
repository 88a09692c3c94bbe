"""toolkit/training/inference.py: statsmodels' OLS numbers, from the sufficient statistics.

Each table is written to a file and trained through the real entry point,
`train(TrainConfig(..., dtype="float64", val_fraction=0))` (inference is of the training
rows, so nothing is held out), and every figure of the checkpoint's inference is compared
with `statsmodels.api.OLS(y, X).fit()` (X with `sm.add_constant` for an intercept) on the
same rows, read back from the same file: one statsmodels fit per target.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv
import pytest
import statsmodels.api as sm
from conftest import write_table_csv

from toolkit.training import TrainConfig, train
from toolkit.training.checkpoint import load
from toolkit.training.inference import INTERCEPT_TERM, t_quantile

# The bound. Measured: 1e-11 at worst, on longley (X with its constant has
# condition number 4.9e9), 1e-12 or better elsewhere: statsmodels (pinv, the SVD of X) and
# toolkit (R of the solve, in scaled units) each lose about log10(condition) digits of
# float64's 16, in different places, so agreement is bounded by eps * condition.
STATSMODELS_RTOL = 1e-8
# Below this, a statsmodels figure is compared absolutely (a p-value of 1e-300 or an
# estimate that is zero up to rounding has no relative digits to agree on).
STATSMODELS_ATOL = 1e-300
# A p-value is a tail probability of its t (or F): a relative difference r in the statistic
# moves it by k*r, k = |d log p / d log t| (about t^2 in the far tail), so p-values are held
# to STATSMODELS_RTOL * max(1, k), with k from scipy at statsmodels' statistic.
P_STEP = 1e-6  # the relative step of the finite difference that estimates k
# statsmodels' VIF is 1 / (1 - R^2) of an auxiliary fit, and R^2 carries an absolute
# rounding error of a few eps: a relative error of about eps * VIF (measured 2.7e-8 at a
# VIF of 5e8, where toolkit's agrees with a 50-digit mpmath reference to 3e-13).
VIF_RTOL_PER_VIF = 4 * float(np.finfo(np.float64).eps)
# Rows split into shards, chunks or processes change only the summation order (the
# moments merge exactly, by Chan's update): the README's 1e-10 for the weights.
SPLIT_RTOL = 1e-10


def fit(path: Path, targets: list[str], **options: Any) -> dict[str, Any]:
    """The inference that `train` stores in the checkpoint, float64, every row training."""
    out = path.with_suffix(".pt")
    config = TrainConfig(
        data=path, targets=tuple(targets), dtype="float64", val_fraction=0.0, out=out, **options
    )
    result = train(config)
    stored = load(out)["inference"]
    assert stored == result.inference  # what is printed is what is saved
    return stored


def read_back(path: Path, targets: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The file's rows as toolkit reads them (pyarrow), as float64 arrays."""
    table = pa_csv.read_csv(path)
    features = [name for name in table.column_names if name not in targets]
    x = np.column_stack([table[name].to_numpy().astype(float) for name in features])
    y = np.column_stack([table[name].to_numpy().astype(float) for name in targets])
    return x, y, features


def statsmodels_figures(x: np.ndarray, y: np.ndarray, intercept: bool, alpha: float) -> dict:
    """What statsmodels reports for one target, keyed as toolkit's inference."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    design = sm.add_constant(x, has_constant="add") if intercept else x
    ols = sm.OLS(y, design).fit()
    interval = ols.conf_int(alpha)
    first = int(intercept)
    vif = [1.0]  # one feature and no constant: nothing to regress it on
    if design.shape[1] > 1:
        with warnings.catch_warnings():  # "poorly conditioned": the test knows (VIF_RTOL...)
            warnings.simplefilter("ignore", UserWarning)
            vif = [variance_inflation_factor(design, i) for i in range(first, design.shape[1])]
    return {
        "n": ols.nobs,
        "df_model": ols.df_model,
        "df_resid": ols.df_resid,
        "condition_number": ols.condition_number,
        "target": {
            "ssr": ols.ssr,
            "sigma2": ols.scale,
            "rse": math.sqrt(ols.scale),
            "r2": ols.rsquared,
            "r2_adj": ols.rsquared_adj,
            "f": ols.fvalue,
            "f_pvalue": ols.f_pvalue,
            "loglik": ols.llf,
            "aic": ols.aic,
            "bic": ols.bic,
        },
        "coefficients": {
            "estimate": ols.params,
            "stderr": ols.bse,
            "t": ols.tvalues,
            "p": ols.pvalues,
            "lower": interval[:, 0],
            "upper": interval[:, 1],
            "vif": [None] * first + vif,
        },
    }


def mismatches(ours: Any, theirs: Any, where: str, rtol: float) -> list[str]:
    """Every number of `theirs` that `ours` misses by more than rtol (None matches None)."""
    if isinstance(theirs, dict):
        return [
            m for key in theirs for m in mismatches(ours[key], theirs[key], f"{where}.{key}", rtol)
        ]
    if isinstance(theirs, (list, tuple, np.ndarray)):
        assert len(ours) == len(theirs), where
        return [
            m for i, v in enumerate(theirs) for m in mismatches(ours[i], v, f"{where}[{i}]", rtol)
        ]
    if theirs is None or ours is None:
        return [] if theirs is ours else [f"{where}: {ours!r} vs {theirs!r}"]
    if np.isclose(ours, theirs, rtol=rtol, atol=STATSMODELS_ATOL):
        return []
    return [f"{where}: {ours!r} vs {theirs!r} (rel {abs(ours - theirs) / abs(theirs):.1e})"]


def p_value_tolerance(statistic: float, sf: Any) -> float:
    """STATSMODELS_RTOL times the condition number of p = sf(statistic)."""
    x = abs(statistic)
    if x == 0 or sf(x) == 0:
        return STATSMODELS_RTOL
    k = abs(math.log(sf(x * (1 + P_STEP))) - math.log(sf(x))) / P_STEP
    return STATSMODELS_RTOL * max(1.0, k)


def p_value_mismatches(target: dict, reference: dict, df: float) -> list[str]:
    """The p-values of t and F, each within its own tolerance (see P_STEP)."""
    from scipy import stats

    pairs = [
        (f"coefficients[{i}].p", row["p"], p, t, lambda v: 2 * stats.t.sf(v, df))
        for i, (row, p, t) in enumerate(
            zip(target["coefficients"], reference["p"], reference["t"], strict=True)
        )
    ]
    d = len(reference["t"]) - (1 if target["coefficients"][0]["term"] == INTERCEPT_TERM else 0)
    f_sf = lambda v: stats.f.sf(v, d, df)  # noqa: E731
    pairs.append(("f_pvalue", target["f_pvalue"], reference["f_pvalue"], reference["f"], f_sf))
    problems = []
    for where, ours, theirs, statistic, sf in pairs:
        rtol = p_value_tolerance(statistic, sf)
        if not np.isclose(ours, theirs, rtol=rtol, atol=STATSMODELS_ATOL):
            problems.append(f"{target['name']}.{where}: {ours!r} vs {theirs!r} (rtol {rtol:.1e})")
    return problems


def vif_mismatches(target: dict, reference: list[float | None]) -> list[str]:
    problems = []
    for i, (row, theirs) in enumerate(zip(target["coefficients"], reference, strict=True)):
        if theirs is None or row["vif"] is None:
            if theirs is not row["vif"]:
                problems.append(f"{target['name']}.vif[{i}]: {row['vif']!r} vs {theirs!r}")
            continue
        rtol = max(STATSMODELS_RTOL, VIF_RTOL_PER_VIF * theirs)
        if not np.isclose(row["vif"], theirs, rtol=rtol, atol=0):
            problems.append(f"{target['name']}.vif[{i}]: {row['vif']!r} vs {theirs!r}")
    return problems


def assert_matches_statsmodels(
    inference: dict, x: np.ndarray, y: np.ndarray, intercept: bool, features: list[str]
) -> None:
    alpha = inference["alpha"]
    terms = ([INTERCEPT_TERM] if intercept else []) + features
    problems = []
    for j, target in enumerate(inference["targets"]):
        reference = statsmodels_figures(x, y[:, j], intercept, alpha)
        p_values = {
            "p": reference["coefficients"].pop("p"),
            "t": reference["coefficients"]["t"],
            "f_pvalue": reference["target"].pop("f_pvalue"),
            "f": reference["target"]["f"],
        }
        problems += p_value_mismatches(target, p_values, reference["df_resid"])
        problems += vif_mismatches(target, reference["coefficients"].pop("vif"))
        rows = target["coefficients"]
        assert [row["term"] for row in rows] == terms
        ours = {
            **{key: inference[key] for key in ("n", "df_model", "df_resid", "condition_number")},
            "target": target,
            "coefficients": {key: [row[key] for row in rows] for key in reference["coefficients"]},
        }
        problems += mismatches(ours, reference, target["name"], STATSMODELS_RTOL)
    assert problems == [], "\n".join(problems)


def generated(
    rows: int, d: int, t: int, seed: int, offset: float, spread: float, collinear: float = 0.0
) -> dict[str, np.ndarray]:
    """Correlated features of scales spread**U(-1, 1) around offset*U(-1, 1), and t noisy
    linear targets; with `collinear` > 0 the last feature is the sum of the others plus
    that much noise (relative)."""
    rng = np.random.default_rng(seed)
    scales = spread ** rng.uniform(-1, 1, d)
    mixing = np.eye(d) + 0.3 * rng.standard_normal((d, d))
    z = rng.standard_normal((rows, d)) @ mixing
    if collinear:
        z[:, -1] = z[:, :-1].sum(axis=1) + collinear * rng.standard_normal(rows)
    x = z * scales + offset * rng.uniform(-1, 1, d)
    w = rng.standard_normal((d, t)) / scales[:, None]
    y = (x - x.mean(axis=0)) @ w + rng.uniform(-5, 5, t) + rng.standard_normal((rows, t))
    return {**{f"x{i}": x[:, i] for i in range(d)}, **{f"y{j}": y[:, j] for j in range(t)}}


@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize(
    ("rows", "d", "t", "offset", "spread"),
    [
        (12, 1, 1, 0.0, 1.0),  # one feature, few rows
        (200, 5, 1, 1e3, 1e3),  # scales from 1e-3 to 1e3 around 1e3
        (500, 8, 3, 1e6, 10.0),  # three targets, offsets of 1e6
        (60, 3, 2, 0.5, 1e2),
    ],
)
def test_generated_tables_match_statsmodels(tmp_path, rows, d, t, offset, spread, intercept):
    path = write_table_csv(tmp_path / "t.csv", generated(rows, d, t, rows + d, offset, spread))
    targets = [f"y{j}" for j in range(t)]
    inference = fit(path, targets, intercept=intercept)
    x, y, features = read_back(path, targets)
    assert_matches_statsmodels(inference, x, y, intercept, features)


def test_nearly_collinear_features_match_statsmodels(tmp_path):
    """Condition number 1e9 of the correlation matrix: the exact solver's QR path, whose R
    the inference reuses (normal equations would keep 7 digits). With an intercept only:
    without one, the VIFs (of the centred features, as statsmodels' standardize=True) come
    from the moments' scatter, good to about eps x that condition number."""
    columns = generated(300, 4, 1, 3, 10.0, 10.0, collinear=1e-4)
    path = write_table_csv(tmp_path / "t.csv", columns)
    inference = fit(path, ["y0"])
    assert load(path.with_suffix(".pt"))["training"]["method"] == "qr"
    x, y, features = read_back(path, ["y0"])
    assert_matches_statsmodels(inference, x, y, True, features)
    # The VIFs against a reference as exact as toolkit's: numpy's Householder QR of the
    # centred, unit-norm columns (error about eps * 3e4, the condition number of those).
    centred = x - x.mean(axis=0)
    r = np.linalg.qr(centred / np.linalg.norm(centred, axis=0), mode="r")
    exact_vif = np.sum(np.linalg.inv(r) ** 2, axis=1)
    ours = [row["vif"] for row in inference["targets"][0]["coefficients"][1:]]
    np.testing.assert_allclose(ours, exact_vif, rtol=STATSMODELS_RTOL)


@pytest.mark.parametrize("name", ["longley", "stackloss", "ccard"])
@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
def test_statsmodels_data_sets_match_statsmodels(tmp_path, name, intercept):
    data = getattr(sm.datasets, name).load_pandas()
    path = tmp_path / f"{name}.csv"
    data.data.to_csv(path, index=False)
    target = data.endog_name
    inference = fit(path, [target], intercept=intercept)
    x, y, features = read_back(path, [target])
    assert features == list(data.exog.columns)
    assert_matches_statsmodels(inference, x, y, intercept, features)


def test_another_alpha_moves_the_intervals_only(tmp_path):
    path = write_table_csv(tmp_path / "t.csv", generated(80, 3, 1, 1, 0.0, 1.0))
    wide, narrow = fit(path, ["y0"]), fit(path, ["y0"], alpha=0.2)
    assert (wide["alpha"], narrow["alpha"]) == (0.05, 0.2)
    for a, b in zip(
        wide["targets"][0]["coefficients"], narrow["targets"][0]["coefficients"], strict=True
    ):
        assert a["stderr"] == b["stderr"] and a["p"] == b["p"]
        # Half-widths scale with the t quantiles (scipy's, independent of toolkit's use).
        ratio = (a["upper"] - a["estimate"]) / (b["upper"] - b["estimate"])
        assert ratio == pytest.approx(t_quantile(0.05, 76) / t_quantile(0.2, 76), rel=1e-12)
    x, y, features = read_back(path, ["y0"])
    assert_matches_statsmodels(narrow, x, y, True, features)


def close(a: Any, b: Any, rtol: float, where: str = "inference") -> list[str]:
    """Differences between two inference dicts beyond rtol (strings and None exactly)."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        return [m for k in a for m in close(a[k], b[k], rtol, f"{where}.{k}")]
    if isinstance(a, list):
        assert len(a) == len(b), where
        return [
            m
            for i, (u, v) in enumerate(zip(a, b, strict=True))
            for m in close(u, v, rtol, f"{where}[{i}]")
        ]
    if isinstance(a, float) and isinstance(b, float):
        scale = max(abs(a), abs(b))
        return [] if abs(a - b) <= rtol * scale or a == b else [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


@pytest.fixture(scope="module")
def split_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One table (3,000 rows, 4 features, 2 targets) as one CSV file and as 3 shards."""
    folder = tmp_path_factory.mktemp("split")
    columns = generated(3000, 4, 2, 11, 100.0, 10.0)
    whole = write_table_csv(folder / "whole.csv", columns)
    (folder / "shards").mkdir()
    for k, part in enumerate((slice(0, 1100), slice(1100, 1900), slice(1900, 3000))):
        write_table_csv(
            folder / "shards" / f"part-{k}.csv", {c: v[part] for c, v in columns.items()}
        )
    return whole, folder / "shards"


def test_shards_and_small_chunks_give_the_same_inference(split_table, tmp_path):
    whole, shards = split_table
    one = fit(whole, ["y0", "y1"])
    pieces = fit(shards, ["y0", "y1"], chunk_rows=97)
    assert close(pieces, one, SPLIT_RTOL) == []


@pytest.mark.slow
def test_two_torchrun_processes_give_the_same_inference(split_table, tmp_path):
    """Every rank computes it from the same merged moments and sums; rank 0 writes it."""
    _, shards = split_table
    args = ["--data", str(shards), "--target", "y0,y1", "--dtype", "float64"]
    args += ["--val-fraction", "0", "--json", "-q", "--out", str(tmp_path / "two.pt")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    done = subprocess.run(
        [*command, "2", "-m", "toolkit", "train", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(done.stdout)
    assert two["data"]["processes"] == 2
    one = fit(shards, ["y0", "y1"])
    assert close(two["inference"], json.loads(json.dumps(one)), SPLIT_RTOL) == []
    assert close(load(tmp_path / "two.pt")["inference"], one, SPLIT_RTOL) == []


def test_leverage_gives_statsmodels_prediction_intervals(split_table):
    """The contract: yhat -+ t * sqrt(sigma2 * (1 + h(x0))) is get_prediction's obs_ci."""
    whole, _ = split_table
    x, y, _ = read_back(whole, ["y0", "y1"])
    new = x[:5] * 1.5 + 3.0  # rows the model has not seen
    for intercept in (True, False):
        inference = fit(whole, ["y0", "y1"], intercept=intercept)
        leverage = inference["leverage"]
        centred = new - np.array(leverage["center"])
        h = leverage["constant"] + np.einsum("ij,jk,ik->i", centred, leverage["inverse"], centred)
        q = t_quantile(inference["alpha"], inference["df_resid"])
        design = sm.add_constant(x) if intercept else x
        rows = sm.add_constant(new, has_constant="add") if intercept else new
        for j, target in enumerate(inference["targets"]):
            estimates = np.array([row["estimate"] for row in target["coefficients"]])
            predicted = rows @ estimates
            half = q * np.sqrt(target["sigma2"] * (1 + h))
            frame = sm.OLS(y[:, j], design).fit().get_prediction(rows).summary_frame(0.05)
            np.testing.assert_allclose(
                predicted - half, frame["obs_ci_lower"], rtol=STATSMODELS_RTOL
            )
            np.testing.assert_allclose(
                predicted + half, frame["obs_ci_upper"], rtol=STATSMODELS_RTOL
            )


def test_ridge_leaves_out_what_has_no_standard_meaning(split_table):
    from sklearn.linear_model import Ridge

    whole, _ = split_table
    ridge, plain = fit(whole, ["y0", "y1"], l2=50.0), fit(whole, ["y0", "y1"])
    assert ridge["l2"] == 50.0 and ridge["leverage"] is None
    assert any(note.startswith("--l2 > 0 (ridge): standard errors") for note in ridge["notes"])
    x, y, _ = read_back(whole, ["y0", "y1"])
    reference = Ridge(alpha=50.0).fit(x, y)  # scikit-learn's Ridge(alpha) is toolkit's --l2
    residual = y - reference.predict(x)
    for j, target in enumerate(ridge["targets"]):
        assert target["f"] is None and target["f_pvalue"] is None
        for row in target["coefficients"]:
            assert [row[k] for k in ("stderr", "t", "p", "lower", "upper")] == [None] * 5
        estimates = [row["estimate"] for row in target["coefficients"]]
        expected = [reference.intercept_[j], *reference.coef_[j]]
        np.testing.assert_allclose(estimates, expected, rtol=STATSMODELS_RTOL)
        ssr = float(residual[:, j] @ residual[:, j])
        tss = float(((y[:, j] - y[:, j].mean()) ** 2).sum())
        assert target["ssr"] == pytest.approx(ssr, rel=STATSMODELS_RTOL)
        assert target["r2"] == pytest.approx(1 - ssr / tss, rel=STATSMODELS_RTOL)
        # The design's own figures do not depend on the penalty.
        vifs = [row["vif"] for row in target["coefficients"]]
        assert vifs == [row["vif"] for row in plain["targets"][j]["coefficients"]]
    assert ridge["condition_number"] == plain["condition_number"]


def test_lbfgs_inference_is_the_exact_fits_within_its_optimality_gap(tmp_path):
    """At weights w with SSR(w) = SSR(w*) + e, each |w_j - w*_j| <= se_j sqrt(e / sigma2)
    (Cauchy-Schwarz in the X'X norm), and the standard errors scale by sqrt(SSR ratio)."""
    whole = write_table_csv(tmp_path / "t.csv", generated(400, 4, 2, 5, 10.0, 10.0))
    exact, lbfgs = fit(whole, ["y0", "y1"]), fit(whole, ["y0", "y1"], solver="lbfgs")
    assert lbfgs["solver"] == "lbfgs" and lbfgs["optimality_gap"]["r2_gap"] is not None
    assert any(note.startswith("--solver lbfgs: evaluated at the saved") for note in lbfgs["notes"])
    for best, near in zip(exact["targets"], lbfgs["targets"], strict=True):
        # The excess, plus the rounding of the two sums (float64, 1e-15 relative).
        excess = max(near["ssr"] - best["ssr"], 0.0) + 1e-13 * best["ssr"]
        ratio = math.sqrt(near["ssr"] / best["ssr"])
        for a, b in zip(best["coefficients"], near["coefficients"], strict=True):
            assert abs(b["estimate"] - a["estimate"]) <= a["stderr"] * math.sqrt(
                excess / best["sigma2"]
            )
            assert b["stderr"] == pytest.approx(a["stderr"] * ratio, rel=1e-12)
            assert b["vif"] == a["vif"]


def test_a_float32_model_reports_its_float64_solution(split_table):
    whole, _ = split_table
    wide = fit(whole, ["y0", "y1"])
    narrow = train(
        TrainConfig(
            data=whole, targets=("y0", "y1"), val_fraction=0.0, out=whole.with_suffix(".32.pt")
        )
    ).inference
    note = "estimates and residuals are the float64 solution's; the float32 model holds"
    assert [n for n in narrow["notes"] if not n.startswith(note)] == wide["notes"]
    narrow.pop("notes"), wide.pop("notes")
    assert close(narrow, wide, 1e-12) == []


def test_as_many_rows_as_parameters_leaves_out_what_needs_residual_freedom(tmp_path):
    path = write_table_csv(tmp_path / "t.csv", generated(4, 3, 1, 0, 0.0, 1.0))
    inference = fit(path, ["y0"])
    target = inference["targets"][0]
    assert inference["df_resid"] == 0 and inference["leverage"] is None
    assert target["sigma2"] is None and target["r2_adj"] is None and target["f"] is None
    assert all(row["stderr"] is None for row in target["coefficients"])
    assert any("no residual degrees of freedom" in note for note in inference["notes"])


def test_train_prints_the_table_and_json_carries_every_number(run, tmp_path):
    columns = generated(120, 25, 1, 2, 0.0, 1.0)
    path = write_table_csv(tmp_path / "wide.csv", columns)
    args = ["--data", str(path), "--target", "y0", "--val-fraction", "0", "--dtype", "float64"]
    text = run("train", *args, "--alpha", "0.1").stdout.splitlines()
    header = text.index("  y0: least squares on 120 rows; 90% intervals")
    assert text[header + 1].split() == [
        "term",
        "coef",
        "std",
        "err",
        "t",
        "P>|t|",
        "[0.05",
        "0.95]",
    ]
    assert text[header + 2].split()[0] == INTERCEPT_TERM
    assert text[header + 22] == "  ... 6 more coefficients; see --json"  # 26, 20 shown
    assert text[header + 23].startswith("  R^2 ")
    assert text[header + 24].startswith("  log-likelihood ")
    report = json.loads(run("train", *args, "--json", "-q").stdout)
    inference = report["inference"]
    assert set(inference) >= {
        "alpha", "n", "df_model", "df_resid", "l2", "solver", "optimality_gap",
        "condition_number", "feature_mean", "leverage", "notes", "targets",
    }  # fmt: skip
    assert (inference["n"], inference["df_model"], inference["df_resid"]) == (120, 25, 94)
    (target,) = inference["targets"]
    assert len(target["coefficients"]) == 26
    assert set(target["coefficients"][0]) == {
        "term", "estimate", "stderr", "t", "p", "lower", "upper", "vif",
    }  # fmt: skip
    assert len(inference["leverage"]["inverse"]) == 25


def test_json_is_strict_when_the_fit_is_exact(run):
    """The seed data is fitted exactly: t is infinite, which JSON holds as null."""
    report = json.loads(run("train", "--json", "-q").stdout)
    rows = report["inference"]["targets"][0]["coefficients"]
    assert [row["stderr"] for row in rows] == [0.0, 0.0, 0.0]
    assert [row["t"] for row in rows] == [None, None, None]
    json.dumps(report, allow_nan=False)
    assert any("the fit is exact" in note for note in report["inference"]["notes"])
