"""toolkit/training/exact.py: the closed-form solver against numpy's least squares."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.errors import CollinearityError
from toolkit.training import exact


def chunked(x: np.ndarray, y: np.ndarray, rows: int):
    return lambda: [(x[i : i + rows], y[i : i + rows]) for i in range(0, len(x), rows)]


def fit(x, y, names=None, rows=1000, intercept=True, l2=0.0):
    chunks = chunked(x, y, rows)
    names = names or [f"x{i}" for i in range(x.shape[1])]
    return exact.solve(exact.accumulate(chunks()), x.shape[1], names, intercept, l2, chunks)


def lstsq(x, y, intercept=True):
    a = np.column_stack([x, np.ones(len(x))]) if intercept else x
    solution = np.linalg.lstsq(a, y, rcond=None)[0]
    return (solution[:-1], solution[-1]) if intercept else (solution, 0.0)


def test_seed_points_give_the_exact_line():
    x = np.array([[1.0, 1], [1, 2], [2, 2], [2, 3]])
    result = fit(x, np.array([1.0, 2, 3, 4]))
    np.testing.assert_allclose(result.weight, [[1.0, 1.0]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.bias, [-1.0], rtol=0, atol=1e-12)
    assert result.method == "cholesky"


@pytest.mark.parametrize("rows", [1, 7, 1000, 100_000])
def test_matches_lstsq_whatever_the_chunking(rows):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 6)) * [1, 10, 100, 1e3, 1e-2, 5] + [0, 1e4, -3, 7, 0, 1]
    y = x @ rng.standard_normal(6) + 2.5 + rng.standard_normal(5000)
    weight, bias = lstsq(x, y)
    result = fit(x, y, rows=rows)
    # float64 normal equations on a condition number ~1e1 after scaling: ~1e-12 relative.
    np.testing.assert_allclose(result.weight[0], weight, rtol=1e-9, atol=0)
    np.testing.assert_allclose(result.bias[0], bias, rtol=1e-9)


def test_float32_input_is_accumulated_in_float64():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200_000, 3)).astype(np.float32) + np.float32(1000)
    y = (x.astype(np.float64) @ [1.0, -2.0, 0.5] + 7).astype(np.float32)
    weight, bias = lstsq(x.astype(np.float64), y.astype(np.float64))
    result = fit(x, y, rows=65_536)
    np.testing.assert_allclose(result.weight[0], weight, rtol=1e-8)
    np.testing.assert_allclose(result.bias[0], bias, rtol=1e-8)


def test_multi_target_and_no_intercept():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 3))
    y = np.column_stack([x @ [1, 2, 3], x @ [-1, 0, 4] + 0.01 * rng.standard_normal(300)])
    result = fit(x, y, intercept=False)
    assert result.weight.shape == (2, 3)
    np.testing.assert_array_equal(result.bias, [0.0, 0.0])
    for t in range(2):
        np.testing.assert_allclose(
            result.weight[t], lstsq(x, y[:, t], intercept=False)[0], rtol=1e-10
        )


def test_ridge_matches_its_closed_form():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((100, 4)) * [1, 5, 50, 0.1]
    y = x @ [1, 1, 1, 1] + 3 + rng.standard_normal(100)
    l2 = 2.5
    xc, yc = x - x.mean(0), y - y.mean()
    weight = np.linalg.solve(xc.T @ xc + l2 * np.eye(4), xc.T @ yc)  # scikit-learn's Ridge
    result = fit(x, y, l2=l2)
    np.testing.assert_allclose(result.weight[0], weight, rtol=1e-10)
    np.testing.assert_allclose(result.bias[0], y.mean() - x.mean(0) @ weight, rtol=1e-10)


def test_ill_conditioned_polynomial_switches_to_qr_and_keeps_digits():
    t = np.linspace(0, 1, 3000)
    x = np.column_stack([t**k for k in range(1, 11)])
    y = np.sin(3 * t)
    weight, bias = lstsq(x, y)
    result = fit(x, y, rows=256)
    assert result.method == "qr"
    assert result.condition_number > 1e12
    # Normal equations would keep ~16 - 14 = 2 digits here; QR keeps about 9.
    np.testing.assert_allclose(result.weight[0], weight, rtol=1e-6)
    fitted = x @ result.weight[0] + result.bias[0]
    np.testing.assert_allclose(fitted, x @ weight + bias, rtol=0, atol=1e-9)


def test_badly_scaled_but_well_posed_columns_stay_on_cholesky():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1000, 3)) * [1e-8, 1.0, 1e8]
    y = x @ [1e8, 1.0, 1e-8] + 1.0
    result = fit(x, y)
    assert result.method == "cholesky"
    assert result.condition_number < 10
    np.testing.assert_allclose(result.weight[0], [1e8, 1.0, 1e-8], rtol=1e-10)


def test_collinear_columns_are_named_with_their_relation():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((500, 4))
    x[:, 3] = x[:, 0] - 2 * x[:, 2]
    with pytest.raises(CollinearityError) as caught:
        fit(x, x[:, 1], names=["a", "b", "c", "d"])
    message = str(caught.value)
    assert "features 'a', 'c', 'd' are collinear" in message
    assert "'b'" not in message.split("(")[0]
    assert "--features" in message and "--l2" in message


def test_constant_column_with_intercept_is_collinear():
    x = np.column_stack([np.arange(10.0), np.full(10, 4.0)])
    with pytest.raises(
        CollinearityError, match=r"feature 'k' is constant, so it is collinear with the intercept"
    ):
        fit(x, np.arange(10.0), names=["t", "k"])


def test_constant_column_is_fine_without_intercept_and_with_ridge():
    x = np.column_stack([np.arange(10.0), np.full(10, 4.0)])
    y = 2 * x[:, 0] + 4.0
    result = fit(x, y, intercept=False)
    np.testing.assert_allclose(result.weight[0], [2.0, 1.0], atol=1e-10)
    ridge = fit(x, y, l2=1.0)
    assert ridge.weight[0, 1] == 0.0


def test_more_parameters_than_rows_is_collinear():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5))
    with pytest.raises(CollinearityError, match="collinear"):
        fit(x, rng.standard_normal(3))


def test_merged_moments_equal_those_of_the_union():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3000, 3)) * [1, 1e3, 1e-3] + [1e6, 0, 5]
    y = x @ [1.0, 2.0, 3.0] + rng.standard_normal(3000)
    rows = np.column_stack([x, y]).astype(np.longdouble)  # the reference, in extended precision
    centred = rows - rows.mean(axis=0)
    reference = (centred.T @ centred).astype(np.float64)
    parts = [exact.accumulate([(x[a:b], y[a:b])]) for a, b in [(0, 10), (10, 2000), (2000, 3000)]]
    merged = exact.merge([parts[0], None, parts[1], parts[2]])
    assert merged.n == 3000
    np.testing.assert_allclose(merged.mean, rows.mean(axis=0).astype(float), rtol=1e-15)
    # Rounding relative to the matrix's scale, as for one pass over all rows (1e-15 here).
    scale = np.abs(reference).max()
    assert np.abs(merged.raw_scatter() - reference).max() <= 1e-13 * scale
    whole = exact.accumulate([(x, y)]).raw_scatter()
    assert np.abs(whole - reference).max() <= 1e-13 * scale
    assert exact.merge([None, None]) is None


def test_qr_fallback_combines_r_factors_of_parts():
    """combine_r stacks per-process R factors: the result equals one process with all rows."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((4000, 2))
    x = np.column_stack([base, base[:, 0] + 1e-5 * rng.standard_normal(4000)])  # ill-conditioned
    y = x @ [1.0, 2.0, 3.0] + 0.5
    names = ["a", "b", "c"]
    whole = fit(x, y, names)
    assert whole.method == "qr"
    halves = [(x[:1500], y[:1500]), (x[1500:], y[1500:])]
    # Every process holds the merged moments (the global mean and scale) ...
    moments = exact.merge(exact.accumulate([h]) for h in halves)

    def r_of(half) -> np.ndarray:  # ... and streams R over its own rows with them
        captured = []

        def keep(r: np.ndarray) -> np.ndarray:
            captured.append(r)
            return r

        exact.solve(moments, 3, names, rechunk=lambda: [half], combine_r=keep)
        return captured[0]

    other = r_of(halves[1])

    def combine(r: np.ndarray) -> np.ndarray:
        return np.linalg.qr(np.vstack([r, other]), mode="r")

    split = exact.solve(moments, 3, names, rechunk=lambda: [halves[0]], combine_r=combine)
    assert split.method == "qr"
    np.testing.assert_allclose(split.weight, whole.weight, rtol=1e-8)
