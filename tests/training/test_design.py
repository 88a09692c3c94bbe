"""toolkit/training/design.py: (X'X)^-1, condition number and VIFs from the moments.

(statsmodels agreement of every figure is in test_inference.py; here: what the moments'
units and the reused factor must guarantee.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from toolkit.training import exact
from toolkit.training.design import design
from toolkit.training.inference import infer
from toolkit.training.metrics import metric_sums
from toolkit.training.model import ModelSpec

# float64 arithmetic on a well-conditioned problem (condition number about 3): a few
# roundings of 1.1e-16 per figure, with room to spare.
ROUNDING_RTOL = 1e-12


def problem(scale_x: np.ndarray, scale_y: float, intercept: bool = True) -> dict:
    """The inference of one generated table whose columns are multiplied by the scales."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 3)) + np.array([1.0, -2.0, 0.5])
    y = x @ [1.0, -0.5, 2.0] + 1.0 + rng.standard_normal(300)
    x, y = x * scale_x, (y * scale_y)[:, None]
    names = ("a", "b", "c")
    moments = exact.accumulate([(x, y)])
    fit = exact.solve(moments, 3, names, intercept, 0.0, lambda: iter([(x, y)]))
    unit = moments.unit[3:]
    sums = metric_sums([(x, y)], fit.weight, fit.bias, unit=unit)
    spec = ModelSpec(names, ("y",), intercept, "float64")
    return infer(moments, spec, fit.weight, fit.bias, sums, alpha=0.05, fit=fit)


@pytest.mark.parametrize("intercept", [True, False])
def test_extreme_scales_neither_overflow_nor_change_what_is_scale_free(intercept):
    """Columns at 1e150, 1e-150 and 1, the target at 1e-100: squares of 1e300 and 1e-300."""
    scale_x, scale_y = np.array([1e150, 1e-150, 1.0]), 1e-100
    plain, scaled = problem(np.ones(3), 1.0, intercept), problem(scale_x, scale_y, intercept)
    coefficient_scale = [scale_y] * intercept + list(scale_y / scale_x)
    for base, big in zip(plain["targets"], scaled["targets"], strict=True):
        for key in ("r2", "r2_adj", "f", "f_pvalue"):
            assert big[key] == pytest.approx(base[key], rel=ROUNDING_RTOL), key
        # The log-likelihood moves by -n log(scale_y): the residuals' unit.
        shift = -plain["n"] * math.log(scale_y)
        assert big["loglik"] == pytest.approx(base["loglik"] + shift, rel=ROUNDING_RTOL)
        assert big["rse"] == pytest.approx(base["rse"] * scale_y, rel=ROUNDING_RTOL)
        rows = zip(base["coefficients"], big["coefficients"], coefficient_scale, strict=True)
        for a, b, factor in rows:
            for key in ("estimate", "stderr", "lower", "upper"):
                assert b[key] == pytest.approx(a[key] * factor, rel=ROUNDING_RTOL), key
            for key in ("t", "p", "vif"):
                expected = None if a[key] is None else pytest.approx(a[key], rel=ROUNDING_RTOL)
                assert b[key] == expected, key
    # statsmodels' condition number is of the raw X, not scale free: columns 1e300 apart.
    assert scaled["condition_number"] > 1e250
    inverse = np.array(scaled["leverage"]["inverse"])
    assert np.isfinite(inverse).all()


def test_the_solvers_factor_and_a_fresh_one_agree():
    """Iterative fits factor G from the moments; the exact fit's Cholesky factor is the same."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 4)) @ (np.eye(4) + 0.5 * rng.standard_normal((4, 4)))
    y = x.sum(axis=1, keepdims=True) + rng.standard_normal((200, 1))
    moments = exact.accumulate([(x, y)])
    fit = exact.solve(moments, 4, list("abcd"), True, 0.0)
    reused, fresh = design(moments, 4, True, fit.factor, fit.scale), design(moments, 4, True)
    assert reused.r_inverse is not None and fresh.r_inverse is not None
    np.testing.assert_allclose(reused.raw_inverse(), fresh.raw_inverse(), rtol=ROUNDING_RTOL)
    np.testing.assert_allclose(reused.vif, fresh.vif, rtol=ROUNDING_RTOL)
    # The VIFs are the diagonal of the correlation matrix's inverse (numpy's).
    np.testing.assert_allclose(
        reused.vif, np.diag(np.linalg.inv(np.corrcoef(x.T))), rtol=ROUNDING_RTOL
    )


def test_a_constant_feature_under_ridge_leaves_the_design_figures_undefined():
    """--l2 admits a constant column; its correlations, VIFs and X's condition are undefined."""
    x = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    y = (2.0 * x[:, 0] + 1.0)[:, None]
    moments = exact.accumulate([(x, y)])
    fit = exact.solve(moments, 2, ("a", "b"), True, 1.0)
    sums = metric_sums([(x, y)], fit.weight, fit.bias, unit=moments.unit[2:])
    spec = ModelSpec(("a", "b"), ("y",), True, "float64")
    result = infer(moments, spec, fit.weight, fit.bias, sums, alpha=0.05, l2=1.0, fit=fit)
    assert result["condition_number"] == math.inf and result["leverage"] is None
    assert [row["vif"] for row in result["targets"][0]["coefficients"]] == [None] * 3
    assert result["targets"][0]["r2"] == pytest.approx(1 - sums.sse[0] / 330.0, rel=1e-12)
