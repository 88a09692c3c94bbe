"""`toolkit info`: what an ONNX model is, from the runtime's point of view (no torch, no onnx).

`describe` gathers the facts as plain data (what `toolkit info --json` prints); `to_lines`
words them for a terminal. The model card is shown in the order toolkit writes it
(toolkit.card.KEYS), then any other keys a foreign file carries, sorted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolkit import card
from toolkit.runtime import Predictor, available_providers, onnxfile

# Width of the labels in the text form ("model:", "providers:", ...).
_LABEL = 11


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


def to_lines(details: Mapping[str, Any]) -> list[str]:
    """`describe`'s facts as the lines `toolkit info` prints."""
    opsets = ", ".join(
        f"{domain or 'ai.onnx'} {version}" for domain, version in details["opsets"].items()
    )
    lines = [
        _line("model", f"{details['path']} ({details['size_bytes']:,} bytes)"),
        *(
            _line(key, f"{value['name']} {value['type']} {value['shape']}")
            for key in ("input", "output")
            for value in [details[key]]
        ),
        _line("features", ", ".join(details["feature_names"])),
        _line("targets", ", ".join(details["target_names"])),
        _line("opset", opsets),
        _line(
            "providers",
            f"using {details['provider']}; available " + ", ".join(details["available_providers"]),
        ),
    ]
    return lines + card_lines(details["metadata"])


def card_lines(metadata: Mapping[str, str]) -> list[str]:
    """The model card, one `key  value` line each, in toolkit's order (unknown keys last)."""
    if not metadata:
        return ["model card: none (names default to x0..xn)"]
    known = [key for key in card.KEYS if key in metadata]
    keys = known + sorted(set(metadata) - set(known))
    width = max(len(key) for key in keys)
    return ["model card:", *(f"  {key:<{width}}  {metadata[key]}" for key in keys)]


def _line(label: str, text: str) -> str:
    return f"{label + ':':<{_LABEL}} {text}"
