"""Benchmark `toolkit export` (export_model) against a bare torch.onnx.export call.

The candidate also loads the checkpoint, runs onnx.checker and strict shape inference,
compares the weights bit for bit, runs the parity gate on every execution provider and
writes atomically. As in bench_train.py, every figure is a ratio against the baseline timed
in the same run, best of N with the sides interleaved. First calls are timed in fresh
interpreters (after the imports), warm calls in this process. The command as a user runs
it, `toolkit export` in a fresh process (imports included), is timed against
`python -c "import torch, onnx"`, the imports it cannot do without; and its answer to a
missing checkpoint, which comes before torch is imported. This is a report, not a test: it
exits 0 when a target is missed, non-zero only when something crashes.

    .venv/bin/python scripts/bench_export.py --quick              # smoke run
    .venv/bin/python scripts/bench_export.py --json bench.json    # full run, about a minute
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import ROOT, Row, finish, print_seconds, row

TARGET = 1.5  # candidate / baseline, warm and first call; toolkit export / its imports
FAST_ANSWER = 0.5  # seconds: `toolkit export` naming a missing checkpoint, fresh process
# Fresh interpreter: the same imports for every side (off the clock), then one timed call.
# The baseline and parity sides get their model off the clock; the candidate loads its own.
# argv: side, checkpoint, .onnx path; prints {"import": s, "call": s} as its last line.
FIRST_CALL_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import numpy, onnx, onnxruntime, onnxscript, torch
sys.path.insert(0, 'scripts')  # bench_export imports its sibling benchlib
from bench_export import bare_export, parity_only
from toolkit.training import checkpoint
from toolkit.export import export_model
side, ckpt, out = sys.argv[1:]
if side != "candidate":
    payload = checkpoint.load(ckpt)
    model = checkpoint.model_from_checkpoint(payload)[1]
t1 = time.perf_counter()
if side == "baseline":
    bare_export(model, out)
elif side == "parity":
    parity_only(payload, model, out)
else:
    export_model(ckpt, out)
print(json.dumps({"import": t1 - t0, "call": time.perf_counter() - t1}))
"""


def bare_export(model: Any, path: Path | str) -> None:
    """torch.onnx.export with the arguments toolkit.export.convert._export_proto passes.

    Silenced the way toolkit silences its own call (toolkit.export.quiet: fds 1 and 2 to a
    temporary file, warnings and torch's loggers off), so both sides pay for the capture.
    """
    import torch

    # The point is to silence exactly as toolkit does.
    from toolkit.export import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME
    from toolkit.export.quiet import quiet

    example = torch.zeros(3, model.in_features, dtype=model.weight.dtype)
    batch = torch.export.Dim("batch", min=1)
    with quiet(), torch.no_grad():
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            opset_version=DEFAULT_OPSET,
            external_data=False,
            verbose=False,
        )


def parity_only(payload: dict[str, Any], model: Any, path: Path | str) -> Any:
    """The parity gate alone, with export_model's defaults, on an exported file."""
    from toolkit.defaults import PARITY_TOLERANCES
    from toolkit.export import INPUT_NAME
    from toolkit.export.parity import check_parity

    atol, rtol = PARITY_TOLERANCES[payload["spec"]["dtype"]]
    sample = payload["parity_sample"].numpy()
    report = check_parity(model, path, sample, atol, rtol, INPUT_NAME)
    if not report.passed:
        raise RuntimeError(f"the parity gate failed on {path}: {report.to_dict()}")
    return report


def interleave(sides: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Best wall time of each side over rounds (a b c, a b c, ...)."""
    best = {name: float("inf") for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def first_calls(ckpt: Path, tmp: Path, runs: int) -> dict[str, dict[str, float]]:
    """Best in-process time of the one call (and of the imports) over `runs` interpreters."""
    best: dict[str, dict[str, float]] = {}
    for _ in range(runs):
        for side in ("baseline", "candidate", "parity"):
            out = tmp / ("candidate.onnx" if side == "parity" else f"first-{side}.onnx")
            argv = [sys.executable, "-c", FIRST_CALL_PROBE, side, str(ckpt), str(out)]
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"first-call probe {side!r} failed:\n{done.stderr}")
            times = json.loads(done.stdout.strip().splitlines()[-1])
            previous = best.get(side, times)
            best[side] = {key: min(value, previous[key]) for key, value in times.items()}
    return best


def whole_commands(ckpt: Path, tmp: Path, runs: int) -> dict[str, float]:
    """Best wall time of each command in a fresh process over `runs` rounds, interleaved."""
    python = [sys.executable]
    commands = {
        "toolkit export": [*python, "-m", "toolkit", "export", str(tmp / "cli.onnx")],
        "import torch, onnx": [*python, "-c", "import torch, onnx"],
        "missing checkpoint": [*python, "-m", "toolkit", "export", "--checkpoint", "no.pt"],
    }
    commands["toolkit export"] += ["--checkpoint", str(ckpt)]
    best = {name: float("inf") for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=tmp, capture_output=True, text=True)
            best[name] = min(best[name], time.perf_counter() - start)
            if done.returncode != (1 if name == "missing checkpoint" else 0):
                raise RuntimeError(f"{name!r} exited {done.returncode}:\n{done.stderr}")
    return best


def figures(seconds: dict[str, float]) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "candidate_over_baseline": seconds["candidate"] / seconds["baseline"],
        "parity_share_of_candidate": seconds["parity"] / seconds["candidate"],
    }


def summary_rows(report: dict[str, Any]) -> list[Row]:
    rows = []
    for phase in ("warm", "first call"):
        seconds, ratio = report[phase]["seconds"], report[phase]["candidate_over_baseline"]
        rows += [
            row(f"{phase}: export_model / bare", f"{ratio:.2f}x", f"<= {TARGET}x", ratio <= TARGET),
            row(f"{phase}: export_model", f"{seconds['candidate']:.3f} s"),
            row(f"{phase}: bare torch.onnx.export", f"{seconds['baseline']:.3f} s"),
            row(f"{phase}: parity gate alone", f"{seconds['parity']:.3f} s"),
            row(
                f"{phase}: parity gate / export_model",
                f"{report[phase]['parity_share_of_candidate']:.1%}",
            ),
        ]
    imports = report["first call"]["imports"]
    rows.append(row("first call: imports (off the clock)", f"{imports:.3f} s"))
    command = report["command"]
    ratio = command["toolkit export"] / command["import torch, onnx"]
    rows += [
        row(
            "fresh process: toolkit export / import torch, onnx",
            f"{ratio:.2f}x",
            f"<= {TARGET}x",
            ratio <= TARGET,
        ),
        row("fresh process: toolkit export (seed model)", f"{command['toolkit export']:.3f} s"),
        row(
            "fresh process: python -c 'import torch, onnx'",
            f"{command['import torch, onnx']:.3f} s",
        ),
        row(
            "fresh process: toolkit export, missing checkpoint",
            f"{command['missing checkpoint']:.3f} s",
            f"< {FAST_ANSWER} s",
            command["missing checkpoint"] < FAST_ANSWER,
        ),
    ]
    rows += [row(f"file size: {s}", f"{n} B") for s, n in report["file_bytes"].items()]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="warm calls: best of N")
    parser.add_argument("--first-runs", type=int, default=3, help="fresh interpreters per side")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 repeats, 1 run")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    repeats, runs = (2, 1) if args.quick else (args.repeats, args.first_runs)

    import onnx
    import onnxruntime
    import torch

    from toolkit.export import export_model
    from toolkit.export.parity import available_providers
    from toolkit.training import TrainConfig, checkpoint, train

    config: dict[str, Any] = dict(repeats=repeats, first_runs=runs, cpus=os.cpu_count())
    config.update(torch_threads=torch.get_num_threads(), python=platform.python_version())
    config.update(torch=torch.__version__, onnx=onnx.__version__, ort=onnxruntime.__version__)
    config.update(providers=available_providers())
    report: dict[str, Any] = {"config": config}
    print("config: " + ", ".join(f"{k}={v}" for k, v in config.items()))

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        ckpt = train(TrainConfig(out=tmp / "model.pt")).checkpoint  # seed data, exact solver
        payload = checkpoint.load(ckpt)
        model = checkpoint.model_from_checkpoint(payload)[1]
        paths = {"baseline": tmp / "baseline.onnx", "candidate": tmp / "candidate.onnx"}
        sides: dict[str, Callable[[], Any]] = {
            "baseline": lambda: bare_export(model, paths["baseline"]),
            "candidate": lambda: export_model(ckpt, paths["candidate"]),
            "parity": lambda: parity_only(payload, model, paths["candidate"]),
        }
        for fn in sides.values():  # warm-up, off the clock; also writes the files parity reads
            fn()
        best = interleave(sides, repeats)
        report["warm"] = figures(best)
        print_seconds(f"warm calls (this process, best of {repeats})", best)

        first = first_calls(ckpt, tmp, runs)
        report["first call"] = figures({side: times["call"] for side, times in first.items()})
        report["first call"]["imports"] = min(times["import"] for times in first.values())
        print_seconds(
            f"first calls (fresh interpreter, best of {runs})", report["first call"]["seconds"]
        )
        report["file_bytes"] = {s: p.stat().st_size for s, p in paths.items()}
        report["command"] = whole_commands(ckpt, tmp, runs)
        print_seconds(f"whole commands (fresh process, best of {runs})", report["command"])

    return finish(report, summary_rows(report), args.json)


if __name__ == "__main__":
    sys.exit(main())
