"""`toolkit info`: what an ONNX model is, from the runtime's point of view (no torch, no onnx)."""

from __future__ import annotations

from typing import Any

from toolkit.runtime import Predictor, available_providers, onnxfile


def describe(predictor: Predictor) -> dict[str, Any]:
    """Signature, model card, opsets, file size, and the providers available vs used."""
    data = predictor.path.read_bytes()
    parsed = onnxfile.parse(data)
    session = predictor.session
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    return {
        "path": str(predictor.path),
        "size_bytes": len(data),
        "input": {"name": inp.name, "type": inp.type, "shape": list(inp.shape)},
        "output": {"name": out.name, "type": out.type, "shape": list(out.shape)},
        "feature_names": list(predictor.feature_names),
        "target_names": list(predictor.target_names),
        "dtype": str(predictor.dtype),
        "opsets": dict(sorted(parsed.opsets.items())),
        "ir_version": parsed.ir_version,
        "provider": predictor.provider,
        "available_providers": available_providers(),
        "metadata": dict(predictor.metadata),
    }
