"""toolkit/io/holdout.py: the seeded validation split."""

from __future__ import annotations

import numpy as np

from toolkit.io import holdout_mask


def test_holdout_is_seeded_and_sized():
    rows = np.random.default_rng(0).standard_normal((100_000, 3))
    a, b, c = (
        holdout_mask(rows, 0.2, seed=1),
        holdout_mask(rows, 0.2, 1),
        holdout_mask(rows, 0.2, 2),
    )
    # Binomial(100000, 0.2) has a standard deviation of 126 rows: 5 sigma is 632.
    assert abs(int(a.sum()) - 20_000) < 632
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.25  # another seed draws another split (0.32 expected)
    assert holdout_mask(rows, 0.0, seed=1).sum() == 0


def test_holdout_depends_on_row_values_not_on_chunking_or_order():
    rows = np.random.default_rng(1).standard_normal((1000, 4))
    whole = holdout_mask(rows, 0.3, seed=0)
    pieces = np.concatenate([holdout_mask(rows[i : i + 7], 0.3, 0) for i in range(0, 1000, 7)])
    np.testing.assert_array_equal(pieces, whole)
    order = np.random.default_rng(2).permutation(1000)
    np.testing.assert_array_equal(holdout_mask(rows[order], 0.3, 0), whole[order])
    twice = np.concatenate([rows, rows])  # an exact duplicate lands on the same side
    np.testing.assert_array_equal(holdout_mask(twice, 0.3, 0), np.concatenate([whole, whole]))
