"""Benchmark training on a categorical table against the same table one-hot encoded by hand.

Issue 15's training figure, a ratio against a baseline timed in the same run:
`toolkit train --solver exact --dtype float64` on a table with 3 text columns of 50 levels
and 5 numeric columns, against the same rows pre-encoded by hand (147 dummy columns named
as toolkit names them, `c1[L07]`), fresh processes, interleaved rounds, median wall time;
CSV and Parquet. Target: within 1.5x. The two fits must agree (coefficients by name, to
1e-8). The one-row prediction figure is scripts/bench_table_runtime.py's.

    .venv/bin/python scripts/bench_tables.py --quick             # smoke run
    .venv/bin/python scripts/bench_tables.py --json tables.json  # full run, about 2 minutes

A report, not a test: it exits 0 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import ROOT, Row, finish, print_table, row

SEED = 0
CATEGORICAL, LEVELS, NUMERIC = 3, 50, 5
TARGET = 1.5  # raw table / pre-encoded table, wall time


def make_tables(folder: Path, rows: int) -> dict[str, Path]:
    """raw.csv/.parquet (text levels) and encoded.csv/.parquet (dummies by hand), same rows."""
    import pandas as pd

    rng = np.random.default_rng(SEED)
    raw: dict[str, Any] = {}
    y = rng.standard_normal(rows) * 0.1
    for j in range(NUMERIC):
        raw[f"x{j}"] = rng.standard_normal(rows)
        y += (j + 1) * raw[f"x{j}"]
    for c in range(1, CATEGORICAL + 1):
        codes = rng.integers(0, LEVELS, rows)
        raw[f"c{c}"] = np.array([f"L{k:02d}" for k in range(LEVELS)])[codes]
        y += rng.standard_normal(LEVELS)[codes]
    raw["y"] = y
    frame = pd.DataFrame(raw)
    encoded = frame[[f"x{j}" for j in range(NUMERIC)]].copy()
    for c in range(1, CATEGORICAL + 1):
        # Treatment coding: the first sorted level is the reference (statsmodels, R, toolkit).
        dummies = pd.get_dummies(frame[f"c{c}"], dtype=np.float64).iloc[:, 1:]
        dummies.columns = [f"c{c}[{level}]" for level in dummies.columns]
        encoded = pd.concat([encoded, dummies], axis=1)
    encoded["y"] = frame["y"]
    paths = {}
    for name, table in (("raw", frame), ("encoded", encoded)):
        paths[f"{name}.csv"] = folder / f"{name}.csv"
        table.to_csv(paths[f"{name}.csv"], index=False)
        paths[f"{name}.parquet"] = folder / f"{name}.parquet"
        table.to_parquet(paths[f"{name}.parquet"], index=False)
    return paths


def train_once(data: Path, out: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds of a fresh `toolkit train` process, and its --json summary."""
    command = [sys.executable, "-m", "toolkit", "train", "--data", str(data), "--target", "y"]
    command += ["--dtype", "float64", "--val-fraction", "0", "--json", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"toolkit train failed on {data}:\n{done.stderr}")
    return seconds, json.loads(done.stdout)


def bench_train(paths: dict[str, Path], folder: Path, rounds: int) -> tuple[list[Row], dict]:
    summary: list[Row] = []
    figures: dict[str, Any] = {}
    for suffix in ("csv", "parquet"):
        times: dict[str, list[float]] = {"raw": [], "encoded": []}
        fits: dict[str, dict[str, Any]] = {}
        for round_ in range(rounds):
            order = ["raw", "encoded"] if round_ % 2 == 0 else ["encoded", "raw"]
            for side in order:
                seconds, fits[side] = train_once(paths[f"{side}.{suffix}"], folder / f"{side}.pt")
                times[side].append(seconds)
        check_same_fit(fits["raw"], fits["encoded"])
        medians = {side: statistics.median(values) for side, values in times.items()}
        ratio = medians["raw"] / medians["encoded"]
        print_table(
            f"train, {suffix}: median of {rounds} fresh processes",
            [("side", "median s"), *((k, f"{v:.3f}") for k, v in medians.items())],
        )
        figures[suffix] = {"seconds": medians, "ratio": ratio}
        target = TARGET
        summary.append(
            row(
                f"train {suffix}: raw / pre-encoded",
                f"{ratio:.2f}x",
                f"<= {target}x",
                ratio <= target,
            )
        )
    return summary, figures


def check_same_fit(raw: dict[str, Any], encoded: dict[str, Any]) -> None:
    """Both fits name the same columns and agree (float64, same rows: to 1e-8 relative)."""
    if raw["features"] != encoded["features"]:
        raise SystemExit(
            f"feature names differ: {raw['features'][:8]} vs {encoded['features'][:8]}"
        )
    a = np.array(raw["weights"] + [raw["bias"]], dtype=object)
    b = np.array(encoded["weights"] + [encoded["bias"]], dtype=object)
    left = np.concatenate([np.ravel(v) for v in a]).astype(float)
    right = np.concatenate([np.ravel(v) for v in b]).astype(float)
    if not np.allclose(left, right, rtol=1e-8, atol=1e-10):
        raise SystemExit("the raw and pre-encoded fits disagree")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 1 round")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args()
    rows, rounds = (20_000, 1) if args.quick else (args.rows, args.rounds)
    print(
        f"config: rows={rows}, rounds={rounds}, categorical={CATEGORICAL}x{LEVELS} levels, "
        f"numeric={NUMERIC}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-tables-") as name:
        folder = Path(name)
        paths = make_tables(folder, rows)
        summary, figures = bench_train(paths, folder, rounds)
    return finish({"rows": rows, "train": figures}, summary, args.json)


if __name__ == "__main__":
    sys.exit(main())
