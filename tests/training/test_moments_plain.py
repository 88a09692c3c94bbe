"""The CPU fast path of the moments (`Accumulator._add_plain`: numpy rows, one BLAS syrk
per block with a column of ones for the sums) against extended-precision references.

References: the mean and centred scatter computed in numpy's longdouble (x87 80-bit on
x86-64: 64-bit mantissa, exponents to 1e4932, so squares of 1e300 neither overflow nor
underflow) from the exact binary values of the rows; and the tensor path, which the fast
path must agree with to rounding. Tolerances: float64 sums of a few thousand nearly
centred products keep about 15 digits of the matrix's scale (1e-13 leaves room).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.training import shifter
from toolkit.training.moments import Accumulator, accumulate, merge

SCALE_RTOL = 1e-13  # scatter entries, relative to the largest of their row and column
MEAN_RTOL = 1e-15  # means, relative to their column's spread plus magnitude


def reference(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and centred scatter of [x | y] in extended precision."""
    a = np.column_stack([x, y.reshape(len(y), -1)]).astype(np.longdouble)
    mean = a.mean(axis=0)
    centred = a - mean
    return mean, centred.T @ centred


def assert_means_close(got: np.ndarray, want: np.ndarray, spread: np.ndarray) -> None:
    """Means to MEAN_RTOL of their column's spread plus magnitude (a mean near zero is
    known to the spread's digits, not its own)."""
    error = np.abs(got.astype(np.longdouble) - want)
    assert (error <= MEAN_RTOL * 4 * (spread + np.abs(want))).all(), error


def assert_close_to_reference(moments, x: np.ndarray, y: np.ndarray) -> None:
    """Means, and the scatter in the moments' units (entry (i, j) / (unit_i unit_j), where
    squares of 1e-300 and 1e300 are finite), against the extended-precision ones."""
    mean, scatter = reference(x, y)
    assert_means_close(moments.mean, mean, np.sqrt(np.diagonal(scatter) / len(x)))
    unit = moments.unit.astype(np.longdouble)
    got, want = moments.scatter.astype(np.longdouble), scatter / np.outer(unit, unit)
    size = np.sqrt(np.outer(np.diagonal(want), np.diagonal(want)))
    assert (np.abs(got - want) <= SCALE_RTOL * size).all()
    assert np.isfinite(moments.scatter).all()


def assert_moments_equal(got, want) -> None:
    """The same rows summed in another order or path: equal to rounding."""
    assert got is not None and got.n == want.n
    spread = np.sqrt(np.diagonal(want.raw_scatter()) / want.n)
    assert_means_close(got.mean, want.mean.astype(np.longdouble), spread)
    size = np.sqrt(np.outer(np.diagonal(want.scatter), np.diagonal(want.scatter)))
    assert (np.abs(got.scatter - want.scatter) <= SCALE_RTOL * size).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 7, 4096, 4097, 10_000])
def test_plain_rows_match_the_extended_precision_reference(dtype, rows):
    rng = np.random.default_rng(rows)
    # Means far from zero next to spreads from 1e-3 to 1e3: the shift must do its job.
    x = (rng.standard_normal((rows, 5)) * [1, 1e3, 1e-3, 10, 1] + [1e6, 0, 5, -3e4, 0]).astype(
        dtype
    )
    y = (x.astype(np.float64) @ [1.0, 2.0, -3.0, 0.5, 1.0] + rng.standard_normal(rows)).astype(
        dtype
    )
    moments = accumulate([(x[s : s + 3000], y[s : s + 3000]) for s in range(0, rows, 3000)])
    assert moments.n == rows
    if rows > 1:
        assert_close_to_reference(moments, x, y)
    assert moments.constant.tolist() == [rows == 1] * 6


def test_plain_path_agrees_with_the_tensor_path():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((9000, 4)) + 50.0, rng.standard_normal((9000, 2))
    plain = accumulate([(x[:5000], y[:5000]), (x[5000:], y[5000:])])
    tensors = accumulate([(torch.as_tensor(x), torch.as_tensor(y))])
    assert_moments_equal(plain, tensors)
    assert (plain.peak >= np.abs(np.column_stack([x, y])).max(axis=0)).all()


def test_plain_path_is_the_one_taken_for_float_arrays_only():
    accumulator = Accumulator("cpu")
    shifter = accumulator._shifter
    floats = np.zeros((3, 2), np.float32), np.zeros(3)
    assert shifter.plain(*floats)
    assert not shifter.plain(np.zeros((3, 2), np.int64), np.zeros(3))
    assert not shifter.plain(torch.zeros(3, 2), torch.zeros(3))
    assert not Accumulator("meta")._shifter.plain(*floats)


@pytest.mark.parametrize("magnitude", [1e-300, 1e-170, 1e160, 1e300])
def test_plain_path_rescales_extreme_columns_exactly(magnitude):
    """Columns too small or too large to square get a power-of-two unit (the rescale path,
    redone in torch for that block); the scatter in the data's units matches the
    extended-precision one, and later blocks reuse the unit."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10_000, 3)) * [magnitude, 1.0, 1.0] + [0.0, 0.0, 3.0]
    y = x[:, 1] - x[:, 2] + rng.standard_normal(10_000)
    moments = accumulate([(x[:4500], y[:4500]), (x[4500:], y[4500:])])
    unit = moments.unit
    assert unit[0] != 1.0 and unit[1:].tolist() == [1.0, 1.0, 1.0]
    assert np.log2(unit[0]) == np.round(np.log2(unit[0]))  # a power of two
    assert_close_to_reference(moments, x, y)


def test_a_column_constant_in_the_first_blocks_is_varied_in_the_end():
    x = np.full((10_000, 2), 2.5)
    x[9000:, 1] += np.arange(1000) * 1e-9
    moments = accumulate([(x, np.arange(10_000.0))])
    assert moments.constant.tolist() == [True, False, False]
    assert moments.scatter[0, 0] == 0.0


def test_chunks_in_either_path_and_weights_merge_to_the_whole():
    """Plain chunks, tensor chunks and a block size change all sum to the same moments;
    weighted rows (the tensor path) of weight one equal the plain ones."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6000, 3)) * 7 + 1, rng.standard_normal(6000)
    whole = accumulate([(x, y)])
    mixed = Accumulator()
    mixed.add(x[:2500], y[:2500])
    mixed.add(torch.as_tensor(x[2500:4000]), torch.as_tensor(y[2500:4000]))
    mixed.add(x[4000:], y[4000:])
    weighted = accumulate([(x, y, np.ones(6000))])
    parts = merge(accumulate([(x[a:b], y[a:b])]) for a, b in [(0, 1), (1, 5000), (5000, 6000)])
    for other in (mixed.moments(), weighted, parts):
        assert_moments_equal(other, whole)


def test_block_size_does_not_change_the_moments(monkeypatch):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((5000, 3)) + 1e3, rng.standard_normal(5000)
    default = accumulate([(x, y)])
    monkeypatch.setattr(shifter, "CPU_BLOCK_ROWS", 333)
    assert_moments_equal(accumulate([(x, y)]), default)


def test_a_column_of_zero_deviations_stays_on_the_plain_path(monkeypatch):
    """A dummy column that is 0 in every block (as the pilot) squares to exactly 0: no unit
    to find, so the block is not redone; a column of tiny values that square to 0 is."""
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.standard_normal(9000), np.zeros(9000), np.full(9000, 1e-170)])
    x[8000:, 2] *= 1 + rng.random(1000)
    redone = []
    original = Accumulator._rescale
    monkeypatch.setattr(
        Accumulator, "_rescale", lambda self, *a: redone.append(1) or original(self, *a)
    )
    moments = accumulate([(x, x[:, 0] + 1.0)])
    assert len(redone) == 1  # only the block where the tiny column varies
    assert moments.constant.tolist() == [False, True, False, False]
    assert moments.unit[2] < 1e-160 and moments.unit[1] == 1.0
    assert_close_to_reference(moments, x, x[:, 0] + 1.0)
