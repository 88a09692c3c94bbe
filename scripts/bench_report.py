"""Benchmark "Report": `toolkit report --data` against the streaming training pass.

One generated CSV (bench_scale.py's generator: seeded float64 normals, 32 features,
y = X @ w + 1 + noise, written block by block), then fresh subprocesses, interleaved in
rounds so that a slow spell hits every side, best of N:

    train         toolkit train --data FILE --solver exact --dtype float64 (the streaming
                  training pass: read, check, split, sum, spill, solve, metrics, save)
    report html   toolkit report --checkpoint MODEL --data FILE --out report.html
                  (one pass: residuals, HC0/HC1/HC3 sandwiches, Durbin-Watson, moments,
                  the row sample; then the plots and the page)
    report json   the same with --format json: the pass without the plots

Targets: report html wall <= 1.5x train wall, and its peak RSS (`ru_maxrss`, exact,
printed by a wrapper that runs the CLI in-process) < 1 GiB. A report, not a test: exit
0 on a miss, non-zero only when something crashes.

    .venv/bin/python scripts/bench_report.py                      # ~390 MB CSV, minutes
    .venv/bin/python scripts/bench_report.py --rows 3700000       # the 2.4 GB file
    .venv/bin/python scripts/bench_report.py --csv-path /data/scale.csv --json report.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_scale import TRAIN_PROBE, warm_page_cache, write_csv
from benchlib import ROOT, finish, print_seconds, row

DEFAULT_ROWS = 600_000  # about 390 MB at 33 columns
RATIO_TARGET = 1.5  # report html wall / train wall
RSS_TARGET_MIB = 1024


def run(argv: list[str]) -> dict[str, Any]:
    """Run `argv` from the repository root: its wall, stdout and the probe's peak RSS."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"command failed with exit code {done.returncode}:\n  {shlex.join(argv)}\n"
            f"stderr (last 3000 characters):\n{done.stderr[-3000:]}"
        )
    probe = next(
        json.loads(line.removeprefix("bench-probe "))
        for line in done.stderr.splitlines()
        if line.startswith("bench-probe ")
    )
    return {"wall": wall, "stdout": done.stdout, "peak_rss": probe["peak_rss"]}


def bench(path: Path, chunk_rows: int, repeats: int, work: Path) -> dict[str, Any]:
    probe = work / "probe.py"
    probe.write_text(TRAIN_PROBE)
    model, chunks = work / "model.pt", ["--chunk-rows", str(chunk_rows)]
    report = [sys.executable, str(probe), "report", "--checkpoint", str(model)]
    report += ["--data", str(path), *chunks, "-q"]
    commands = {
        "train": [sys.executable, str(probe), "train", "--data", str(path), "--solver", "exact",
                  "--dtype", "float64", "--device", "cpu", *chunks, "--json", "-q",
                  "--out", str(model)],
        "report html": [*report, "--out", str(work / "report.html")],
        "report json": [*report, "--format", "json", "--out", "-"],
    }  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, argv in commands.items():
            runs[name].append(run(argv))
    trained = json.loads(runs["train"][0]["stdout"])
    content = json.loads(runs["report json"][0]["stdout"])
    diagnostics = content["diagnostics"]
    best = {name: min(r["wall"] for r in side) for name, side in runs.items()}
    return {
        "commands": {name: shlex.join(argv) for name, argv in commands.items()},
        "rows": trained["data"]["rows"],
        "train_rows": trained["data"]["train_rows"],
        "report_rows": diagnostics["rows"],
        "training_rows_matched": diagnostics["training_rows"],
        "robust_errors": diagnostics["targets"][0]["robust_stderr"] is not None,
        "html_bytes": (work / "report.html").stat().st_size,
        "seconds": best,
        "seconds_all": {name: [r["wall"] for r in side] for name, side in runs.items()},
        "train_seconds_inside": min(json.loads(r["stdout"])["seconds"] for r in runs["train"]),
        "peak_rss": {name: max(r["peak_rss"] for r in side) for name, side in runs.items()},
        "ratio_html": best["report html"] / best["train"],
        "ratio_json": best["report json"] / best["train"],
    }


def summary_rows(report: dict[str, Any], repeats: int) -> list[tuple[str, str, str, str]]:
    res, size = report["bench"], report["file"]["bytes"]
    mib = {k: v / 2**20 for k, v in res["peak_rss"].items()}
    s = res["seconds"]
    return [
        row("file: CSV size", f"{size / 1e9:.2f} GB, {res['rows']:,} rows"),
        row("report: rows of the pass (training rows)", f"{res['report_rows']:,}",
            f"{res['train_rows']:,}", res["report_rows"] == res["train_rows"]),
        row("report: robust standard errors computed", str(res["robust_errors"]), "True",
            res["robust_errors"]),
        row(f"time: train wall (best of {repeats})", f"{s['train']:.2f} s"),
        row("time: report html wall", f"{s['report html']:.2f} s"),
        row("time: report json wall (no plots)", f"{s['report json']:.2f} s"),
        row("speed: report html / train", f"{res['ratio_html']:.2f}x", f"<= {RATIO_TARGET}x",
            res["ratio_html"] <= RATIO_TARGET),
        row("speed: report json / train", f"{res['ratio_json']:.2f}x"),
        row("memory: report html peak RSS", f"{mib['report html']:.0f} MiB",
            f"< {RSS_TARGET_MIB} MiB", mib["report html"] < RSS_TARGET_MIB),
        row("memory: report json peak RSS", f"{mib['report json']:.0f} MiB"),
        row("memory: train peak RSS", f"{mib['train']:.0f} MiB"),
        row("report: page size", f"{res['html_bytes'] / 1e6:.2f} MB"),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate")
    parser.add_argument("--cols", type=int, default=32, help="feature columns to generate")
    parser.add_argument("--chunk-rows", type=int, default=65_536, help="--chunk-rows of both")
    parser.add_argument("--repeats", type=int, default=3, help="best of N, interleaved")
    parser.add_argument("--csv-path", type=Path, help="keep the CSV here; reused if it exists")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    reuse = args.csv_path is not None and args.csv_path.exists()
    config = {"rows": args.rows, "cols": args.cols, "chunk_rows": args.chunk_rows}
    config.update(repeats=args.repeats, cpus=os.cpu_count(), csv_path=args.csv_path)
    print("config: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    report: dict[str, Any] = {"config": {k: str(v) for k, v in config.items()}}
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        work = Path(tmp)
        path = args.csv_path or work / "report.csv"
        if not reuse:
            write_csv(path, args.rows, args.cols)
        size = path.stat().st_size
        print(f"\nCSV: {path}, {size:,} bytes ({size / 1e9:.2f} GB){' (reused)' if reuse else ''}")
        report["file"] = {"path": str(path), "bytes": size, "reused": reuse}
        warm_page_cache(path)
        report["bench"] = bench(path, args.chunk_rows, args.repeats, work)
    print_seconds(
        f"wall seconds, best of {args.repeats} (fresh processes)", report["bench"]["seconds"]
    )
    return finish(report, summary_rows(report, args.repeats), args.json)


if __name__ == "__main__":
    sys.exit(main())
