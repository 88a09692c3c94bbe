"""The --explain part of scripts/bench_runtime.py: one-row `explain()` against `predict()`.

`explain()` on the --explain model against `predict()` on the plain one (target: within
2x, issue 13), `predict()` on the --explain model (its graph pruned to the prediction),
and what bounds explain(): onnxruntime alone running the whole explain graph for the same
row, through an IOBinding with the row bound once and the outputs copied out in one call
(no toolkit code). Run through bench_runtime.py, which trains the models.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_runtime import (
    PREDICT,
    SEED,
    TARGETS,
    WIDE_ROWS,
    calls_per_sample,
    interleave,
    uniform_rows,
)
from benchlib import ROOT, Row, row

# --explain models (bench_explain): explain() against predict() on the plain model.
EXPLAIN = "predictor.explain, --explain model"
PREDICT_EXPLAIN_MODEL = "predictor.predict, --explain model"
# What bounds explain(), one row: onnxruntime alone (no toolkit code) running the whole
# explain graph through an IOBinding, the row bound once, its outputs copied out in one call.
EXPLAIN_FLOOR = "explain graph's IOBinding run + output copy, onnxruntime alone"


def make_explain_model(folder: Path, features: int | None) -> Path:
    """The same model exported with --explain: folder/seed-explain.onnx or wide-explain.onnx.

    Trained on every row (no validation split) by tests/explain_models.py."""
    sys.path.insert(0, str(ROOT / "tests"))
    from explain_models import exported, trained

    if features is None:
        table = np.loadtxt(ROOT / "toolkit" / "datasets" / "seed.csv", delimiter=",", skiprows=1)
        x, y, stem = table[:, :-1], table[:, -1:], "seed-explain"
    else:
        rng = np.random.default_rng(SEED)
        x = rng.standard_normal((WIDE_ROWS, features))
        y = (
            x @ rng.standard_normal((features, 1))
            + 1.0
            + 0.01 * rng.standard_normal((WIDE_ROWS, 1))
        )
        stem = "wide-explain"
    return exported(trained(folder, x, y, dtype="float32", name=stem))


def bench_explain(plain: Path, explained: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One row (and a batch of 4096): explain() on the --explain model against predict() on
    the plain one, and predict() on the --explain model (its pruned graph)."""
    from toolkit.runtime import Predictor

    base = Predictor(plain, providers="cpu", intra_op_threads=args.threads)
    full = Predictor(explained, providers="cpu", intra_op_threads=args.threads)
    rng = np.random.default_rng(SEED)
    report: dict[str, Any] = {"features": base.n_features}
    for rows in (1, 4096):
        x = uniform_rows(rng, rows, base.n_features)
        if not np.array_equal(full.explain(x).prediction, full.predict(x)):
            raise RuntimeError(f"{rows} rows: explain() and predict() disagree")
        sides = {
            PREDICT: lambda x=x: base.predict(x),
            EXPLAIN: lambda x=x: full.explain(x),
            PREDICT_EXPLAIN_MODEL: lambda x=x: full.predict(x),
        }
        if rows == 1:
            sides[EXPLAIN_FLOOR] = _bound_run(explained, x, args.threads)
        calls = args.calls if rows == 1 else calls_per_sample(sides[PREDICT], args.calls)
        seconds = interleave(sides, args.repeats, calls)
        report["row" if rows == 1 else f"batch {rows}"] = {
            "rows": rows,
            "seconds_per_call": seconds,
            "explain_over_predict": seconds[EXPLAIN] / seconds[PREDICT],
            "pruned_predict_over_predict": seconds[PREDICT_EXPLAIN_MODEL] / seconds[PREDICT],
        }
        if rows == 1:
            report["row"]["floor_over_predict"] = seconds[EXPLAIN_FLOOR] / seconds[PREDICT]
    return report


def _bound_run(path: Path, x: np.ndarray, threads: int | None) -> Callable[[], Any]:
    """onnxruntime alone, every output of the graph at `path` for the row `x`: a run through
    an IOBinding whose input is bound once, and the outputs copied out in one call."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    binding = session.io_binding()
    binding.bind_ortvalue_input(session.get_inputs()[0].name, ort.OrtValue.ortvalue_from_numpy(x))
    for output in session.get_outputs():
        binding.bind_output(output.name, "cpu")

    def run() -> Any:
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    return run


def explain_rows(report: dict[str, Any]) -> list[Row]:
    rows = []
    for label, model in report.get("explain", {}).items():
        for key, figures in model.items():
            if not isinstance(figures, dict):
                continue
            what = "1 row" if key == "row" else f"{figures['rows']:,} rows"
            ratio = figures["explain_over_predict"]
            target = TARGETS["explain"] if key == "row" else None
            verdict = (f"<= {target}x", ratio <= target) if target else ("-", None)
            rows.append(row(f"{label}, {what}: explain / predict", f"{ratio:.2f}x", *verdict))
            if "floor_over_predict" in figures:
                floor = f"{figures['floor_over_predict']:.2f}x"
                rows.append(
                    row(f"{label}, 1 row: onnxruntime alone (explain graph) / predict", floor)
                )
            pruned = figures["pruned_predict_over_predict"]
            rows.append(row(f"{label}, {what}: predict, --explain model / plain", f"{pruned:.2f}x"))
    return rows
