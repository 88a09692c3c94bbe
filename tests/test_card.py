"""toolkit/card.py: the model card's keys, and its strings' encoding and lenient decoding."""

from __future__ import annotations

import json

import pytest

from toolkit import card


def full_card() -> dict:
    return {
        card.FEATURE_NAMES: ["x1", "x2"],
        card.TARGET_NAMES: ["y"],
        card.DTYPE: "float32",
        card.INTERCEPT: True,
        card.INPUT_NAME: "features",
        card.OUTPUT_NAME: "prediction",
        card.TOOLKIT_VERSION: "0.1.0",
        card.TORCH_VERSION: "2.5.0",
        card.ONNX_VERSION: "1.17.0",
        card.ONNXRUNTIME_VERSION: "1.20.0",
        card.OPSET: 18,
        card.EXPORTER: "torch.onnx.export(dynamo=True)",
        card.SOLVER: "exact",
        card.SEED: 0,
        card.TRAINING_DATA_SHA256: "ab" * 32,
        card.TRAINING_DATA_SOURCE: "seed",
        card.TRAINING_METRICS: {"val": {"r2": 0.5}, "train": {"r2": 1.0, "mse": 0.0}},
        card.PARITY: {"passed": True, "atol": 1e-5},
        card.INFERENCE: {"alpha": 0.05, "n": 4, "targets": [{"name": "y", "r2": None}]},
    }


def test_encode_writes_strings_in_key_order_with_the_version_first():
    encoded = card.encode(full_card())
    assert list(encoded) == list(card.KEYS)
    assert encoded[card.CARD_VERSION] == card.VERSION == "1"
    assert all(isinstance(value, str) for value in encoded.values())


def test_encoded_strings_are_plain_text_or_sorted_json():
    encoded = card.encode(full_card())
    assert encoded[card.FEATURE_NAMES] == '["x1", "x2"]'
    assert encoded[card.INTERCEPT] == "true"
    assert encoded[card.OPSET] == "18" and encoded[card.SEED] == "0"
    assert encoded[card.TRAINING_METRICS] == (
        '{"train": {"mse": 0.0, "r2": 1.0}, "val": {"r2": 0.5}}'
    )


def test_decode_round_trips_encode():
    values = full_card()
    decoded = card.decode(card.encode(values))
    assert decoded == {card.CARD_VERSION: card.VERSION, **values, card.OPSET: "18", card.SEED: "0"}


def test_decode_is_lenient_with_bad_json_and_unknown_keys():
    metadata = {card.FEATURE_NAMES: "not json", card.INTERCEPT: "{", "vendor.key": "[1]"}
    assert card.decode(metadata) == metadata  # kept as text, nothing raised


def test_encode_refuses_keys_the_card_does_not_define():
    with pytest.raises(KeyError, match=r"not model-card keys: bogus; add them to toolkit/card\.py"):
        card.encode({"bogus": 1})


def test_every_json_key_is_a_card_key_and_keys_are_unique():
    every = (*card.KEYS, *card.OPTIONAL_KEYS)
    assert set(every) >= card.JSON_KEYS
    assert len(set(every)) == len(every)
    assert card.KEYS[0] == card.CARD_VERSION


def test_optional_keys_are_written_only_when_given_after_the_others():
    encoded = card.encode({**full_card(), card.EXPLAIN: {"baseline": [1.0]}})
    assert list(encoded) == [*card.KEYS, card.EXPLAIN]
    assert encoded[card.EXPLAIN] == '{"baseline": [1.0]}'
    assert card.EXPLAIN not in card.encode(full_card())


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (json.dumps(["a", "b"]), ["a", "b"]),
        (json.dumps(["a"]), ["x0", "x1"]),  # wrong length
        (json.dumps(["a", 1]), ["x0", "x1"]),  # not all text
        ("not json", ["x0", "x1"]),
        (None, ["x0", "x1"]),  # no such key
    ],
)
def test_names_fall_back_to_prefix_and_index(stored, expected):
    metadata = {} if stored is None else {card.FEATURE_NAMES: stored}
    assert card.names(metadata, card.FEATURE_NAMES, "x", 2) == expected
