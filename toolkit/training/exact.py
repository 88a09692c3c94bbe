"""The closed-form least-squares solver behind `--solver exact`.

1. One pass over the data in chunks accumulates centred sufficient statistics in
   float64 (`toolkit.training.moments`): the mean and the scatter (Gram) matrix of
   [features | targets], each column in a power-of-two unit so nothing overflows.
2. The features are scaled to unit norm, so the condition number measures collinearity
   rather than units, and the scaled normal equations are solved by Cholesky.
3. Normal equations square the condition number. When the scaled Gram matrix is
   ill-conditioned enough to cost digits, a second pass computes a streaming QR of the
   scaled data instead (one pass, O(d^2) memory), which loses half as many.
4. Unless the problem is nearly perfectly conditioned, refinement passes
   (`toolkit.training.refine`) then correct the solution with residuals and gradients
   computed in double-double arithmetic, until it is the exact least-squares solution of
   the float64 data to float64's resolution.
5. A constant column and true rank deficiency are errors that name the columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from toolkit.errors import DataError
from toolkit.training import refine
from toolkit.training.collinear import collinear_error, flat_column_error
from toolkit.training.moments import Accumulator, Chunks, Moments, accumulate, merge, on_host
from toolkit.training.plain_gram import one_blas_thread

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Accumulator", "ExactFit", "Moments", "accumulate", "merge", "solve"]

# float64 keeps about 16 significant digits and normal equations lose about
# log10(condition number) of them: past 1e6 fewer than 10 would be left, so the QR path
# (which loses log10(sqrt(condition number))) takes over.
COND_SWITCH = 1e6
# Refinement passes follow above this condition number: there the one-pass solution
# trails numpy.linalg.lstsq by a digit or more (measured on generated designs). At or
# below it (nearly independent features, as in scripts/bench_train.py) the one-pass
# solution keeps 14-15 of float64's digits and a pass would cost about 10x the fit.
REFINE_ABOVE = 2.0
# Data of at most this many values (rows x columns) is refined whatever its condition:
# a pass costs well under a tenth of a second (about 70 ns per value).
REFINE_SMALL_VALUES = 1_000_000
# Singular values of the scaled data below this fraction of the largest are noise:
# the columns are collinear and the least-squares solution is not unique.
RANK_RTOL = 1e-12
# Rows per block of the streaming QR: each update factors (width + QR_BLOCK_ROWS) rows.
QR_BLOCK_ROWS = 65_536
_EPS = float(np.finfo(np.float64).eps)

SumsCombiner = Callable[[list[refine.Sums]], list[refine.Sums]]


@dataclass
class ExactFit:
    weight: np.ndarray  # (t, d) float64
    bias: np.ndarray  # (t,) float64; zeros without an intercept
    condition_number: float  # of the scaled (correlation-like) Gram matrix
    method: str  # "cholesky" or "qr"
    refinement_passes: int = 0
    # Upper-triangular R with R'R = the scaled Gram matrix (ridge included), from Cholesky
    # or the QR of the data, and the scaling: toolkit.training.inference reuses them.
    factor: np.ndarray | None = None
    scale: np.ndarray | None = None


@dataclass
class _Scaled:
    """The problem in unit space, centred (with an intercept) and scaled to unit-norm columns."""

    moments: Moments
    d: int
    intercept: bool
    l2: float
    centre: np.ndarray  # (d + t,) raw: the mean, or zeros without an intercept
    scale: np.ndarray  # (d,) unit-space column norms
    gram: np.ndarray  # (d, d) scaled Gram matrix, ridge included
    rhs: np.ndarray  # (d, t)

    @property
    def unit(self) -> np.ndarray:
        return self.moments.unit

    def to_raw(self, coefficients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scaled coefficients (d, t) as raw-unit weights (t, d) and biases (t,)."""
        d, unit = self.d, self.unit
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            weight = (coefficients / self.scale[:, None]).T * unit[d:, None] / unit[None, :d]
            centre = self.centre
            bias = centre[d:] - weight @ centre[:d] if self.intercept else centre[d:] * 0
        return np.ascontiguousarray(weight), bias


def solve(
    moments: Moments,
    n_features: int,
    feature_names: Sequence[str],
    intercept: bool = True,
    l2: float = 0.0,
    rechunk: Callable[[], Chunks] | None = None,
    combine_r: Callable[[np.ndarray], np.ndarray] | None = None,
    combine_sums: SumsCombiner | None = None,
) -> ExactFit:
    """Least squares (ridge when l2 > 0) from `moments`; `rechunk` re-reads the data.

    `rechunk` serves the QR pass and the refinement passes; without it the one-pass
    solution is returned unrefined. When the rows are spread over processes, `rechunk`
    reads this process's rows, `combine_r` turns this process's R factor into that of all
    rows (the R of the stacked R factors of every process), and `combine_sums` adds
    double-double sums over processes.

    The ridge penalty follows scikit-learn's `Ridge`: minimise ||y - Xw - b||^2 + l2 ||w||^2,
    with the intercept never penalised.

    Everything here is d x d linear algebra in numpy (and scipy's triangular solves), with
    BLAS on one thread: a thread pool's hand-offs cost more than such small products.
    """
    with one_blas_thread():
        return _solve(
            moments, n_features, feature_names, intercept, l2, rechunk, combine_r, combine_sums
        )


def _solve(
    moments: Moments,
    n_features: int,
    feature_names: Sequence[str],
    intercept: bool,
    l2: float,
    rechunk: Callable[[], Chunks] | None,
    combine_r: Callable[[np.ndarray], np.ndarray] | None,
    combine_sums: SumsCombiner | None,
) -> ExactFit:
    problem = _scaled(moments, n_features, feature_names, intercept, l2)
    condition = _condition_number(problem.gram)
    factor = _cholesky(problem.gram) if condition <= COND_SWITCH else None
    method = "cholesky"
    upper = None if factor is None else np.ascontiguousarray(factor.T)
    if factor is None:
        if rechunk is None:
            raise DataError(
                f"the features are ill-conditioned (condition number {condition:.3g}, past "
                f"{COND_SWITCH:g}): the normal equations would lose most of the digits, and the "
                "QR pass that keeps them reads the rows again, which statistics alone (such "
                "as partial_fit's) cannot. Fit on the whole data, or add a ridge penalty (l2)."
            )
        method = "qr"
        factor, rhs, condition = _qr_factor(rechunk(), problem, feature_names, combine_r)
        coefficients = _triangular_solve(factor, rhs)
        upper = factor
    else:
        coefficients = _cholesky_solve(factor, problem.rhs)
    weight, bias = problem.to_raw(coefficients)
    passes = 0
    small = moments.n * moments.mean.shape[0] <= REFINE_SMALL_VALUES
    if rechunk is not None and (condition > REFINE_ABOVE or small):
        weight, bias, passes = refine.refine(
            _refine_problem(problem),
            weight,
            bias,
            rechunk,
            _corrector(problem, factor, method),
            combine_sums,
            contraction=4 * n_features * _EPS * condition,
        )
    _check_representable(weight, bias, feature_names)
    return ExactFit(weight, bias, condition, method, passes, upper, problem.scale)


def _scaled(
    moments: Moments, d: int, feature_names: Sequence[str], intercept: bool, l2: float
) -> _Scaled:
    """Centre (or not), scale to unit-norm columns, add the ridge; refuse flat columns.

    Without an intercept the model passes through the origin: moments about zero. A flat
    column (every value the same; without an intercept, every value zero) is an error,
    unless the ridge penalty makes its weight unique; then its scale is 1.
    """
    unit = moments.unit
    if intercept:
        centre, second = moments.mean, moments.scatter
    else:
        centre = np.zeros_like(moments.mean)
        mean_u = moments.mean / unit
        second = moments.scatter + moments.weight_sum * np.outer(mean_u, mean_u)
    scale = np.sqrt(np.diagonal(second)[:d])
    flat = moments.constant[:d] & (intercept or (moments.mean[:d] == 0))
    flat = flat | ~(scale > 0)
    if flat.any():
        if l2 == 0.0:
            raise flat_column_error(feature_names[int(np.flatnonzero(flat)[0])], intercept)
        scale = np.where(flat, 1.0, scale)
    gram = second[:d, :d] / np.outer(scale, scale)
    rhs = second[:d, d:] / scale[:, None]
    if l2:
        with np.errstate(over="ignore", divide="ignore"):
            gram = gram + np.diag(l2 / (scale * unit[:d]) ** 2)
    return _Scaled(moments, d, intercept, l2, centre, scale, gram, rhs)


def check_unique(
    moments: Moments, d: int, feature_names: Sequence[str], intercept: bool, l2: float
) -> None:
    """Raise the exact solver's error for a constant feature (the iterative solvers share it)."""
    _scaled(moments, d, feature_names, intercept, l2)


def raise_collinear(
    moments: Moments, d: int, feature_names: Sequence[str], intercept: bool, l2: float
) -> None:
    """Raise the collinearity error naming the features along the Gram matrix's null direction."""
    problem = _scaled(moments, d, feature_names, intercept, l2)
    _, vectors = np.linalg.eigh(problem.gram)
    raise collinear_error(
        vectors[:, 0], problem.scale, problem.unit[:d], feature_names, _intercept_centre(problem)
    )


def _condition_number(gram: np.ndarray) -> float:
    if not np.isfinite(gram).all():
        return math.inf
    eigenvalues = np.linalg.eigvalsh(gram)
    lowest, highest = float(eigenvalues[0]), float(eigenvalues[-1])
    return highest / lowest if lowest > 0 else math.inf


def _cholesky(gram: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor; None if the factorisation fails (not positive definite)."""
    try:
        return np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return None


def _cholesky_solve(factor: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    from scipy.linalg import cho_solve

    return cho_solve((factor, True), rhs, check_finite=False)


def _triangular_solve(r: np.ndarray, rhs: np.ndarray, lower: bool = False) -> np.ndarray:
    from scipy.linalg import solve_triangular

    return solve_triangular(r, rhs, lower=lower, check_finite=False)


def _qr_factor(
    chunks: Chunks,
    problem: _Scaled,
    feature_names: Sequence[str],
    combine_r: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Streaming QR of the centred, scaled data: R is updated block by block, never Q.

    Returns R's feature block (upper triangular), its target columns, and the condition
    number of the scaled problem that R gives.
    """
    d, centre, scale, unit = problem.d, problem.centre, problem.scale, problem.unit
    width = centre.shape[0]
    r = np.zeros((0, width))
    for block, w in _centred_blocks(chunks, centre):
        block /= unit
        block[:, :d] /= scale
        if w is not None:  # weighted least squares: rows times sqrt(w)
            block *= np.sqrt(w)[:, None]
        r = np.linalg.qr(np.vstack([r, block]), mode="r")
    if combine_r is not None:
        r = combine_r(r)
    if problem.l2:
        # Ridge as extra rows: sqrt(l2) * w_i, in the scaled coefficients' units.
        penalty = np.zeros((d, width))
        penalty[:, :d] = np.diag(math.sqrt(problem.l2) / (scale * unit[:d]))
        r = np.linalg.qr(np.vstack([penalty, r]), mode="r")
    r_xx, r_xy = r[:d, :d], r[:d, d:]
    _, singular, vh = np.linalg.svd(r_xx)
    if float(singular[-1]) <= RANK_RTOL * float(singular[0]):
        raise collinear_error(vh[-1], scale, unit[:d], feature_names, _intercept_centre(problem))
    condition = float(singular[0] / singular[-1]) ** 2
    return r_xx, r_xy, condition


def _centred_blocks(
    chunks: Chunks, centre: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Each chunk's rows, [features | targets] in float64 minus `centre`, in blocks of
    QR_BLOCK_ROWS, with the rows' weights (None without)."""
    for chunk in chunks:
        x, y, *rest = (np.asarray(on_host(part)) for part in chunk)
        w = rest[0].reshape(-1) if rest and rest[0] is not None else None
        y = y[:, None] if y.ndim == 1 else y
        for start in range(0, len(x), QR_BLOCK_ROWS):
            stop = start + QR_BLOCK_ROWS
            block = np.hstack([x[start:stop], y[start:stop]]).astype(np.float64) - centre
            yield block, None if w is None else w[start:stop].astype(np.float64)


def _refine_problem(problem: _Scaled) -> refine.Problem:
    unit = problem.unit
    d = problem.d
    moments = problem.moments
    return refine.Problem(unit[:d], unit[d:], problem.intercept, problem.l2, moments.weight_sum)


def _corrector(
    problem: _Scaled, factor: np.ndarray, method: str
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The correction (dw, db) in unit space for a unit-space gradient, from the factor."""
    d, n = problem.d, problem.moments.weight_sum
    centre_u = problem.centre[:d] / problem.unit[:d]
    scale = problem.scale
    if method == "cholesky":
        inverse = lambda g: _cholesky_solve(factor, g)  # noqa: E731
    else:
        inverse = lambda g: _triangular_solve(  # noqa: E731
            factor, _triangular_solve(factor.T, g, lower=True)
        )

    def correct(gx: np.ndarray, g1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scaled = (gx - centre_u[:, None] * g1[None, :]) / scale[:, None]
        dc = inverse(scaled)  # within solve's one_blas_thread
        dw = (dc / scale[:, None]).T
        return dw, g1 / n - dw @ centre_u

    return correct


def _check_representable(weight: np.ndarray, bias: np.ndarray, names: Sequence[str]) -> None:
    """Weights beyond float64's range cannot be saved: say which and why."""
    bad = np.argwhere(~np.isfinite(weight))
    if len(bad):
        _, j = bad[0]
        raise DataError(
            f"the weight of feature {names[j]!r} is beyond float64's range (about 1.8e308): "
            "the target's scale divided by this feature's is too large. Rescale the "
            "feature or the target (for example, change its units)."
        )
    if not np.isfinite(bias).all():
        raise DataError(
            "the intercept is beyond float64's range (about 1.8e308); rescale the target."
        )


def _intercept_centre(problem: _Scaled) -> np.ndarray | None:
    """The features' raw means when the intercept is fitted (it may take part in a relation)."""
    return problem.centre[: problem.d] if problem.intercept else None
