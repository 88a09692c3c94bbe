"""toolkit/training/schema.py: malformed checkpoints are refused by name, before any use.

The issue's 35-checkpoint run found 16 that ended in KeyError/RuntimeError/TypeError
tracebacks, one whose "intercept": "false" was read as true, and infinite weights and a
NaN parity sample that exported as "passed". Each kind is rebuilt here from a real
checkpoint and must give one CheckpointError naming the key, through `load` and through
`toolkit export` (exit 1, no traceback).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from toolkit.errors import CheckpointError
from toolkit.training import TrainConfig, checkpoint, train


@pytest.fixture(scope="module")
def good_payload(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("schema") / "m.pt"
    train(TrainConfig(out=out))
    return checkpoint.load(out)


def _set(path: str, value: object) -> Callable[[dict], None]:
    *parents, last = path.split(".")

    def edit(payload: dict) -> None:
        target = payload
        for key in parents:
            target = target[key]
        target[last] = value

    return edit


def _delete(path: str) -> Callable[[dict], None]:
    *parents, last = path.split(".")

    def edit(payload: dict) -> None:
        target = payload
        for key in parents:
            target = target[key]
        del target[last]

    return edit


BROKEN = {
    "no spec": (_delete("spec"), r"spec should be a value, got nothing \(the key is missing\)"),
    "no state_dict": (_delete("state_dict"), "state_dict should be a value"),
    "no weight": (_delete("state_dict.weight"), r"state_dict should be keys \['bias', 'weight'\]"),
    "no parity sample": (_delete("parity_sample"), "parity_sample should be a value"),
    "no feature names": (_delete("spec.feature_names"), "spec.feature_names should be a value"),
    "spec is a list": (
        _set("spec", [1, 2]),
        r"spec should be a dictionary, got \[1, 2\] \(a list\)",
    ),
    "intercept is text": (
        _set("spec.intercept", "false"),
        r"spec.intercept should be true or false, got 'false' \(a str\)",
    ),
    "dtype float16": (
        _set("spec.dtype", "float16"),
        "spec.dtype should be one of float32, float64",
    ),
    "weight is a list": (
        _set("state_dict.weight", [[1.0, 1.0]]),
        r"state_dict.weight should be a float32 tensor, got \[\[1.0, 1.0\]\] \(a list\)",
    ),
    "weight in float16": (
        _set("state_dict.weight", torch.ones(1, 2, dtype=torch.float16)),
        "state_dict.weight should be dtype float32, got dtype float16",
    ),
    "weight of the wrong shape": (
        _set("state_dict.weight", torch.ones(3, 2)),
        r"state_dict.weight should be shape \(1, 2\), got shape \(3, 2\)",
    ),
    "infinite weight": (
        _set("state_dict.weight", torch.tensor([[float("inf"), 1.0]])),
        "state_dict.weight should be finite values, got NaN or infinity",
    ),
    "bias without intercept": (
        _set("spec.intercept", False),
        r"state_dict should be keys \['weight'\], got keys \['bias', 'weight'\]",
    ),
    "NaN parity sample": (
        _set("parity_sample", torch.full((4, 2), float("nan"), dtype=torch.float64)),
        "parity_sample should be finite values",
    ),
    "duplicate feature names": (
        _set("spec.feature_names", ["x1", "x1"]),
        "spec.feature_names should be a non-empty list of distinct, non-empty names",
    ),
    "seed is text": (_set("training.seed", "0"), r"training.seed should be an integer, got '0'"),
    "unknown solver": (_set("training.solver", "magic"), "training.solver should be one of exact"),
    "format version is text": (_set("format_version", "1"), "has format version '1'"),
    "inference is a list": (
        _set("inference", [1]),
        r"inference should be a dictionary, got \[1\] \(a list\)",
    ),
    "inference without targets": (
        _set("inference.targets", []),
        r"inference.targets should be a list of 1 targets, got \[\]",
    ),
    "inference alpha of 5": (_set("inference.alpha", 5), r"inference.alpha should be a number in"),
    "an estimate is text": (
        lambda payload: payload["inference"]["targets"][0]["coefficients"][1].update(
            estimate="2.5"
        ),
        r"inference.targets\[0\].coefficients\[1\].estimate should be a finite number",
    ),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_malformed_checkpoint_is_refused_naming_the_key(tmp_path, good_payload, kind):
    edit, message = BROKEN[kind]
    payload = copy.deepcopy(good_payload)
    edit(payload)
    path = tmp_path / "broken.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path)


@pytest.mark.parametrize("kind", ["intercept is text", "infinite weight", "no weight"])
def test_export_of_a_malformed_checkpoint_fails_cleanly(tmp_path, good_payload, run, kind):
    payload = copy.deepcopy(good_payload)
    BROKEN[kind][0](payload)
    torch.save(payload, tmp_path / "broken.pt")
    result = run("export", str(tmp_path / "out.onnx"), "--checkpoint", str(tmp_path / "broken.pt"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: checkpoint ") and "is malformed" in result.output
    assert "Traceback" not in result.output
    assert not Path(tmp_path / "out.onnx").exists()
