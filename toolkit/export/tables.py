"""The ONNX graph of a table model: raw columns in, the encoding and imputation inside.

A model whose table plan is not trivial (toolkit.columns) takes one 1-D input per raw
column, named as the column: numeric columns in the model's dtype (NaN: missing),
categorical ones as tensor(string) holding the level text ("" or an `na_values` token:
missing). It answers the usual `prediction` (batch, targets) and `unknown_levels`
(int64, batch): how many categorical cells of each row hold a value that is neither a
kept level, a folded one nor missing.

Every ONNX node costs onnxruntime about half a microsecond per run, so the encoding is
fused rather than spelled out column by column (see `build_graph`):

- categorical columns: each column's LabelEncoder (ai.onnx.ml) maps the text straight
  to a row of one shared table of coefficients: per column a row for each kept level
  (the reference's is zeros), one for `(other)` (its folded levels share it), one for
  missing (the fill level's row, plus the indicator's coefficient; without a fill the
  reference's zeros, as toolkit.io.encode leaves such a cell, which toolkit's runtime
  refuses before the graph runs) and one for unknown values (zeros: the reference's
  encoding). One Gather takes every column's rows at once and one ReduceSum adds them;
  the intercept is folded into the first column's rows. A second Gather from an int64
  table (1 on the unknown rows) and a ReduceSum count the unknown values.
- numeric columns: concatenated and reshaped to (columns, batch) for one Gemm
  (transA) whose C input is the categorical sum; the fills replace NaN with
  Where(IsNaN) (And-ed with a mask when only some columns have a fill, so a NaN in a
  column without one stays NaN), and the indicators are Cast(IsNaN) rows appended to
  the Gemm's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from toolkit.card import UNKNOWN_LEVELS_OUTPUT
from toolkit.columns import CATEGORICAL, ColumnPlan, TablePlan
from toolkit.errors import ExportError
from toolkit.export.result import OUTPUT_NAME

if TYPE_CHECKING:
    import onnx

# The ai.onnx.ml opset imported for LabelEncoder (its string -> int64 form is from ml
# opset 2; 3 pairs with the default-domain opset 18 and every onnxruntime from 1.14 runs it).
ML_OPSET = 3


@dataclass(frozen=True)
class CategoryRows:
    """One categorical column's rows in the shared table and the texts that lead to them."""

    column: ColumnPlan
    start: int  # the column's first row in the shared table
    keys: tuple[str, ...]  # the LabelEncoder's keys, in order
    rows: tuple[int, ...]  # each key's row in the shared table
    unknown: int  # the row of unknown values (zeros), the LabelEncoder's default
    count: int  # rows this column owns


def category_rows(plan: TablePlan) -> list[CategoryRows]:
    """Every categorical column's table rows: levels, (other), missing, unknown."""
    found, start = [], 0
    for column in plan.categorical:
        keys = list(column.levels) + list(column.other)
        code = column.code()
        # Row of a level: its encoded column + 1 (the reference's code is -1: row 0).
        rows = [start + code[level] + 1 for level in keys]
        count = len(column.levels) + (1 if column.other else 0)
        tokens = [""] + [t for t in plan.na_values if t not in code]  # missing
        keys += tokens
        rows += [start + count] * len(tokens)
        count += 1
        unknown = start + count
        found.append(CategoryRows(column, start, tuple(keys), tuple(rows), unknown, count + 1))
        start += count + 1
    return found


def column_slices(plan: TablePlan) -> dict[str, slice]:
    """Each raw column's encoded columns, as a slice of the model's weight columns."""
    slices, at = {}, 0
    for column in plan.columns:
        slices[column.name] = slice(at, at + column.width)
        at += column.width
    return slices


def coefficient_table(
    plan: TablePlan, weight: np.ndarray, bias: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The shared (rows, targets) table in float64 (intercept folded into the first
    categorical column's rows) and the int64 flags of its unknown rows."""
    groups, slices = category_rows(plan), column_slices(plan)
    total = sum(group.count for group in groups)
    table = np.zeros((total, weight.shape[0]), np.float64)
    unknown = np.zeros(total, np.int64)
    w = weight.astype(np.float64)
    for group in groups:
        column, part = group.column, slices[group.column.name]
        codes = w[:, part]  # (targets, width): the column's encoded coefficients
        kept = len(column.levels) - 1 + (1 if column.other else 0)
        table[group.start + 1 : group.start + 1 + kept] = codes[:, :kept].T
        missing = group.start + group.count - 2
        if column.fill is not None:
            table[missing] = table[group.start + column.code()[column.fill] + 1]
        if column.indicator:
            table[missing] += codes[:, -1]
        unknown[group.unknown] = 1
    if bias is not None and groups:
        first = groups[0]
        table[first.start : first.start + first.count] += bias.astype(np.float64)
    return table, unknown


def numeric_parts(plan: TablePlan) -> tuple[list[ColumnPlan], list[int], list[int]]:
    """The numeric columns, the weight column of each, and of each one's indicator (-1:
    none)."""
    slices = column_slices(plan)
    numeric = [c for c in plan.columns if c.kind != CATEGORICAL]
    values = [slices[c.name].start for c in numeric]
    indicators = [slices[c.name].start + 1 if c.indicator else -1 for c in numeric]
    return numeric, values, indicators


def check_names(plan: TablePlan) -> None:
    """A raw column named like an output would make the graph ambiguous: refuse it."""
    for name in plan.raw_names:
        if name in (OUTPUT_NAME, UNKNOWN_LEVELS_OUTPUT):
            raise ExportError(
                f"column {name!r} has the name of the model's output {name!r}, and a table "
                f"model takes one input per raw column named as the column; rename the column "
                f"in the data and train again."
            )


def build_graph(
    plan: TablePlan, weight: np.ndarray, bias: np.ndarray | None, opset: int
) -> onnx.ModelProto:
    """The table model's graph (module docstring): `weight` (targets, encoded columns) and
    `bias` (targets,) in the model's dtype, columns in the order of `plan.encoded_names`."""
    from onnx import TensorProto, helper

    check_names(plan)
    if weight.shape[1] != len(plan.encoded_names):
        raise ExportError(
            f"the checkpoint has {weight.shape[1]} feature columns but its table plan encodes "
            f"{len(plan.encoded_names)}; the checkpoint is inconsistent, train it again."
        )
    builder = _Builder(weight.dtype, weight.shape[0], plan.raw_names)
    categorical = _categorical(builder, plan, weight, bias)
    _numeric(builder, plan, weight, bias, categorical)
    if not plan.categorical:  # no text to be unknown: zeros of the batch's length
        first = plan.columns[0].name
        batch = builder.name("batch")
        builder.node("Shape", [first], [batch])
        zero = helper.make_tensor("zero", TensorProto.INT64, [1], [0])
        builder.node("ConstantOfShape", [batch], [UNKNOWN_LEVELS_OUTPUT], value=zero)
    return builder.model(plan, opset)


def add_encoded(proto: onnx.ModelProto, plan: TablePlan, dtype: np.dtype) -> str:
    """Append to the table graph `proto` the nodes of the encoded matrix (batch, encoded
    columns) in the order of `plan.encoded_names`, and return its name: the graph's own
    construction with the identity for weights, so each column's table row is its
    one-hot encoding (unknown values and the reference all zeros, folded levels the
    (other) column, missing the fill level's plus 1 in the indicator) and the numeric
    Gemm places the filled values and Cast(IsNaN) indicators. `predict` never runs these
    nodes (the runtime prunes the graph to the prediction)."""
    graph = proto.graph
    taken = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    builder = _Builder(dtype, 0, [*plan.raw_names, *taken])
    encoded = builder.name("explain_encoded")
    identity = np.eye(len(plan.encoded_names), dtype=dtype)
    categorical = _categorical(builder, plan, identity, None, encoded, None)
    _numeric(builder, plan, identity, None, categorical, encoded)
    graph.node.extend(builder.nodes)
    graph.initializer.extend(builder.initializers)
    return encoded


def _categorical(
    builder: _Builder,
    plan: TablePlan,
    weight: np.ndarray,
    bias: np.ndarray | None,
    output: str = OUTPUT_NAME,
    counts: str | None = UNKNOWN_LEVELS_OUTPUT,
) -> str | None:
    """Nodes adding every categorical column's rows; the (batch, targets) sum's name
    (`output` when there are no numeric columns). `counts` None: no unknown counts."""
    groups = category_rows(plan)
    if not groups:
        return None
    table, flags = coefficient_table(plan, weight, bias)
    coefficients = builder.constant("coefficients", table.astype(weight.dtype))
    unknown_rows = builder.constant("unknown_rows", flags) if counts is not None else ""
    indices = []
    for group in groups:
        name = builder.name(f"{group.column.name}:row")
        builder.node(
            "LabelEncoder",
            [group.column.name],
            [name],
            domain="ai.onnx.ml",
            keys_strings=list(group.keys),
            values_int64s=list(group.rows),
            default_int64=group.unknown,
        )
        indices.append(name)
    sum_name = output if not numeric_parts(plan)[0] else builder.name("categorical")
    if len(groups) == 1:  # one column: its rows are the sum, no stacking
        builder.node("Gather", [coefficients, indices[0]], [sum_name])
        if counts is not None:
            builder.node("Gather", [unknown_rows, indices[0]], [counts])
        return sum_name
    flat = builder.name("rows:flat")
    builder.node("Concat", indices, [flat], axis=0)
    shape = builder.constant("rows:shape", np.array([len(groups), -1], np.int64))
    stacked = builder.name("rows")
    builder.node("Reshape", [flat, shape], [stacked])
    axis = builder.constant("axis0", np.array([0], np.int64))
    sums = [(coefficients, sum_name)] + ([(unknown_rows, counts)] if counts is not None else [])
    for source, total in sums:
        gathered = builder.name(f"{source}:gathered")
        builder.node("Gather", [source, stacked], [gathered])
        builder.node("ReduceSum", [gathered, axis], [total], keepdims=0)
    return sum_name


def _numeric(
    builder: _Builder,
    plan: TablePlan,
    weight: np.ndarray,
    bias: np.ndarray | None,
    categorical: str | None,
    output: str = OUTPUT_NAME,
) -> None:
    """Nodes for the numeric columns: one Gemm to `output` adding `categorical` (or the
    bias)."""
    numeric, values, indicators = numeric_parts(plan)
    if not numeric:
        return
    names = [c.name for c in numeric]
    flat = builder.name("numeric:flat")
    if len(names) > 1:
        builder.node("Concat", names, [flat], axis=0)
    else:
        flat = names[0]
    shape = builder.constant("numeric:shape", np.array([len(names), -1], np.int64))
    matrix = builder.name("numeric")
    builder.node("Reshape", [flat, shape], [matrix])
    columns = list(values)
    has_fill = [c.fill is not None for c in numeric]
    any_indicator = any(i >= 0 for i in indicators)
    if any(has_fill) or any_indicator:
        isnan = builder.name("numeric:isnan")
        builder.node("IsNaN", [matrix], [isnan])
    if any(has_fill):
        matrix = _fill(builder, numeric, matrix, isnan, weight.dtype)
    if any_indicator:
        flags = builder.name("numeric:indicators")
        builder.node("Cast", [isnan], [flags], to=_elem(weight.dtype))
        both = builder.name("numeric:with-indicators")
        builder.node("Concat", [matrix, flags], [both], axis=0)
        matrix = both
        columns += indicators
    # Indicator rows of columns without one get zero coefficients (index -1 -> zeros).
    padded = np.concatenate([weight, np.zeros((weight.shape[0], 1), weight.dtype)], axis=1)
    numeric_weight = builder.constant("numeric:weight", np.ascontiguousarray(padded[:, columns]))
    addend = categorical
    if addend is None and bias is not None:
        addend = builder.constant("bias", bias)
    inputs = [matrix, numeric_weight] + ([addend] if addend is not None else [])
    builder.node("Gemm", inputs, [output], transA=1, transB=1)


def _fill(
    builder: _Builder, numeric: list[ColumnPlan], matrix: str, isnan: str, dtype: np.dtype
) -> str:
    """Where(IsNaN) with each column's fill; only columns that have one."""
    fills = np.array([[c.fill if c.fill is not None else 0.0] for c in numeric], dtype)
    fill = builder.constant("numeric:fill", fills)
    condition = isnan
    if not all(c.fill is not None for c in numeric):  # a NaN without a fill stays NaN
        mask = builder.constant(
            "numeric:has-fill", np.array([[c.fill is not None] for c in numeric])
        )
        condition = builder.name("numeric:fillable")
        builder.node("And", [isnan, mask], [condition])
    filled = builder.name("numeric:filled")
    builder.node("Where", [condition, fill, matrix], [filled])
    return filled


def _elem(dtype: np.dtype) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


class _Builder:
    """Nodes, initializers and unique names of one graph."""

    def __init__(self, dtype: np.dtype, targets: int, reserved: list[str]) -> None:
        self.dtype, self.targets = np.dtype(dtype), targets
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        # Raw column names are graph inputs, the outputs are fixed: never reuse them.
        self.used: set[str] = {*reserved, OUTPUT_NAME, UNKNOWN_LEVELS_OUTPUT}

    def name(self, base: str) -> str:
        name, n = f"_{base}", 1
        while name in self.used:
            name, n = f"_{base}_{n}", n + 1
        self.used.add(name)
        return name

    def constant(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attributes: object) -> None:
        from onnx import helper

        domain = attributes.pop("domain", "")
        self.nodes.append(
            helper.make_node(op, inputs, outputs, domain=str(domain), **attributes)  # type: ignore[arg-type]
        )

    def model(self, plan: TablePlan, opset: int) -> onnx.ModelProto:
        from onnx import TensorProto, helper

        elem = _elem(self.dtype)
        inputs = [
            helper.make_tensor_value_info(
                c.name, TensorProto.STRING if c.kind == CATEGORICAL else elem, ["batch"]
            )
            for c in plan.columns
        ]
        outputs = [
            helper.make_tensor_value_info(OUTPUT_NAME, elem, ["batch", self.targets]),
            helper.make_tensor_value_info(UNKNOWN_LEVELS_OUTPUT, TensorProto.INT64, ["batch"]),
        ]
        graph = helper.make_graph(self.nodes, "table", inputs, outputs, self.initializers)
        imports = [helper.make_opsetid("", opset)]
        if plan.categorical:
            imports.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
        proto = helper.make_model(graph, opset_imports=imports, producer_name="toolkit")
        proto.ir_version = helper.find_min_ir_version_for(imports)
        return proto
