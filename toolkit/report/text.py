"""`--format json` (strict JSON: NaN and infinity become null) and `--format text`."""

from __future__ import annotations

import json
import math
from typing import Any

from toolkit.coefficients import strict
from toolkit.report.build import Report, coefficient_rows, parity_line

# The coefficient table's columns: (key, heading, format).
COLUMNS = (
    ("estimate", "estimate", ".6g"),
    ("stderr", "std err", ".4g"),
    ("t", "t", ".3f"),
    ("p", "P>|t|", ".3g"),
    ("lower", "lower", ".6g"),
    ("upper", "upper", ".6g"),
    ("vif", "VIF", ".3g"),
    ("HC0", "HC0 se", ".4g"),
    ("HC1", "HC1 se", ".4g"),
    ("HC3", "HC3 se", ".4g"),
)
WIDTH = 12


def to_json(report: Report) -> str:
    """The report's content as strict JSON (indented)."""
    return json.dumps(strict(report.content), indent=2, allow_nan=False) + "\n"


def cell(value: Any, spec: str = ".6g") -> str:
    """A number as the tables show it; "n/a" for None or non-finite."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return format(value, spec)


def to_text(report: Report) -> str:
    """A plain-text report: model, fit, coefficient table, diagnostics, loss, parity, notes."""
    content = report.content
    lines = [f"toolkit report: {content['checkpoint']}", ""]
    lines += _model_lines(content["model"])
    for j, name in enumerate(content["model"]["targets"]):
        lines += ["", f"target {name}"]
        lines += _fit_lines(content, j)
        lines += coefficient_table(coefficient_rows(content, j))
        lines += _diagnostic_lines(content, j)
    lines += _history_lines(content)
    if content["onnx"] is not None:
        lines += ["", f"ONNX model {content['onnx']['path']}: {parity_line(content['onnx'])}"]
    if content["notes"]:
        lines += ["", "notes:", *(f"  - {note}" for note in content["notes"])]
    return "\n".join(lines) + "\n"


def _model_lines(model: dict[str, Any]) -> list[str]:
    data = model["data"]
    lines = [f"  {line}" for line in model["equations"]]
    lines.append(
        f"  solver {model['solver']}, {model['dtype']}, seed {model['seed']}; trained on "
        f"{data.get('train_rows', 0):,} rows of {data.get('source')} "
        f"({data.get('val_rows', 0):,} validation rows)"
    )
    for split in ("train", "val"):
        metrics = model["metrics"].get(split)
        if metrics:
            values = ", ".join(f"{k} {cell(metrics.get(k))}" for k in ("mse", "rmse", "mae", "r2"))
            lines.append(f"  {split}: {values}")
    return lines


def _fit_lines(content: dict[str, Any], j: int) -> list[str]:
    inference = content["inference"]
    if inference is None:
        return []
    fit = inference["targets"][j]
    level = 1 - inference["alpha"]
    return [
        f"  n {inference['n']:,}, df_model {inference['df_model']}, df_resid "
        f"{inference['df_resid']}, {level:.0%} intervals",
        f"  R^2 {cell(fit['r2'])}, adj. R^2 {cell(fit['r2_adj'])}, F {cell(fit['f'])} "
        f"(p {cell(fit['f_pvalue'], '.3g')}), residual std error {cell(fit['rse'])}",
        f"  log-likelihood {cell(fit['loglik'])}, AIC {cell(fit['aic'])}, BIC "
        f"{cell(fit['bic'])}, condition number {cell(inference['condition_number'], '.3g')}",
    ]


def coefficient_table(rows: list[dict[str, Any]]) -> list[str]:
    """The coefficient rows as aligned text, with only the columns some row has."""
    shown = [c for c in COLUMNS if any(row.get(c[0]) is not None for row in rows)]
    width = max([len("term"), *(len(row["term"]) for row in rows)]) + 2
    head = f"  {'term':<{width}}" + "".join(f"{h:>{WIDTH}}" for _, h, _ in shown)
    body = [
        f"  {row['term']:<{width}}"
        + "".join(f"{cell(row.get(k), f):>{WIDTH}}" for k, _, f in shown)
        for row in rows
    ]
    return ["", head, *body]


def _diagnostic_lines(content: dict[str, Any], j: int) -> list[str]:
    diagnostics = content["diagnostics"]
    if diagnostics is None:
        return []
    target = diagnostics["targets"][j]
    jb = target["jarque_bera"]
    return [
        "",
        f"  residuals of {diagnostics['rows']:,} rows of {diagnostics['source']}"
        f"{' (the training rows)' if diagnostics['training_rows'] else ''}: mean "
        f"{cell(target['residual_mean'], '.4g')}, std {cell(target['residual_std'], '.4g')}",
        f"  Durbin-Watson {cell(target['durbin_watson'], '.4f')}; Jarque-Bera "
        f"{cell(jb['statistic'], '.4g')} (p {cell(jb['pvalue'], '.3g')}), skew "
        f"{cell(jb['skew'], '.4f')}, kurtosis {cell(jb['kurtosis'], '.4f')}",
    ]


def _history_lines(content: dict[str, Any]) -> list[str]:
    history = content["history"]
    if not history or not history.get("train"):
        return []
    train = history["train"]
    line = (
        f"loss per epoch ({len(train) - 1} epochs, standardized): train {cell(train[0], '.4g')} -> "
        f"{cell(train[-1], '.4g')}"
    )
    if history.get("val"):
        line += (
            f", validation {cell(history['val'][0], '.4g')} -> {cell(history['val'][-1], '.4g')}"
        )
    return ["", line]
