"""Benchmark the exact solver, the CSV reader and `toolkit --help` against baselines.

The machine may be shared and noisy, so every figure is a ratio against a baseline timed
in the same run: each side takes the best (minimum) of its repeats, and the repeats of
baseline and candidate are interleaved so that a slow spell hits both. This is a report,
not a test: it exits 0 when a target is missed, non-zero only when something crashes.

The exact solver's baselines are numpy normal equations with an intercept column on the
same float32 array: "numpy A" in float32 (what a user's one-liner does: 2e-5 off the
float64 solution here) and "numpy A64" in float64 (toolkit's own precision, like for
like). toolkit's answer is float64-exact either way, so both ratios are reported.

    .venv/bin/python scripts/bench_train.py --quick              # smoke run, 100k rows
    .venv/bin/python scripts/bench_train.py --json bench.json    # full run, a few minutes
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import ROOT, Row, finish, print_seconds, row, run_config, size_parser

from toolkit.defaults import CHUNK_ROWS
from toolkit.io import load_dataset
from toolkit.training import exact
from toolkit.training.halves import THREADS
from toolkit.training.plain_gram import one_blas_thread

SEED = 0
# Fresh interpreter: run the CLI's help in-process, then say whether torch got imported.
TORCH_PROBE = """
import sys
from toolkit.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="toolkit", standalone_mode=False)
except SystemExit:
    pass
print("torch-loaded=" + str("torch" in sys.modules), file=sys.stderr)
"""
# Fresh interpreter running `toolkit train ARGS`, with the inference step ("on") or with it
# replaced by nothing ("off": neither its work nor its scipy import happens).
TRAIN_PROBE = """
import sys
if sys.argv[1] == "off":
    from toolkit.training import inference
    inference.of_run = lambda *args: None
from toolkit.cli import cli
cli.main(["train", *sys.argv[2:]], prog_name="toolkit")
"""
# Fresh interpreter that only loads the CSV: the benchmark process holds other data.
MEMORY_PROBE = """
import json, resource, sys
from toolkit.io import load_dataset
ds = load_dataset(sys.argv[1])
try:
    import psutil
    rss = psutil.Process().memory_info().rss
except ImportError:
    rss = None
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
print(json.dumps({"rss_after_load": rss, "peak_rss": peak, "table_bytes": ds.table.nbytes}))
"""


def python(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run a fresh interpreter from the repository root; raise if it fails."""
    run = [sys.executable, *argv]
    return subprocess.run(run, cwd=ROOT, capture_output=True, text=True, check=True)


def interleave(
    sides: dict[str, Callable[[], Any]], repeats: int, caps: dict[str, int] | None = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Best wall time of each side over rounds (a b c, a b c, ...), and each side's result.

    `caps` gives slow sides fewer rounds (they run in the first rounds only).
    """
    best = {name: float("inf") for name in sides}
    results: dict[str, Any] = {}
    for round_ in range(repeats):
        for name, fn in sides.items():
            if round_ < (caps or {}).get(name, repeats):
                results.pop(name, None)  # free the previous result before timing again
                gc.collect()
                start = time.perf_counter()
                results[name] = fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def make_data(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """X (rows, cols) float32 C-contiguous; y = X @ w + 1 + noise, float32, shape (rows,)."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    w = rng.standard_normal(cols, dtype=np.float32)
    noise = rng.standard_normal(rows, dtype=np.float32)
    return x, x @ w + np.float32(1.0) + np.float32(0.01) * noise


def bench_exact(x: np.ndarray, y: np.ndarray, repeats: int) -> dict[str, Any]:
    from sklearn.linear_model import LinearRegression

    n, d = x.shape
    names = [f"x{i}" for i in range(d)]

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:  # as the library slices data
        for s in range(0, n, CHUNK_ROWS):
            yield x[s : s + CHUNK_ROWS], y[s : s + CHUNK_ROWS]

    def toolkit_fit() -> np.ndarray:  # as toolkit.train sums rows in memory (readpass)
        with one_blas_thread():
            moments = exact.accumulate(chunks(), "cpu", threads=THREADS)
        fit = exact.solve(moments, d, names, intercept=True, rechunk=chunks)
        return np.concatenate([fit.weight[0], fit.bias])

    def numpy_a() -> np.ndarray:  # with an intercept column: the like-for-like baseline
        xa = np.hstack([x, np.ones((n, 1), np.float32)])
        return np.linalg.solve(xa.T @ xa, xa.T @ y)

    def numpy_a64() -> np.ndarray:  # numpy A in float64, the precision toolkit keeps
        xa = np.empty((n, d + 1))
        xa[:, :d], xa[:, d] = x, 1.0
        return np.linalg.solve(xa.T @ xa, xa.T @ y.astype(np.float64))

    def numpy_b() -> np.ndarray:  # no intercept: a floor for any one-pass fit
        return np.linalg.solve(x.T @ x, x.T @ y)

    def sklearn_fit() -> np.ndarray:
        model = LinearRegression().fit(x, y)
        return np.append(model.coef_, model.intercept_)

    # Warm up off the clock: torch's import and thread pool, BLAS threads, LAPACK lookups.
    exact.accumulate([(x[:4096], y[:4096])], "cpu")
    numpy_b()
    LinearRegression().fit(x[:4096], y[:4096])
    sides = {
        "numpy A (+intercept)": numpy_a,
        "numpy A64 (float64)": numpy_a64,
        "numpy B (no intercept)": numpy_b,
        "toolkit exact": toolkit_fit,
        "scikit-learn": sklearn_fit,
    }
    # scikit-learn is slow (seconds per fit): two rounds, so one noisy run cannot flatter us.
    best, fits = interleave(sides, repeats, caps={"scikit-learn": 2})

    # Reference: float64 normal equations of the same float32 data (well conditioned here).
    reference = fits["numpy A64 (float64)"]
    toolkit, numpy_a_fit = fits["toolkit exact"], fits["numpy A (+intercept)"]
    inference = bench_inference(chunks, names, repeats)
    return {
        "inference_seconds": inference,
        "inference_over_fit": inference["warm"] / best["toolkit exact"],
        "inference_cold_over_fit": inference["cold"] / best["toolkit exact"],
        "seconds": best,
        "toolkit_over_numpy_a": best["toolkit exact"] / best["numpy A (+intercept)"],
        "toolkit_over_numpy_a64": best["toolkit exact"] / best["numpy A64 (float64)"],
        "toolkit_over_numpy_b": best["toolkit exact"] / best["numpy B (no intercept)"],
        "sklearn_over_toolkit": best["scikit-learn"] / best["toolkit exact"],
        "max_abs_diff_vs_float64": {
            name: float(np.max(np.abs(fits[name] - reference)))
            for name in ("toolkit exact", "numpy A (+intercept)", "scikit-learn")
        },
        "max_abs_diff_toolkit_vs_numpy_a": float(np.max(np.abs(toolkit - numpy_a_fit))),
    }


def bench_inference(chunks: Callable[[], Any], names: list[str], repeats: int) -> dict[str, float]:
    """The inference step of `toolkit train` on a finished exact fit (its moments, factor and
    metric sums, which training has anyway): best of `repeats`, and the first call plus the
    import of scipy.special in a fresh interpreter (what one `toolkit train` pays)."""
    from toolkit.training.inference import infer
    from toolkit.training.metrics import metric_sums
    from toolkit.training.model import ModelSpec

    moments = exact.accumulate(chunks(), "cpu")
    fit = exact.solve(moments, len(names), names, intercept=True, rechunk=chunks)
    sums = metric_sums(chunks(), fit.weight, fit.bias, unit=moments.unit[-1:])
    spec = ModelSpec(tuple(names), ("y",), True, "float64")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        infer(moments, spec, fit.weight, fit.bias, sums, alpha=0.05, fit=fit)
        best = min(best, time.perf_counter() - start)
    probe = "import time, torch, numpy; t = time.perf_counter(); import scipy.special; "
    probe += "print(time.perf_counter() - t)"
    imported = min(float(python("-c", probe).stdout) for _ in range(repeats))
    return {"warm": best, "scipy_import": imported, "cold": best + imported}


def write_csv(x: np.ndarray, y: np.ndarray, path: Path) -> None:
    """pyarrow's default CSV writer: a natural file, not one shaped to help the reader."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    columns = [pa.array(x[:, j]) for j in range(x.shape[1])] + [pa.array(y)]
    names = [f"x{j}" for j in range(x.shape[1])] + ["y"]
    pa_csv.write_csv(pa.table(columns, names=names), path)


def bench_csv(path: Path, repeats: int) -> dict[str, Any]:
    # Each side returns only a shape, so no side holds ~800 MB while another is timed.
    sides = {
        "numpy.loadtxt": lambda: np.loadtxt(path, delimiter=",", skiprows=1).shape,
        "load_dataset": lambda: load_dataset(path).table.shape,
        "load_dataset + chunks()": lambda: sum(1 for _ in load_dataset(path).chunks()),
    }
    best, results = interleave(sides, repeats, caps={"numpy.loadtxt": 1})  # ~20 s: once
    if results["numpy.loadtxt"] != results["load_dataset"]:
        raise RuntimeError(f"readers disagree on the shape: {results}")
    return {
        "file_bytes": path.stat().st_size,
        "seconds": best,
        "loadtxt_over_load": best["numpy.loadtxt"] / best["load_dataset"],
        "loadtxt_over_load_and_chunks": best["numpy.loadtxt"] / best["load_dataset + chunks()"],
        "memory_bytes": json.loads(python("-c", MEMORY_PROBE, str(path)).stdout),
    }


def bench_train_inference(path: Path, repeats: int) -> dict[str, Any]:
    """Whole `toolkit train --solver exact` runs on the CSV, fresh processes, with and
    without the inference step: what it adds to the command."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--data", str(path), "--solver", "exact", "-q", "--out", f"{tmp}/m.pt"]
        sides = {
            "toolkit train": lambda: python("-c", TRAIN_PROBE, "on", *args),
            "toolkit train, no inference": lambda: python("-c", TRAIN_PROBE, "off", *args),
        }
        best, _ = interleave(sides, repeats)
    on, off = best["toolkit train"], best["toolkit train, no inference"]
    return {"seconds": best, "inference_share": on / off - 1}


def bench_help(repeats: int) -> dict[str, Any]:
    sides = {
        "python -c pass": lambda: python("-c", "pass"),
        "python -m toolkit --help": lambda: python("-m", "toolkit", "--help"),
    }
    best, _ = interleave(sides, repeats)
    torch_loaded = {
        " ".join(argv): "torch-loaded=True" in python("-c", TORCH_PROBE, *argv).stderr
        for argv in (["--help"], ["train", "--help"])
    }
    return {
        "seconds": best,
        "help_over_bare_python": best["python -m toolkit --help"] / best["python -c pass"],
        "torch_loaded": torch_loaded,
    }


def summary_rows(report: dict[str, Any]) -> list[Row]:
    ex, hp, csv = report["exact"], report["help"], report.get("csv")
    a, b, sk = ex["toolkit_over_numpy_a"], ex["toolkit_over_numpy_b"], ex["sklearn_over_toolkit"]
    diffs = ex["max_abs_diff_vs_float64"]
    inf = ex["inference_over_fit"]
    err = diffs["toolkit exact"]
    a64 = ex["toolkit_over_numpy_a64"]
    rows = [
        row("exact: toolkit / numpy A", f"{a:.2f}x", "<= 1.2x", a <= 1.2),
        row("exact: toolkit / numpy A64 (float64)", f"{a64:.2f}x", "<= 1.2x", a64 <= 1.2),
        row("exact: toolkit / numpy B", f"{b:.2f}x"),
        row("exact: sklearn / toolkit", f"{sk:.1f}x", ">= 5x", sk >= 5),
        row("exact: max|w| toolkit vs float64 NE", f"{err:.1e}", "<= 1e-6", err <= 1e-6),
        row("exact: max|w| numpy A vs float64 NE", f"{diffs['numpy A (+intercept)']:.1e}"),
        row("exact: max|w| sklearn vs float64 NE", f"{diffs['scikit-learn']:.1e}"),
        row("exact: max|w| toolkit vs numpy A", f"{ex['max_abs_diff_toolkit_vs_numpy_a']:.1e}"),
        row("inference / exact fit", f"{ex['inference_over_fit']:.1%}", "<= 5%", inf <= 0.05),
        row("inference + scipy import / exact fit", f"{ex['inference_cold_over_fit']:.1%}"),
    ]
    if csv:
        load, both = csv["loadtxt_over_load"], csv["loadtxt_over_load_and_chunks"]
        rows.append(row("csv: loadtxt / load_dataset", f"{load:.1f}x", ">= 10x", load >= 10))
        rows.append(row("csv: loadtxt / (load + chunks)", f"{both:.1f}x"))
        for key, value in csv["memory_bytes"].items():
            if value is not None:
                rows.append(row(f"csv: {key} (fresh process)", f"{value / 2**20:.0f} MiB"))
    if "train" in report:
        share = report["train"]["inference_share"]
        rows.append(row("train: inference's share", f"{share:+.1%}", "<= 5%", share <= 0.05))
    wall = hp["seconds"]["python -m toolkit --help"]
    rows.append(row("help: toolkit --help wall", f"{wall:.3f} s", "< 0.3 s", wall < 0.3))
    rows.append(row("help: --help / python -c pass", f"{hp['help_over_bare_python']:.2f}x"))
    for argv, loaded in hp["torch_loaded"].items():
        rows.append(row(f"help: torch imported by `{argv}`", str(loaded), "False", not loaded))
    return rows


def main() -> int:
    parser = size_parser(__doc__)
    parser.add_argument("--skip-csv", action="store_true", help="skip the CSV read benchmark")
    parser.add_argument("--csv-path", type=Path, help="write (and keep) the CSV here")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows

    report: dict[str, Any] = {"config": run_config(rows, args.cols, args.repeats, SEED)}

    x, y = make_data(rows, args.cols)
    report["exact"] = bench_exact(x, y, args.repeats)
    print_seconds("exact solver", report["exact"]["seconds"])

    if not args.skip_csv:
        with tempfile.TemporaryDirectory() as tmp:
            path = args.csv_path or Path(tmp) / "bench.csv"
            write_csv(x, y, path)
            del x, y  # the readers should not compete with arrays they do not need
            report["csv"] = bench_csv(path, args.repeats)
            report["train"] = bench_train_inference(path, args.repeats)
        print_seconds(
            f"CSV read ({report['csv']['file_bytes'] / 1e9:.2f} GB)", report["csv"]["seconds"]
        )
        print_seconds("toolkit train on the CSV (fresh process)", report["train"]["seconds"])

    report["help"] = bench_help(args.repeats)
    print_seconds("CLI start-up (fresh subprocess)", report["help"]["seconds"])

    return finish(report, summary_rows(report), args.json)


if __name__ == "__main__":
    sys.exit(main())
