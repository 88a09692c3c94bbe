"""toolkit/training/standardize.py: why the iterative solvers standardize, and the way back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import scaled_data

from toolkit.training import TrainConfig, checkpoint, exact, train
from toolkit.training.model import ModelSpec, build_model
from toolkit.training.standardize import Standardizer


def test_plain_sgd_without_standardization_diverges_on_the_scaled_data():
    # The tutorial's loop (SGD lr 0.01 on raw features) on the same data: it blows up,
    # which is why toolkit standardizes internally.
    x, y, _, _ = scaled_data()
    model = torch.nn.Linear(4, 1, dtype=torch.float64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)[:, None]
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(xs), ys)
        loss.backward()
        optimizer.step()
    assert not torch.isfinite(loss)


def test_saved_model_takes_raw_features(tmp_path, scaled_csv):
    x, y, w, _ = scaled_data()
    result = train(TrainConfig(data=scaled_csv, solver="adam", out=tmp_path / "m.pt"))
    _, model = checkpoint.model_from_checkpoint(checkpoint.load(tmp_path / "m.pt"))
    with torch.no_grad():
        predicted = model(torch.from_numpy(x).float()).double().numpy()[:, 0]
    # Noise is 0.1; a model on standardized inputs fed raw features would be far off.
    assert np.sqrt(np.mean((predicted - y) ** 2)) < 0.12
    np.testing.assert_allclose(result.weight[0], w, rtol=0.02, atol=2e-3)


def _rows() -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -20.0]
    y = x @ [2.0, -0.5, 0.1] + 3.0
    return np.column_stack([x, y])


@pytest.mark.parametrize("intercept", [True, False])
def test_scaled_columns_have_unit_size(intercept):
    rows = _rows()
    spec = ModelSpec(("a", "b", "c"), ("y",), intercept, "float64")
    scaling = Standardizer(exact.accumulate([(rows[:, :3], rows[:, 3:])]), spec)
    x, y = scaling.tensors(rows, torch.float64, "cpu")
    scaled = torch.cat([x, y], dim=1).numpy()
    if intercept:  # centred, unit variance
        np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-12)
    else:  # not centred (the model has no intercept to absorb it), unit root mean square
        assert not scaling.x_mean.any() and not scaling.y_mean.any()
        np.testing.assert_allclose(np.sqrt((scaled**2).mean(axis=0)), 1.0, rtol=1e-12)


@pytest.mark.parametrize("intercept", [True, False])
def test_unscale_gives_raw_weights_that_predict_alike(intercept):
    rows = _rows()
    spec = ModelSpec(("a", "b", "c"), ("y",), intercept, "float64")
    scaling = Standardizer(exact.accumulate([(rows[:, :3], rows[:, 3:])]), spec)
    model = build_model(spec, weight=np.array([[0.3, -1.2, 0.7]]), bias=np.array([0.4]))
    x, _ = scaling.tensors(rows, torch.float64, "cpu")
    with torch.no_grad():
        expected = model(x).numpy()[:, 0] * scaling.y_scale[0] + scaling.y_mean[0]
    weight, bias = scaling.unscale(model)
    np.testing.assert_allclose(rows[:, :3] @ weight[0] + bias[0], expected, rtol=1e-10, atol=1e-9)
    if not intercept:
        assert bias.tolist() == [0.0]
