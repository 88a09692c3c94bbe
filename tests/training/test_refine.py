"""toolkit/training/refine.py: exact to the data's limit, against a 90-digit reference.

The rule (issue "Numerics", stated here and printed per case with `pytest -s`): on every
generated design, each coefficient of toolkit's exact fit has at least as many correct
significant digits as numpy.linalg.lstsq's on the same in-memory data, and at least 9
wherever the condition number of the scaled problem (the scaled Gram matrix, as toolkit
reports it; estimated here by numpy from the centred, unit-norm columns) is below 1e13.
Correct significant digits of a coefficient: floor(-log10(|estimate - exact| / |exact|)),
capped at 15 (float64 holds 15.95). The exact solution is that of the float64 data,
computed with mpmath at 90 digits from the normal equations (which lose at most
log10(condition) of those 90). A design whose condition exceeds 1e16 (beyond float64:
numpy keeps no digit there) may be refused with a CollinearityError instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import numpy as np
import pytest

from toolkit.errors import CollinearityError
from toolkit.training import exact, refine

mpmath.mp.dps = 90
CAP = 15
NINE_DIGITS_BELOW = 1e13
MAY_REFUSE_ABOVE = 1e16


def reference(x: np.ndarray, y: np.ndarray, intercept: bool) -> list[list[mpmath.mpf]]:
    """Per target: the exact least-squares [w..., b] of the float64 data (b only with one)."""
    z = np.column_stack([x, np.ones(len(x))]) if intercept else x
    zm = mpmath.matrix([[mpmath.mpf(float(v)) for v in row] for row in z])
    gram = zm.T * zm
    solutions = []
    for t in range(y.shape[1]):
        rhs = zm.T * mpmath.matrix([mpmath.mpf(float(v)) for v in y[:, t]])
        solution = mpmath.lu_solve(gram, rhs)
        solutions.append([solution[i] for i in range(z.shape[1])])
    return solutions


def digits(estimate: float, exact_value: mpmath.mpf) -> int:
    error = abs(mpmath.mpf(float(estimate)) - exact_value)
    if error == 0:
        return CAP
    relative = error / abs(exact_value) if exact_value != 0 else error
    return min(CAP, math.floor(float(-mpmath.log10(relative))))


def scaled_condition(x: np.ndarray, intercept: bool) -> float:
    centred = x - x.mean(axis=0) if intercept else x
    return float(np.linalg.cond(centred / np.linalg.norm(centred, axis=0)) ** 2)


def polynomial(k: int, low: float, high: float, targets: int = 1) -> Callable:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(low, high, 200)
        design = np.column_stack([x**p for p in range(1, k + 1)])
        signal = design @ rng.standard_normal((k, targets)) + 0.5
        noise = 1e-3 * np.abs(signal).mean() * rng.standard_normal((200, targets))
        return design, signal + noise

    return make


def collinear(eps: float, offset: float = 0.0, targets: int = 1) -> Callable:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        base = rng.standard_normal((200, 2))
        extra = [base[:, 0] * j + base[:, 1] + eps * rng.standard_normal(200) for j in (1, 2, 3)]
        design = np.column_stack([base, *extra]) + offset
        signal = design @ rng.standard_normal((5, targets)) + 3.0
        return design, signal + 0.01 * rng.standard_normal((200, targets))

    return make


DESIGNS = {
    **{
        f"x^1..x^{k} on [{low:g}, {high:g}]": polynomial(k, low, high)
        for k in (1, 2, 3, 5, 8, 10)
        for low, high in ((0, 1), (-1, 1), (1, 3), (10, 11))
    },
    **{f"collinear, eps {eps:g}": collinear(eps) for eps in (1e-3, 1e-6, 1e-9)},
    **{f"collinear, eps {eps:g}, offset 1e6": collinear(eps, 1e6) for eps in (1e-3, 1e-6)},
    "x^1..x^5 on [0, 1], 3 targets": polynomial(5, 0, 1, targets=3),
    "collinear, eps 1e-6, 2 targets": collinear(1e-6, targets=2),
}


def fit(x: np.ndarray, y: np.ndarray, intercept: bool, rows: int = 64) -> exact.ExactFit:
    chunks = lambda: [(x[i : i + rows], y[i : i + rows]) for i in range(0, len(x), rows)]  # noqa: E731
    names = [f"x{i}" for i in range(x.shape[1])]
    return exact.solve(exact.accumulate(chunks()), x.shape[1], names, intercept, 0.0, chunks)


@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("name", list(DESIGNS))
def test_exact_keeps_as_many_digits_as_lstsq_and_nine_below_1e13(name, intercept):
    x, y = DESIGNS[name](np.random.default_rng(abs(hash(name)) % 2**32))
    condition = scaled_condition(x, intercept)
    exact_solutions = reference(x, y, intercept)
    z = np.column_stack([x, np.ones(len(x))]) if intercept else x
    numpy_solution = np.linalg.lstsq(z, y, rcond=None)[0]
    try:
        result = fit(x, y, intercept)
    except CollinearityError:
        assert condition > MAY_REFUSE_ABOVE, f"{name}: refused at condition {condition:.2g}"
        return
    for t, solution in enumerate(exact_solutions):
        ours = list(result.weight[t]) + ([result.bias[t]] if intercept else [])
        mine = [digits(v, e) for v, e in zip(ours, solution, strict=True)]
        numpy_digits = [digits(v, e) for v, e in zip(numpy_solution[:, t], solution, strict=True)]
        print(
            f"{name} ({'with' if intercept else 'no'} intercept, condition {condition:.1e}, "
            f"{result.method}, {result.refinement_passes} passes): toolkit {mine}, "
            f"lstsq {numpy_digits}"
        )
        assert all(a >= b for a, b in zip(mine, numpy_digits, strict=True)), name
        if condition < NINE_DIGITS_BELOW:
            assert min(mine) >= 9, name


def test_large_data_with_independent_features_is_solved_in_one_pass():
    """The bench's case (scripts/bench_train.py): a near-identity Gram matrix, no refinement."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100_000, 10))
    result = fit(x, x @ np.arange(10.0) + rng.standard_normal(100_000), True, rows=65_536)
    assert result.condition_number <= exact.REFINE_ABOVE
    assert result.refinement_passes == 0
    small = fit(x[:1000], x[:1000] @ np.arange(10.0), True)
    assert small.refinement_passes >= 1  # small data: always refined, it costs milliseconds


def test_column_sums_are_exact_where_plain_summation_cancels():
    values = np.array([[1e16, 1.0], [1.0, 1e-30], [-1e16, -1.0], [1e-3, 3.0]])
    hi, lo = refine.column_sums(values)
    exact_sums = [sum(map(mpmath.mpf, map(float, values[:, j]))) for j in range(2)]
    for j in range(2):
        assert mpmath.mpf(float(hi[j])) + mpmath.mpf(float(lo[j])) == pytest.approx(
            exact_sums[j], rel=1e-30
        )
    assert values[:, 0].sum() != float(exact_sums[0])  # plain summation loses the 1.001


def test_residuals_and_gradient_are_nearly_exact():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 3)) * [1e8, 1.0, 1e-8]
    w = rng.standard_normal((1, 3))
    y = (x @ w.T) * (1 + 1e-12)  # residuals 12 digits below the terms
    b = np.array([0.0])
    r_hi, r_lo = refine.residuals(np.asfortranarray(x), y, w, b)
    for i in range(50):
        exact_r = mpmath.mpf(float(y[i, 0])) - mpmath.fsum(
            mpmath.mpf(float(x[i, j])) * mpmath.mpf(float(w[0, j])) for j in range(3)
        )
        got = mpmath.mpf(float(r_hi[i, 0])) + mpmath.mpf(float(r_lo[i, 0]))
        assert got == pytest.approx(exact_r, rel=1e-25, abs=1e-300)
    (g_hi, g_lo), _ = refine.gradient(x, r_hi, r_lo)
    for j in range(3):
        exact_g = mpmath.fsum(
            mpmath.mpf(float(x[i, j]))
            * (mpmath.mpf(float(r_hi[i, 0])) + mpmath.mpf(float(r_lo[i, 0])))
            for i in range(50)
        )
        got = mpmath.mpf(float(g_hi[j, 0])) + mpmath.mpf(float(g_lo[j, 0]))
        assert got == pytest.approx(exact_g, rel=1e-25)


def test_train_refines_through_the_spilled_rows(tmp_path):
    """End to end: CSV -> one pass -> QR -> refinement passes over the spill -> checkpoint."""
    from conftest import write_table_csv

    from toolkit.training import TrainConfig, train

    x, y = polynomial(8, 1, 3)(np.random.default_rng(8))
    columns = {**{f"x{i}": x[:, i] for i in range(8)}, "y": y[:, 0]}
    path = write_table_csv(tmp_path / "poly.csv", columns)
    config = TrainConfig(data=path, dtype="float64", val_fraction=0, chunk_rows=50)
    result = train(config)
    assert result.details["method"] == "qr" and result.details["refinement_passes"] >= 1
    (solution,) = reference(x, y, True)
    ours = [*result.weight[0], result.bias[0]]
    assert min(digits(v, e) for v, e in zip(ours, solution, strict=True)) >= 14
