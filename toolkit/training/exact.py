"""The closed-form least-squares solver behind `--solver exact`.

1. One pass over the data in chunks accumulates centred sufficient statistics in
   float64: the mean and the scatter (Gram) matrix of [features | targets]. Statistics
   of disjoint parts (shards, processes) merge exactly (`merge`).
2. The features are scaled to unit norm, so the condition number measures collinearity
   rather than units, and the scaled normal equations are solved by Cholesky.
3. Normal equations square the condition number. When the scaled Gram matrix is
   ill-conditioned enough to cost digits, a second pass computes a streaming QR of the
   scaled data instead (one pass, O(d^2) memory), which loses half as many.
4. True rank deficiency is an error that names the collinear columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import CollinearityError

if TYPE_CHECKING:
    import torch

Chunks = Iterable[tuple[Any, Any]]

# float64 keeps about 16 significant digits and normal equations lose about
# log10(condition number) of them: past 1e6 fewer than 10 would be left, so the QR path
# (which loses log10(sqrt(condition number))) takes over.
COND_SWITCH = 1e6
# A feature whose spread is below this fraction of its magnitude is constant.
FLAT_RTOL = 1e-12
# Rows per block on the CPU: a 4096 x ~100 float64 block stays in cache while it is
# converted, shifted and multiplied, which measured 2x faster than 65536-row blocks.
# A GPU wants big blocks to amortise kernel launches.
CPU_BLOCK_ROWS = 4096
GPU_BLOCK_ROWS = 262_144
# Singular values of the scaled data below this fraction of the largest are noise:
# the columns are collinear and the least-squares solution is not unique.
RANK_RTOL = 1e-12


@dataclass
class Moments:
    """Sufficient statistics of the augmented matrix A = [X | Y] (float64, on `device`)."""

    n: int
    mean: torch.Tensor  # (d + t,)
    scatter: torch.Tensor  # (d + t, d + t): sum over rows of (a - mean)(a - mean)^T


@dataclass
class ExactFit:
    weight: np.ndarray  # (t, d) float64
    bias: np.ndarray  # (t,) float64; zeros without an intercept
    condition_number: float  # of the scaled (correlation-like) Gram matrix
    method: str  # "cholesky" or "qr"


class Accumulator:
    """Sufficient statistics gathered block by block: `add` rows, then read `moments()`.

    Each block is shifted by a pilot mean (that of the first rows) while it is converted
    to float64, so the sums are of nearly centred values and do not cancel; the exact
    centring is applied in `moments()`.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self._shifter = _Shifter(device)
        self._device = device
        self.n = 0
        self._total: torch.Tensor | None = None
        self._scatter: torch.Tensor | None = None

    def add(self, features: Any, targets: Any) -> None:
        """Add rows: numpy arrays or tensors of any float dtype, (k, d) and (k, t) or (k,)."""
        import torch

        for block in self._shifter.blocks(features, targets):
            if self._scatter is None:
                width = block.shape[1]
                self._total = torch.zeros(width, dtype=torch.float64, device=self._device)
                self._scatter = torch.zeros(width, width, dtype=torch.float64, device=self._device)
            self._scatter.addmm_(block.T, block)
            self._total += block.sum(dim=0)
            self.n += block.shape[0]

    def moments(self) -> Moments | None:
        """The moments of every row added so far; None before any row."""
        import torch

        if self._scatter is None or self._total is None or self._shifter.shift is None:
            return None
        offset = self._total / self.n
        scatter = self._scatter - self.n * torch.outer(offset, offset)
        return Moments(n=self.n, mean=self._shifter.shift + offset, scatter=scatter)


def accumulate(chunks: Chunks, device: torch.device | str = "cpu") -> Moments:
    """The moments of every row of (features, targets) chunks, in one pass."""
    accumulator = Accumulator(device)
    for features, targets in chunks:
        accumulator.add(features, targets)
    moments = accumulator.moments()
    if moments is None:
        raise ValueError("accumulate() got no rows")
    return moments


def merge(parts: Iterable[Moments | None]) -> Moments | None:
    """The moments of the union of disjoint row sets, merged in the order given.

    Chan, Golub and LeVeque's pairwise update: it combines means and centred scatter
    matrices without forming raw sums of squares, so nothing cancels.
    """
    import torch

    merged: Moments | None = None
    for part in parts:
        if part is None or part.n == 0:
            continue
        if merged is None:
            merged = part
            continue
        n = merged.n + part.n
        delta = part.mean.to(merged.mean.device) - merged.mean
        merged = Moments(
            n=n,
            mean=merged.mean + delta * (part.n / n),
            scatter=merged.scatter
            + part.scatter.to(merged.scatter.device)
            + torch.outer(delta, delta) * (merged.n * part.n / n),
        )
    return merged


def solve(
    moments: Moments,
    n_features: int,
    feature_names: Sequence[str],
    intercept: bool = True,
    l2: float = 0.0,
    rechunk: Callable[[], Chunks] | None = None,
    combine_r: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ExactFit:
    """Least squares (ridge when l2 > 0) from `moments`; `rechunk` re-reads the data for QR.

    When the rows are spread over processes, `rechunk` reads this process's rows and
    `combine_r` turns this process's R factor into that of all rows (the R of the stacked
    R factors of every process).

    The ridge penalty follows scikit-learn's `Ridge`: minimise ||y - Xw - b||^2 + l2 ||w||^2,
    with the intercept never penalised.
    """
    import torch

    d = n_features
    mean, second, scale = _centred(moments, d, feature_names, intercept, l2)
    gram = second[:d, :d] / torch.outer(scale, scale)
    rhs = second[:d, d:] / scale[:, None]
    if l2:
        gram = gram + torch.diag(l2 / scale**2)
    condition = _condition_number(gram)
    method = "cholesky"
    coefficients = _cholesky_solve(gram, rhs) if condition <= COND_SWITCH else None
    if coefficients is None:
        if rechunk is None:
            raise ValueError("an ill-conditioned problem needs `rechunk` for the QR pass")
        method = "qr"
        coefficients, condition = _solve_qr(rechunk(), mean, scale, d, l2, feature_names, combine_r)

    weight = (coefficients / scale[:, None]).T  # (t, d) in raw feature units
    bias = mean[d:] - weight @ mean[:d] if intercept else torch.zeros_like(mean[d:])
    return ExactFit(
        weight=weight.cpu().numpy(),
        bias=bias.cpu().numpy(),
        condition_number=condition,
        method=method,
    )


def _centred(
    moments: Moments, d: int, feature_names: Sequence[str], intercept: bool, l2: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The centre, the second moments about it and the features' scales (unit-norm columns).

    Without an intercept the model passes through the origin: moments about zero. A flat
    column (one whose spread is rounding noise next to its own magnitude) is an error,
    unless the ridge penalty makes its weight unique; then its scale is 1.
    """
    import torch

    if intercept:
        mean, second = moments.mean, moments.scatter
    else:
        mean = torch.zeros_like(moments.mean)
        second = moments.scatter + moments.n * torch.outer(moments.mean, moments.mean)
    scale = torch.sqrt(torch.diagonal(second)[:d])
    magnitude = torch.sqrt(torch.diagonal(moments.scatter)[:d] + moments.n * moments.mean[:d] ** 2)
    flat = scale <= FLAT_RTOL * magnitude
    if bool(flat.any()):
        if l2 == 0.0:
            raise _flat_column_error(feature_names[int(flat.nonzero()[0])], intercept)
        scale = torch.where(flat, torch.ones_like(scale), scale)
    return mean, second, scale


def _condition_number(gram: torch.Tensor) -> float:
    import torch

    eigenvalues = torch.linalg.eigvalsh(gram)
    lowest, highest = float(eigenvalues[0]), float(eigenvalues[-1])
    return highest / lowest if lowest > 0 else math.inf


def _cholesky_solve(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor | None:
    """The normal equations' solution; None if the factorisation fails (not positive definite)."""
    import torch

    factor, info = torch.linalg.cholesky_ex(gram)
    if int(info) != 0:
        return None
    return torch.cholesky_solve(rhs, factor)


def _solve_qr(
    chunks: Chunks,
    mean: torch.Tensor,
    scale: torch.Tensor,
    d: int,
    l2: float,
    feature_names: Sequence[str],
    combine_r: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, float]:
    """Streaming QR of the centred, scaled data: R is updated chunk by chunk, never Q."""
    import torch

    width = mean.shape[0]
    r = torch.zeros(0, width, dtype=torch.float64, device=mean.device)
    shifter = _Shifter(mean.device, shift=mean)
    for features, targets in chunks:
        for block in shifter.blocks(features, targets):
            block[:, :d] /= scale
            r = torch.linalg.qr(torch.cat([r, block]), mode="r").R
    if combine_r is not None:
        r = combine_r(r)
    if l2:
        # Ridge as extra rows: sqrt(l2) * w_i = sqrt(l2) / scale_i * (scaled coefficient).
        penalty = torch.zeros(d, width, dtype=torch.float64, device=mean.device)
        penalty[:, :d] = torch.diag(math.sqrt(l2) / scale)
        r = torch.linalg.qr(torch.cat([penalty, r]), mode="r").R
    r_xx, r_xy = r[:d, :d], r[:d, d:]
    _, singular, vh = torch.linalg.svd(r_xx)
    if float(singular[-1]) <= RANK_RTOL * float(singular[0]):
        raise _collinear_error(vh[-1], scale, feature_names)
    condition = float(singular[0] / singular[-1]) ** 2
    return torch.linalg.solve_triangular(r_xx, r_xy, upper=True), condition


class _Shifter:
    """Re-cuts incoming chunks into cache-sized float64 blocks, shifted, in one reused buffer.

    Conversion and shift happen in one pass (measured 15% faster than converting then
    shifting). Without a `shift`, the first block's mean becomes the shift. Each block is
    only valid until the next one is made.
    """

    def __init__(self, device: torch.device | str, shift: torch.Tensor | None = None) -> None:
        import torch

        self.device = device
        self.shift = shift
        self.rows = GPU_BLOCK_ROWS if torch.device(device).type == "cuda" else CPU_BLOCK_ROWS
        self._buffer: torch.Tensor | None = None

    def blocks(self, features: Any, targets: Any) -> Iterator[torch.Tensor]:
        import torch

        x, y = torch.as_tensor(features), torch.as_tensor(targets)
        if y.ndim == 1:
            y = y[:, None]
        d = x.shape[1]
        for start in range(0, x.shape[0], self.rows):
            xb = x[start : start + self.rows].to(self.device)
            yb = y[start : start + self.rows].to(self.device)
            if self._buffer is None:
                self._buffer = torch.empty(
                    self.rows, d + y.shape[1], dtype=torch.float64, device=self.device
                )
            block = self._buffer[: xb.shape[0]]
            if self.shift is None:
                block[:, :d], block[:, d:] = xb, yb
                self.shift = block.mean(dim=0)
            torch.sub(xb, self.shift[:d], out=block[:, :d])
            torch.sub(yb, self.shift[d:], out=block[:, d:])
            yield block


def _flat_column_error(name: str, intercept: bool) -> CollinearityError:
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


def _collinear_error(
    direction: torch.Tensor, scale: torch.Tensor, feature_names: Sequence[str]
) -> CollinearityError:
    """Name the columns in the null direction and the linear relation between them."""
    v = direction.cpu().numpy()
    s = scale.cpu().numpy()
    involved = [i for i in np.argsort(-np.abs(v)) if abs(v[i]) >= 0.01 * np.abs(v).max()]
    k = involved[0]
    terms = []
    for i in sorted(involved[1:]):
        coefficient = -(v[i] / v[k]) * (s[k] / s[i])
        sign = "-" if coefficient < 0 else "+"
        terms.append(f"{sign} {abs(coefficient):.4g}*{feature_names[i]}")
    relation = f"{feature_names[k]} ≈ " + " ".join(terms).removeprefix("+ ")
    names = ", ".join(repr(feature_names[i]) for i in sorted(involved))
    return CollinearityError(
        f"features {names} are collinear ({relation}), so the least-squares weights are not "
        "unique. Leave one of them out with --features, or add a ridge penalty (--l2)."
    )
