"""`toolkit export`: turn a checkpoint into one self-contained ONNX file, behind a gate.

Steps: load the checkpoint (weights_only) -> torch.onnx.export from model.eval() under
no_grad -> onnx.checker (full check) and strict shape inference -> the parity gate on
every execution provider -> the exported weights must equal the checkpoint's bit for bit
-> the model card in metadata_props -> an atomic write. A file appears at OUTPUT only
when every step passed; an existing OUTPUT is replaced only by a passing model.

Exporter choice: torch.onnx.export(dynamo=True). It is the default and the maintained
path in this torch (the TorchScript exporter, dynamo=False, is deprecated), and it gives a
single Gemm node here. It prints progress and warnings of its own, which are captured and
shown only if the export fails.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import defaults
from toolkit.errors import ExportError, ParityError, UsageError
from toolkit.files import atomic_write
from toolkit.training import checkpoint

if TYPE_CHECKING:
    import onnx
    import torch

    from toolkit.export.parity import ParityReport

# The oldest opset whose conversion of this graph (Gemm, dynamic batch) we rely on.
MIN_OPSET = 13
INPUT_NAME = "features"
OUTPUT_NAME = "prediction"
EXPORTER = "torch.onnx.export(dynamo=True)"
# Rows per batch used to trace; any batch size runs afterwards (the axis is dynamic).
TRACE_ROWS = 3


@dataclass
class ExportResult:
    output: Path
    opset: int
    dtype: str
    size_bytes: int
    parity: ParityReport | None
    metadata: dict[str, str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "opset": self.opset,
            "dtype": self.dtype,
            "size_bytes": self.size_bytes,
            "input": INPUT_NAME,
            "output_name": OUTPUT_NAME,
            "exporter": EXPORTER,
            "parity": self.parity.to_dict() if self.parity is not None else None,
            "metadata": self.metadata,
            "seconds": self.seconds,
        }


def export_model(
    checkpoint_path: str | Path = defaults.CHECKPOINT,
    output: str | Path = defaults.ONNX_OUTPUT,
    opset: int = defaults.OPSET,
    atol: float | None = None,
    rtol: float | None = None,
    validate: bool = True,
    providers: list[str] | None = None,
) -> ExportResult:
    """Export `checkpoint_path` to `output`; raise (writing nothing) if any check fails."""
    import onnx

    from toolkit.export import parity

    started = time.perf_counter()
    output = Path(output)
    check_opset(opset)
    payload = checkpoint.load(checkpoint_path)
    spec, model = checkpoint.model_from_checkpoint(payload)
    default_atol, default_rtol = defaults.PARITY_TOLERANCES[spec.dtype]
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol

    proto = _export_proto(model, opset)
    _check_proto(proto, spec.n_features, spec.n_targets, spec.dtype)
    card = model_card(payload, opset)
    report = None
    if validate:
        # The gate runs the very graph and initializers that will be written; only the
        # model card (metadata) is added afterwards.
        sample = payload["parity_sample"].numpy()
        with tempfile.TemporaryDirectory() as folder:
            candidate = Path(folder) / "candidate.onnx"
            onnx.save_model(proto, candidate)
            report = parity.check_parity(
                model, candidate, sample, atol, rtol, INPUT_NAME, providers
            )
        if not report.passed:
            raise ParityError(report.breach_message(output))
        card["parity"] = json.dumps(report.to_dict(), sort_keys=True)
    else:
        card["parity"] = json.dumps({"skipped": True, "reason": "--no-validate"})
    # Stricter than any tolerance: a change too small for the gate still stops here.
    _check_weights(proto, model)
    _set_card(proto, card, payload)

    data = proto.SerializeToString()
    with atomic_write(output) as handle:
        handle.write(data)
    return ExportResult(
        output=output,
        opset=opset,
        dtype=spec.dtype,
        size_bytes=len(data),
        parity=report,
        metadata=card,
        seconds=time.perf_counter() - started,
    )


def check_opset(opset: int) -> None:
    """Refuse an opset the installed onnxruntime cannot run (or this exporter cannot write)."""
    import onnxruntime

    highest = max_runtime_opset()
    if not MIN_OPSET <= opset <= highest:
        raise UsageError(
            f"--opset {opset} cannot be used: the installed onnxruntime {onnxruntime.__version__} "
            f"runs opsets up to {highest}, and toolkit exports opsets {MIN_OPSET} and later. "
            f"Choose --opset between {MIN_OPSET} and {highest}, or upgrade onnxruntime."
        )


def max_runtime_opset() -> int:
    """The newest default-domain opset that the installed onnxruntime accepts.

    onnxruntime does not publish this as an API, so build a one-node model per opset and
    see which it loads (each probe takes about a millisecond).
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    for opset in range(onnx.defs.onnx_opset_version(), MIN_OPSET - 1, -1):
        imports = [helper.make_opsetid("", opset)]
        graph = helper.make_graph(  # the one operator toolkit's models use
            [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)],
            "probe",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1]),
                helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 1]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        )
        model = helper.make_model(graph, opset_imports=imports)
        model.ir_version = helper.find_min_ir_version_for(imports)
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:  # onnxruntime raises several unrelated types here
            continue
        return opset
    return MIN_OPSET - 1


def model_card(payload: dict[str, Any], opset: int) -> dict[str, str]:
    """The metadata_props written into the file (all values strings; JSON where structured)."""
    import onnx
    import onnxruntime
    import torch

    import toolkit

    spec = payload["spec"]
    training = payload["training"]
    return {
        "toolkit.model_card_version": "1",
        "feature_names": json.dumps(spec["feature_names"]),
        "target_names": json.dumps(spec["target_names"]),
        "dtype": spec["dtype"],
        "intercept": json.dumps(bool(spec["intercept"])),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "toolkit_version": toolkit.__version__,
        "torch_version": str(torch.__version__),
        "onnx_version": onnx.__version__,
        "onnxruntime_version": onnxruntime.__version__,
        "opset": str(opset),
        "exporter": EXPORTER,
        "solver": str(training["solver"]),
        "seed": str(training["seed"]),
        "training_data_sha256": str(payload["data"]["sha256"]),
        "training_data_source": str(payload["data"]["source"]),
        "training_metrics": json.dumps(payload["metrics"], sort_keys=True),
        "parity": json.dumps({"pending": True}),
    }


def _export_proto(model: torch.nn.Linear, opset: int) -> onnx.ModelProto:
    import torch

    dtype = model.weight.dtype
    example = torch.zeros(TRACE_ROWS, model.in_features, dtype=dtype)
    batch = torch.export.Dim("batch", min=1)
    with _quiet() as chatter, torch.no_grad():
        try:
            program = torch.onnx.export(
                model.eval(),
                (example,),
                None,
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
        except Exception as error:
            raise ExportError(
                f"torch.onnx.export failed: {error}\nexporter output:\n{chatter.tail()}"
            ) from error
    proto = program.model_proto
    if _opset_of(proto) != opset:
        raise ExportError(
            f"the exporter wrote opset {_opset_of(proto)} instead of {opset} (its version "
            f"conversion failed); use --opset {defaults.OPSET}.\nexporter output:\n{chatter.tail()}"
        )
    return proto


def _check_proto(proto: onnx.ModelProto, n_features: int, n_targets: int, dtype: str) -> None:
    """Full checker, strict shape inference, and the documented signature."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"the exported model fails onnx.checker: {error}") from error
    elem = onnx.TensorProto.DOUBLE if dtype == "float64" else onnx.TensorProto.FLOAT
    for values, name, width in (
        (inferred.graph.input, INPUT_NAME, n_features),
        (inferred.graph.output, OUTPUT_NAME, n_targets),
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


def _set_card(proto: onnx.ModelProto, card: dict[str, str], payload: dict[str, Any]) -> None:
    import numpy as np

    from toolkit.training.model import ModelSpec, equations

    del proto.metadata_props[:]
    for key, value in card.items():
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


def _opset_of(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), -1)


class _Chatter:
    def __init__(self, sink: Any) -> None:
        self._sink = sink

    def tail(self, lines: int = 20) -> str:
        self._sink.flush()
        self._sink.seek(0)
        text = self._sink.read().decode(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def _quiet() -> Iterator[_Chatter]:
    """Capture everything the exporter prints (Python and C++, stdout and stderr, warnings
    and torch's loggers), so the user sees toolkit's one-line status instead."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with (
                contextlib.redirect_stdout(sys.__stdout__),
                contextlib.redirect_stderr(sys.__stderr__),
            ):
                yield _Chatter(sink)
        finally:
            with contextlib.suppress(Exception):
                sys.__stdout__.flush()
                sys.__stderr__.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
