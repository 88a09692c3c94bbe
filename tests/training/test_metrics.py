"""toolkit/training/metrics.py against scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from toolkit.training.metrics import regression_metrics


def test_matches_scikit_learn_whatever_the_chunking():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 3))
    y = np.column_stack([x @ [1, 2, 3] + rng.standard_normal(1000), 1e6 + x[:, 0]])
    weight = np.array([[0.9, 2.1, 3.0], [1.0, 0.0, 0.1]])
    bias = np.array([0.1, 1e6])
    predicted = x @ weight.T + bias
    chunks = [(x[i : i + 77], y[i : i + 77]) for i in range(0, 1000, 77)]
    metrics = regression_metrics(chunks, weight, bias, ["a", "b"])
    # float64 sums over 1000 rows: agreement to ~1e-12 relative.
    assert metrics["mse"] == pytest.approx(mean_squared_error(y, predicted), rel=1e-12)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y, predicted), rel=1e-12)
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, predicted)), rel=1e-12)
    assert metrics["r2"] == pytest.approx(r2_score(y, predicted), rel=1e-9)
    for t, name in enumerate("ab"):
        assert metrics["per_target"][name]["r2"] == pytest.approx(
            r2_score(y[:, t], predicted[:, t]), rel=1e-9
        )
    assert metrics["rows"] == 1000


def test_constant_target_has_undefined_r2():
    x = np.arange(5.0)[:, None]
    metrics = regression_metrics(
        [(x, np.full((5, 1), 3.0))], np.array([[0.0]]), np.array([3.0]), ["y"]
    )
    assert metrics["r2"] is None
    assert metrics["mse"] == 0.0


def test_no_rows_gives_none():
    assert regression_metrics([], np.zeros((1, 1)), np.zeros(1), ["y"]) is None


def test_metric_sums_of_parts_add_up_to_the_whole():
    from toolkit.training.metrics import metric_sums, summarize

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((500, 3)), rng.standard_normal((500, 2)) * 10 + 1e6
    w, b = rng.standard_normal((2, 3)), np.array([1e6, 1e6])
    whole = metric_sums([(x, y)], w, b)
    parts = [
        metric_sums([(x[a:c], y[a:c])], w, b, shift=whole.shift) for a, c in [(0, 1), (1, 500)]
    ]
    total = parts[0] + parts[1]
    for key in ("mse", "mae", "r2"):
        assert summarize(total, ["u", "v"])[key] == pytest.approx(
            summarize(whole, ["u", "v"])[key], rel=1e-12
        )
    with pytest.raises(ValueError, match="different shifts"):
        _ = whole + metric_sums([(x, y)], w, b, shift=np.zeros(2))
