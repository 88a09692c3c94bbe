"""The design's side of the inference: (X'X)^-1, the condition number and the VIFs.

From the training rows' moments (n, mean, centred scatter in power-of-two units) and R,
upper triangular with R'R = G, the scaled Gram matrix of the features (unit-norm columns;
with an intercept, their correlation matrix). R comes from the exact solve when it has
one: its Cholesky factor, or the R of its streaming QR of the data when G is
ill-conditioned (twice the digits of normal equations); otherwise G is factored here.

Everything stays in the moments' units and these scaled coordinates until the end, so no
sum cancels and data from 1e-300 to 1e300 neither overflows nor underflows: the slopes'
(X'X)^-1 is U^-1 D^-1 G^-1 D^-1 U^-1 (U the units, D the column norms), G^-1 = R^-1 R^-T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from toolkit.training.moments import Moments


@dataclass
class Design:
    """The features' side of the inference, shared by every target."""

    n: int
    intercept: bool
    mean: np.ndarray  # (d,) the features' means
    scale: np.ndarray  # (d,) norms of the (centred, with an intercept) columns, in units
    unit: np.ndarray  # (d,) the features' power-of-two units
    r_inverse: np.ndarray | None  # R^-1, so G^-1 = R^-1 R^-T; None when G is singular
    condition_number: float = math.inf  # statsmodels': X's, constant column included
    vif: np.ndarray | None = None  # (d,) variance inflation factors
    weights: float | None = None  # the rows' sum of weights (weighted least squares)

    @property
    def mass(self) -> float:
        """The sum of weights: n without weights (X'WX's intercept entry)."""
        return float(self.n) if self.weights is None else self.weights

    @property
    def d(self) -> int:
        return len(self.mean)

    @property
    def df_resid(self) -> int:
        return self.n - self.d - int(self.intercept)

    def gram_condition(self) -> float:
        """G's condition number (R's squared): how many digits the factor keeps."""
        if self.r_inverse is None:
            return math.inf
        singular = np.linalg.svd(self.r_inverse, compute_uv=False)
        return float((singular[0] / singular[-1]) ** 2)

    def inverse_diagonal(self) -> np.ndarray:
        """diag(G^-1): each slope's variance over sigma^2, in scaled coordinates."""
        assert self.r_inverse is not None
        return np.einsum("ij,ij->i", self.r_inverse, self.r_inverse)

    def intercept_factor(self) -> float:
        """1/n + m' S^-1 m: the intercept's variance over sigma^2 (m the means, S scatter)."""
        assert self.r_inverse is not None
        z = (self.mean / self.unit) / self.scale
        projected = z @ self.r_inverse
        return 1.0 / self.mass + float((projected**2).sum())

    def raw_inverse(self) -> np.ndarray:
        """S^-1 (centred scatter) or (X'X)^-1 without an intercept, in the data's units."""
        assert self.r_inverse is not None
        column = self.scale * self.unit
        inverse = self.r_inverse @ self.r_inverse.T
        with np.errstate(over="ignore", under="ignore"):
            return inverse / column[:, None] / column[None, :]


def design(
    moments: Moments,
    d: int,
    intercept: bool,
    factor: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> Design:
    """The design's statistics from the moments, with the solver's factor when it has one
    (toolkit.training.inference calls this and the methods with BLAS on one thread)."""
    mean = moments.mean[:d]
    unit = moments.unit[:d]
    centred = moments.scatter[:d, :d]
    second = centred
    if not intercept:  # moments about zero: the model passes through the origin
        mean_u = mean / unit
        second = centred + moments.weight_sum * np.outer(mean_u, mean_u)
    if factor is not None and scale is not None:
        r, norms = factor, scale
    else:
        r, norms = _factor(second)
    result = Design(moments.n, intercept, mean, norms, unit, _inverse(r))
    result.weights = moments.weights
    if result.r_inverse is not None and r is not None:
        result.condition_number = _condition_number(r, result)
    # VIFs are of the centred features (their correlation matrix), with or without an
    # intercept: statsmodels' variance_inflation_factor (standardize=True, its default).
    centred_inverse = result.r_inverse if intercept else _inverse(_factor(centred)[0])
    if centred_inverse is not None:
        result.vif = np.einsum("ij,ij->i", centred_inverse, centred_inverse)
    return result


def _factor(second: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """R with R'R = the scaled `second` (None if not numerically positive definite); norms."""
    norms = np.sqrt(np.diagonal(second))
    with np.errstate(divide="ignore", invalid="ignore"):
        gram = second / np.outer(norms, norms)
    if not np.isfinite(gram).all():
        return None, norms
    try:
        lower = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return None, norms
    return np.ascontiguousarray(lower.T), norms


def _inverse(r: np.ndarray | None) -> np.ndarray | None:
    """R^-1 of an upper-triangular factor; None when there is none or it is singular."""
    if r is None:
        return None
    from scipy.linalg import solve_triangular

    try:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            inverse = solve_triangular(r, np.eye(len(r)), lower=False, check_finite=False)
    except np.linalg.LinAlgError:  # a zero on the diagonal: singular
        return None
    return inverse if np.isfinite(inverse).all() else None


def _condition_number(r: np.ndarray, design: Design) -> float:
    """statsmodels' `condition_number`: sigma_max / sigma_min of X with its constant column.

    X'X = A'A for the triangular A = [[sqrt(n), sqrt(n) m'], [0, R D U]] (R D U alone
    without an intercept), so A has X's singular values. One power of two scales A so
    that nothing overflows; the ratio does not change.
    """
    mean, unit, n = design.mean, design.unit, design.mass
    largest = max(1.0, float(np.max(np.abs(mean), initial=0.0)), float(np.max(unit)))
    c = math.ldexp(1.0, math.frexp(largest)[1])
    with np.errstate(under="ignore"):
        a = r * (design.scale * (unit / c))[None, :]
        if design.intercept:
            d, root = design.d, math.sqrt(n)
            top = np.concatenate([[root / c], root * (mean / c)])
            a = np.vstack([top, np.hstack([np.zeros((d, 1)), a])])
    singular = np.linalg.svd(a, compute_uv=False)
    return float(singular[0] / singular[-1]) if singular[-1] > 0 else math.inf
