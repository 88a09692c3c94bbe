"""toolkit/report/robust.py and residuals.py: the one-pass diagnostics equal statsmodels'.

Reference: statsmodels on the same training rows in memory, `OLS(...).fit(cov_type=...)`
for HC0/HC1/HC3, `durbin_watson`, `jarque_bera`. Tolerance rtol 1e-8 (the contract's,
in float64): the pass differs only in summation order and in forming the sandwich in
centred coordinates, worth ~1e-12 on these tables. Small --chunk-rows make every sum
cross many chunk boundaries, and a validation split makes the pass pick the training
rows by the checkpoint's seeded hash.
"""

from __future__ import annotations

import numpy as np
import pytest
from report_data import Fit, fit, heteroskedastic
from scipy import stats
from statsmodels.stats.stattools import durbin_watson, jarque_bera

from toolkit.report import make_report
from toolkit.report.residuals import CentralMoments, Sample

RTOL = 1e-8


def _report(result: Fit, chunk_rows: int = 97, sample_rows: int = 500):
    return make_report(
        result.checkpoint, result.data, chunk_rows=chunk_rows, sample_rows=sample_rows
    ).content


def _check_against_statsmodels(result: Fit, content: dict) -> None:
    diagnostics = content["diagnostics"]
    assert diagnostics["training_rows"] is True
    assert diagnostics["rows"] == len(result.x)
    for j, found in enumerate(diagnostics["targets"]):
        residuals = result.ols(j).resid
        for kind in ("HC0", "HC1", "HC3"):
            expected = result.ols(j, cov_type=kind).bse
            np.testing.assert_allclose(found["robust_stderr"][kind], expected, rtol=RTOL)
        assert found["durbin_watson"] == pytest.approx(durbin_watson(residuals), rel=RTOL)
        jb, p, skew, kurtosis = jarque_bera(residuals)
        got = found["jarque_bera"]
        assert got["statistic"] == pytest.approx(jb, rel=RTOL)
        assert got["pvalue"] == pytest.approx(p, rel=RTOL)
        assert got["skew"] == pytest.approx(skew, rel=RTOL)
        assert got["kurtosis"] == pytest.approx(kurtosis, rel=RTOL)


def test_diagnostics_equal_statsmodels_on_the_training_rows_of_a_split(tmp_path):
    x, y = heteroskedastic(1500, d=3)
    result = fit(tmp_path, x, y, val_fraction=0.25)
    content = _report(result)
    assert content["diagnostics"]["held_out_rows"] == 1500 - len(result.x) > 300
    _check_against_statsmodels(result, content)
    # The HC errors really differ from the classical ones here (heteroskedastic noise).
    classical = result.ols().bse
    hc3 = np.array(content["diagnostics"]["targets"][0]["robust_stderr"]["HC3"])
    assert np.max(np.abs(hc3 / classical - 1)) > 0.2


def test_diagnostics_equal_statsmodels_without_intercept(tmp_path):
    x, y = heteroskedastic(600, d=2, seed=1)
    result = fit(tmp_path, x, y, intercept=False)
    _check_against_statsmodels(result, _report(result, chunk_rows=64))


def test_diagnostics_equal_statsmodels_for_each_of_two_targets(tmp_path):
    x, y = heteroskedastic(800, d=4, t=2, seed=2)
    result = fit(tmp_path, x, y)
    _check_against_statsmodels(result, _report(result, chunk_rows=1000))


def test_chunking_changes_nothing_but_rounding(tmp_path):
    x, y = heteroskedastic(700, d=3, seed=3)
    result = fit(tmp_path, x, y)
    one, many = _report(result, chunk_rows=10_000), _report(result, chunk_rows=13)
    a, b = one["diagnostics"]["targets"][0], many["diagnostics"]["targets"][0]
    assert b["durbin_watson"] == pytest.approx(a["durbin_watson"], rel=1e-12)
    np.testing.assert_allclose(b["robust_stderr"]["HC3"], a["robust_stderr"]["HC3"], rtol=1e-12)


def test_other_rows_get_residual_diagnostics_but_no_robust_errors(tmp_path):
    x, y = heteroskedastic(400, d=2, seed=4)
    result = fit(tmp_path, x, y)
    other = fit(tmp_path, *heteroskedastic(400, d=2, seed=5), name="other")
    content = make_report(result.checkpoint, other.data, chunk_rows=50, sample_rows=10).content
    diagnostics = content["diagnostics"]
    assert diagnostics["training_rows"] is False
    assert diagnostics["targets"][0]["robust_stderr"] is None
    assert any("with other feature means" in note for note in content["notes"])
    # Durbin-Watson of the model's residuals on those rows, as statsmodels computes it.
    weight, bias = content["model"]["weights"][0], content["model"]["bias"][0]
    residuals = other.y[:, 0] - (other.x @ np.array(weight) + bias)
    assert diagnostics["targets"][0]["durbin_watson"] == pytest.approx(
        durbin_watson(residuals), rel=RTOL
    )


def test_central_moments_merge_to_those_of_the_whole():
    rng = np.random.default_rng(0)
    values = rng.standard_exponential((1000, 2)) * 1e3 + 1e6  # skewed, offset
    merged = CentralMoments.of(values[:1])
    for begin, end in [(1, 7), (7, 400), (400, 401), (401, 1000)]:
        merged = merged.merge(CentralMoments.of(values[begin:end]))
    n = len(values)
    # scipy's biased skewness and Pearson kurtosis from the merged sums (rtol: cancellation-free)
    np.testing.assert_allclose(
        np.sqrt(n) * merged.m3 / merged.m2**1.5, stats.skew(values), rtol=1e-10
    )
    np.testing.assert_allclose(
        n * merged.m4 / merged.m2**2, stats.kurtosis(values, fisher=False), rtol=1e-10
    )
    np.testing.assert_allclose(merged.mean, values.mean(axis=0), rtol=1e-15)


def test_the_sample_is_bounded_uniform_and_independent_of_chunking():
    rows = np.arange(10_000, dtype=float)[:, None]

    def sampled(chunk: int) -> np.ndarray:
        sample = Sample(500, np.random.default_rng(3))
        for begin in range(0, len(rows), chunk):
            sample.add(rows[begin : begin + chunk])
        return np.sort(sample.rows[:, 0])

    first = sampled(10_000)
    assert len(first) == 500 and len(np.unique(first)) == 500
    np.testing.assert_array_equal(first, sampled(37))
    # Uniform over the file: a Kolmogorov-Smirnov test against U(0, 10000) does not reject.
    assert stats.kstest(first / 10_000, "uniform").pvalue > 0.01
