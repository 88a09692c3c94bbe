"""A linear model as text: one `y = 1.0000*x1 + 1.0000*x2 - 1.0000` line per target.

Standard library only: training prints these lines from the fitted weights
(training/model.py) and `toolkit info` from the weights in the ONNX file (runtime/info.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def equations(
    feature_names: Sequence[str],
    target_names: Sequence[str],
    weight: Any,
    bias: Any | None,
    max_terms: int = 12,
) -> list[str]:
    """One line per target; `weight` is (n_targets, n_features), `bias` (n_targets,) or None.

    Beyond `max_terms` features, the first `max_terms - 1` terms are shown and the rest
    counted.
    """
    lines = []
    for t, target in enumerate(target_names):
        terms = [(float(w), name) for w, name in zip(weight[t], feature_names, strict=True)]
        shown = terms if len(terms) <= max_terms else terms[: max_terms - 1]
        text = f"{target} ="
        for i, (w, name) in enumerate(shown):
            sign = ("-" if w < 0 else "") if i == 0 else (" - " if w < 0 else " + ")
            text += f"{' ' if i == 0 else ''}{sign}{number(abs(w))}*{name}"
        if len(shown) < len(terms):
            text += f" + ... ({len(terms) - len(shown)} more terms; see --json)"
        if bias is not None:
            b = float(bias[t])
            text += f" {'-' if b < 0 else '+'} {number(abs(b))}"
        lines.append(text)
    return lines


def number(value: float) -> str:
    """Four decimals read best; tiny or huge values need an exponent to keep their digits."""
    if value == 0 or 1e-3 <= value < 1e7:
        return f"{value:.4f}"
    return f"{value:.4e}"
