"""Iterative refinement of a least-squares solution, to the last digit the data allows.

The one-pass solution (normal equations, or QR when they are ill-conditioned) carries an
error of about eps * condition number. Each refinement pass reads the rows again and
computes, in double-double arithmetic (about 106 bits, with error-free transformations:
Dekker's product, Knuth's sum, Rump's extraction for sums), the residuals r = y - Xw - b
and the gradient of the ridge objective, X^T r - l2 w and sum(r). These are nearly exact
whatever the condition, so the correction solved with the existing factor moves the
solution towards the exact least-squares solution of the float64 data; the factor's own
error only slows convergence (by about eps * condition per pass). Passes stop when the
correction stops shrinking or falls below float64's resolution.

Everything here works in each column's power-of-two `unit` (exact rescaling), so data
from 1e-300 to 1e300 neither overflow nor underflow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Veltkamp's splitter for float64: a = hi + lo with 26-bit halves, products exact.
_SPLIT = 134217729.0  # 2**27 + 1
# Rows per kernel block: the column loops keep a few such vectors in cache.
BLOCK_ROWS = 4096
# At most this many refinement passes (each costs one read of the rows).
MAX_PASSES = 8
# float64's resolution: a correction this small (relative) changes nothing more.
RESOLUTION = 2.0**-53

Chunks = Iterable[tuple[np.ndarray, ...]]  # (features, targets[, row weights])
Sums = tuple[np.ndarray, np.ndarray]  # (hi, lo) double-double values


@dataclass
class Problem:
    """A least-squares problem in unit space: X / unit_x, Y / unit_y (powers of two)."""

    unit_x: np.ndarray  # (d,)
    unit_y: np.ndarray  # (t,)
    intercept: bool
    l2: float
    n: float  # the rows' sum of weights (their count without weights)


def refine(
    problem: Problem,
    weight: np.ndarray,
    bias: np.ndarray,
    rechunk: Callable[[], Chunks],
    correct: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    combine: Callable[[list[Sums]], list[Sums]] | None = None,
    contraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Refined (weight (t, d), bias (t,)) in raw units, and the passes it took.

    `correct(gradient (d, t), residual sums (t,))` turns the unit-space gradient into a
    correction (dw (t, d), db (t,)) in unit space; `combine` adds double-double sums over
    processes; `contraction` estimates how much each pass shrinks the error (eps * cond),
    so that a pass whose correction is already at float64's resolution is the last.
    """
    scale = problem.unit_y[:, None] / problem.unit_x[None, :]
    w_u, b_u = weight / scale, bias / problem.unit_y
    previous, passes = np.inf, 0
    while passes < MAX_PASSES:
        gx, g1 = _gradient_sums(problem, w_u, b_u, rechunk, combine)
        if problem.l2:
            gx = gx - problem.l2 * (w_u.T / problem.unit_x[:, None]) / problem.unit_x[:, None]
        dw, db = correct(gx, g1 if problem.intercept else np.zeros_like(g1))
        passes += 1
        size = float(np.max(np.abs(dw) / np.maximum(np.abs(w_u), np.finfo(float).tiny)))
        if not np.isfinite(size) or size > previous / 2:
            break  # not converging: keep the last good solution
        w_u, b_u = w_u + dw, (b_u + db) if problem.intercept else b_u
        if size * max(contraction, RESOLUTION) <= RESOLUTION or size <= RESOLUTION:
            break
        previous = size
    return w_u * scale, b_u * problem.unit_y, passes


def _gradient_sums(
    problem: Problem,
    w_u: np.ndarray,
    b_u: np.ndarray,
    rechunk: Callable[[], Chunks],
    combine: Callable[[list[Sums]], list[Sums]] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """X^T W r (d, t) and sum(W r) (t,) over every row (every process), in unit space
    (W the rows' weights; the identity without them)."""
    d, t = w_u.shape[1], w_u.shape[0]
    gx = (np.zeros((d, t)), np.zeros((d, t)))
    g1 = (np.zeros(t), np.zeros(t))
    for features, targets, *weights in rechunk():
        for start in range(0, len(features), BLOCK_ROWS):
            x = np.asfortranarray(features[start : start + BLOCK_ROWS] / problem.unit_x)
            y = targets[start : start + BLOCK_ROWS].reshape(len(x), t) / problem.unit_y
            r_hi, r_lo = residuals(x, y, w_u, b_u)
            if weights:
                rows = weights[0][start : start + BLOCK_ROWS].reshape(len(x), 1)
                r_hi, r_lo = dd_scale(r_hi, r_lo, rows)
            bx, b1 = gradient(x, r_hi, r_lo)
            gx, g1 = dd_add(*gx, *bx), dd_add(*g1, *b1)
    if combine is not None:
        gx, g1 = combine([gx, g1])
    return gx[0] + gx[1], g1[0] + g1[1]


def residuals(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray) -> Sums:
    """y - b - x @ w.T per row and target, as double-double (hi, lo) arrays (m, t)."""
    wh, wl = split(w)
    hi, lo = dd_add(y.copy(), np.zeros_like(y), -np.broadcast_to(b, y.shape), np.zeros_like(y))
    for j in range(x.shape[1]):
        column = x[:, j : j + 1]
        ch, cl = split(column)
        p = column * w[:, j]
        e = ((ch * wh[:, j] - p) + ch * wl[:, j] + cl * wh[:, j]) + cl * wl[:, j]
        hi, lo = dd_add(hi, lo, -p, -e)
    return hi, lo


def gradient(x: np.ndarray, r_hi: np.ndarray, r_lo: np.ndarray) -> tuple[Sums, Sums]:
    """(x^T r as (hi, lo) of shape (d, t), sum(r) as (hi, lo) of shape (t,))."""
    xh, xl = split(x)
    g_hi, g_lo = [], []
    for k in range(r_hi.shape[1]):
        r, rl = r_hi[:, k : k + 1], r_lo[:, k : k + 1]
        rh, rr = split(r)
        p = x * r
        e = ((xh * rh - p) + xh * rr + xl * rh) + xl * rr + x * rl
        hi, lo = dd_add(*column_sums(p), *column_sums(e))
        g_hi.append(hi)
        g_lo.append(lo)
    s_hi, s_lo = dd_add(*column_sums(r_hi), *column_sums(r_lo))
    return (np.stack(g_hi, axis=1), np.stack(g_lo, axis=1)), (s_hi, s_lo)


def column_sums(values: np.ndarray) -> Sums:
    """Sum over axis 0, as double-double: two rounds of Rump's error-free extraction.

    Each round splits every value at a power of two sigma, above which all of a column's
    values share one grid, so their high parts add up exactly; what is left is about
    m * eps times smaller and goes to the next round.
    """
    m = values.shape[0]
    hi = np.zeros(values.shape[1:])
    lo = np.zeros(values.shape[1:])
    rest = values
    for _ in range(2):
        largest = np.abs(rest).max(axis=0)
        exponent = np.frexp(np.where(largest > 0, largest, 1.0))[1]
        sigma = np.ldexp(1.0, exponent + int(np.ceil(np.log2(m + 2))))
        high = (sigma + rest) - sigma
        rest = rest - high
        hi, lo = dd_add(hi, lo, high.sum(axis=0), np.zeros_like(hi))
    return dd_add(hi, lo, rest.sum(axis=0), np.zeros_like(hi))


def dd_scale(hi: np.ndarray, lo: np.ndarray, w: np.ndarray) -> Sums:
    """w (hi + lo) in double-double: Dekker's exact product w * hi, plus w * lo."""
    wh, wl = split(w)
    hh, hl = split(hi)
    p = w * hi
    e = ((wh * hh - p) + wh * hl + wl * hh) + wl * hl + w * lo
    return dd_add(p, np.zeros_like(p), e, np.zeros_like(e))


def split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp's split: a = hi + lo exactly, each with at most 26 significant bits."""
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def dd_add(hi: Any, lo: Any, p: Any, e: Any) -> Sums:
    """(hi + lo) + (p + e) in double-double (Knuth's two-sum, then renormalise)."""
    s = hi + p
    v = s - hi
    err = (hi - (s - v)) + (p - v) + lo + e
    total = s + err
    return total, err - (total - s)


def dd_sum(parts: list[Sums]) -> Sums:
    """The double-double sum of `parts`, added in the order given."""
    hi, lo = parts[0]
    for p, e in parts[1:]:
        hi, lo = dd_add(hi, lo, p, e)
    return hi, lo
