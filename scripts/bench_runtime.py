"""Benchmark toolkit.runtime.Predictor against raw onnxruntime.InferenceSession.run.

The baseline is raw `session.run(None, {"features": x})` on a float32 array that is
already right, where `session` is the predictor's own onnxruntime.InferenceSession (the
.onnx file, CPU provider; see RAW below for why not a second session), the candidate
`predictor.predict(x)`, input guard included. As in bench_train.py, every figure is a
ratio against the baseline timed in the same run: each side takes the best (minimum) of N
samples, the samples of all sides interleaved (in a rotating order) so that a slow spell
hits them all. A sample times many calls, but for the largest batches. More sides explain
the time: the guard alone (`predictor.prepare`), for one row the IOBinding run alone, and
the same run on a second session opened on the file. The models are trained and exported
in another interpreter. Import cost is the best wall time of fresh interpreters
(`python -c 'import onnxruntime'` vs `python -c 'import toolkit.runtime'`). This is a
report, not a test: it exits 0 when a target is missed, non-zero only when something
crashes (or the sides disagree on a prediction).

    .venv/bin/python scripts/bench_runtime.py --quick              # smoke run, seconds
    .venv/bin/python scripts/bench_runtime.py --json bench.json    # full run, about 30 s

Models exported with --explain (scripts/bench_explain.py): one-row `explain()` against
`predict()` on the plain model (target: within 2x), what bounds it (onnxruntime alone running
the explain graph), and `predict()` on the --explain model (its graph pruned to the
prediction).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import ROOT, Row, finish, print_table, row

SEED = 0
SAMPLE_SECONDS = 0.02  # batches: calls per sample so that one sample lasts about this long
TARGETS = {"row": 1.2, "batch": 1.1, "import": 1.2, "explain": 2.0}  # candidate / baseline
# Fresh interpreters: the wall time of the whole process is what is compared; the probe
# also prints the import's own time (in-process, after interpreter start-up).
IMPORT_PROBE = """
import time
t0 = time.perf_counter()
import {module}
print(time.perf_counter() - t0)
"""
# Fresh interpreter (it imports torch): train and export the models into argv[1]; the wide
# one (argv[2] features, 0 for none) on a generated CSV file.
MODELS_PROBE = """
import sys
from pathlib import Path
sys.path.insert(0, 'scripts')  # bench_runtime imports its sibling benchlib
from bench_explain import make_explain_model
from bench_runtime import WIDE_ROWS, make_model
folder, wide = Path(sys.argv[1]), int(sys.argv[2])
make_model(folder, None)
make_explain_model(folder, None)
if wide:
    make_model(folder, wide)
    make_explain_model(folder, wide)
"""
WIDE_ROWS = 10_000  # training rows of the wide model
# The sides. The baseline is the predictor's own InferenceSession (a plain one, opened on
# the same file with the CPU provider), so both sides share one onnxruntime thread pool.
# OTHER, a second session opened on the file, is shown for information only: on a small
# machine two sessions' spinning thread pools interfere, and one of them can run a
# mid-sized batch 1.3-1.8x slower than the other, persistently, whatever wraps it.
RAW = "session.run"
PREDICT = "predictor.predict"
GUARD = "guard alone (prepare)"
ONE_RUN = "IOBinding run alone"  # the single-row path of predict() without the guard
OTHER = "session.run, 2nd session"
# Side (the command, as the tables show it) -> module imported (None: a bare interpreter).
IMPORTS = {"python -c pass": None, "python -c 'import onnxruntime'": "onnxruntime"}
IMPORTS["python -c 'import toolkit.runtime'"] = "toolkit.runtime"


def interleave(sides: dict[str, Callable[[], Any]], repeats: int, calls: int) -> dict[str, float]:
    """Best time per call of each side: `repeats` samples of `calls` calls, interleaved.

    The order rotates every round (a b c, b c a, c a b, ...) so that no side always runs
    right after the same other side.
    """
    names = list(sides)
    best = {name: float("inf") for name in names}
    loop = range(calls)
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            fn = sides[name]
            gc.collect()
            gc.disable()  # as timeit does: no collection in the middle of a sample
            try:
                start = time.perf_counter()
                for _ in loop:
                    fn()
                best[name] = min(best[name], (time.perf_counter() - start) / calls)
            finally:
                gc.enable()
    return best


def make_model(folder: Path, features: int | None) -> Path:
    """Train (exact solver) and export a float32 model: folder/seed.onnx on the seed data
    set (features None), else folder/wide.onnx on WIDE_ROWS generated rows."""
    from toolkit.export import export_model
    from toolkit.training import TrainConfig, train

    data, stem = None, "seed"
    if features is not None:
        rng = np.random.default_rng(SEED)
        x = rng.standard_normal((WIDE_ROWS, features))
        y = x @ rng.standard_normal(features) + 1.0 + 0.01 * rng.standard_normal(WIDE_ROWS)
        data, stem = folder / "wide.csv", "wide"
        header = ",".join([f"x{j}" for j in range(features)] + ["y"])
        np.savetxt(data, np.column_stack([x, y]), delimiter=",", header=header, comments="")
    train(TrainConfig(data=data, out=folder / f"{stem}.pt"))
    export_model(folder / f"{stem}.pt", folder / f"{stem}.onnx")
    return folder / f"{stem}.onnx"


def bench_model(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Single row and batches: raw session.run vs predict, plus the sides that explain it."""
    import onnxruntime as ort

    from toolkit.runtime import Predictor

    predictor = Predictor(path, providers="cpu", intra_op_threads=args.threads)
    session = predictor.session  # a plain onnxruntime.InferenceSession on `path`, CPU only
    options = ort.SessionOptions()
    if args.threads is not None:
        options.intra_op_num_threads = args.threads
    other = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    d = predictor.n_features
    rng = np.random.default_rng(SEED)
    report: dict[str, Any] = {"features": d, "provider": predictor.provider}

    for rows in [1, *args.batches]:
        x = uniform_rows(rng, rows, d)
        feed = {name: x}
        for raw in (session.run(None, feed)[0], other.run(None, feed)[0]):
            if raw.shape != (rows, predictor.n_targets) or not np.array_equal(
                raw, predictor.predict(x)
            ):
                raise RuntimeError(f"{rows} rows: predict() and session.run() disagree")
        sides = {
            RAW: lambda feed=feed: session.run(None, feed),
            PREDICT: lambda x=x: predictor.predict(x),
            GUARD: lambda x=x: predictor.prepare(x),
            OTHER: lambda feed=feed: other.run(None, feed),
        }
        if rows == 1:
            calls, repeats = args.calls, args.repeats
            if hasattr(predictor, "_run_one"):  # private, timed only to split predict()
                sides[ONE_RUN] = lambda x=x: predictor._run_one(x)
        else:  # about SAMPLE_SECONDS per sample: many calls for a small batch, one for 1M rows
            calls = calls_per_sample(sides[RAW], args.calls)
            repeats = args.repeats if calls > 1 else args.big_repeats
        key = "row" if rows == 1 else f"batch {rows}"
        report[key] = _figures(interleave(sides, repeats, calls))
        report[key].update(rows=rows, calls_per_sample=calls, repeats=repeats)
        del x, feed, sides
    return report


def uniform_rows(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    """float32 uniform in [-10, 10), made in place (no float64 copy of a big batch)."""
    x = rng.random((rows, columns), dtype=np.float32)
    x *= 20
    x -= 10
    return x


def calls_per_sample(fn: Callable[[], Any], most: int) -> int:
    one = min(_timed(fn) for _ in range(3))
    return max(1, min(most, round(SAMPLE_SECONDS / one)))


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _figures(seconds: dict[str, float]) -> dict[str, Any]:
    raw, predict = seconds[RAW], seconds[PREDICT]
    return {
        "seconds_per_call": seconds,
        "predict_over_raw": predict / raw,
        "guard_share_of_predict": seconds[GUARD] / predict,
        "second_session_over_raw": seconds[OTHER] / raw,
    }


def bench_imports(runs: int) -> dict[str, Any]:
    """Best wall time (and in-process import time) of fresh interpreters, interleaved."""
    wall = {side: float("inf") for side in IMPORTS}
    inner = {side: float("inf") for side in IMPORTS}
    for _ in range(runs):
        for side, module in IMPORTS.items():
            code = "pass" if module is None else IMPORT_PROBE.format(module=module)
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True
            )
            elapsed = time.perf_counter() - start
            if done.returncode:
                raise RuntimeError(f"{side!r} failed:\n{done.stderr}")
            wall[side] = min(wall[side], elapsed)
            if module is not None:
                inner[side] = min(inner[side], float(done.stdout.strip().splitlines()[-1]))
    base, candidate = list(IMPORTS)[1:]
    return {
        "wall_seconds": wall,
        "import_seconds": {side: inner[side] for side in (base, candidate)},
        "wall_ratio": wall[candidate] / wall[base],
        "import_ratio": inner[candidate] / inner[base],
    }


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def summary_rows(report: dict[str, Any]) -> list[Row]:
    rows = []
    for label, model in report["models"].items():
        for key, figures in model.items():
            if not isinstance(figures, dict):
                continue
            kind = "row" if key == "row" else "batch"
            what = "1 row" if key == "row" else f"{figures['rows']:,} rows"
            prefix = f"{label}, {what}"
            ratio, target = figures["predict_over_raw"], TARGETS[kind]
            seconds = figures["seconds_per_call"]
            rows += [
                row(f"{prefix}: predict / run", f"{ratio:.2f}x", f"<= {target}x", ratio <= target),
                row(f"{prefix}: run", _us(seconds[RAW])),
                row(f"{prefix}: predict", _us(seconds[PREDICT])),
                row(f"{prefix}: guard alone", _us(seconds[GUARD])),
                row(f"{prefix}: guard / predict", f"{figures['guard_share_of_predict']:.1%}"),
            ]
            if ONE_RUN in seconds:
                rows.append(row(f"{prefix}: IOBinding run alone", _us(seconds[ONE_RUN])))
            second = figures["second_session_over_raw"]
            rows.append(row(f"{prefix}: 2nd session's run / run", f"{second:.2f}x"))
    imports = report["imports"]
    ratio, target = imports["wall_ratio"], TARGETS["import"]
    metric = "import: toolkit.runtime / onnxruntime (wall)"
    rows.append(row(metric, f"{ratio:.2f}x", f"<= {target}x", ratio <= target))
    for side, seconds in imports["wall_seconds"].items():
        rows.append(row(f"import: wall, `{side}`", f"{seconds * 1e3:.0f} ms"))
    rows.append(row("import: in-process ratio", f"{imports['import_ratio']:.2f}x"))
    for side, seconds in imports["import_seconds"].items():
        module = IMPORTS[side]
        rows.append(row(f"import: in-process, import {module}", f"{seconds * 1e3:.0f} ms"))
    return rows


def print_seconds(title: str, seconds: dict[str, float], column: str = "best per call") -> None:
    table = [("side", column), *((k, _us(v)) for k, v in seconds.items())]
    print_table(title, table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25, help="samples per side: best of N")
    parser.add_argument("--big-repeats", type=int, default=7, help="best of N, one-call samples")
    parser.add_argument("--calls", type=int, default=2000, help="single-row calls per sample")
    parser.add_argument(
        "--wide", type=int, default=100, help="features of the wide model (0: none)"
    )
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="the large batch")
    parser.add_argument("--threads", type=int, help="intra-op threads, both sides (default: ort's)")
    parser.add_argument("--import-runs", type=int, default=15, help="fresh interpreters per side")
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer, smaller samples")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.big_repeats, args.calls = 3, 2, 200
        args.big_rows, args.import_runs = 100_000, 2
    args.batches = [4096, args.big_rows]

    import onnxruntime
    from bench_explain import bench_explain, explain_rows

    from toolkit.runtime import available_providers

    config: dict[str, Any] = dict(repeats=args.repeats, big_repeats=args.big_repeats)
    config.update(calls=args.calls, batches=args.batches, import_runs=args.import_runs)
    config.update(threads=args.threads)
    config.update(cpus=os.cpu_count(), python=platform.python_version())
    config.update(numpy=np.__version__, ort=onnxruntime.__version__)
    config.update(providers=available_providers())
    config.update(torch_imported="torch" in sys.modules)  # False: see MODELS_PROBE
    report: dict[str, Any] = {"config": config, "models": {}}
    print("config: " + ", ".join(f"{k}={v}" for k, v in config.items()))

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        # Trained and exported in another interpreter: this one never imports torch, as an
        # application that embeds the runtime would not (and gc stays cheap).
        probe = [sys.executable, "-c", MODELS_PROBE, folder, str(args.wide)]
        subprocess.run(probe, cwd=ROOT, check=True)
        models = {"seed (2 features)": tmp / "seed.onnx"}
        if args.wide:
            models[f"wide ({args.wide} features)"] = tmp / "wide.onnx"
        for label, path in models.items():
            result = bench_model(path, args)
            report["models"][label] = result
            for key, figures in result.items():
                if isinstance(figures, dict):
                    print_seconds(f"{label}, {key}", figures["seconds_per_call"])
        report["explain"] = {}
        for label, path in models.items():
            explained = path.with_name(f"{path.stem}-explain.onnx")
            result = report["explain"][label] = bench_explain(path, explained, args)
            for key, figures in result.items():
                if isinstance(figures, dict):
                    print_seconds(f"{label}, {key}, --explain", figures["seconds_per_call"])

    report["imports"] = bench_imports(args.import_runs)
    print_seconds("imports (fresh interpreters)", report["imports"]["wall_seconds"], "best wall")

    return finish(report, summary_rows(report) + explain_rows(report), args.json)


if __name__ == "__main__":
    sys.exit(main())
