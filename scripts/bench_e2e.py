"""From a file on disk to a fitted model, whole processes: toolkit against the tools a
user would pick instead (issue 16).

Each side is a fresh interpreter that reads the same file and fits the same least-squares
problem (an intercept and every feature); its wall time and its own peak RSS (`wait4`'s
rusage, so one side's memory never counts against another) are recorded. The sides run
interleaved, round after round, so a slow spell on this shared machine hits all of them;
the table shows each side's median and toolkit's ratio to it. Peers that are not
installed are reported as skipped. This is a report, not a test: it exits 0 on a miss.

    .venv/bin/python scripts/bench_e2e.py --rows 200000 --repeats 1   # smoke run, seconds
    .venv/bin/python scripts/bench_e2e.py --json e2e.json             # the issue's 2,000,000 x 21
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import ROOT, Row, finish, print_table, row

PYTHON = sys.executable
# What each peer does after reading: the same problem as `toolkit train --solver exact`.
LSTSQ = """
x1 = np.column_stack([np.ones(len(y)), x])
coef = np.linalg.lstsq(x1, y, rcond=None)[0]
"""
PEERS: dict[str, tuple[str, str, str]] = {
    # name: (module that must be importable, CSV reader, Parquet reader); each reader
    # leaves `x` (n, d) float64 and `y` (n,) float64 behind.
    "polars + lstsq": (
        "polars",
        "import polars as pl\ndf = pl.read_csv(PATH)",
        "import polars as pl\ndf = pl.read_parquet(PATH)",
    ),
    "duckdb + lstsq": (
        "duckdb",
        "import duckdb\ncols = duckdb.sql(f\"select * from read_csv('{PATH}')\").fetchnumpy()",
        "import duckdb\ncols = duckdb.sql(f\"select * from read_parquet('{PATH}')\").fetchnumpy()",
    ),
    "pandas + scikit-learn": (
        "sklearn",
        "import pandas as pd\ndf = pd.read_csv(PATH)",
        "import pandas as pd\ndf = pd.read_parquet(PATH)",
    ),
    "pandas + statsmodels": (
        "statsmodels",
        "import pandas as pd\ndf = pd.read_csv(PATH)",
        "import pandas as pd\ndf = pd.read_parquet(PATH)",
    ),
    "pyarrow + normal equations (floor)": (
        "pyarrow",
        "import pyarrow.csv as pc\ndf = pc.read_csv(PATH)",
        "import pyarrow.parquet as pq\ndf = pq.read_table(PATH)",
    ),
}
# How each peer turns what it read into x and y, then fits.
FIT: dict[str, str] = {
    "polars + lstsq": "x = df.drop('y').to_numpy()\ny = df['y'].to_numpy()\n" + LSTSQ,
    "duckdb + lstsq": ("y = cols.pop('y')\nx = np.column_stack(list(cols.values()))\n" + LSTSQ),
    "pandas + scikit-learn": (
        "from sklearn.linear_model import LinearRegression\n"
        "LinearRegression().fit(df.drop(columns='y').to_numpy(), df['y'].to_numpy())\n"
    ),
    "pandas + statsmodels": (
        "import statsmodels.api as sm\n"
        "sm.OLS(df['y'].to_numpy(), sm.add_constant(df.drop(columns='y').to_numpy())).fit()\n"
    ),
    "pyarrow + normal equations (floor)": (
        "a = df.to_pandas().to_numpy()\n"  # one copy out of Arrow, as any numpy user does
        "x1 = np.column_stack([np.ones(len(a)), a[:, :-1]])\n"
        "coef = np.linalg.solve(x1.T @ x1, x1.T @ a[:, -1])\n"
    ),
}


def peer_script(name: str, fmt: str, path: Path) -> str | None:
    module, csv_read, parquet_read = PEERS[name]
    if importlib.util.find_spec(module) is None:
        return None
    read = csv_read if fmt == "csv" else parquet_read
    return f"import numpy as np\nPATH = {str(path)!r}\n{read}\n{FIT[name]}"


def toolkit_argv(path: Path, out: Path, val_fraction: str) -> list[str]:
    return [
        PYTHON, "-m", "toolkit", "train", "--data", str(path), "--target", "y",
        "--solver", "exact", "--dtype", "float64", "--val-fraction", val_fraction,
        "--out", str(out), "--quiet",
    ]  # fmt: skip


def run_process(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and this process's own peak RSS in bytes; raises if it failed."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {process.returncode}: {stderr[-2000:]}")
    return seconds, usage.ru_maxrss * 1024  # KiB on Linux


def make_files(rows: int, cols: int, folder: Path) -> dict[str, Path]:
    """The issue's table: `cols` float features and a target y = x w + noise.

    Written by a child process: a process started later inherits its parent's peak RSS
    as the floor of its own (Linux carries the high-water mark across fork and exec), so
    the benchmark itself must never hold the data.
    """
    paths = {"csv": folder / "e2e.csv", "parquet": folder / "e2e.parquet"}
    script = f"import bench_e2e, pathlib; bench_e2e.write_files({rows}, {cols}, {str(folder)!r})"
    subprocess.run([PYTHON, "-c", script], check=True, cwd=Path(__file__).parent)
    return paths


def write_files(rows: int, cols: int, folder: str) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, cols))
    y = x @ rng.standard_normal(cols) + 0.5 + 0.1 * rng.standard_normal(rows)
    table = pa.table({**{f"x{i}": x[:, i] for i in range(cols)}, "y": y})
    pc.write_csv(table, Path(folder) / "e2e.csv")
    pq.write_table(table, Path(folder) / "e2e.parquet")


def bench_format(fmt: str, path: Path, repeats: int, val_fraction: str) -> dict[str, Any]:
    sides: dict[str, list[str]] = {
        "toolkit": toolkit_argv(path, path.with_suffix(".pt"), val_fraction)
    }
    skipped = []
    for name in PEERS:
        script = peer_script(name, fmt, path)
        if script is None:
            skipped.append(name)
        else:
            sides[name] = [PYTHON, "-c", script]
    times: dict[str, list[float]] = {name: [] for name in sides}
    peaks: dict[str, list[int]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, argv in sides.items():  # interleaved: round after round
            seconds, peak = run_process(argv)
            times[name].append(seconds)
            peaks[name].append(peak)
    return {
        "file_bytes": path.stat().st_size,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "runs_s": times,
        "peak_rss": {k: max(v) for k, v in peaks.items()},
        "skipped": skipped,
    }


def table_rows(fmt: str, result: dict[str, Any]) -> list[tuple[str, ...]]:
    median, peak = result["median_s"], result["peak_rss"]
    ours = median["toolkit"]
    rows: list[tuple[str, ...]] = [("side", "median s", "peak RSS MiB", "toolkit / side (time)")]
    for name in median:
        ratio = "-" if name == "toolkit" else f"{ours / median[name]:.2f}x"
        rows.append((f"{fmt}: {name}", f"{median[name]:.2f}", f"{peak[name] / 2**20:.0f}", ratio))
    rows += [(f"{fmt}: {name}", "skipped (not installed)", "-", "-") for name in result["skipped"]]
    return rows


def summary_rows(report: dict[str, Any]) -> list[Row]:
    summary = []
    for fmt, result in report["formats"].items():
        median, peak = result["median_s"], result["peak_rss"]
        peers = {k: v for k, v in median.items() if k != "toolkit" and "floor" not in k}
        if not peers:
            continue
        fastest = min(peers, key=peers.get)
        ratio = median["toolkit"] / peers[fastest]
        text = f"{ratio:.2f}x of {fastest}"
        summary.append(row(f"{fmt}: toolkit time / fastest peer", text, "<= 1.0x", ratio <= 1.0))
        memory = peak["toolkit"] / peak[fastest]
        metric = f"{fmt}: toolkit peak RSS / that peer's"
        summary.append(row(metric, f"{memory:.2f}x", "<= 0.5x", memory <= 0.5))
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--cols", type=int, default=20, help="features (plus one target)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument(
        "--val-fraction", default="0", help="toolkit's --val-fraction (0: every row, as the peers)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"rows": args.rows, "cols": args.cols, "formats": {}}
    with tempfile.TemporaryDirectory(prefix="bench_e2e_") as tmp:
        paths = make_files(args.rows, args.cols, Path(tmp))
        for fmt in args.formats.split(","):
            result = bench_format(fmt, paths[fmt], args.repeats, args.val_fraction)
            report["formats"][fmt] = result
            size = result["file_bytes"] / 2**20
            title = f"{fmt}, {args.rows:,} x {args.cols + 1}, {size:.0f} MiB"
            print_table(title, table_rows(fmt, result))
    return finish(report, summary_rows(report), args.json)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
