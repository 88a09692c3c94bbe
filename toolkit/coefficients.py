"""The coefficient table of a fit's statistical inference, as statsmodels' summary shows it.

Standard library only: `toolkit train` and `toolkit info model.pt` print it from the
checkpoint's inference (toolkit.training.inference), and `toolkit info model.onnx` from
the model card's compact form (`compact`, written by toolkit export), without torch.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

# Rows shown per target and targets shown: a wide model's table stays readable; the
# --json output (and the checkpoint) carries every coefficient.
MAX_ROWS = 20
MAX_TARGETS = 4
# The term column's width: long feature names are cut to it.
TERM_WIDTH = (11, 24)
_CELL = 11  # width of a number column, the gap before it included
NOTE_WIDTH = 92  # the notes under the table are wrapped to this

# What the model card keeps: enough to read the table and judge the fit.
_COMPACT_TOP = ("alpha", "n", "df_model", "df_resid", "l2", "solver", "condition_number")
_COMPACT_TARGET = ("name", "r2", "r2_adj", "rse", "f", "f_pvalue", "aic", "bic")
_COMPACT_COEFFICIENT = ("term", "estimate", "stderr", "p")


def strict(value: Any) -> Any:
    """`value` with every non-finite float as None: what strict JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def compact(inference: Mapping[str, Any]) -> dict[str, Any]:
    """The model card's form: per target the fit's figures, per coefficient estimate,
    standard error and p-value (strict JSON: None where not defined)."""
    df_resid = inference.get("df_resid")
    targets = [
        {
            **{key: target.get(key) for key in _COMPACT_TARGET},
            "df_resid": df_resid,
            "coefficients": [
                {key: row.get(key) for key in _COMPACT_COEFFICIENT}
                for row in target.get("coefficients", [])
            ],
        }
        for target in inference.get("targets", [])
    ]
    top = {key: inference.get(key) for key in _COMPACT_TOP}
    return strict({**top, "notes": list(inference.get("notes", [])), "targets": targets})


def table_lines(inference: Mapping[str, Any], max_rows: int = MAX_ROWS) -> list[str]:
    """The coefficient table of each target, then the fit's figures and the notes.

    Reads the checkpoint's full form or the card's compact one (which has no intervals:
    those columns are left out, and t is estimate / std err).
    """
    targets = _mappings(inference.get("targets"))
    lines: list[str] = []
    for target in targets[:MAX_TARGETS]:
        lines += [*(("",) if lines else ()), *_target_lines(inference, target, max_rows)]
    if len(targets) > MAX_TARGETS:
        lines.append(f"  ... {len(targets) - MAX_TARGETS} more targets; see --json")
    notes = inference.get("notes")
    for i, note in enumerate(notes if isinstance(notes, list) else [], start=1):
        lines += textwrap.wrap(
            str(note), NOTE_WIDTH, initial_indent=f"  [{i}] ", subsequent_indent="      "
        )
    return lines


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    """The dictionaries of a list (a foreign model card may hold anything)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _target_lines(
    inference: Mapping[str, Any], target: Mapping[str, Any], max_rows: int
) -> list[str]:
    rows = _mappings(target.get("coefficients"))
    alpha = inference.get("alpha")
    intervals = bool(rows) and "lower" in rows[0] and _is_number(alpha) and 0 < alpha < 1
    width = min(max([TERM_WIDTH[0], *(len(str(r.get("term", ""))) for r in rows)]), TERM_WIDTH[1])
    header = ["coef", "std err", "t", "P>|t|"]
    if intervals:
        header += [f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"]
    level = f"; {100 * (1 - alpha):g}% intervals" if intervals else ""
    lines = [
        f"  {target.get('name')}: least squares on {_count(inference.get('n'))} rows{level}",
        f"  {'term':<{width}} " + "".join(f"{h:>{_CELL}}" for h in header),
    ]
    for row in rows[:max_rows]:
        term = str(row.get("term", ""))
        if len(term) > width:
            term = term[: width - 3] + "..."
        cells = [row.get("estimate"), row.get("stderr"), _t(row), row.get("p")]
        if intervals:
            cells += [row.get("lower"), row.get("upper")]
        lines.append(
            f"  {term:<{width}} "
            + "".join(f"{_number(v, i == 3):>{_CELL}}" for i, v in enumerate(cells))
        )
    if len(rows) > max_rows:
        lines.append(f"  ... {len(rows) - max_rows} more coefficients; see --json")
    return lines + _figures(inference, target, rows)


def _figures(
    inference: Mapping[str, Any], target: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The fit's figures under its table, in two lines, as statsmodels' summary has them."""
    f = f"F {_number(target.get('f'))}"
    if target.get("f") is not None:
        f += f" (p {_number(target.get('f_pvalue'), True)})"
    df = target.get("df_resid", inference.get("df_resid"))
    first = [
        f"R^2 {_number(target.get('r2'))}",
        f"adj. R^2 {_number(target.get('r2_adj'))}",
        f,
        f"RSE {_number(target.get('rse'))} on {_count(df)} df",
    ]
    second = []
    if "loglik" in target:
        second.append(f"log-likelihood {_number(target.get('loglik'))}")
    second += [f"AIC {_number(target.get('aic'))}", f"BIC {_number(target.get('bic'))}"]
    second.append(f"cond. no. {_number(inference.get('condition_number'))}")
    vifs = [(r["vif"], r.get("term")) for r in rows if _is_number(r.get("vif"))]
    if vifs:
        largest, term = max(vifs, key=lambda pair: pair[0])
        second.append(f"largest VIF {_number(largest)} ({term})")
    return ["  " + ", ".join(first), "  " + ", ".join(second)]


def _t(row: Mapping[str, Any]) -> float | None:
    if "t" in row:
        return row["t"]
    estimate, stderr = row.get("estimate"), row.get("stderr")
    if not _is_number(estimate) or not _is_number(stderr):
        return None
    if stderr == 0:
        return math.copysign(math.inf, estimate) if estimate else None
    return estimate / stderr


def _number(value: Any, probability: bool = False) -> str:
    """Four significant digits (three for a p-value); n/a where not defined."""
    if not _is_number(value) or math.isnan(value):
        return "n/a"
    if math.isinf(value) or value == 0:
        return f"{value:g}"
    text = f"{value:#.3g}" if probability else f"{value:#.4g}"  # keeps trailing zeros
    return text.removesuffix(".")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"
