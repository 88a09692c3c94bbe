"""`toolkit export` of a table model: the plan from the checkpoint, the graph, its checks.

A checkpoint whose "table" plan (toolkit.columns.TablePlan.to_dict) is not trivial is
exported with toolkit.export.tables' graph (one input per raw column), checked with
onnx.checker and strict shape inference, against the documented signature, and gated
with toolkit.export.tables_gate (raw rows against a float64 reference). The card records
the plan with the unknown-level policy (`--unknown-level`, decided here). With `--explain`
the graph also builds the encoded matrix (tables.add_encoded) and toolkit.export.explain's
outputs on it follow `unknown_levels`; the gate checks them against explain's float64
reference of the same raw rows encoded by toolkit.io.encode.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import defaults
from toolkit.card import UNKNOWN_LEVELS_OUTPUT
from toolkit.columns import CATEGORICAL, TablePlan
from toolkit.errors import CheckpointError, ExportError, UsageError
from toolkit.export.result import OUTPUT_NAME, gated

if TYPE_CHECKING:
    import onnx
    import torch

    from toolkit.export.explain import ExplainPlan
    from toolkit.export.parity import ParityReport


def table_plan(payload: dict[str, Any], unknown_level: str | None) -> TablePlan | None:
    """The checkpoint's non-trivial plan with the unknown-level policy set (None: a numeric
    model, exported as before); UsageError for options that do not apply."""
    stored = payload.get("table")
    plan = None
    if stored is not None:
        try:
            plan = TablePlan.from_dict(stored)
        except ValueError as error:
            raise CheckpointError(f"the checkpoint's table plan is unusable: {error}") from error
    if plan is None or plan.trivial:
        if unknown_level is not None:
            raise UsageError(
                "--unknown-level applies to models with categorical columns; this checkpoint's "
                "features are all numeric. Leave the option out."
            )
        return None
    names = payload["spec"]["feature_names"]
    if list(names) != plan.encoded_names:
        raise CheckpointError(
            f"the checkpoint's {len(names)} feature names are not its table plan's "
            f"{len(plan.encoded_names)} encoded columns (first differing: "
            f"{_first_difference(list(names), plan.encoded_names)}); train the model again."
        )
    return plan.with_unknown_level(unknown_level or defaults.UNKNOWN_LEVEL)


def _first_difference(found: list[str], expected: list[str]) -> str:
    for index, (a, b) in enumerate(zip([*found, "(none)"], [*expected, "(none)"], strict=False)):
        if a != b:
            return f"column {index + 1} is {a!r}, the plan's {b!r}"
    return "none"


def checked_table(
    payload: dict[str, Any],
    model: torch.nn.Linear,
    plan: TablePlan,
    output: Path,
    opset: int,
    tolerances: tuple[float, float],
    validate: bool,
    providers: list[str] | None,
    explain: ExplainPlan | None = None,
) -> tuple[onnx.ModelProto, ParityReport | None]:
    """The table model's graph (with `explain`, its explain outputs on the encoded
    matrix), checked and (with `validate`) gated; ParityError if not."""
    from toolkit.export.tables import build_graph

    weight = model.weight.detach().cpu().numpy()
    bias = model.bias.detach().cpu().numpy() if model.bias is not None else None
    proto = build_graph(plan, weight, bias, opset)
    if explain is not None:
        _add_explain(proto, plan, explain, weight)
    check_table_proto(proto, plan, str(weight.dtype), weight.shape[0], explain)
    if not validate:
        return proto, None
    return proto, _gate(
        proto, payload, plan, (weight, bias), output, tolerances, providers, explain
    )


def _add_explain(
    proto: onnx.ModelProto, plan: TablePlan, explain: ExplainPlan, weight: Any
) -> None:
    """The encoded matrix (toolkit.export.tables.add_encoded), then export/explain.py's
    outputs on it, which read the weights from the initializer "weight"."""
    from onnx import numpy_helper

    from toolkit.export.explain import add_outputs
    from toolkit.export.tables import add_encoded

    graph = proto.graph
    before = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    encoded = add_encoded(proto, plan, weight.dtype)
    graph.initializer.append(numpy_helper.from_array(weight, "weight"))
    add_outputs(graph, explain, encoded, OUTPUT_NAME)
    added = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    clash = sorted((added - before) & set(plan.raw_names))
    if clash:
        raise ExportError(
            f"column {clash[0]!r} has the name of one of the --explain outputs or weights, and "
            "a table model takes one input per raw column named as the column; rename the "
            "column in the data and train again, or export without --explain."
        )


def _gate(
    proto: onnx.ModelProto,
    payload: dict[str, Any],
    plan: TablePlan,
    coefficients: tuple[Any, Any],
    output: Path,
    tolerances: tuple[float, float],
    providers: list[str] | None,
    explain: ExplainPlan | None,
) -> ParityReport:
    from toolkit.export.tables_gate import check_table_parity

    sample = payload["parity_sample"].double().numpy()
    return gated(
        proto,
        output,
        lambda candidate: check_table_parity(
            plan, *coefficients, candidate, sample, tolerances, providers, explain
        ),
    )


def check_table_proto(
    proto: onnx.ModelProto,
    plan: TablePlan,
    dtype: str,
    targets: int,
    explain: ExplainPlan | None = None,
) -> None:
    """Full checker, strict shape inference, and the table model's documented signature
    (with `explain`, its outputs after `unknown_levels`)."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"the exported model fails onnx.checker: {error}") from error
    elem = onnx.TensorProto.DOUBLE if dtype == "float64" else onnx.TensorProto.FLOAT
    expected = [
        (c.name, onnx.TensorProto.STRING if c.kind == CATEGORICAL else elem, 1)
        for c in plan.columns
    ]
    found = [_signature(value) for value in proto.graph.input]
    outputs = [(OUTPUT_NAME, elem, 2), (UNKNOWN_LEVELS_OUTPUT, onnx.TensorProto.INT64, 1)]
    if explain is not None:  # the explain outputs follow unknown_levels
        explain.check_outputs(list(inferred.graph.output)[2:], elem)
    got = [_signature(v) for v in proto.graph.output][: 2 if explain is not None else None]
    if found != expected or got != outputs:
        raise ExportError(
            f"the table model's signature is {found} -> {got}; expected {expected} -> {outputs}"
        )
    width = proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    if width != targets:
        raise ExportError(f"{OUTPUT_NAME!r} has {width} columns; expected {targets}")


def _signature(value: onnx.ValueInfoProto) -> tuple[str, int, int]:
    """(name, element type, rank), with the batch axis required to be dynamic."""
    tensor = value.type.tensor_type
    dims = list(tensor.shape.dim)
    rank = len(dims) if dims and dims[0].dim_param else -1
    return value.name, tensor.elem_type, rank
