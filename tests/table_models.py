"""Hand-built table models (raw columns in, the ONNX contract of toolkit/columns.py) and an
independent numpy reference of their predictions, shared by the runtime, predict and serve
tests.

The graph here is written without toolkit's export code: per encoded column of a
categorical column a LabelEncoder (1.0 for the level texts that set it: a one-hot), one
more for the unknown count and one for a missing-value indicator; numeric columns
imputed with Where(IsNaN), their indicators Cast(IsNaN); all concatenated in the plan's
encoded order into one Gemm. `reference_predict` computes the same thing with pandas and
numpy from raw values. `exported_proto` is the graph toolkit's export builds, for the
same plans.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from toolkit import card
from toolkit.columns import CATEGORICAL, ColumnPlan, TablePlan

# A Grunfeld-like plan: a text firm (with a folded level and a fill), a numeric column
# with a mean fill and an indicator, one without a fill, and a bool column.
FIRMS = ("Chrysler", "GE", "GM", "IBM")
PLAN = TablePlan(
    (
        ColumnPlan("firm", CATEGORICAL, "string", FIRMS, ("Atlantic",), fill="GM"),
        ColumnPlan("value", "numeric", "float", fill=1.5, indicator=True, missing_count=2),
        ColumnPlan("capital", "numeric", "float"),
        ColumnPlan("union", CATEGORICAL, "bool", ("false", "true")),
    ),
    missing="mean",
    na_values=("NA",),
    max_levels=5,
    unknown_level="error",
)


# An integer category (with a fill and an indicator) and a numeric column without a fill;
# unknown levels encoded as the reference level.
YEARS = ("1935", "1936", "1937", "1940")
YEAR_PLAN = TablePlan(
    (
        ColumnPlan("year", CATEGORICAL, "int", YEARS, fill="1936", indicator=True),
        ColumnPlan("x", "numeric", "float"),
    ),
    missing="mean",
    max_levels=10,
    unknown_level="reference",
)


def _encoder(source: str, output: str, keys: list[str], hit: Any, default: Any) -> Any:
    """ai.onnx.ml LabelEncoder: `hit` for each of `keys`, `default` otherwise (floats or
    int64s as `hit` is)."""
    hits = [hit] * len(keys)
    if not keys:  # LabelEncoder needs a key: one no input holds, giving the default
        keys, hits = ["\x00never"], [default]
    if isinstance(hit, float):
        values = {"values_floats": hits, "default_float": default}
    else:
        values = {"values_int64s": hits, "default_int64": default}
    return helper.make_node(
        "LabelEncoder", [source], [output], domain="ai.onnx.ml", keys_strings=keys, **values
    )


def weights(plan: TablePlan, targets: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    width = len(plan.encoded_names)
    return rng.normal(size=(targets, width)).round(3), rng.normal(size=targets).round(3)


def table_proto(
    plan: TablePlan, weight: np.ndarray, bias: np.ndarray, dtype: Any = np.float32
) -> onnx.ModelProto:
    """The table model of `plan` with y = encoded(x) W^T + b."""
    dtype = np.dtype(dtype)
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    nodes, inits, parts, unknowns = [], [], [], []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    axis1 = const("axis1", np.array([1], dtype=np.int64))
    for column in plan.columns:
        name = column.name
        if column.kind == CATEGORICAL:
            codes = column.code()
            blank = [""] if column.fill is not None else []
            # One LabelEncoder per encoded column: 1.0 for the texts that set it.
            for j in range(len(column.levels) - 1 + bool(column.other)):
                keys = [k for k, c in codes.items() if c == j]
                if column.fill is not None and codes[column.fill] == j:
                    keys += blank
                part = f"{name}_part{j}"
                nodes += [
                    _encoder(name, f"{part}_f", keys, 1.0, 0.0),
                    helper.make_node("Cast", [f"{part}_f"], [f"{part}_c"], to=elem),
                    helper.make_node("Unsqueeze", [f"{part}_c", axis1], [part]),
                ]
                parts.append(part)
            known = list(codes) + blank
            nodes.append(_encoder(name, f"{name}_unknown_n", known, 0, 1))
            unknowns.append(f"{name}_unknown_n")
            missing = f"{name}_missing_f"
            if column.indicator:
                nodes.append(_encoder(name, missing, [""], 1.0, 0.0))
        else:
            missing = f"{name}_missing"
            nodes.append(helper.make_node("IsNaN", [name], [missing]))
            value = name
            if column.fill is not None:
                fill = const(f"{name}_fill", np.array(column.fill, dtype=dtype))
                nodes.append(helper.make_node("Where", [missing, fill, name], [f"{name}_filled"]))
                value = f"{name}_filled"
            nodes.append(helper.make_node("Unsqueeze", [value, axis1], [f"{name}_part"]))
            parts.append(f"{name}_part")
        if column.indicator:
            nodes += [
                helper.make_node("Cast", [missing], [f"{name}_ind"], to=elem),
                helper.make_node("Unsqueeze", [f"{name}_ind", axis1], [f"{name}_ind_part"]),
            ]
            parts.append(f"{name}_ind_part")
    nodes.append(helper.make_node("Concat", parts, ["encoded"], axis=1))
    nodes.append(
        helper.make_node(
            "Gemm",
            ["encoded", const("weight", weight.astype(dtype)), const("bias", bias.astype(dtype))],
            ["prediction"],
            transB=1,
        )
    )
    total = unknowns[0] if unknowns else None
    for i, other in enumerate(unknowns[1:]):
        nodes.append(helper.make_node("Add", [total, other], [f"unknown_sum{i}"]))
        total = f"unknown_sum{i}"
    if total is None:  # no categorical column: a zero count that still depends on the input
        first = plan.columns[0].name
        nodes += [
            helper.make_node("IsNaN", [first], ["never"]),
            helper.make_node("And", ["never", "never"], ["never2"]),
            helper.make_node("Cast", ["never2"], ["zero"], to=TensorProto.INT64),
        ]
        total = "zero"
    nodes.append(helper.make_node("Identity", [total], [card.UNKNOWN_LEVELS_OUTPUT]))
    inputs = [
        helper.make_tensor_value_info(
            c.name, TensorProto.STRING if c.kind == CATEGORICAL else elem, ["batch"]
        )
        for c in plan.columns
    ]
    outputs = [
        helper.make_tensor_value_info("prediction", elem, ["batch", weight.shape[0]]),
        helper.make_tensor_value_info(card.UNKNOWN_LEVELS_OUTPUT, TensorProto.INT64, ["batch"]),
    ]
    graph = helper.make_graph(nodes, "table", inputs, outputs, inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    model.ir_version = 10
    return _with_card(model, plan, weight.shape[0], dtype)


def write_table(
    path: Path,
    plan: TablePlan = PLAN,
    targets: int = 1,
    dtype: Any = np.float32,
    seed: int = 0,
) -> Path:
    weight, bias = weights(plan, targets, seed)
    onnx.save_model(table_proto(plan, weight, bias, dtype), path)
    return path


def reference_predict(
    plan: TablePlan, frame: Any, weight: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """float64 predictions of raw rows (a pandas DataFrame) by a hand one-hot with pandas."""
    import pandas as pd

    encoded = pd.DataFrame(index=frame.index)
    for column in plan.columns:
        raw = frame[column.name]
        missing = raw.isna() | raw.astype(str).isin(["", *plan.na_values])
        if column.kind == CATEGORICAL:
            text = raw.map(_text).where(~missing, column.fill)
            for level in column.levels[1:]:
                encoded[f"{column.name}[{level}]"] = (text == level).astype(float)
            if column.other:
                encoded[f"{column.name}[(other)]"] = text.isin(column.other).astype(float)
        else:
            encoded[column.name] = pd.to_numeric(raw.where(~missing)).fillna(column.fill)
        if column.indicator:
            encoded[f"{column.name}[(missing)]"] = missing.astype(float)
    assert list(encoded.columns) == plan.encoded_names
    return encoded.to_numpy(dtype=np.float64) @ weight.T + bias


def _text(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def exported_proto(
    plan: TablePlan, weight: np.ndarray, bias: np.ndarray | None, dtype: Any = np.float32
) -> onnx.ModelProto:
    """The graph toolkit's export writes for `plan` (toolkit/export/tables.py), with a card."""
    from toolkit.defaults import OPSET
    from toolkit.export.tables import build_graph

    dtype = np.dtype(dtype)
    model = build_graph(
        plan, weight.astype(dtype), None if bias is None else bias.astype(dtype), OPSET
    )
    del model.metadata_props[:]
    return _with_card(model, plan, weight.shape[0], dtype)


def _with_card(model: onnx.ModelProto, plan: TablePlan, targets: int, dtype: Any) -> Any:
    """`model` with a table model's card: encoded feature names, targets y (or y0, y1...)."""
    names = [f"y{t}" for t in range(targets)] if targets > 1 else ["y"]
    values = {card.FEATURE_NAMES: plan.encoded_names, card.TARGET_NAMES: names}
    values.update({card.DTYPE: str(dtype), card.TABLE: plan.to_dict()})
    helper.set_model_props(model, card.encode(values))
    return model


def write_exported(
    path: Path, plan: TablePlan = PLAN, targets: int = 1, dtype: Any = np.float32, seed: int = 0
) -> Path:
    weight, bias = weights(plan, targets, seed)
    onnx.save_model(exported_proto(plan, weight, bias, dtype), path)
    return path
