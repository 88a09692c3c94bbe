"""The checkpoint's schema: every key, type, shape, dtype and value checked before use.

`torch.load(weights_only=True)` guarantees that loading runs no code, not that the file
holds a model: a checkpoint edited by hand or by another program may lack keys, hold a
list where a tensor belongs, a float16 weight, a string "false" for a flag, or infinite
weights. `validate` finds the first such problem and names it (key path, expected, got)
before anything is built from the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from toolkit.defaults import DTYPES, SOLVERS
from toolkit.errors import CheckpointError

Check = Callable[[Any], str | None]  # None when the value is fine, else what was expected


def validate(payload: dict[str, Any], name: str) -> None:
    """Raise CheckpointError naming the first key whose value breaks the schema."""
    _check_fields(payload, name, "", _TOP)
    spec = payload["spec"]
    _check_fields(spec, name, "spec.", _SPEC)
    _check_fields(payload["training"], name, "training.", _TRAINING)
    _check_fields(payload["data"], name, "data.", _DATA)
    d, t = len(spec["feature_names"]), len(spec["target_names"])
    state = payload["state_dict"]
    expected_keys = {"weight", "bias"} if spec["intercept"] else {"weight"}
    if set(state) != expected_keys:
        _fail(name, "state_dict", f"keys {sorted(expected_keys)}", f"keys {sorted(state)}")
    _check_tensor(name, "state_dict.weight", state["weight"], spec["dtype"], (t, d))
    if spec["intercept"]:
        _check_tensor(name, "state_dict.bias", state["bias"], spec["dtype"], (t,))
    sample = payload["parity_sample"]
    _check_tensor(name, "parity_sample", sample, "float64", (None, d))
    if payload.get("inference") is not None:  # absent from files written before it
        _check_inference(payload["inference"], name, d + int(spec["intercept"]), t)
    if "table" in payload:  # a model of a raw table (toolkit/columns.py); absent otherwise
        _check_table(payload["table"], name, spec["feature_names"])


def _check_table(table: Any, name: str, feature_names: list[str]) -> None:
    """The table plan must read back and encode to exactly the model's features."""
    from toolkit.columns import TablePlan

    try:
        plan = TablePlan.from_dict(table)
    except ValueError as error:
        _fail(name, "table", "a table plan", f"one that is not ({error})")
    if plan.encoded_names != feature_names:
        _fail(
            name,
            "table",
            "a plan encoding to spec.feature_names",
            f"one encoding to {_describe(plan.encoded_names)}",
        )


def _check_inference(inference: Any, name: str, k: int, t: int) -> None:
    """The statistics the table, the card and the explained export read (see inference.py)."""
    _check_fields(inference, name, "inference.", _INFERENCE)
    targets = inference["targets"]
    if not isinstance(targets, list) or len(targets) != t:
        _fail(name, "inference.targets", f"a list of {t} targets", _describe(targets))
    for i, target in enumerate(targets):
        _check_fields(target, name, f"inference.targets[{i}].", _INFERENCE_TARGET)
        rows = target["coefficients"]
        if not isinstance(rows, list) or len(rows) != k:
            key = f"inference.targets[{i}].coefficients"
            _fail(name, key, f"a list of {k} coefficients", _describe(rows))
        for j, row in enumerate(rows):
            _check_fields(row, name, f"inference.targets[{i}].coefficients[{j}].", _COEFFICIENT)


def _check_fields(values: Any, name: str, prefix: str, fields: dict[str, Check]) -> None:
    if not isinstance(values, dict):
        _fail(name, prefix.rstrip(".") or "the file", "a dictionary", _describe(values))
    for key, check in fields.items():
        if key not in values:
            _fail(name, prefix + key, "a value", "nothing (the key is missing)")
        problem = check(values[key])
        if problem is not None:
            _fail(name, prefix + key, problem, _describe(values[key]))


def _check_tensor(
    name: str, key: str, value: Any, dtype: str, shape: tuple[int | None, ...]
) -> None:
    import torch

    if not isinstance(value, torch.Tensor):
        _fail(name, key, f"a {dtype} tensor", _describe(value))
    if value.dtype != getattr(torch, dtype):
        _fail(name, key, f"dtype {dtype}", f"dtype {str(value.dtype).removeprefix('torch.')}")
    wanted = tuple(value.shape[i] if s is None else s for i, s in enumerate(shape))
    if value.ndim != len(shape) or tuple(value.shape) != wanted or value.numel() == 0:
        shown = tuple("n" if s is None else s for s in shape)
        _fail(name, key, f"shape {shown}", f"shape {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        _fail(name, key, "finite values", "NaN or infinity")


def _fail(name: str, key: str, expected: str, got: str) -> None:
    raise CheckpointError(
        f"checkpoint {name!r} is malformed: {key} should be {expected}, got {got}. "
        "Retrain the model with toolkit train."
    )


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text if len(text) <= 60 else text[:57] + '...'} (a {type(value).__name__})"


def _names(value: Any) -> str | None:
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(v, str) and v for v in value)
        and len(set(value)) == len(value)
    )
    return None if ok else "a non-empty list of distinct, non-empty names"


def _one_of(options: tuple[str, ...]) -> Check:
    return lambda value: None if value in options else f"one of {', '.join(options)}"


def _of_type(kind: type, text: str) -> Check:
    # bool is an int in Python: a flag must be a real bool, and a count a real int.
    def check(value: Any) -> str | None:
        exact = type(value) is kind or (kind is float and type(value) is int)
        return None if exact and (kind is not float or math.isfinite(value)) else text

    return check


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _dictionary(value: Any) -> str | None:
    return None if isinstance(value, dict) else "a dictionary"


def _optional_dictionary(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict) else "a dictionary or nothing"


_TOP: dict[str, Check] = {
    "spec": _dictionary,
    "state_dict": _dictionary,
    "training": _dictionary,
    "data": _dictionary,
    "metrics": _dictionary,
    "optimality_gap": _optional_dictionary,
    "parity_sample": lambda value: None,  # a tensor: checked with its shape below
}
_SPEC: dict[str, Check] = {
    "feature_names": _names,
    "target_names": _names,
    "intercept": _of_type(bool, "true or false"),
    "dtype": _one_of(DTYPES),
}
_TRAINING: dict[str, Check] = {
    "solver": _one_of(SOLVERS),
    "seed": _of_type(int, "an integer"),
    "hyperparameters": _dictionary,
}
_INFERENCE: dict[str, Check] = {
    "alpha": lambda v: None if _is_number(v) and 0 < v < 1 else "a number in (0, 1)",
    "n": _of_type(int, "an integer"),
    "df_resid": _of_type(int, "an integer"),
    "leverage": _optional_dictionary,
    "targets": lambda value: None,  # a list: checked with its length above
}
_INFERENCE_TARGET: dict[str, Check] = {
    "name": _of_type(str, "a text"),
    "sigma2": lambda v: None if v is None or _is_number(v) else "a number or nothing",
}
_COEFFICIENT: dict[str, Check] = {
    "term": _of_type(str, "a text"),
    "estimate": _of_type(float, "a finite number"),
    "stderr": lambda v: None if v is None or _is_number(v) else "a number or nothing",
}
_DATA: dict[str, Check] = {
    "source": _of_type(str, "a text"),
    "sha256": _of_type(str, "a text"),
}
