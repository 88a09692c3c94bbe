"""`make_report`: gather the checkpoint, the ONNX model and the data pass into one record.

The record (`Report.content`) is plain data, what `--format json` prints; the HTML and
text forms are drawn from it, plus the pass's row sample for the plots.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.equations import equations
from toolkit.report.inputs import Exported, Fitted, load_checkpoint, load_model
from toolkit.report.scan import Scanned, scan

FORMAT = "toolkit.report"
FORMAT_VERSION = 1
INTERCEPT_TERM = "(intercept)"  # the inference table's name for the intercept


@dataclass
class Report:
    """The report's content (plain data) and what its plots are drawn from."""

    content: dict[str, Any]
    fitted: Fitted
    exported: Exported | None
    scanned: Scanned | None


def make_report(
    checkpoint: str | Path,
    data: str | Path | None = None,
    model: str | Path | None = None,
    *,
    chunk_rows: int,
    sample_rows: int,
    progress: bool = False,
    draw: bool = False,
) -> Report:
    """Read the checkpoint (and the ONNX model, and one pass over `data`) into a Report.

    `draw`: the plots will be drawn, so matplotlib is loaded while the data are read.
    """
    import toolkit

    fitted = load_checkpoint(checkpoint)
    exported = load_model(model, fitted) if model is not None else None
    scanned = None
    if data is not None:
        with _loading(["scipy.stats", *(["toolkit.report.plots"] if draw else [])], draw):
            scanned = scan(fitted, data, chunk_rows, sample_rows, progress)
    content = {
        "report": {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "toolkit": toolkit.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "checkpoint": str(fitted.path),
        "model": model_section(fitted),
        "inference": fitted.inference,
        "history": fitted.history,
        "diagnostics": None if scanned is None else diagnostics_section(fitted, scanned),
        "onnx": None if exported is None else onnx_section(exported),
        "notes": list(fitted.notes),
    }
    if fitted.inference is None:
        content["notes"].append(
            "the checkpoint has no inference table (standard errors, p-values, intervals, "
            "and the leverage robust standard errors need): it was written before toolkit "
            "computed one; retrain to get it."
        )
    if scanned is not None:
        content["notes"] += content["diagnostics"]["notes"]
    return Report(content, fitted, exported, scanned)


@contextlib.contextmanager
def _loading(modules: list[str], draw: bool) -> Iterator[None]:
    """Import `modules` (and warm matplotlib's fonts) in a thread while the block runs: the
    pass waits on pyarrow and numpy, which release the GIL, so the imports come for free."""

    def load() -> None:
        with contextlib.suppress(ImportError):  # reported where the module is needed
            for name in modules:
                importlib.import_module(name)
            if draw:
                from toolkit.report.plots import warm

                warm()

    thread = threading.Thread(target=load, name="toolkit-report-imports", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def terms(fitted: Fitted) -> list[str]:
    """The coefficients' names in the inference table's order."""
    return ([INTERCEPT_TERM] if fitted.intercept else []) + list(fitted.feature_names)


def model_section(fitted: Fitted) -> dict[str, Any]:
    """The model card: what the model is, how and on what it was trained, how well."""
    known = ("solver", "hyperparameters", "seed", "device")
    return {
        "features": fitted.feature_names,
        "targets": fitted.target_names,
        "dtype": fitted.dtype,
        "intercept": fitted.intercept,
        "equations": equations(
            fitted.feature_names,
            fitted.target_names,
            fitted.weight,
            fitted.bias if fitted.intercept else None,
            max_terms=10**9,
        ),
        "weights": fitted.weight.tolist(),
        "bias": fitted.bias.tolist(),
        "solver": fitted.training.get("solver"),
        "hyperparameters": fitted.training.get("hyperparameters"),
        "seed": fitted.seed,
        "device": fitted.training.get("device"),
        "details": {k: v for k, v in fitted.training.items() if k not in known},
        "data": fitted.data,
        "metrics": fitted.metrics,
        "optimality_gap": fitted.optimality_gap,
        "versions": fitted.versions,
        "created": fitted.created,
    }


def diagnostics_section(fitted: Fitted, scanned: Scanned) -> dict[str, Any]:
    """The residual diagnostics of the pass over --data."""
    from toolkit.report import robust

    inference = fitted.inference
    n_fit = int(inference["n"]) if inference else int(fitted.data.get("train_rows") or 0)
    found = robust.summary(scanned.sums, inference, n_fit)
    for name, target in zip(fitted.target_names, found["targets"], strict=True):
        target["name"] = name
    return {
        "source": scanned.source,
        "held_out_rows": scanned.held_out_rows,
        "sample_rows": len(scanned.sums.sample.rows),
        "max_leverage": scanned.sums.max_leverage if scanned.sums.inverse is not None else None,
        "terms": terms(fitted),
        **found,
    }


def onnx_section(exported: Exported) -> dict[str, Any]:
    """The ONNX file: its model card, parity summary and whether it holds these weights."""
    return {
        "path": str(exported.path),
        "size_bytes": exported.size_bytes,
        "provider": exported.provider,
        "weights_match": exported.weights_match,
        "parity": exported.parity,
        "card": exported.card,
    }


def coefficient_rows(content: dict[str, Any], target: int) -> list[dict[str, Any]]:
    """One row per coefficient of `target`: the inference table's columns (estimate,
    stderr, t, p, lower, upper, vif; None where undefined), plus HC0/HC1/HC3 with --data."""
    inference, model = content["inference"], content["model"]
    if inference is not None:
        rows = [dict(row) for row in inference["targets"][target]["coefficients"]]
    else:
        estimates = model["weights"][target]
        names = list(model["features"])
        if model["intercept"]:
            names, estimates = [INTERCEPT_TERM, *names], [model["bias"][target], *estimates]
        rows = [
            {"term": name, "estimate": value} for name, value in zip(names, estimates, strict=True)
        ]
    diagnostics = content["diagnostics"]
    robust = diagnostics["targets"][target]["robust_stderr"] if diagnostics else None
    for kind, values in (robust or {}).items():
        for row, value in zip(rows, values, strict=True):
            row[kind] = value
    return rows


def parity_line(onnx: dict[str, Any]) -> str:
    """The parity gate's verdict in one sentence."""
    parity = onnx.get("parity")
    if not parity:
        return "the model card has no parity record (not exported by toolkit export?)"
    if parity.get("skipped"):
        return f"parity gate skipped at export ({parity.get('reason', 'no reason recorded')})"
    providers = parity.get("providers") or {}
    worst = max((p.get("max_abs_diff") or 0.0 for p in providers.values()), default=0.0)
    verdict = "passed" if parity.get("passed") else "FAILED"
    return (
        f"parity {verdict} on {', '.join(providers) or 'no provider'}: largest |onnx - torch| "
        f"{worst:.3g} (allowed atol {parity.get('atol')} + rtol {parity.get('rtol')} x scale)"
    )
