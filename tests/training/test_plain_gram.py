"""Rows summed and predicted on two threads (toolkit.training.plain_gram, halves, metrics).

References: the extended-precision moments of tests/training/test_moments_plain.py and
the one-thread paths, which two threads must agree with to rounding (1e-13 of each
entry's scale: sums of a few thousand nearly centred products in another order); the
metric sums against numpy's float64 residuals (1e-12 relative: sums of 20,000 terms).
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import threadpoolctl
from test_moments_plain import assert_close_to_reference, assert_moments_equal

from toolkit.training import halves
from toolkit.training.metrics import metric_sums_of
from toolkit.training.moments import Accumulator, accumulate
from toolkit.training.plain_gram import one_blas_thread


def rows(n: int, dtype: type = np.float64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 4)) * [1, 1e3, 1e-3, 10] + [1e6, 0, 5, -3e4]).astype(dtype)
    y = (x.astype(np.float64) @ [1.0, 2.0, -3.0, 0.5] + rng.standard_normal(n)).astype(dtype)
    return x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [8191, 8192, 8193, 20_000, 65_536])
def test_two_threads_match_the_reference_and_one_thread(dtype, n):
    x, y = rows(n, dtype)
    chunks = [(x[s : s + 30_000], y[s : s + 30_000]) for s in range(0, n, 30_000)]
    with one_blas_thread():
        two = accumulate(chunks, threads=2)
    one = accumulate(chunks, threads=1)
    assert two.n == n
    assert_close_to_reference(two, x, y)
    assert_moments_equal(two, one)
    assert (two.peak >= np.abs(np.column_stack([x, y])).max(axis=0)).all()
    assert two.constant.tolist() == one.constant.tolist() == [False] * 5


@pytest.mark.parametrize("odd_from", [100, 5000, 12_000, 19_000])
def test_a_column_that_needs_a_unit_in_either_half(odd_from):
    """A column that turns huge at `odd_from` (in the first half, at its end, or in the
    second half) gets a power-of-two unit; the sums before and after it are kept."""
    x, y = rows(20_000, seed=3)
    x[odd_from:, 2] *= 1e300
    with one_blas_thread():
        two = accumulate([(x, y)], threads=2)
    one = accumulate([(x, y)], threads=1)
    assert two.n == 20_000 and two.unit[2] > 1e290
    assert two.unit.tolist() == one.unit.tolist()
    assert_close_to_reference(two, x, y)


def test_a_constant_column_stays_constant_on_two_threads():
    x, y = rows(12_000, seed=4)
    x[:, 1] = 7.5
    accumulator = Accumulator("cpu", threads=2)
    accumulator.add(x, y)
    assert accumulator.moments().constant.tolist() == [False, True, False, False, False]


def test_the_halves_meet_at_a_block_boundary():
    assert halves.middle(0, 16, 4) == 8
    assert halves.middle(0, 10, 4) == 8  # three blocks: the first half takes two
    assert halves.middle(8, 17, 4) == 16
    assert halves.middle(0, 8193, 4096) == 8192
    assert halves.middle(0, 3, 4) == 3


def test_the_halves_cover_every_row_once_and_report_their_slot():
    seen = []
    results = halves.in_halves(lambda slot, a, b: seen.append((slot, a, b)) or b - a, 5, 30, 4)
    # 25 rows in blocks of 4 (7 blocks): half of 25 rounded up to whole blocks is 16.
    assert sorted(seen) == [(0, 5, 21), (1, 21, 30)]
    assert results == [16, 9]


def test_a_failing_half_raises_after_the_other_finished():
    done = []

    def work(slot: int, start: int, stop: int) -> None:
        if slot == 0:
            raise ValueError("first half")
        done.append(slot)

    with pytest.raises(ValueError, match="first half"):
        halves.in_halves(work, 0, 100, 10)
    assert done == [1]


def _halves_in_child(queue) -> None:
    queue.put(halves.in_halves(lambda slot, a, b: (slot, a, b), 0, 8, 2))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_gets_its_own_helper_thread():
    """A child forked after the helper started inherits no thread: it must make one, not
    wait forever on the parent's."""
    halves.in_halves(lambda slot, a, b: None, 0, 8, 2)  # the parent's helper exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_halves_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == [(0, 0, 4), (1, 4, 8)]


def test_one_blas_thread_limits_numpys_blas_and_restores_it():
    before = {lib["filepath"]: lib["num_threads"] for lib in threadpoolctl.threadpool_info()}
    with one_blas_thread():
        inside = threadpoolctl.threadpool_info()
        assert all(lib["num_threads"] == 1 for lib in inside if lib["user_api"] == "blas")
    after = {lib["filepath"]: lib["num_threads"] for lib in threadpoolctl.threadpool_info()}
    assert {k: after[k] for k in before} == before


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_metrics_predicted_on_two_threads_equal_numpys(dtype):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((20_000, 3)), rng.standard_normal((20_000, 2))
    weight, bias = rng.standard_normal((2, 3)), rng.standard_normal(2)
    chunks = [(x[s : s + 9000], y[s : s + 9000]) for s in range(0, 20_000, 9000)]
    with one_blas_thread():
        (two,) = metric_sums_of(chunks, [(weight, bias, dtype)], threads=2)
    (one,) = metric_sums_of(chunks, [(weight, bias, dtype)], threads=1)
    kind = np.dtype(dtype)
    predicted = (x.astype(kind) @ weight.astype(kind).T + bias.astype(kind)).astype(np.float64)
    residual = y - predicted
    np.testing.assert_allclose(two.sse, (residual**2).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(two.sae, np.abs(residual).sum(axis=0), rtol=1e-12)
    assert two.n == one.n == 20_000
    np.testing.assert_allclose(two.sse, one.sse, rtol=1e-13)
