"""Property tests: random level sets and gaps, trained by toolkit and encoded by hand.

Each example draws a table (a text column with random level names, a numeric column with
random gaps, a target), trains on it with `toolkit.train` (mean imputation, sometimes an
indicator) and compares the weights with numpy's least squares on a design written here
from the rules in toolkit/columns.py: levels sorted by code point, the first the reference,
one 0/1 column per other level, gaps filled with the observed mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import toolkit

# float64 least squares of well-conditioned designs (rank checked, condition below 1e6):
# numpy's SVD and toolkit's refined solve agree to about 1e-12.
RTOL = 1e-8
ATOL = 1e-9  # weights that are zero up to rounding have no relative digits

level_names = st.lists(
    st.text(alphabet="abcXYZ é-_0", min_size=1, max_size=6).filter(lambda t: t.strip() == t),
    min_size=2,
    max_size=5,
    unique=True,
)


def design(frame: pd.DataFrame, indicator: bool) -> tuple[np.ndarray, list[str]]:
    """The encoded columns by hand: the text column's dummies, then x (filled), then x's
    indicator, in the raw columns' order (text column first)."""
    levels = sorted(frame["g"].unique())
    columns = [(frame["g"] == level).to_numpy(float) for level in levels[1:]]
    names = [f"g[{level}]" for level in levels[1:]]
    gaps = frame["x"].isna().to_numpy()
    columns.append(frame["x"].fillna(frame["x"].mean()).to_numpy())
    names.append("x")
    if indicator and gaps.any():
        columns.append(gaps.astype(float))
        names.append("x[(missing)]")
    return np.column_stack(columns), names


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    levels=level_names,
    seed=st.integers(0, 2**32 - 1),
    gap_share=st.floats(0.0, 0.3),
    indicator=st.booleans(),
)
def test_random_levels_and_gaps_match_the_hand_encoded_least_squares(
    tmp_path, levels, seed, gap_share, indicator
):
    rng = np.random.default_rng(seed)
    n = 80
    g = [levels[i % len(levels)] for i in range(n)]  # every level at least once
    rng.shuffle(g)
    x = rng.normal(0.0, 2.0, n)
    effects = dict(zip(levels, rng.normal(0.0, 3.0, len(levels)), strict=True))
    y = 1.5 * x + np.array([effects[v] for v in g]) + rng.normal(0.0, 0.5, n)
    x[rng.random(n) < gap_share] = np.nan
    assume(np.isfinite(x).sum() >= 2)
    frame = pd.DataFrame({"g": g, "x": x, "y": y})
    X, names = design(frame, indicator)
    full = np.column_stack([X, np.ones(n)])
    assume(np.linalg.matrix_rank(full) == full.shape[1] and np.linalg.cond(full) < 1e6)
    expected, *_ = np.linalg.lstsq(full, y, rcond=None)
    result = toolkit.train(
        frame, targets="y", missing="mean", missing_indicator=indicator, dtype="float64",
        val_fraction=0.0, out=tmp_path / "model.pt",
    )  # fmt: skip
    assert list(result.spec.feature_names) == names
    np.testing.assert_allclose(result.weight[0], expected[:-1], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(result.bias[0], expected[-1], rtol=RTOL, atol=ATOL)
