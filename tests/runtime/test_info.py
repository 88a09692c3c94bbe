"""toolkit/runtime/info.py: `toolkit info`'s facts (describe) and their text (to_lines)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from runtime_models import write_linear

from toolkit import card
from toolkit.runtime import Predictor
from toolkit.runtime.info import card_lines, describe, to_lines


@pytest.fixture(scope="module")
def details(seed_onnx: Path) -> dict:
    return describe(Predictor(seed_onnx, providers="cpu"))


def test_describe_gives_signature_names_opsets_size_and_providers(seed_onnx, details):
    assert details["path"] == str(seed_onnx)
    assert details["size_bytes"] == seed_onnx.stat().st_size
    assert details["input"] == {"name": "features", "type": "tensor(float)", "shape": ["batch", 2]}
    assert details["output"] == {
        "name": "prediction",
        "type": "tensor(float)",
        "shape": ["batch", 1],
    }
    assert (details["feature_names"], details["target_names"]) == (["x1", "x2"], ["y"])
    assert details["dtype"] == "float32"
    assert details["opsets"] == {"": 18}
    assert details["ir_version"] == onnx.load(seed_onnx).ir_version
    assert details["provider"] == "CPUExecutionProvider"
    assert "CPUExecutionProvider" in details["available_providers"]
    assert details["metadata"] == {p.key: p.value for p in onnx.load(seed_onnx).metadata_props}


def test_to_lines_words_each_fact_with_aligned_labels(seed_onnx, details):
    lines = to_lines(details)
    assert lines[:7] == [
        f"model:      {seed_onnx} ({seed_onnx.stat().st_size:,} bytes)",
        "input:      features tensor(float) ['batch', 2]",
        "output:     prediction tensor(float) ['batch', 1]",
        "features:   x1, x2",
        "targets:    y",
        "opset:      ai.onnx 18",
        "providers:  using CPUExecutionProvider; available "
        + ", ".join(details["available_providers"]),
    ]
    assert lines[7:9] == ["equation:   y = 1.0000*x1 + 1.0000*x2 - 1.0000", "model card:"]


def test_the_card_is_shown_in_the_order_export_writes_it(details):
    lines = card_lines(details["metadata"])
    shown = [line.split()[0] for line in lines[1:]]
    assert shown == [key for key in card.KEYS if key in details["metadata"]]
    width = max(len(key) for key in details["metadata"])
    assert lines[1] == f"  {card.CARD_VERSION:<{width}}  {card.VERSION}"


def test_foreign_keys_follow_the_known_ones_sorted():
    lines = card_lines({"zeta": "1", "dtype": "float32", "alpha": "2"})
    assert lines == ["model card:", "  dtype  float32", "  alpha  2", "  zeta   1"]


def test_a_model_without_a_card_says_so(tmp_path):
    details = describe(Predictor(write_linear(tmp_path / "plain.onnx")))
    assert details["metadata"] == {}
    assert to_lines(details)[-1] == "model card: none (names default to x0..xn)"
