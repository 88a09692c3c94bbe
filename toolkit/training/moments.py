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

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.training import shifter
from toolkit.training.plain_gram import HUGE_SQUARE, TINY_SQUARE, PlainGram, Run, odd_columns

if TYPE_CHECKING:
    import torch

# (features, targets) or (features, targets, row weights) chunks.
Chunks = Iterable[tuple[Any, ...]]


@dataclass
class Moments:
    """Sufficient statistics of the augmented matrix A = [X | Y] (float64 numpy arrays).

    `scatter` is in units: entry (i, j) is sum((a_i - mean_i)(a_j - mean_j)) / (unit_i unit_j).
    They are small ((d + t)^2 values) and stay on the CPU whatever device summed the rows:
    the exact solve and the inference are d x d linear algebra, which needs no torch.
    """

    n: int
    mean: np.ndarray  # (d + t,) in the data's units
    scatter: np.ndarray  # (d + t, d + t), scaled by `unit` as above
    unit: np.ndarray  # (d + t,) powers of two
    constant: np.ndarray  # (d + t,) bool: every value of the column is the same
    peak: np.ndarray  # (d + t,) an upper bound of each column's largest magnitude
    weights: float | None = None  # the rows' sum of weights; None: unweighted (each 1)
    log_weights: float = 0.0  # sum(log w): weighted least squares' log-likelihood needs it

    @property
    def weight_sum(self) -> float:
        """The sum of the rows' weights: the row count without weights."""
        return float(self.n) if self.weights is None else self.weights

    def raw_scatter(self) -> np.ndarray:
        """The scatter matrix in the data's own units (may overflow for extreme data)."""
        with np.errstate(over="ignore"):
            return self.scatter * np.outer(self.unit, self.unit)

    def to_plain(self) -> dict[str, Any]:
        """Numpy arrays and an int: what crosses the network between processes."""
        arrays = {k: np.array(getattr(self, k)) for k in _ARRAYS}
        return {"n": self.n, "weights": self.weights, "log_weights": self.log_weights, **arrays}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> Moments:
        arrays = {k: on_host(plain[k]) for k in _ARRAYS}
        extra = {"weights": plain.get("weights"), "log_weights": plain.get("log_weights", 0.0)}
        return cls(n=plain["n"], **arrays, **extra)


_ARRAYS = ("mean", "scatter", "unit", "constant", "peak")


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
        self._shifter = shifter.Shifter(device)
        self._gram = PlainGram(shifter.CPU_BLOCK_ROWS, threads)
        self._device = device
        self.n = 0
        # total, scatter, unit, varied, largest, ...: numpy arrays on the CPU until the
        # tensor path needs them (then tensors sharing their memory), tensors on a GPU.
        self._sums: dict[str, Any] = {}

    def add(self, features: Any, targets: Any, weights: Any = None) -> None:
        """Add rows: numpy arrays or tensors of any float dtype, (k, d) and (k, t) or (k,),
        and optionally the rows' weights (k,), each >= 0 (checked by the reader).

        Unweighted numpy rows on the CPU never import torch (the pass can run while
        torch is imported: toolkit.training.early)."""
        if weights is None and self._shifter.plain(features, targets):
            self._add_plain(features, targets)
            return
        import torch

        for block, w in self._shifter.blocks(features, targets, weights):
            if not self._sums:
                self._start(block.shape[1])
            sums = self._tensor_sums()
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

    def _pilot_mean(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The shift: the mean of the first block's rows, converted to float64."""
        rows = self._gram.block_rows
        return np.column_stack([x[:rows], y[:rows]]).astype(np.float64).mean(axis=0)

    def _plain_shift_and_scale(self) -> tuple[np.ndarray, np.ndarray | None]:
        sums = self._sums
        scale = 1.0 / np.asarray(sums["unit"]) if sums["scaled"] else None
        assert self._shifter.shift is not None
        return np.asarray(self._shifter.shift), scale

    def _take(self, run: Run, start: int) -> None:
        """Add a run's sums (its rows [start, run.end)) to the accumulator's (numpy views
        of CPU tensors share their memory)."""
        sums, width = self._sums, len(run.largest)
        np.asarray(sums["scatter"])[:] += run.gram[:width, :width]
        np.asarray(sums["total"])[:] += run.gram[width, :width]
        largest = np.asarray(sums["largest"])
        np.maximum(largest, run.largest, out=largest)
        np.asarray(sums["varied"])[:] |= run.varied
        self.n += run.end - start

    def _redo_plain_block(self, x: np.ndarray, y: np.ndarray, start: int) -> int:
        """Sum the block at `start` with new units for its odd columns; the next row."""
        import torch

        width = x.shape[1] + y.shape[1]
        block = self._gram.fill(0, x, y, start, *self._plain_shift_and_scale())
        sums = self._tensor_sums()
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
        if self._shifter.cpu:
            self._sums = {
                "total": np.zeros(width),
                "scatter": np.zeros((width, width)),
                "unit": np.ones(width),
                "varied": np.zeros(width, dtype=bool),
                "largest": np.zeros(width),
                "scaled": False,
                "weights": np.zeros(()),
                "log_weights": np.zeros(()),
            }
            return
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

    def _tensor_sums(self) -> dict[str, Any]:
        """The sums as tensors (numpy ones become tensors sharing their memory)."""
        import torch

        for key, value in self._sums.items():
            if isinstance(value, np.ndarray):
                self._sums[key] = torch.from_numpy(value)
        return self._sums

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
        plain = self.plain_moments()
        return None if plain is None else Moments.from_plain(plain)

    def plain_moments(self) -> dict[str, Any] | None:
        """`moments().to_plain()`, computed in numpy: no torch for numpy rows on the CPU."""
        if not self._sums or self._shifter.shift is None:
            return None
        sums = {key: on_host(value) for key, value in self._sums.items()}
        unit, shift = sums["unit"], on_host(self._shifter.shift)
        weighted = self._shifter.weighted
        mass = float(sums["weights"]) if weighted else self.n
        offset = sums["total"] / mass if mass > 0 else sums["total"] * 0
        return {
            "n": self.n,
            "weights": mass if weighted else None,
            "log_weights": float(sums["log_weights"]) if weighted else 0.0,
            "mean": shift + offset * unit,
            "scatter": sums["scatter"] - mass * np.outer(offset, offset),
            "unit": unit.copy(),
            "constant": ~sums["varied"],
            "peak": np.abs(shift) + np.sqrt(sums["largest"]) * unit,
        }


def on_host(value: Any) -> Any:
    """A tensor's values as numpy (a CPU tensor's share its memory); others unchanged."""
    if isinstance(value, np.ndarray) or not hasattr(value, "detach"):
        return value
    return value.detach().cpu().numpy()


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
    unit = np.maximum(a.unit, b.unit)  # powers of two: the ratios below are exact
    ra, rb = a.unit / unit, b.unit / unit
    weighted = a.weights is not None or b.weights is not None
    # Each part counts by its sum of weights (its row count without weights).
    wa, wb = (a.weight_sum, b.weight_sum) if weighted else (a.n, b.n)
    mass = wa + wb
    share = wb / mass if mass > 0 else 0.0
    delta = (b.mean - a.mean) / unit
    scatter = (
        a.scatter * np.outer(ra, ra)
        + b.scatter * np.outer(rb, rb)
        + np.outer(delta, delta) * (wa * wb / mass if mass > 0 else 0.0)
    )
    same = a.mean == b.mean  # constant in both parts, with the same value
    return Moments(
        n=a.n + b.n,
        weights=mass if weighted else None,
        log_weights=a.log_weights + b.log_weights,
        mean=a.mean + (b.mean - a.mean) * share,
        scatter=scatter,
        unit=unit,
        constant=a.constant & b.constant & same,
        peak=np.maximum(a.peak, b.peak),
    )


def power_of_two_above(values: torch.Tensor) -> torch.Tensor:
    """The least power of two >= each value (0 stays 0); exact, and never infinite."""
    import torch

    mantissa, exponent = torch.frexp(values)
    power = torch.ldexp(torch.ones_like(values), exponent)
    power = torch.where(mantissa == 0.5, power / 2, power)  # already a power of two
    power = torch.where(torch.isinf(power), torch.full_like(power, 2.0**1023), power)
    return torch.where(values > 0, power, torch.zeros_like(values))
