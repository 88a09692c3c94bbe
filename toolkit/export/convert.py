"""`toolkit export`: turn a checkpoint into one self-contained ONNX file, behind a gate.

Steps: check the paths and the opset (before torch is imported: a mistyped path is reported
at once) -> load the checkpoint (weights_only) -> the ONNX graph, one Gemm node holding the
weights -> onnx.checker (full check) and strict shape inference -> the parity gate on
every execution provider -> the exported weights must equal the checkpoint's bit for bit
-> the model card in metadata_props (its keys: toolkit.card) -> an atomic write. A file
appears at OUTPUT only when every step passed; an existing OUTPUT is replaced only by a
passing model.

Exporter choice: the `nn.Linear` is written as the one Gemm node it is (`_export_proto`
says why: milliseconds where torch.onnx.export took seconds); the parity gate and the
bit-for-bit weight check guard it as they guarded the exporter's output.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import card, coefficients, defaults
from toolkit.errors import ExportError
from toolkit.export.arguments import check_arguments
from toolkit.export.result import (
    EXPORTER,
    INPUT_NAME,
    MIN_OPSET,
    OUTPUT_NAME,
    ExportResult,
    gated,
)
from toolkit.files import atomic_write

if TYPE_CHECKING:
    import onnx
    import torch

    from toolkit.columns import TablePlan
    from toolkit.export.explain import ExplainPlan
    from toolkit.export.parity import ParityReport
    from toolkit.training.model import ModelSpec

__all__ = ["EXPORTER", "INPUT_NAME", "MIN_OPSET", "OUTPUT_NAME", "ExportResult", "export_model"]


def export_model(
    checkpoint_path: str | Path = defaults.CHECKPOINT,
    output: str | Path = defaults.ONNX_OUTPUT,
    opset: int = defaults.OPSET,
    atol: float | None = None,
    rtol: float | None = None,
    validate: bool = True,
    providers: list[str] | None = None,
    explain: bool = False,
    interval_level: float | None = None,
    unknown_level: str | None = None,
) -> ExportResult:
    """Export a checkpoint to one ONNX file, written only if every check passes (the steps
    above: what `toolkit export` and `toolkit.export(...)` run).

    Parameters
    ----------
    checkpoint_path : str or Path, default='models/model.pt'
        A checkpoint written by `toolkit.train` (loaded with `weights_only=True`).
    output : str or Path, default='models/model.onnx'
        The file to write, atomically.
    opset : int, default=18
        ONNX opset: 13 or later, and no later than the installed onnxruntime runs.
    atol, rtol : float or None, default=None
        The parity gate's tolerances; None: 1e-5 for float32 models, 1e-12 for float64.
    validate : bool, default=True
        Run the parity gate; False skips it, and the model card records that.
    providers : list of str or None, default=None
        The execution providers the gate runs on; None: every one available.
    explain : bool, default=False
        Add toolkit.export.explain's outputs: contributions, and stderr and an interval.
    interval_level : float or None, default=None
        With `explain`, the interval's level; None: 1 - the checkpoint's alpha.
    unknown_level : {'error', 'reference'} or None, default=None (error)
        Categorical models: an unseen level is refused, or encoded as the reference, counted.

    Returns
    -------
    ExportResult
        The file, its size, the parity report and the model card.

    Raises
    ------
    CheckpointError, UsageError, ExportError, ParityError, OutputError
        An unusable checkpoint, opset or path; a failed check, gate or write: nothing written.
    """
    started, output = time.perf_counter(), Path(output)
    check_arguments(checkpoint_path, output, opset, explain, interval_level, unknown_level)
    payload, plan, table = _load(checkpoint_path, explain, interval_level, unknown_level)
    gate = (atol, rtol), validate, providers
    proto, report, metadata = _checked(payload, output, opset, *gate, plan, table)
    data = proto.SerializeToString()
    with atomic_write(output) as handle:
        handle.write(data)
    dtype, seconds = payload["spec"]["dtype"], time.perf_counter() - started
    return ExportResult(output, opset, dtype, len(data), report, metadata, seconds, plan, table)


def _load(
    checkpoint_path: str | Path,
    explain: bool,
    interval_level: float | None,
    unknown_level: str | None,
) -> tuple[dict[str, Any], ExplainPlan | None, TablePlan | None]:
    """The checkpoint, the --explain outputs' plan and the table plan (None: a numeric model)."""
    from toolkit.export import explain as explaining  # torch: once the arguments are good
    from toolkit.export.tables_export import table_plan
    from toolkit.training import checkpoint

    payload = checkpoint.load(checkpoint_path)
    table = table_plan(payload, unknown_level)
    return payload, explaining.plan(payload, interval_level) if explain else None, table


def _checked(
    payload: dict[str, Any],
    output: Path,
    opset: int,
    tolerances: tuple[float | None, float | None],
    validate: bool,
    providers: list[str] | None,
    plan: ExplainPlan | None,
    table: TablePlan | None = None,
) -> tuple[onnx.ModelProto, ParityReport | None, dict[str, str]]:
    """The graph, checked, gated and carrying its model card; its parity report; the card."""
    from toolkit.export import explain as explaining
    from toolkit.export.tables_export import checked_table
    from toolkit.training import checkpoint

    spec, model = checkpoint.model_from_checkpoint(payload)
    atol, rtol = (
        default if given is None else given
        for given, default in zip(tolerances, defaults.PARITY_TOLERANCES[spec.dtype], strict=True)
    )
    if table is not None:  # raw columns in: toolkit.export.tables
        proto, report = checked_table(
            payload, model, table, output, opset, (atol, rtol), validate, providers, plan
        )
        parity = (
            report.to_dict() if report is not None else {"skipped": True, "reason": "--no-validate"}
        )
        metadata = model_card(payload, opset, parity, plan, table)
        _set_card(proto, metadata, payload)
        return proto, report, metadata
    proto = _export_proto(model, opset)
    if plan is not None:
        explaining.add_outputs(proto.graph, plan, INPUT_NAME, OUTPUT_NAME)
    _check_proto(proto, spec, plan)
    report = None
    parity_record: dict[str, Any] = {"skipped": True, "reason": "--no-validate"}
    if validate:
        # The gate runs the very graph and initializers that will be written; only the
        # model card (metadata) is added afterwards.
        report = _gate(proto, model, payload, output, (atol, rtol), providers, plan)
        parity_record = report.to_dict()
    # Stricter than any tolerance: a change too small for the gate still stops here.
    _check_weights(proto, model)
    metadata = model_card(payload, opset, parity_record, plan)
    _set_card(proto, metadata, payload)
    return proto, report, metadata


def model_card(
    payload: dict[str, Any],
    opset: int,
    parity: Mapping[str, Any] | None = None,
    plan: ExplainPlan | None = None,
    table: TablePlan | None = None,
) -> dict[str, str]:
    """The metadata_props written into the file (toolkit.card: strings, JSON where structured).

    `parity` is the gate's report (ParityReport.to_dict()), or why it was skipped; `plan`
    the explain outputs' plan (card.EXPLAIN is written only for them); `table` the plan of
    a table model (card.TABLE, with its unknown-level policy). A table model's card has no
    `input_name`: its inputs are the raw columns, named in `table`.
    """
    import onnx
    import onnxruntime
    import torch

    import toolkit

    spec = payload["spec"]
    training = payload["training"]
    inference = payload.get("inference")  # absent from checkpoints written before it
    extra = {} if inference is None else {card.INFERENCE: coefficients.compact(inference)}
    values = card.encode(
        {
            card.FEATURE_NAMES: spec["feature_names"],
            card.TARGET_NAMES: spec["target_names"],
            card.DTYPE: spec["dtype"],
            card.INTERCEPT: bool(spec["intercept"]),
            card.INPUT_NAME: INPUT_NAME,
            card.OUTPUT_NAME: OUTPUT_NAME,
            card.TOOLKIT_VERSION: toolkit.__version__,
            card.TORCH_VERSION: torch.__version__,
            card.ONNX_VERSION: onnx.__version__,
            card.ONNXRUNTIME_VERSION: onnxruntime.__version__,
            card.OPSET: opset,
            card.EXPORTER: EXPORTER,
            card.SOLVER: training["solver"],
            card.SEED: training["seed"],
            card.TRAINING_DATA_SHA256: payload["data"]["sha256"],
            card.TRAINING_DATA_SOURCE: payload["data"]["source"],
            card.TRAINING_METRICS: payload["metrics"],
            card.PARITY: {"pending": True} if parity is None else parity,
            **extra,
            **({card.EXPLAIN: plan.card()} if plan is not None else {}),
            **({card.TABLE: table.to_dict()} if table is not None else {}),
        }
    )
    if table is not None:
        del values[card.INPUT_NAME]
    return values


def _gate(
    proto: onnx.ModelProto,
    model: torch.nn.Linear,
    payload: dict[str, Any],
    output: Path,
    tolerances: tuple[float, float],
    providers: list[str] | None,
    plan: ExplainPlan | None,
) -> ParityReport:
    """The parity gate on `proto` as it will be written; ParityError if it fails."""
    from toolkit.export import parity

    sample = payload["parity_sample"].numpy()
    return gated(
        proto,
        output,
        lambda candidate: parity.check_parity(
            model, candidate, sample, *tolerances, INPUT_NAME, providers, plan
        ),
    )


def _export_proto(model: torch.nn.Linear, opset: int) -> onnx.ModelProto:
    """The model as one ONNX Gemm node: `prediction = features @ weight^T + bias`.

    `nn.Linear` is exactly Gemm with transB=1, which is also what torch.onnx.export
    (dynamo) writes for it; building the graph directly takes milliseconds instead of the
    exporter's seconds (tracing, onnxscript, version conversion), and every opset from 13
    on has the same Gemm. The parity gate then checks it against PyTorch as before, and
    the weights are checked bit for bit against the checkpoint.
    """
    from onnx import TensorProto, helper, numpy_helper

    weight = model.weight.detach().cpu().numpy()
    elem = TensorProto.DOUBLE if weight.dtype.itemsize == 8 else TensorProto.FLOAT
    initializers = [numpy_helper.from_array(weight, "weight")]
    if model.bias is not None:
        initializers.append(numpy_helper.from_array(model.bias.detach().cpu().numpy(), "bias"))
    node = helper.make_node(
        "Gemm", [INPUT_NAME, *(i.name for i in initializers)], [OUTPUT_NAME], transB=1
    )
    graph = helper.make_graph(
        [node],
        "linear",
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["batch", model.in_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["batch", model.out_features])],
        initializers,
    )
    imports = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=imports, producer_name="toolkit")
    proto.ir_version = helper.find_min_ir_version_for(imports)
    return proto


def _check_proto(proto: onnx.ModelProto, spec: ModelSpec, plan: ExplainPlan | None) -> None:
    """Full checker, strict shape inference, and the documented signature."""
    n_features, n_targets, dtype = spec.n_features, spec.n_targets, spec.dtype
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"the exported model fails onnx.checker: {error}") from error
    elem = onnx.TensorProto.DOUBLE if dtype == "float64" else onnx.TensorProto.FLOAT
    outputs = list(inferred.graph.output)
    if plan is not None:  # the explain outputs follow the prediction
        plan.check_outputs(outputs[1:], elem)
        del outputs[1:]
    for values, name, width in (
        (inferred.graph.input, INPUT_NAME, n_features),
        (outputs, OUTPUT_NAME, n_targets),
    ):
        if len(values) != 1 or values[0].name != name:
            raise ExportError(
                f"expected one graph value named {name!r}, got {[v.name for v in values]}"
            )
        tensor = values[0].type.tensor_type
        dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        if (
            tensor.elem_type != elem
            or len(dims) != 2
            or not isinstance(dims[0], str)
            or dims[1] != width
        ):
            raise ExportError(
                f"{name!r} has type {onnx.TensorProto.DataType.Name(tensor.elem_type)} and shape "
                f"{dims}; expected {dtype} of shape ['batch', {width}] with a dynamic batch axis"
            )


def _check_weights(proto: onnx.ModelProto, model: torch.nn.Linear) -> None:
    """The file's initializers must equal the checkpoint's weights exactly."""
    import numpy as np
    from onnx import numpy_helper

    stored = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    for name, tensor in model.state_dict().items():
        expected = tensor.detach().cpu().numpy()
        found = stored.get(name)
        if found is None:  # fall back to the one initializer of that shape
            same_shape = [a for a in stored.values() if a.shape == expected.shape]
            found = same_shape[0] if len(same_shape) == 1 else None
        if found is None or found.dtype != expected.dtype or not np.array_equal(found, expected):
            raise ExportError(
                f"the exported {name!r} does not equal the checkpoint's bit for bit; "
                "refusing to write a model that differs from the trained one."
            )


def _set_card(proto: onnx.ModelProto, metadata: dict[str, str], payload: dict[str, Any]) -> None:
    import numpy as np

    from toolkit.training.model import ModelSpec, equations

    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    spec = ModelSpec.from_dict(payload["spec"])
    state = payload["state_dict"]
    weight = state["weight"].double().numpy()
    bias = state["bias"].double().numpy() if "bias" in state else np.zeros(spec.n_targets)
    proto.doc_string = (
        f"toolkit linear regressor ({spec.dtype}, {spec.n_features} features -> "
        f"{spec.n_targets} target{'s' if spec.n_targets > 1 else ''}): "
        + "; ".join(equations(spec, weight, bias))
    )
    proto.producer_name = "toolkit"
