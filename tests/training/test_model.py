"""toolkit/training/model.py: the spec round trip, the nn.Linear it builds, the equation text."""

from __future__ import annotations

import numpy as np
import torch

from toolkit.training.model import (
    ModelSpec,
    build_model,
    equations,
    round_to_dtype,
    state_dict,
)


def test_spec_round_trip_and_parameter_count():
    spec = ModelSpec(("a", "b"), ("y", "z"), intercept=False, dtype="float64")
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.n_parameters == 2
    assert ModelSpec(("a", "b"), ("y",)).n_parameters == 3


def test_build_model_loads_weights_in_its_dtype():
    spec = ModelSpec(("a", "b"), ("y",), dtype="float64")
    model = build_model(spec, np.array([[1.5, -2.0]]), np.array([0.25]))
    assert isinstance(model, torch.nn.Linear)
    assert model.weight.dtype == torch.float64
    assert model(torch.tensor([[2.0, 1.0]], dtype=torch.float64)).item() == 1.25


def test_equation_text():
    spec = ModelSpec(("x1", "x2"), ("y",))
    assert equations(spec, np.array([[1.0, 1.0]]), np.array([-1.0])) == [
        "y = 1.0000*x1 + 1.0000*x2 - 1.0000"
    ]
    assert equations(spec, np.array([[-2.5, 1e-7]]), np.array([3e8])) == [
        "y = -2.5000*x1 + 1.0000e-07*x2 + 3.0000e+08"
    ]
    no_bias = ModelSpec(("x1",), ("y",), intercept=False)
    assert equations(no_bias, np.array([[2.0]]), np.array([0.0])) == ["y = 2.0000*x1"]


def test_long_equations_are_shortened():
    spec = ModelSpec(tuple(f"f{i}" for i in range(30)), ("y",))
    (line,) = equations(spec, np.ones((1, 30)), np.zeros(1))
    assert "... (19 more terms; see --json)" in line


def test_round_to_dtype():
    assert round_to_dtype(np.array([0.1]), "float32")[0] == np.float64(np.float32(0.1))
    assert round_to_dtype(np.array([0.1]), "float64")[0] == 0.1


def test_state_dict_is_the_modules_own_without_torch():
    rng = np.random.default_rng(4)
    weight, bias = rng.standard_normal((2, 3)), rng.standard_normal(2)
    for intercept in (True, False):
        for dtype in ("float32", "float64"):
            spec = ModelSpec(("a", "b", "c"), ("y", "z"), intercept, dtype)
            module = build_model(spec, weight, bias).state_dict()
            arrays = state_dict(spec, weight, bias)
            assert list(arrays) == list(module)
            for key, tensor in module.items():
                assert arrays[key].dtype == tensor.numpy().dtype
                np.testing.assert_array_equal(arrays[key], tensor.numpy())  # same rounding
