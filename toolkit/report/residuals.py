"""One streaming pass over the residuals: sums that add up chunk by chunk, in bounded memory.

`ResidualPass.add` takes a chunk of rows (features, targets) in file order and updates:

    count, feature sums      whether these are the rows the model was fit on
    central moments 1..4     skewness, kurtosis, Jarque-Bera (merged exactly, Pebay 2008)
    sum of e^2 and of the    Durbin-Watson: the last residual of a chunk is carried into
      squared differences      the next, so the statistic is that of the whole file order
    the sandwich "meats"     sum e_i^2 z_i z_i' (HC0, HC1) and sum e_i^2 / (1 - h_i)^2 z_i z_i'
                             (HC3), z = [1, x - center] in the centred coordinates of the
                             contract's "leverage" (the intercept column only with one)
    a uniform sample         bottom-k of seeded uniform keys: up to `sample_rows` rows for
                             the plots, the same whatever the chunking

Memory is O(d^2 * t + sample_rows * t), whatever the number of rows. `robust.py` turns
the sums into statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class CentralMoments:
    """Count, mean and the sums of 2nd to 4th powers of deviations, per column."""

    n: int
    mean: np.ndarray
    m2: np.ndarray
    m3: np.ndarray
    m4: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> CentralMoments:
        """The moments of a (rows, columns) block."""
        mean = values.mean(axis=0)
        dev = values - mean
        dev2 = dev * dev
        return cls(len(values), mean, dev2.sum(0), (dev2 * dev).sum(0), (dev2 * dev2).sum(0))

    def merge(self, other: CentralMoments) -> CentralMoments:
        """The moments of both blocks together (Pebay's pairwise update: no cancellation)."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        na, nb = self.n, other.n
        n = na + nb
        delta = other.mean - self.mean
        d_n = delta / n
        m2 = self.m2 + other.m2 + delta * d_n * na * nb
        m3 = (
            self.m3
            + other.m3
            + delta * d_n * d_n * na * nb * (na - nb)
            + 3 * d_n * (na * other.m2 - nb * self.m2)
        )
        m4 = (
            self.m4
            + other.m4
            + delta * d_n**3 * na * nb * (na * na - na * nb + nb * nb)
            + 6 * d_n * d_n * (na * na * other.m2 + nb * nb * self.m2)
            + 4 * d_n * (na * other.m3 - nb * self.m3)
        )
        return CentralMoments(n, self.mean + d_n * nb, m2, m3, m4)


@dataclass
class Sample:
    """A seeded uniform sample of at most `size` rows: the rows with the smallest keys."""

    size: int
    rng: np.random.Generator
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    rows: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def add(self, rows: np.ndarray) -> None:
        """Offer `rows` (each gets the next uniform key of the stream, so chunking is moot)."""
        keys = self.rng.random(len(rows))
        if self.size == 0:
            return
        if len(self.keys) == self.size:  # full: only keys below the largest kept can enter
            keep = keys < self.keys.max()
            keys, rows = keys[keep], rows[keep]
        if not len(keys):
            return
        keys = np.concatenate([self.keys, keys])
        rows = np.concatenate([self.rows, rows]) if len(self.rows) else rows
        if len(keys) > self.size:
            chosen = np.argpartition(keys, self.size - 1)[: self.size]
            keys, rows = keys[chosen], rows[chosen]
        self.keys, self.rows = keys, rows

    def in_file_order(self, column: int = 0) -> np.ndarray:
        """The sampled rows sorted by `column` (the row number)."""
        if not len(self.rows):
            return self.rows
        return self.rows[np.argsort(self.rows[:, column], kind="stable")]


class ResidualPass:
    """The sums behind every residual diagnostic of a model on rows read in file order.

    `leverage` is the contract's dict (constant, center, inverse) or None: without it the
    sandwich sums are skipped (no robust standard errors: a ridge fit, an old checkpoint).
    """

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray,
        leverage: dict[str, Any] | None,
        intercept: bool,
        sample_rows: int,
        seed: int,
    ) -> None:
        self.weight, self.bias = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
        t, d = self.weight.shape
        self.intercept = intercept
        self.center = np.zeros(d)
        self.inverse: np.ndarray | None = None
        self.constant = 0.0
        if leverage is not None:
            self.center = np.asarray(leverage["center"], np.float64).reshape(d)
            self.inverse = np.asarray(leverage["inverse"], np.float64).reshape(d, d)
            self.constant = float(leverage["constant"])
        p = d + int(intercept)
        self.n = 0
        self.shifted_sum = np.zeros(d)  # sum of (x - center): the rows' mean vs the fit's
        self.shifted_squares = np.zeros(d)
        self.moments = CentralMoments(0, np.zeros(t), np.zeros(t), np.zeros(t), np.zeros(t))
        self.ssr = np.zeros(t)
        self.squared_steps = np.zeros(t)  # sum (e_i - e_{i-1})^2, file order
        self.last: np.ndarray | None = None  # the previous chunk's last residuals
        self.meat0 = np.zeros((t, p, p))
        self.meat3 = np.zeros((t, p, p))
        self.max_leverage = 0.0
        # Columns: row number, fitted values (t), actual values (t).
        self.sample = Sample(sample_rows, np.random.default_rng([seed, 0x5E1EC7]))

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Take the next rows in file order: features (n, d) and targets (n, t)."""
        if not len(x):
            return
        fitted = x @ self.weight.T + self.bias
        e = y - fitted
        z = x - self.center
        self.shifted_sum += z.sum(axis=0)
        self.shifted_squares += (z * z).sum(axis=0)
        self.moments = self.moments.merge(CentralMoments.of(e))
        self.ssr += (e * e).sum(axis=0)
        steps = np.diff(e, axis=0, prepend=e[:1] if self.last is None else self.last[None])
        self.squared_steps += (steps * steps).sum(axis=0)
        self.last = e[-1].copy()
        if self.inverse is not None:
            self._add_meats(z, e)
        numbers = np.arange(self.n, self.n + len(x), dtype=np.float64)[:, None]
        self.sample.add(np.hstack([numbers, fitted, y]))
        self.n += len(x)

    def _add_meats(self, z: np.ndarray, e: np.ndarray) -> None:
        """sum e^2 z z' and sum (e / (1 - h))^2 z z', with h = constant + z' inverse z.

        With an intercept the design row is [1, z]: its meat's first row and column are
        sum w and sum w z, the rest sum w z z' (one symmetric rank-k update, BLAS syrk).
        """
        from scipy.linalg.blas import dsyrk

        assert self.inverse is not None
        h = self.constant + np.einsum("ij,ij->i", z @ self.inverse, z)
        self.max_leverage = max(self.max_leverage, float(h.max()))
        with np.errstate(divide="ignore", invalid="ignore"):
            inflate = 1.0 / (1.0 - h)
        k = int(self.intercept)
        for j in range(e.shape[1]):
            for meat, root in ((self.meat0[j], e[:, j]), (self.meat3[j], e[:, j] * inflate)):
                scaled = z * root[:, None]  # rows times sqrt of their weight e^2 (/ (1-h)^2)
                upper = dsyrk(1.0, scaled.T)  # scaled' scaled, upper triangle (F-order view)
                meat[k:, k:] += upper + np.triu(upper, 1).T
                if k:
                    weights = root * root
                    meat[0, 0] += weights.sum()
                    cross = z.T @ weights
                    meat[0, 1:] += cross
                    meat[1:, 0] += cross
