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

from toolkit.errors import CollinearityError, DataError
from toolkit.training import refine
from toolkit.training.moments import Accumulator, Chunks, Moments, accumulate, merge
from toolkit.training.shifter import Shifter

if TYPE_CHECKING:
    import torch

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
# Columns a collinearity message names (a categorical column's dummies can be hundreds).
SHOWN_COLUMNS = 8
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
    factor: torch.Tensor | None = None
    scale: torch.Tensor | None = None


@dataclass
class _Scaled:
    """The problem in unit space, centred (with an intercept) and scaled to unit-norm columns."""

    moments: Moments
    d: int
    intercept: bool
    l2: float
    centre: torch.Tensor  # (d + t,) raw: the mean, or zeros without an intercept
    scale: torch.Tensor  # (d,) unit-space column norms
    gram: torch.Tensor  # (d, d) scaled Gram matrix, ridge included
    rhs: torch.Tensor  # (d, t)

    @property
    def unit(self) -> torch.Tensor:
        return self.moments.unit

    def to_raw(self, coefficients: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Scaled coefficients (d, t) as raw-unit weights (t, d) and biases (t,)."""
        d, unit = self.d, self.unit
        weight = (coefficients / self.scale[:, None]).T * unit[d:, None] / unit[None, :d]
        centre = self.centre
        bias = centre[d:] - weight @ centre[:d] if self.intercept else centre[d:] * 0
        return weight.cpu().numpy(), bias.cpu().numpy()


def solve(
    moments: Moments,
    n_features: int,
    feature_names: Sequence[str],
    intercept: bool = True,
    l2: float = 0.0,
    rechunk: Callable[[], Chunks] | None = None,
    combine_r: Callable[[torch.Tensor], torch.Tensor] | None = None,
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
    """
    problem = _scaled(moments, n_features, feature_names, intercept, l2)
    condition = _condition_number(problem.gram)
    factor = _cholesky(problem.gram) if condition <= COND_SWITCH else None
    method = "cholesky"
    upper = None if factor is None else factor.mT
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
    import torch

    unit = moments.unit
    if intercept:
        centre, second = moments.mean, moments.scatter
    else:
        centre = torch.zeros_like(moments.mean)
        mean_u = moments.mean / unit
        second = moments.scatter + moments.weight_sum * torch.outer(mean_u, mean_u)
    scale = torch.sqrt(torch.diagonal(second)[:d])
    flat = moments.constant[:d] & (intercept or (moments.mean[:d] == 0))
    flat = flat | ~(scale > 0)
    if bool(flat.any()):
        if l2 == 0.0:
            raise flat_column_error(feature_names[int(flat.nonzero()[0])], intercept)
        scale = torch.where(flat, torch.ones_like(scale), scale)
    gram = second[:d, :d] / torch.outer(scale, scale)
    rhs = second[:d, d:] / scale[:, None]
    if l2:
        gram = gram + torch.diag(l2 / (scale * unit[:d]) ** 2)
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
    import torch

    problem = _scaled(moments, d, feature_names, intercept, l2)
    _, vectors = torch.linalg.eigh(problem.gram)
    raise collinear_error(
        vectors[:, 0], problem.scale, problem.unit[:d], feature_names, _intercept_centre(problem)
    )


def _condition_number(gram: torch.Tensor) -> float:
    import torch

    eigenvalues = torch.linalg.eigvalsh(gram)
    lowest, highest = float(eigenvalues[0]), float(eigenvalues[-1])
    return highest / lowest if lowest > 0 else math.inf


def _cholesky(gram: torch.Tensor) -> torch.Tensor | None:
    """The lower Cholesky factor; None if the factorisation fails (not positive definite)."""
    import torch

    factor, info = torch.linalg.cholesky_ex(gram)
    return factor if int(info) == 0 else None


def _cholesky_solve(factor: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.cholesky_solve(rhs, factor)


def _triangular_solve(r: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.linalg.solve_triangular(r, rhs, upper=True)


def _qr_factor(
    chunks: Chunks,
    problem: _Scaled,
    feature_names: Sequence[str],
    combine_r: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Streaming QR of the centred, scaled data: R is updated chunk by chunk, never Q.

    Returns R's feature block (upper triangular), its target columns, and the condition
    number of the scaled problem that R gives.
    """
    import torch

    d, centre, scale, unit = problem.d, problem.centre, problem.scale, problem.unit
    width = centre.shape[0]
    r = torch.zeros(0, width, dtype=torch.float64, device=centre.device)
    shifter = Shifter(centre.device, shift=centre)
    for chunk in chunks:
        for block, w in shifter.blocks(*chunk):
            block /= unit
            block[:, :d] /= scale
            if w is not None:  # weighted least squares: rows times sqrt(w)
                block *= w.sqrt()[:, None]
            r = torch.linalg.qr(torch.cat([r, block]), mode="r").R
    if combine_r is not None:
        r = combine_r(r)
    if problem.l2:
        # Ridge as extra rows: sqrt(l2) * w_i, in the scaled coefficients' units.
        penalty = torch.zeros(d, width, dtype=torch.float64, device=centre.device)
        penalty[:, :d] = torch.diag(math.sqrt(problem.l2) / (scale * unit[:d]))
        r = torch.linalg.qr(torch.cat([penalty, r]), mode="r").R
    r_xx, r_xy = r[:d, :d], r[:d, d:]
    _, singular, vh = torch.linalg.svd(r_xx)
    if float(singular[-1]) <= RANK_RTOL * float(singular[0]):
        raise collinear_error(vh[-1], scale, unit[:d], feature_names, _intercept_centre(problem))
    condition = float(singular[0] / singular[-1]) ** 2
    return r_xx, r_xy, condition


def _refine_problem(problem: _Scaled) -> refine.Problem:
    unit = problem.unit.cpu().numpy()
    d = problem.d
    moments = problem.moments
    return refine.Problem(unit[:d], unit[d:], problem.intercept, problem.l2, moments.weight_sum)


def _corrector(
    problem: _Scaled, factor: torch.Tensor, method: str
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The correction (dw, db) in unit space for a unit-space gradient, from the factor."""
    import torch

    d, n = problem.d, problem.moments.weight_sum
    centre_u = (problem.centre[:d] / problem.unit[:d]).cpu().numpy()
    scale = problem.scale.cpu().numpy()
    if method == "cholesky":
        inverse = lambda g: _cholesky_solve(factor, g)  # noqa: E731
    else:
        inverse = lambda g: _triangular_solve(  # noqa: E731
            factor, torch.linalg.solve_triangular(factor.T, g, upper=False)
        )

    def correct(gx: np.ndarray, g1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scaled = (gx - centre_u[:, None] * g1[None, :]) / scale[:, None]
        dc = inverse(torch.as_tensor(scaled, device=factor.device)).cpu().numpy()
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


def flat_column_error(name: str, intercept: bool) -> CollinearityError:
    if intercept:
        return CollinearityError(
            f"feature {name!r} is constant, so it is collinear with the intercept and its "
            "weight is not unique. Leave it out with --features, fit without an intercept "
            "(--no-intercept), or add a ridge penalty (--l2)."
        )
    return CollinearityError(
        f"feature {name!r} is zero in every row, so its weight is not unique. "
        "Leave it out with --features or add a ridge penalty (--l2)."
    )


def _intercept_centre(problem: _Scaled) -> np.ndarray | None:
    """The features' raw means when the intercept is fitted (it may take part in a relation)."""
    return problem.centre[: problem.d].cpu().numpy() if problem.intercept else None


def collinear_error(
    direction: torch.Tensor,
    scale: torch.Tensor,
    unit: torch.Tensor,
    feature_names: Sequence[str],
    centre: np.ndarray | None = None,
) -> CollinearityError:
    """Name the columns in the null direction and the linear relation between them.

    `direction` is in scaled units: column i's raw scale is scale[i] * unit[i]. `centre`:
    the features' raw means when the model has an intercept; the relation's constant
    then names the intercept, which takes part (two categorical columns' dummies that
    add up to 1, say). Past SHOWN_COLUMNS columns, the largest parts are named.
    """
    v = direction.cpu().numpy()
    ratio = scale.cpu().numpy() * unit.cpu().numpy()  # column i's raw scale
    involved = [i for i in np.argsort(-np.abs(v)) if abs(v[i]) >= 0.01 * np.abs(v).max()]
    k, others = involved[0], involved[1:]
    coefficients = {i: -(v[i] / v[k]) * (ratio[k] / ratio[i]) for i in others}
    constant = size = 0.0
    if centre is not None:  # x_k = constant + sum(c_i x_i): the constant at the means
        constant = float(centre[k]) - sum(c * float(centre[i]) for i, c in coefficients.items())
        size = abs(float(centre[k])) + sum(
            abs(c * float(centre[i])) for i, c in coefficients.items()
        )
    # A constant past rounding's reach: the intercept is part of the relation.
    with_intercept = abs(constant) > 1e-9 * max(size, 1e-300)
    shown = sorted(others[: SHOWN_COLUMNS - 1])
    terms = [
        f"{'-' if coefficients[i] < 0 else '+'} {abs(coefficients[i]):.4g}*{feature_names[i]}"
        for i in shown
    ]
    if len(others) > len(shown):
        terms.append(f"+ ... ({len(others) - len(shown)} more terms)")
    names = ", ".join(repr(feature_names[i]) for i in sorted([k, *shown]))
    if len(involved) > SHOWN_COLUMNS:  # a many-level column's dummies: the largest parts
        names += f" and {len(involved) - SHOWN_COLUMNS} more"
    remedy = "Leave one of them out with --features, or add a ridge penalty (--l2)."
    if with_intercept:
        terms.insert(0, f"{'-' if constant < 0 else '+'} {abs(constant):.4g}")
        names += " and the intercept"
        remedy = (
            "Leave one of the features out with --features, fit without an intercept "
            "(--no-intercept), or add a ridge penalty (--l2)."
        )
    relation = f"{feature_names[k]} ≈ " + " ".join(terms).removeprefix("+ ")
    return CollinearityError(
        f"features {names} are collinear ({relation}), so the least-squares weights are not "
        f"unique. {remedy}"
    )
