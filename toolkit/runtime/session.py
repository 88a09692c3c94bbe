"""Opening a model file for the Predictor: checks before onnxruntime sees it, then its
session(s) and signature.

The file is read and parsed once (onnxfile), refused if unsafe (onnxfile, graph) or if
its weights hold NaN or infinity, then handed to onnxruntime as the bytes already
checked. A model with --explain outputs gets two sessions: the whole graph for
`explain`, and the graph pruned to the prediction for `predict`.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from toolkit.errors import ModelLoadError, UnsafeModelError
from toolkit.runtime import explain, graph, onnxfile

FLOAT_TYPES = {"tensor(float)": np.dtype(np.float32), "tensor(double)": np.dtype(np.float64)}


def open_session(
    path: Path, options: Any, providers: list[str]
) -> tuple[Any, onnxfile.ModelFile, tuple[Any, tuple[str, ...]] | None]:
    """Read, parse and check the file (onnxfile, graph), then let onnxruntime open it.

    (session, what onnxfile found, None); for a model with explain outputs, the session on
    its graph pruned to the prediction and that graph's facts, then (a session on the
    whole graph, the explain outputs' names)."""
    data = onnxfile.read_model(path)
    try:
        info = onnxfile.parse(data)
    except ValueError as error:
        raise ModelLoadError(
            f"{str(path)!r} is not a readable ONNX model (empty, truncated or another "
            f"format): {error}."
        ) from error
    try:
        onnxfile.check_safe(path, info)
        graph.check_linear(info)
    except UnsafeModelError as error:
        raise ModelLoadError(f"refused to load {str(path)!r}: {error}.") from error
    if info.non_finite:
        raise ModelLoadError(
            f"refused to load {str(path)!r}: its weights {', '.join(info.non_finite)} hold NaN "
            "or infinity (a damaged file, or a diverged training run); re-export the model."
        )
    # Without external data, hand onnxruntime the bytes already checked (no second read).
    source = str(path) if info.external_locations else data
    names = explain.extra_outputs(info)
    if not names:
        return session_of(path, source, options, providers), info, None
    if info.external_locations:
        raise ModelLoadError(
            f"refused to load {str(path)!r}: it has explain outputs ({', '.join(names)}) and "
            "external data, which toolkit does not write; re-export it with `toolkit export "
            "--explain`."
        )
    full = session_of(path, source, options, providers)
    pruned = explain.prediction_only(data, len(info.outputs) - len(names))
    return session_of(path, pruned, options, providers), onnxfile.parse(pruned), (full, names)


def session_of(path: Path, source: str | bytes, options: Any, providers: list[str]) -> Any:
    try:
        # When a session fails, onnxruntime's Python wrapper prints "EP Error ..." to stdout
        # and retries on its fallback providers: keep that out of the CLI's predictions.
        with contextlib.redirect_stdout(io.StringIO()):
            return ort.InferenceSession(source, options, providers=providers)
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... types
        first = brief(error)
        raise ModelLoadError(f"onnxruntime cannot load {str(path)!r}: {first}") from error


def brief(error: BaseException) -> str:
    """onnxruntime's message on one line (it spreads the useful part over several)."""
    text = " ".join(str(error).split()).rstrip(".")
    return (text[:500] + " ...") if len(text) > 500 else text or type(error).__name__


def signature(path: Path, session: Any) -> tuple[str, str, np.dtype, int, int, int | None]:
    """(input name, output name, dtype, n_features, n_targets, fixed batch rows or None)."""

    def describe(values: list[tuple[str, str, list[Any]]]) -> str:
        return ", ".join(f"{name}: {kind}{shape}" for name, kind, shape in values) or "none"

    try:
        inputs = [(v.name, v.type, list(v.shape)) for v in session.get_inputs()]
        outputs = [(v.name, v.type, list(v.shape)) for v in session.get_outputs()]
    except UnicodeDecodeError as error:
        raise ModelLoadError(
            f"{str(path)!r} has input or output dimensions whose names are not UTF-8 text "
            f"({error}); re-export the model."
        ) from error
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(
            f"{str(path)!r} has inputs ({describe(inputs)}) and outputs ({describe(outputs)}); "
            "expected one 2-D float input and one 2-D output."
        )
    (name, kind, shape), (out_name, out_kind, out_shape) = inputs[0], outputs[0]
    ok = (
        kind in FLOAT_TYPES
        and len(shape) == len(out_shape) == 2
        and all(isinstance(width, int) and width > 0 for width in (shape[1], out_shape[1]))
        and out_kind == kind
    )
    if not ok:
        raise ModelLoadError(
            f"{str(path)!r} has input {describe(inputs)} and output {describe(outputs)}; "
            "expected one 2-D float input [batch, n_features] and one 2-D output "
            "[batch, n_targets] of the same type."
        )
    batch, out_batch = shape[0], out_shape[0]
    if isinstance(out_batch, int) and out_batch != batch:
        raise ModelLoadError(
            f"{str(path)!r} has input {describe(inputs)} and output {describe(outputs)}: its "
            f"output has {out_batch} rows whatever the input's {batch!r}; expected one output "
            "row per input row (the same batch dimension). Re-export the model."
        )
    fixed = batch if isinstance(batch, int) and batch > 0 else None
    return name, out_name, FLOAT_TYPES[kind], int(shape[1]), int(out_shape[1]), fixed
