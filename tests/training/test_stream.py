"""toolkit/training/stream.py: the exact solver fed batch by batch (partial_fit's engine)."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.errors import DataError
from toolkit.training import checkpoint, exact
from toolkit.training.metrics import metric_sums, summarize
from toolkit.training.model import ModelSpec
from toolkit.training.stream import add_batch, moment_metrics, solve_stream, stream_payload

SPEC = ModelSpec(("a", "b", "c"), ("y",), True, "float64")


def rows(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)) * [1.0, 100.0, 0.01] + [5.0, -3.0, 1e3]
    return x, x @ [2.0, 0.5, -40.0] + 7.0 + rng.standard_normal(n)


def streamed(x: np.ndarray, y: np.ndarray, cuts: list[int]):  # type: ignore[no-untyped-def]
    state = None
    for start, stop in zip([0, *cuts], [*cuts, len(x)], strict=True):
        state = add_batch(state, x[start:stop], y[start:stop, None])
    return state


def test_the_statistics_of_batches_are_those_of_one_pass():
    x, y = rows()
    state = streamed(x, y, [1, 500, 1999])
    whole = exact.accumulate([(x, y)])
    plain = state.moments
    assert plain["n"] == 2000 and state.batches == 4
    # Chan's merge against one pass: the same sums in another order, float64 rounding only.
    np.testing.assert_allclose(plain["mean"], whole.mean, rtol=1e-14)
    # An entry's rounding scales with its row's and column's spread, not with itself, and
    # with the shift each side subtracts: column c (mean 1e3, spread 0.01) carries
    # (mean / spread) * eps ~ 2e-11 of its spread in rounding whatever is done; 1e-10.
    spread = np.sqrt(np.outer(np.diag(plain["scatter"]), np.diag(plain["scatter"])))
    assert np.all(np.abs(plain["scatter"] - whole.scatter) <= 1e-10 * spread)


def test_the_streamed_solution_is_the_least_squares_solution():
    x, y = rows()
    result = solve_stream(streamed(x, y, [700, 1400]), SPEC, l2=0.0)
    design = np.column_stack([x, np.ones(len(x))])
    reference = np.linalg.lstsq(design, y, rcond=None)[0]
    # No refinement pass: normal equations lose log10(condition) digits; the scaled
    # condition number here is about 1, so 1e-10 is a wide margin.
    np.testing.assert_allclose(result.weight[0], reference[:3], rtol=1e-10)
    np.testing.assert_allclose(result.bias, reference[3:], rtol=1e-10)
    assert result.details["refinement_passes"] == 0


def test_metrics_from_the_statistics_equal_the_metrics_from_the_rows():
    x, y = rows()
    state = streamed(x, y, [1000])
    result = solve_stream(state, SPEC, l2=0.0)
    from_rows = summarize(metric_sums([(x, y)], result.weight, result.bias), ["y"])
    from_stats = moment_metrics(state.moments, result.weight, result.bias, SPEC)
    # R^2 = 1 - SSE/SST: absolute error ~ eps; the MSE (noise variance 1, targets of
    # spread ~4e4) keeps about 16 - log10(4e4^2) digits: 1e-6 relative is safe.
    assert from_stats["r2"] == pytest.approx(from_rows["r2"], abs=1e-12)
    assert from_stats["mse"] == pytest.approx(from_rows["mse"], rel=1e-6)
    assert from_stats["mae"] is None and from_stats["rows"] == 2000


def test_an_ill_conditioned_stream_is_refused_with_what_to_do():
    x, y = rows()
    x[:, 2] = x[:, 0] + 1e-7 * x[:, 2]  # nearly collinear: condition number ~1e14
    with pytest.raises(DataError, match=r"ill-conditioned \(condition number .*Fit on the whole"):
        solve_stream(streamed(x, y, [1000]), SPEC, l2=0.0)


def test_the_parity_sample_is_the_first_rows_and_the_payload_is_a_valid_checkpoint(tmp_path):
    x, y = rows()
    state = streamed(x, y, [100, 200])
    np.testing.assert_array_equal(state.sample, x[:256])
    result = solve_stream(state, SPEC, l2=0.0)
    path = checkpoint.save(tmp_path / "s.pt", stream_payload(result, state, seed=3))
    payload = checkpoint.load(path)  # the checkpoint schema included
    assert payload["data"]["source"] == "<partial_fit stream> (3 batches)"
    assert payload["training"]["seed"] == 3 and payload["metrics"]["train"]["mae"] is None
