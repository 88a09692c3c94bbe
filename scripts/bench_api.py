"""Benchmark the Python API: LinearRegressor's fit and predict against their baselines.

    fit      LinearRegressor().fit(X, y) on a numpy array (1,000,000 x 100 float32), against
             the training path `toolkit train` runs (toolkit.train, exact solver) on the
             same data as an in-memory pyarrow Table (target: within 1.2x), and against
             scikit-learn's LinearRegression (target: at least 5x faster)
    predict  LinearRegressor.predict on 1 row against toolkit.runtime.Predictor.predict on
             the estimator's own export (target: within 2x); larger batches for information

The machine may be shared and noisy, so every figure is a ratio against a baseline timed
in the same run: each side takes the best of its repeats, and the repeats of all sides
are interleaved. A report, not a test: it exits 0 when a target is missed.

    .venv/bin/python scripts/bench_api.py            # full run, about 1 minute
    .venv/bin/python scripts/bench_api.py --quick    # smoke run, 100,000 rows
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import Row, finish, print_seconds, row, run_config, size_parser

SEED = 0
ESTIMATOR_FIT = "LinearRegressor().fit(X, y), numpy"
TRAIN_TABLE = "toolkit.train(table), in-memory pyarrow Table"
ESTIMATOR_TABLE = "LinearRegressor().fit(table, y)"
SKLEARN = "sklearn LinearRegression().fit(X, y)"
ESTIMATOR_PREDICT = "LinearRegressor.predict"
PREDICTOR = "Predictor.predict"
SAMPLE_SECONDS = 0.05  # each predict sample repeats the call for about this long


def make_data(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """X (rows, cols) float32 C-contiguous; y = X @ w + 1 + noise, float32 (as bench_train)."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    w = rng.standard_normal(cols, dtype=np.float32)
    noise = rng.standard_normal(rows, dtype=np.float32)
    return x, x @ w + np.float32(1.0) + np.float32(0.01) * noise


def best_of(sides: dict[str, Callable[[], Any]], repeats: int, caps: dict[str, int]) -> dict:
    """Best wall time of each side over interleaved rounds; `caps` limits slow sides."""
    best = {name: float("inf") for name in sides}
    for round_ in range(repeats):
        for name, fn in sides.items():
            if round_ < caps.get(name, repeats):
                gc.collect()
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def bench_fit(x: np.ndarray, y: np.ndarray, repeats: int, folder: Path) -> dict[str, Any]:
    import pyarrow as pa
    from sklearn.linear_model import LinearRegression

    import toolkit

    names = [f"x{j}" for j in range(x.shape[1])]
    table = pa.table({**{n: x[:, j] for j, n in enumerate(names)}, "y": y})  # off the clock
    features = table.drop_columns(["y"])
    fitted: dict[str, Any] = {}

    def train_table() -> None:
        fitted["train"] = toolkit.train(
            table, targets="y", val_fraction=0.0, device="cpu", out=folder / "bench.pt"
        )

    def estimator(data: Any, name: str) -> Callable[[], None]:
        def fit() -> None:
            fitted[name] = toolkit.LinearRegressor(device="cpu").fit(data, y)

        return fit

    def sklearn() -> None:
        fitted["sklearn"] = LinearRegression().fit(x, y)

    # Warm up off the clock: imports, torch's thread pool, BLAS, LAPACK lookups.
    toolkit.LinearRegressor(device="cpu").fit(x[:4096], y[:4096])
    LinearRegression().fit(x[:4096], y[:4096])
    sides = {
        TRAIN_TABLE: train_table,
        ESTIMATOR_FIT: estimator(x, "estimator"),
        ESTIMATOR_TABLE: estimator(features, "estimator on a table"),
        SKLEARN: sklearn,
    }
    seconds = best_of(sides, repeats, caps={SKLEARN: 2})  # seconds per fit: two rounds
    ours, theirs = fitted["estimator"], fitted["sklearn"]
    return {
        "seconds": seconds,
        "estimator_over_train_table": seconds[ESTIMATOR_FIT] / seconds[TRAIN_TABLE],
        "sklearn_over_estimator": seconds[SKLEARN] / seconds[ESTIMATOR_FIT],
        "max_abs_coef_diff_vs_sklearn": float(np.max(np.abs(ours.coef_ - theirs.coef_))),
        "model": ours,
    }


def bench_predict(model: Any, x: np.ndarray, repeats: int, folder: Path) -> dict[str, Any]:
    from toolkit.runtime import Predictor

    path = folder / "bench.onnx"
    model.export(path)
    predictor = Predictor(path, providers="cpu")
    report: dict[str, Any] = {}
    for rows in (1, 1000, len(x)):
        batch = np.ascontiguousarray(x[:rows])
        sides = {
            ESTIMATOR_PREDICT: lambda b=batch: model.predict(b),
            PREDICTOR: lambda b=batch: predictor.predict(b),
        }
        calls = {name: _calls(fn) for name, fn in sides.items()}
        best = {name: float("inf") for name in sides}
        for _ in range(repeats):
            for name, fn in sides.items():
                gc.collect()
                start = time.perf_counter()
                for _ in range(calls[name]):
                    fn()
                best[name] = min(best[name], (time.perf_counter() - start) / calls[name])
        got, want = model.predict(batch), predictor.predict(batch)[:, 0]
        report[f"{rows} rows"] = {
            "seconds_per_call": best,
            "estimator_over_predictor": best[ESTIMATOR_PREDICT] / best[PREDICTOR],
            "max_abs_diff": float(np.max(np.abs(got.astype(np.float64) - want))),
        }
    return report


def _calls(fn: Callable[[], Any]) -> int:
    start = time.perf_counter()
    fn()
    one = time.perf_counter() - start
    return max(1, min(20_000, round(SAMPLE_SECONDS / max(one, 1e-7))))


def summary_rows(report: dict[str, Any]) -> list[Row]:
    fit, predict = report["fit"], report["predict"]
    within, faster = fit["estimator_over_train_table"], fit["sklearn_over_estimator"]
    one = predict["1 rows"]["estimator_over_predictor"]
    rows = [
        row("fit: estimator / toolkit.train(table)", f"{within:.2f}x", "<= 1.2x", within <= 1.2),
        row("fit: sklearn / estimator", f"{faster:.1f}x", ">= 5x", faster >= 5),
        row("fit: max|coef| estimator vs sklearn", f"{fit['max_abs_coef_diff_vs_sklearn']:.1e}"),
        row("predict 1 row: estimator / Predictor", f"{one:.2f}x", "<= 2x", one <= 2),
    ]
    for key, value in predict.items():
        if key != "1 rows":
            ratio = value["estimator_over_predictor"]
            rows.append(row(f"predict {key}: estimator / Predictor", f"{ratio:.2f}x"))
    return rows


def main() -> int:
    parser = size_parser(__doc__)
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows

    report: dict[str, Any] = {"config": run_config(rows, args.cols, args.repeats, SEED)}

    x, y = make_data(rows, args.cols)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as folder:
        report["fit"] = bench_fit(x, y, args.repeats, Path(folder))
        print_seconds("fit (best of the rounds)", report["fit"]["seconds"])
        model = report["fit"].pop("model")
        report["predict"] = bench_predict(model, x, args.repeats, Path(folder))
    for key, value in report["predict"].items():
        per_call = {name: seconds * 1e6 for name, seconds in value["seconds_per_call"].items()}
        print_seconds(f"predict, {key} (microseconds per call)", per_call)
    return finish(report, summary_rows(report), args.json)


if __name__ == "__main__":
    sys.exit(main())
