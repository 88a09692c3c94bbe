"""`toolkit info`: what an ONNX model is, from the runtime's point of view (no torch, no onnx).

`describe` gathers the facts as plain data (what `toolkit info --json` prints); `to_lines`
words them for a terminal. The equation is read from the weights stored in the file
(weights.py), in training's format (toolkit.equations). The model card is shown in the
order toolkit writes it (toolkit.card.KEYS), then any other keys a foreign file carries,
sorted; a card that is not UTF-8 is shown with replacement characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolkit import card
from toolkit.coefficients import table_lines
from toolkit.columns import TablePlan
from toolkit.equations import equations
from toolkit.errors import ModelLoadError
from toolkit.runtime import Predictor, available_providers, onnxfile
from toolkit.runtime.table_model import describe_columns
from toolkit.runtime.weights import linear_weights

# Width of the labels in the text form ("model:", "providers:", ...).
_LABEL = 11
NO_EQUATION = (
    "not shown (toolkit reads it from one Gemm, or MatMul + Add, on the input with weights "
    "stored in the file)"
)


TABLE_EQUATION = (
    "not shown for a table model (its encoding is in the graph); the coefficients are "
    "named by encoded column in `features` and the inference table"
)


def table_details(plan: TablePlan) -> dict[str, Any]:
    """A table model's raw inputs (kinds, levels, fills) and policies, as plain data."""
    return {
        "columns": describe_columns(plan),
        "missing": plan.missing,
        "na_values": list(plan.na_values),
        "max_levels": plan.max_levels,
        "unknown_level": plan.unknown_level,
    }


def input_lines(table: Mapping[str, Any]) -> list[str]:
    """One `inputs:` line per raw column (kind, levels, what a missing value becomes),
    then the policies."""
    lines = []
    for i, column in enumerate(table["columns"]):
        text = f"{column['name']}: {column['kind']} ({column['raw_type']})"
        if column["levels"] is not None:
            text += f", {column['levels']} level{'s' if column['levels'] != 1 else ''}"
            if column["folded"]:
                text += f" + {column['folded']} sharing '(other)'"
        if column["fill"] is None:
            text += ", a missing value is refused"
        else:
            text += f", missing -> {column['fill']!r}"
            text += " with an indicator" if column["indicator"] else ""
        lines.append(_line("inputs" if i == 0 else "", text))
    tokens = ", ".join(repr(t) for t in table["na_values"]) or "none"
    lines.append(
        _line(
            "table",
            f"--missing {table['missing']}, na-values {tokens}, unknown levels: "
            f"{table['unknown_level']}",
        )
    )
    return lines


def describe(predictor: Predictor) -> dict[str, Any]:
    """Signature, model card, opsets, file size, equations, and the providers available vs
    used (`provider` is the one onnxruntime runs, not the one asked for)."""
    data = onnxfile.read_model(predictor.path)
    try:
        parsed = onnxfile.parse(data)
    except ValueError as error:  # the file changed since the Predictor loaded it
        raise ModelLoadError(
            f"{str(predictor.path)!r} is not a readable ONNX model any more: {error}."
        ) from error
    session = predictor.session
    inputs, outputs = (
        [{"name": v.name, "type": v.type, "shape": list(v.shape)} for v in values]
        for values in (session.get_inputs(), session.get_outputs())
    )
    table = predictor.table
    return {
        "path": str(predictor.path),
        "size_bytes": len(data),
        # A table model has one input per raw column ("inputs", "table"): "input" is None.
        "input": inputs[0] if table is None else None,
        "output": outputs[0],
        **({} if table is None else {"inputs": inputs, "outputs": outputs}),
        "table": None if table is None else table_details(table),
        "explain_outputs": explain_outputs(predictor),
        "feature_names": list(predictor.feature_names),
        "target_names": list(predictor.target_names),
        "dtype": str(predictor.dtype),
        "opsets": dict(sorted(parsed.opsets.items())),
        "ir_version": parsed.ir_version,
        "provider": predictor.provider,
        "available_providers": available_providers(),
        "metadata": dict(predictor.metadata),
        "inference": _inference(predictor.metadata),
        **_weights(predictor, data),
    }


def explain_outputs(predictor: Predictor) -> list[dict[str, Any]]:
    """The outputs of `toolkit export --explain` after the prediction ([] for other models)."""
    explainer = predictor._explainer
    if explainer is None:
        return []
    shown = {v.name: v for v in explainer.session.get_outputs()}
    return [
        {"name": name, "type": shown[name].type, "shape": list(shown[name].shape)}
        for name in predictor.explain_outputs
    ]


def _explain_line(details: Mapping[str, Any]) -> list[str]:
    """`explain:` with the outputs, the interval's level and t (from the card), if any."""
    outputs = details.get("explain_outputs")
    if not outputs:
        return []
    text = ", ".join(f"{o['name']} {o['type']} {o['shape']}" for o in outputs)
    entry = card.decode(details["metadata"]).get(card.EXPLAIN)
    interval = entry.get("interval") if isinstance(entry, dict) else None
    if isinstance(interval, dict) and all(
        isinstance(interval.get(k), int | float) for k in ("level", "t_quantile", "df")
    ):
        text += (
            f"; {interval['level']:.4g} prediction interval, t = {interval['t_quantile']:.6g} "
            f"on {interval['df']} df"
        )
    return [_line("explain", text)]


def _inference(metadata: Mapping[str, str]) -> dict[str, Any] | None:
    """The card's compact statistical inference, decoded; None when absent or unreadable."""
    value = (
        card.decode({card.INFERENCE: metadata[card.INFERENCE]}).get(card.INFERENCE)
        if card.INFERENCE in metadata
        else None
    )
    return value if isinstance(value, dict) and isinstance(value.get("targets"), list) else None


def _weights(predictor: Predictor, data: bytes) -> dict[str, Any]:
    """{"equations": [...], "weight": [[...]], "bias": [...] or None}, or all None."""
    if predictor.input_name is None:  # a table model: no Gemm on one input to read
        return {"equations": None, "weight": None, "bias": None}
    try:
        found = linear_weights(
            data,
            predictor.input_name,
            predictor.output_name,
            predictor.n_features,
            predictor.n_targets,
        )
    except ValueError:  # a name that is not UTF-8 text: not a graph weights.py recognises
        found = None
    if found is None:
        return {"equations": None, "weight": None, "bias": None}
    weight, bias = found
    lines = equations(predictor.feature_names, predictor.target_names, weight, bias)
    return {
        "equations": lines,
        "weight": weight.tolist(),
        "bias": None if bias is None else bias.tolist(),
    }


def to_lines(details: Mapping[str, Any]) -> list[str]:
    """`describe`'s facts as the lines `toolkit info` prints."""
    opsets = ", ".join(
        f"{domain or 'ai.onnx'} {version}" for domain, version in details["opsets"].items()
    )
    table = details.get("table")
    shown = ("input", "output") if table is None else ("output",)
    lines = [
        _line("model", f"{details['path']} ({details['size_bytes']:,} bytes)"),
        *(input_lines(table) if table is not None else []),
        *(
            _line(key, f"{value['name']} {value['type']} {value['shape']}")
            for key in shown
            for value in [details[key]]
        ),
        *_explain_line(details),
        _line("features", ", ".join(details["feature_names"])),
        _line("targets", ", ".join(details["target_names"])),
        _line("opset", opsets),
        _line(
            "providers",
            f"using {details['provider']}; available " + ", ".join(details["available_providers"]),
        ),
    ]
    if table is None or details.get("equations"):
        lines += equation_lines(details.get("equations"))
    else:
        lines.append(_line("equation", TABLE_EQUATION))
    inference = details.get("inference")
    lines += card_lines(details["metadata"], inference is not None, table is not None)
    return lines + (["inference:", *table_lines(inference)] if inference is not None else [])


def equation_lines(lines: list[str] | None) -> list[str]:
    """One `equation:` line per target, or why none is shown."""
    if not lines:
        return [_line("equation", NO_EQUATION)]
    return [_line("equation" if i == 0 else "", line) for i, line in enumerate(lines)]


def card_lines(
    metadata: Mapping[str, str], table_below: bool = False, inputs_above: bool = False
) -> list[str]:
    """The model card, one `key  value` line each, in toolkit's order (unknown keys last).

    With `table_below`, the inference (a long JSON value) is named, not repeated; with
    `inputs_above`, so is the table plan.
    """
    if not metadata:
        return ["model card: none (names default to x0..xn)"]
    known = [key for key in (*card.KEYS, *card.OPTIONAL_KEYS) if key in metadata]
    keys = known + sorted(set(metadata) - set(known))
    width = max(len(key) for key in keys)
    values = dict(metadata)
    if table_below and card.INFERENCE in values:
        size = len(values[card.INFERENCE].encode())
        values[card.INFERENCE] = f"(JSON, {size:,} bytes: the table below; --json has it all)"
    if inputs_above and card.TABLE in values:
        size = len(values[card.TABLE].encode())
        values[card.TABLE] = f"(JSON, {size:,} bytes: the inputs above; --json has it all)"
    return ["model card:", *(f"  {key:<{width}}  {values[key]}" for key in keys)]


def _line(label: str, text: str) -> str:
    return f"{label + ':' if label else '':<{_LABEL}} {text}"
