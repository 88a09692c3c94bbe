"""What `toolkit export` refuses before torch is imported: paths, the opset, options.

A mistyped path or an opset the installed onnxruntime cannot run is reported at once,
without paying for torch (see tests/test_cli.py's timing of a missing checkpoint).
"""

from __future__ import annotations

from pathlib import Path

from toolkit import defaults
from toolkit.errors import CheckpointError, UsageError
from toolkit.export.result import MIN_OPSET


def check_arguments(
    checkpoint_path: str | Path,
    output: Path,
    opset: int,
    explain: bool,
    interval_level: float | None,
    unknown_level: str | None = None,
) -> None:
    """What can be refused before torch is imported."""
    if interval_level is not None and not explain:
        raise UsageError("--interval-level applies to --explain models; add --explain.")
    if unknown_level is not None and unknown_level not in defaults.UNKNOWN_LEVELS:
        raise UsageError(
            f"--unknown-level {unknown_level!r} is not one of {', '.join(defaults.UNKNOWN_LEVELS)}."
        )
    check_paths(checkpoint_path, output)
    check_opset(opset)


def check_paths(checkpoint_path: str | Path, output: str | Path) -> None:
    """Refuse, before torch is imported, a checkpoint that is not there and an OUTPUT that
    cannot be a file (a folder, a path under a file, the checkpoint itself)."""
    source, output = Path(checkpoint_path), Path(output)
    if not source.is_file():
        what = "is a folder, not a file" if source.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {str(source)!r} {what}; train one with `toolkit train`.")
    if output.is_dir():
        raise UsageError(
            f"OUTPUT {str(output)!r} is a folder; name the file to write, such as "
            f"{str(output / defaults.ONNX_OUTPUT.name)!r}."
        )
    if output.exists() and output.resolve() == source.resolve():
        raise UsageError(
            f"OUTPUT {str(output)!r} is the checkpoint being exported; choose another path, "
            f"such as {str(source.with_suffix('.onnx'))!r}."
        )
    above = next((folder for folder in output.parents if folder.exists()), None)
    if above is not None and not above.is_dir():
        raise UsageError(f"OUTPUT {str(output)!r} cannot be written: {str(above)!r} is a file.")


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
