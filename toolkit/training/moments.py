"""Sufficient statistics of [features | targets], gathered in one pass and merged exactly.

The exact solver needs the mean and the centred scatter (Gram) matrix of the rows; the
iterative solvers take their scaling from them. Three precautions keep every digit:

1. Each block is shifted by a pilot mean (that of the first rows) before it is squared,
   so the sums are of nearly centred values and do not cancel.
2. A column whose values are too small or too large to square is divided by a power of
   two near them (`unit`, exact), so values from 1e-300 to 1e300 neither overflow nor
   underflow; the sums so far are rescaled with it (also exact). Ordinary data keeps
   unit 1 and pays nothing for this.
3. A column is constant only when every deviation from the shift is exactly zero (x - s
   is zero only for x == s), never because its spread is small.

Statistics of disjoint parts (chunks, shards, processes) merge with Chan, Golub and
LeVeque's pairwise update, without forming raw sums of squares.

With row weights (weighted least squares) the mean is the weighted mean, the scatter
sum(w (a - mean)(a - mean)'), and the pairwise update weighs each part by its sum of
weights instead of its row count; without them nothing changes (not even the cost).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.training.plain_gram import HUGE_SQUARE, TINY_SQUARE, PlainGram, Run, odd_columns

if TYPE_CHECKING:
    import torch

# (features, targets) or (features, targets, row weights) chunks.
Chunks = Iterable[tuple[Any, ...]]

# Rows per block on the CPU: a 4096 x ~100 float64 block stays in cache while it is
# converted, shifted and multiplied, which measured 2x faster than 65536-row blocks.
# A GPU wants big blocks to amortise kernel launches.
CPU_BLOCK_ROWS = 4096
GPU_BLOCK_ROWS = 262_144


@dataclass
class Moments:
    """Sufficient statistics of the augmented matrix A = [X | Y] (float64, on `device`).

    `scatter` is in units: entry (i, j) is sum((a_i - mean_i)(a_j - mean_j)) / (unit_i unit_j).
    """

    n: int
    mean: torch.Tensor  # (d + t,) in the data's units
    scatter: torch.Tensor  # (d + t, d + t), scaled by `unit` as above
    unit: torch.Tensor  # (d + t,) powers of two
    constant: torch.Tensor  # (d + t,) bool: every value of the column is the same
    peak: torch.Tensor  # (d + t,) an upper bound of each column's largest magnitude
    weights: float | None = None  # the rows' sum of weights; None: unweighted (each 1)
    log_weights: float = 0.0  # sum(log w): weighted least squares' log-likelihood needs it

    @property
    def weight_sum(self) -> float:
        """The sum of the rows' weights: the row count without weights."""
        return float(self.n) if self.weights is None else self.weights

    def raw_scatter(self) -> torch.Tensor:
        """The scatter matrix in the data's own units (may overflow for extreme data)."""
        import torch

        return self.scatter * torch.outer(self.unit, self.unit)

    def to_plain(self) -> dict[str, Any]:
        """Numpy arrays and an int: what crosses the network between processes."""
        arrays = {k: getattr(self, k).cpu().numpy() for k in _TENSORS}
        return {"n": self.n, "weights": self.weights, "log_weights": self.log_weights, **arrays}

    @classmethod
    def from_plain(cls, plain: dict[str, Any], device: Any) -> Moments:
        import torch

        tensors = {k: torch.as_tensor(plain[k], device=device) for k in _TENSORS}
        extra = {"weights": plain.get("weights"), "log_weights": plain.get("log_weights", 0.0)}
        return cls(n=plain["n"], **tensors, **extra)


_TENSORS = ("mean", "scatter", "unit", "constant", "peak")


class Accumulator:
    """Sufficient statistics gathered block by block: `add` rows, then read `moments()`.

    The common case costs one matrix product per block: each block's own Gram matrix is
    formed, and only columns whose diagonal entry is zero, tiny or not finite (a constant
    stretch, or values too small or too large to square) get a closer look, which sets
    their unit and redoes the block.
    """

    def __init__(self, device: torch.device | str = "cpu", threads: int = 1) -> None:
        """`threads` (1 or 2): numpy rows in memory are summed on this many threads; the
        caller keeps BLAS to one thread meanwhile (plain_gram.one_blas_thread)."""
        self._shifter = Shifter(device)
        self._gram = PlainGram(CPU_BLOCK_ROWS, threads)
        self._device = device
        self.n = 0
        self._sums: dict[str, torch.Tensor] = {}  # total, scatter, unit, varied, largest

    def add(self, features: Any, targets: Any, weights: Any = None) -> None:
        """Add rows: numpy arrays or tensors of any float dtype, (k, d) and (k, t) or (k,),
        and optionally the rows' weights (k,), each >= 0 (checked by the reader)."""
        import torch

        if weights is None and self._shifter.plain(features, targets):
            self._add_plain(features, targets)
            return
        for block, w in self._shifter.blocks(features, targets, weights):
            if not self._sums:
                self._start(block.shape[1])
            sums = self._sums
            if sums["scaled"]:
                block.mul_(1.0 / sums["unit"])
            gram = _gram(block, w)
            diagonal = torch.diagonal(gram)
            odd = ~((diagonal > TINY_SQUARE) & (diagonal < HUGE_SQUARE))
            if bool(odd.any()):
                gram, diagonal = self._rescale(block, odd, w)
            sums["scatter"] += gram
            if w is None:
                sums["total"] += block.sum(dim=0)
                sums["largest"] = torch.maximum(sums["largest"], diagonal)
            else:
                sums["total"] += w @ block
                sums["weights"] += w.sum()
                sums["log_weights"] += torch.log(w).sum()
                sums["largest"] = torch.maximum(sums["largest"], (block * block).sum(dim=0))
            sums["varied"] |= diagonal > 0
            self.n += block.shape[0]

    def _add_plain(self, features: np.ndarray, targets: np.ndarray) -> None:
        """`add` for unweighted numpy rows on the CPU: runs of one BLAS syrk per block
        (toolkit.training.plain_gram), on two threads when the accumulator has them."""
        y = targets[:, None] if targets.ndim == 1 else targets
        width = features.shape[1] + y.shape[1]
        if self._shifter.shift is None:
            self._shifter.shift = self._pilot_mean(features, y)
        if not self._sums:
            self._start(width)
        start = 0
        while start < len(features):
            for run in self._gram.runs(features, y, start, *self._plain_shift_and_scale()):
                self._take(run, start)
                start = run.end
                if run.odd:  # rare: the tensor path sets units and redoes the block
                    start = self._redo_plain_block(features, y, start)
                    break

    def _pilot_mean(self, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
        """The shift: the mean of the first block's rows, converted to float64."""
        import torch

        rows = self._gram.block_rows
        return torch.from_numpy(
            np.column_stack([x[:rows], y[:rows]]).astype(np.float64).mean(axis=0)
        )

    def _plain_shift_and_scale(self) -> tuple[np.ndarray, np.ndarray | None]:
        sums = self._sums
        scale = 1.0 / sums["unit"].numpy() if sums["scaled"] else None
        assert self._shifter.shift is not None
        return self._shifter.shift.numpy(), scale

    def _take(self, run: Run, start: int) -> None:
        """Add a run's sums (its rows [start, run.end)) to the accumulator's."""
        sums, width = self._sums, len(run.largest)
        sums["scatter"].numpy()[:] += run.gram[:width, :width]
        sums["total"].numpy()[:] += run.gram[width, :width]
        np.maximum(sums["largest"].numpy(), run.largest, out=sums["largest"].numpy())
        sums["varied"].numpy()[:] |= run.varied
        self.n += run.end - start

    def _redo_plain_block(self, x: np.ndarray, y: np.ndarray, start: int) -> int:
        """Sum the block at `start` with new units for its odd columns; the next row."""
        import torch

        sums, width = self._sums, x.shape[1] + y.shape[1]
        block = self._gram.fill(0, x, y, start, *self._plain_shift_and_scale())
        values = torch.from_numpy(np.array(block[:, :width]))
        diagonal = (values * values).sum(dim=0).numpy()
        odd = torch.from_numpy(odd_columns(values.numpy(), diagonal))
        gram, diagonal = self._rescale(values, odd, None)
        sums["scatter"] += gram
        sums["total"] += values.sum(dim=0)
        sums["largest"] = torch.maximum(sums["largest"], diagonal)
        sums["varied"] |= diagonal > 0
        self.n += len(values)
        return start + len(values)

    def _start(self, width: int) -> None:
        import torch

        like = {"dtype": torch.float64, "device": self._device}
        self._sums = {
            "total": torch.zeros(width, **like),
            "scatter": torch.zeros(width, width, **like),
            "unit": torch.ones(width, **like),
            "varied": torch.zeros(width, dtype=torch.bool, device=self._device),
            "largest": torch.zeros(width, **like),  # the largest block sum of squares
            "scaled": False,  # whether any unit differs from 1
            "weights": torch.zeros((), **like),  # stays 0 for unweighted rows
            "log_weights": torch.zeros((), **like),
        }

    def _rescale(self, block: torch.Tensor, odd: torch.Tensor, w: Any) -> tuple[Any, Any]:
        """Give the odd columns a unit near their largest value; rescale what is summed."""
        import torch

        sums = self._sums
        largest = block[:, odd].abs().amax(dim=0)  # in the current units
        wanted = power_of_two_above(largest) * sums["unit"][odd]
        moving = largest > 0  # all-zero deviations: nothing to rescale
        columns = odd.nonzero().flatten()[moving]
        if len(columns):
            ratio = torch.ones_like(sums["unit"])
            ratio[columns] = sums["unit"][columns] / wanted[moving]
            # Row then column (not ratio**2, which can overflow for a huge ratio times 0).
            sums["scatter"] *= ratio[:, None]
            sums["scatter"] *= ratio[None, :]
            sums["total"] *= ratio
            sums["largest"] *= ratio
            sums["largest"] *= ratio
            sums["unit"][columns] = wanted[moving]
            block.mul_(ratio)
            sums["scaled"] = True
        gram = _gram(block, w)
        return gram, torch.diagonal(gram)

    def moments(self) -> Moments | None:
        """The moments of every row added so far; None before any row."""
        import torch

        if not self._sums or self._shifter.shift is None:
            return None
        sums = self._sums
        unit, shift = sums["unit"], self._shifter.shift
        weighted = self._shifter.weighted
        mass = float(sums["weights"]) if weighted else self.n
        offset = sums["total"] / mass if mass > 0 else sums["total"] * 0
        scatter = sums["scatter"] - mass * torch.outer(offset, offset)
        peak = shift.abs() + torch.sqrt(sums["largest"]) * unit
        mean = shift + offset * unit
        moments = Moments(self.n, mean, scatter, unit.clone(), ~sums["varied"], peak)
        if weighted:
            moments.weights, moments.log_weights = mass, float(sums["log_weights"])
        return moments


def _gram(block: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """block' diag(w) block (block' block without weights)."""
    if w is None:
        return block.T @ block
    rooted = block * w.sqrt()[:, None]
    return rooted.T @ rooted


def accumulate(chunks: Chunks, device: torch.device | str = "cpu", threads: int = 1) -> Moments:
    """The moments of every row of (features, targets) chunks, in one pass."""
    accumulator = Accumulator(device, threads)
    for chunk in chunks:
        accumulator.add(*chunk)
    moments = accumulator.moments()
    if moments is None:
        raise ValueError("accumulate() got no rows")
    return moments


def merge(parts: Iterable[Moments | None]) -> Moments | None:
    """The moments of the union of disjoint row sets, merged in the order given."""
    merged: Moments | None = None
    for part in parts:
        if part is None or part.n == 0:
            continue
        merged = part if merged is None else _merge_two(merged, part)
    return merged


def _merge_two(a: Moments, b: Moments) -> Moments:
    import torch

    device = a.mean.device
    b_unit, b_mean = b.unit.to(device), b.mean.to(device)
    unit = torch.maximum(a.unit, b_unit)  # powers of two: the ratios below are exact
    ra, rb = a.unit / unit, b_unit / unit
    weighted = a.weights is not None or b.weights is not None
    # Each part counts by its sum of weights (its row count without weights).
    wa, wb = (a.weight_sum, b.weight_sum) if weighted else (a.n, b.n)
    mass = wa + wb
    share = wb / mass if mass > 0 else 0.0
    delta = (b_mean - a.mean) / unit
    scatter = (
        a.scatter * torch.outer(ra, ra)
        + b.scatter.to(device) * torch.outer(rb, rb)
        + torch.outer(delta, delta) * (wa * wb / mass if mass > 0 else 0.0)
    )
    same = a.mean == b_mean  # constant in both parts, with the same value
    return Moments(
        n=a.n + b.n,
        weights=mass if weighted else None,
        log_weights=a.log_weights + b.log_weights,
        mean=a.mean + (b_mean - a.mean) * share,
        scatter=scatter,
        unit=unit,
        constant=a.constant & b.constant.to(device) & same,
        peak=torch.maximum(a.peak, b.peak.to(device)),
    )


def power_of_two_above(values: torch.Tensor) -> torch.Tensor:
    """The least power of two >= each value (0 stays 0); exact, and never infinite."""
    import torch

    mantissa, exponent = torch.frexp(values)
    power = torch.ldexp(torch.ones_like(values), exponent)
    power = torch.where(mantissa == 0.5, power / 2, power)  # already a power of two
    power = torch.where(torch.isinf(power), torch.full_like(power, 2.0**1023), power)
    return torch.where(values > 0, power, torch.zeros_like(values))


class Shifter:
    """Re-cuts incoming chunks into cache-sized float64 blocks, shifted, in one reused buffer.

    Conversion and shift happen in one pass (measured 15% faster than converting then
    shifting). Without a `shift`, the first block's mean becomes the shift. Each block is
    only valid until the next one is made.
    """

    def __init__(self, device: torch.device | str, shift: torch.Tensor | None = None) -> None:
        import torch

        self.device = device
        self.weighted = False  # whether any rows came with weights
        self.shift = shift
        self.rows = GPU_BLOCK_ROWS if torch.device(device).type == "cuda" else CPU_BLOCK_ROWS
        self._cpu = torch.device(device).type == "cpu"
        self._buffer: torch.Tensor | None = None

    def plain(self, features: Any, targets: Any) -> bool:
        """Whether `Accumulator._add_plain` takes these rows: float numpy arrays, for the CPU."""
        return self._cpu and all(
            isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.dtype.itemsize <= 8
            for a in (features, targets)
        )

    def blocks(
        self, features: Any, targets: Any, weights: Any = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(block, its rows' float64 weights or None)."""
        import torch

        x, y = torch.as_tensor(features), torch.as_tensor(targets)
        w = None
        if weights is not None:
            w = torch.as_tensor(weights).to(self.device, torch.float64).reshape(-1)
            self.weighted = True
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
            yield block, None if w is None else w[start : start + self.rows]
