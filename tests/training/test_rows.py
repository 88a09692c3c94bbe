"""toolkit/training/rows.py: rows read back from the spills, and what is summed over them."""

from __future__ import annotations

import numpy as np

from toolkit.training.distributed import Group
from toolkit.training.metrics import metric_sums
from toolkit.training.rows import Rows, group_metric_sums, parity_sample
from toolkit.training.spill import RowSpill


def test_rows_span_their_spills_in_chunks():
    data = np.arange(30.0).reshape(10, 3)  # 2 features, 1 target
    with RowSpill(3) as first, RowSpill(3) as second:
        first.append(data[:7])
        second.append(data[7:])
        rows = Rows([first, second], chunk_rows=4, n_features=2)
        assert rows.n_rows == 10
        assert rows.chunk_ids() == [(0, 0), (0, 1), (1, 0)]
        np.testing.assert_array_equal(np.concatenate(list(rows.blocks())), data)
        np.testing.assert_array_equal(next(rows.blocks([(1, 0)])), data[7:])
        pairs = list(rows.pairs())
        np.testing.assert_array_equal(np.concatenate([x for x, _ in pairs]), data[:, :2])
        np.testing.assert_array_equal(np.concatenate([y for _, y in pairs]), data[:, 2:])


def test_metric_sums_of_one_process_are_those_of_its_rows():
    data = np.random.default_rng(2).standard_normal((50, 3))
    weight, bias, shift = np.array([[0.5, -1.0]]), np.array([0.2]), data[0, 2:]
    with RowSpill(3) as spill:
        spill.append(data)
        sums = group_metric_sums(Group(), Rows([spill], 16, 2), weight, bias, shift)
    expected = metric_sums([(data[:, :2], data[:, 2:])], weight, bias, shift)
    assert sums.n == expected.n == 50
    np.testing.assert_allclose(sums.sse, expected.sse, rtol=1e-12)
    np.testing.assert_allclose(sums.shifted_squares, expected.shifted_squares, rtol=1e-12)


def test_parity_sample_spreads_256_rows_over_every_spill():
    data = np.arange(1000.0)[:, None].repeat(2, axis=1)
    with RowSpill(2) as first, RowSpill(2) as second:
        first.append(data[:600])
        second.append(data[600:])
        sample = parity_sample(Group(), [first, second])
    assert sample.shape == (256, 2)
    assert sample[0, 0] == 0 and sample[-1, 0] == 999  # both ends
    gaps = np.diff(sample[:, 0])
    assert gaps.min() >= 3 and gaps.max() <= 5  # evenly spread: 999 / 255 = 3.9


def test_parity_sample_of_few_rows_is_every_row():
    data = np.arange(10.0).reshape(5, 2)
    with RowSpill(2) as spill, RowSpill(2) as empty:
        spill.append(data)
        np.testing.assert_array_equal(parity_sample(Group(), [empty, spill]), data)
