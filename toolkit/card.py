"""The model card: the metadata `toolkit export` writes into an ONNX file, in one place.

ONNX keeps metadata as string pairs (`metadata_props`). Each key below is either plain
text or JSON; `encode` turns Python values into those strings and `decode` reads them
back, leniently (a value that is not valid JSON stays a string), because the runtime
must describe any file, not only ours. Export writes the card, the runtime reads the
names from it, and `toolkit info` and `/metadata` show it.

Standard library only: the runtime (numpy + onnxruntime) imports this module.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

VERSION = "1"

# Keys, in the order they are written.
CARD_VERSION = "toolkit.model_card_version"
FEATURE_NAMES = "feature_names"
TARGET_NAMES = "target_names"
DTYPE = "dtype"
INTERCEPT = "intercept"
INPUT_NAME = "input_name"
OUTPUT_NAME = "output_name"
TOOLKIT_VERSION = "toolkit_version"
TORCH_VERSION = "torch_version"
ONNX_VERSION = "onnx_version"
ONNXRUNTIME_VERSION = "onnxruntime_version"
OPSET = "opset"
EXPORTER = "exporter"
SOLVER = "solver"
SEED = "seed"
TRAINING_DATA_SHA256 = "training_data_sha256"
TRAINING_DATA_SOURCE = "training_data_source"
TRAINING_METRICS = "training_metrics"
PARITY = "parity"
# Compact statistical inference (toolkit.coefficients.compact): per target R^2, adjusted
# R^2, RSE, F and its p-value, AIC, BIC; per coefficient estimate, std err and p-value.
INFERENCE = "inference"
# Only in models exported with --explain: {"outputs", "feature_mean", "baseline" (the
# prediction at the mean), "interval": {"level", "alpha", "df", "t_quantile"} or null}.
EXPLAIN = "explain"
# Only in models with a non-trivial table plan (toolkit.columns.TablePlan.to_dict, with
# "unknown_level" set): the graph then takes one input per raw column, named as the
# column, and adds the output UNKNOWN_LEVELS_OUTPUT.
TABLE = "table"
UNKNOWN_LEVELS_OUTPUT = "unknown_levels"

# Keys whose values are JSON; every other key holds plain text.
JSON_KEYS = frozenset(
    {FEATURE_NAMES, TARGET_NAMES, INTERCEPT, TRAINING_METRICS, PARITY, INFERENCE, EXPLAIN, TABLE}
)
KEYS = (
    CARD_VERSION,
    FEATURE_NAMES,
    TARGET_NAMES,
    DTYPE,
    INTERCEPT,
    INPUT_NAME,
    OUTPUT_NAME,
    TOOLKIT_VERSION,
    TORCH_VERSION,
    ONNX_VERSION,
    ONNXRUNTIME_VERSION,
    OPSET,
    EXPORTER,
    SOLVER,
    SEED,
    TRAINING_DATA_SHA256,
    TRAINING_DATA_SOURCE,
    TRAINING_METRICS,
    PARITY,
    INFERENCE,
)
# Keys written only when they apply, after KEYS.
OPTIONAL_KEYS = (EXPLAIN, TABLE)


def encode(values: Mapping[str, Any]) -> dict[str, str]:
    """The `metadata_props` strings for `values` (the version is added; order as in KEYS,
    then OPTIONAL_KEYS)."""
    unknown = sorted(set(values) - set(KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise KeyError(f"not model-card keys: {', '.join(unknown)}; add them to toolkit/card.py")
    full = {CARD_VERSION: VERSION, **values}
    return {key: _encode_value(key, full[key]) for key in (*KEYS, *OPTIONAL_KEYS) if key in full}


def decode(metadata: Mapping[str, str]) -> dict[str, Any]:
    """Python values from `metadata_props` strings; unknown keys and bad JSON stay text."""
    decoded: dict[str, Any] = {}
    for key, text in metadata.items():
        decoded[key] = text
        if key in JSON_KEYS:
            with contextlib.suppress(ValueError):
                decoded[key] = json.loads(text)
    return decoded


def names(metadata: Mapping[str, str], key: str, prefix: str, count: int) -> list[str]:
    """Feature or target names from the card; `prefix`0..n for files without usable ones."""
    value = decode({key: metadata[key]}).get(key) if key in metadata else None
    if _is_names(value, count):
        return list(value)  # type: ignore[arg-type]
    return [f"{prefix}{i}" for i in range(count)]


def _is_names(value: Any, count: int) -> bool:
    return (
        isinstance(value, list) and len(value) == count and all(isinstance(n, str) for n in value)
    )


def _encode_value(key: str, value: Any) -> str:
    if key in JSON_KEYS:
        return json.dumps(_jsonable(value), sort_keys=True)
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_jsonable(v) for v in value]
    return value
