"""Benchmark "Scale out": `toolkit train --solver exact` on a CSV file larger than 2 GiB.

Three questions, each answered by fresh subprocesses on one generated file (seeded: 32
float64 features, y = X @ w + 1 + noise, written block by block, so the generator never
holds the file in memory):

1. memory: the peak RSS of one training process (target < 1 GiB), and under torchrun
   each worker's peak and the summed peak of the whole process tree;
2. scale-out: 1 process against `torchrun --standalone --nproc-per-node 2` (gloo on CPU),
   end-to-end wall and the JSON `seconds` (rank 0's time inside `train()`), and whether
   both reach the same float64 model (max |w2 - w1| / max |w1| <= 1e-10: summation order);
3. streaming: the 1-process training `seconds` against only reading the file with the
   same reader: `toolkit.io.csvslices`' slices, each parsed by `pyarrow.csv.read_csv`
   with `toolkit.io.csv.csv_options` (every column), nothing else (target <= 1.2x, issue
   16). `seconds` is the whole `train()` call, torch's import included (a single CPU
   process runs its pass while torch is imported: toolkit/training/early.py); what is
   left that does not grow with the data (the import above all) is measured by the same
   run on the embedded 4-row seed data, and the ratio less that fixed cost is shown.

Every command runs through a small wrapper that calls the CLI in-process and then prints
its own peak RSS (`ru_maxrss`, exact) and thread settings to stderr; a thread polls the
process tree's RSS (psutil, every 50 ms) for the summed peaks. The sides (read only,
1 process, 2 processes, seed data) run interleaved in rounds, so a slow spell hits them
all; times are the best of N, memory the worst of N. The machine has few cores and
pyarrow already parses with all of them, so the speed-up is information, not a target.
This is a report, not a test: it exits 0 when a target is missed, non-zero only when
something crashes. Training spills its rows to $TMPDIR (float64: ~1 GB for the full file).

    .venv/bin/python scripts/bench_scale.py --quick              # smoke run, ~100 MB file
    .venv/bin/python scripts/bench_scale.py --json scale.json    # full run, 2.4 GB, minutes
    .venv/bin/python scripts/bench_scale.py --csv-path /data/scale.csv   # keep / reuse it
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from benchlib import ROOT, Row, finish, print_seconds, print_table, row

SEED = 0
MIN_FILE_BYTES = 2 << 30  # the full run's file must be larger than 2 GiB
DEFAULT_ROWS = 3_700_000  # about 650 bytes a row at 33 columns: about 2.4 GB
QUICK_ROWS = 160_000  # about 100 MB
GEN_BLOCK_ROWS = 500_000  # rows generated and written at a time (the file depends on it)
POLL_SECONDS = 0.05
RSS_TARGET_MIB = 1024
STREAM_TARGET = 1.2  # training seconds / read-only seconds (issue 16)
READ_ONLY = "read only: the same slices and read_csv, nothing else"
EXACT_RTOL = 1e-10  # float64 weights, 2 processes vs 1: summation order alone
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]

# Runs `toolkit ARGS` in-process, exactly as the console script does (click's standalone
# mode: same messages, same exit code), then reports this process's peak RSS and threads.
TRAIN_PROBE = """
import json, os, resource, sys
from toolkit.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="toolkit")
    code = 0
except SystemExit as done:
    code = done.code
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
import pyarrow
torch = sys.modules.get("torch")  # an exact fit on the CPU never imports it: nor does this
probe = {
    "rank": int(os.environ.get("RANK", "0")),
    "peak_rss": peak,
    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    "torch_threads": torch.get_num_threads() if torch is not None else None,
    "arrow_threads": pyarrow.cpu_count(),
}
print("bench-probe " + json.dumps(probe), file=sys.stderr, flush=True)
sys.exit(code)
"""
# Only reads the CSV with the training reader: its slices (toolkit/io/csvslices.py), each
# parsed by pyarrow's read_csv with the training reader's options, nothing else.
READ_PROBE = """
import json, os, resource, sys, time
from pathlib import Path
import pyarrow, pyarrow.csv as pa_csv
from toolkit.io import csvslices
from toolkit.io.csv import csv_header, csv_options
from toolkit.io.shards import Shard
path, chunk_rows = sys.argv[1], int(sys.argv[2])
columns = csv_header(Path(path), path)
read_options, convert_options = csv_options(columns)
shard = Shard(Path(path), path, "csv", os.path.getsize(path), tuple(columns))
rows = batches = 0
start = time.perf_counter()
for number, data in enumerate(csvslices.read_slices(Path(path), 0, -1)):
    if number == 1:
        read_options = csvslices.later_options(read_options, shard)
    table = pa_csv.read_csv(pyarrow.py_buffer(data), read_options=read_options,
                            convert_options=convert_options)
    rows += table.num_rows
    batches += 1
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": rows, "columns": len(columns), "batches": batches,
                  "block_bytes": read_options.block_size}))
probe = {
    "rank": 0,
    "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    "torch_threads": None,
    "arrow_threads": pyarrow.cpu_count(),
}
print("bench-probe " + json.dumps(probe), file=sys.stderr, flush=True)
"""


def write_csv(path: Path, rows: int, cols: int) -> None:
    """x0..x{cols-1}, y: seeded float64 normals, y = X @ w + 1 + 0.1 * noise, block by block."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(SEED)
    w = rng.standard_normal(cols)
    names = [f"x{j}" for j in range(cols)] + ["y"]
    schema = pa.schema([(name, pa.float64()) for name in names])
    with pa_csv.CSVWriter(path, schema) as writer:  # writes the header once
        for start in range(0, rows, GEN_BLOCK_ROWS):
            k = min(GEN_BLOCK_ROWS, rows - start)
            x = rng.standard_normal((k, cols))
            y = x @ w + 1.0 + 0.1 * rng.standard_normal(k)
            writer.write_table(pa.table([*x.T, y], schema=schema))
            del x, y


def warm_page_cache(path: Path) -> None:
    """Read the file once, untimed, so the first timed side does not pay for the disk."""
    with path.open("rb", buffering=0) as handle:
        buffer = bytearray(16 << 20)
        while handle.readinto(buffer):
            pass


def rss(process: psutil.Process) -> int:
    """Resident bytes of a process now; 0 once it is gone."""
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def measured(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `argv` from the repository root; its wall, output, probes and polled peak RSS.

    A thread samples the RSS of the process and all its descendants every 50 ms: the peak
    of their sum, and of the descendants' sum alone (torchrun's workers without the
    launcher). Raises with the command and its stderr if it fails.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=err, env=env)
        peaks = {"tree": 0, "descendants": 0}
        done = threading.Event()

        def poll() -> None:
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not done.is_set():
                try:
                    children = root.children(recursive=True)
                except psutil.Error:
                    children = []
                descendants = sum(rss(child) for child in children)
                peaks["tree"] = max(peaks["tree"], rss(root) + descendants)
                peaks["descendants"] = max(peaks["descendants"], descendants)
                done.wait(POLL_SECONDS)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        code = proc.wait()
        wall = time.perf_counter() - start
        done.set()
        poller.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code != 0:
        raise RuntimeError(
            f"command failed with exit code {code}:\n  {shlex.join(argv)}\n"
            f"stdout (last 3000 characters):\n{stdout[-3000:]}\n"
            f"stderr (last 3000 characters):\n{stderr[-3000:]}"
        )
    probes = [
        json.loads(line.removeprefix("bench-probe "))
        for line in stderr.splitlines()
        if line.startswith("bench-probe ")
    ]
    return {
        "wall": wall,
        "output": json.loads(stdout),
        "probes": sorted(probes, key=lambda p: p["rank"]),
        "polled_peak_tree": peaks["tree"],
        "polled_peak_descendants": peaks["descendants"],
    }


def bench(path: Path, chunk_rows: int, repeats: int, work: Path) -> dict[str, Any]:
    probe = work / "train_probe.py"
    probe.write_text(TRAIN_PROBE)
    common = ["--solver", "exact", "--dtype", "float64", "--device", "cpu"]
    common += ["--chunk-rows", str(chunk_rows), "--json", "-q"]
    data = ["--data", str(path), *common]

    def train(launcher: list[str], args: list[str], out: str) -> list[str]:
        return [*launcher, str(probe), "train", *args, "--out", str(work / out)]

    commands = {
        "read only": [sys.executable, "-c", READ_PROBE, str(path), str(chunk_rows)],
        "1 process": train([sys.executable], data, "1.pt"),
        "2 processes": train([*TORCHRUN, "2"], data, "2.pt"),
        # The same run on the embedded 4-row seed data: what `seconds` costs with no data.
        "fixed cost": train([sys.executable], common, "0.pt"),
    }
    # torchrun sets OMP_NUM_THREADS=1 in every worker anyway; setting it silences its warning.
    envs = {
        "read only": None,
        "1 process": None,
        "2 processes": {**os.environ, "OMP_NUM_THREADS": "1"},
        "fixed cost": None,
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, argv in commands.items():
            runs[name].append(measured(argv, envs[name]))

    read, one, two = runs["read only"], runs["1 process"], runs["2 processes"]
    counts = {
        "read only": {r["output"]["rows"] for r in read},
        "1 process": {r["output"]["data"]["rows"] for r in one},
        "2 processes": {r["output"]["data"]["rows"] for r in two},
    }
    if len(set().union(*counts.values())) != 1:
        raise RuntimeError(f"the sides disagree on the number of rows: {counts}")
    if {r["output"]["data"]["processes"] for r in two} != {2}:
        raise RuntimeError("torchrun did not train on 2 processes")
    if any([p["rank"] for p in r["probes"]] != [0, 1] for r in two):
        raise RuntimeError(f"expected a probe line from ranks 0 and 1: {two[0]['probes']}")

    def weights(run: dict[str, Any]) -> np.ndarray:
        return np.ravel(run["output"]["weights"])

    def bias(run: dict[str, Any]) -> np.ndarray:
        return np.ravel(run["output"]["bias"])

    w_diff = max(
        float(np.abs(weights(b) - weights(a)).max() / np.abs(weights(a)).max())
        for a, b in zip(one, two, strict=True)
    )
    b_diff = max(
        float(np.abs(bias(b) - bias(a)).max() / max(np.abs(bias(a)).max(), 1e-300))
        for a, b in zip(one, two, strict=True)
    )
    seconds = {
        READ_ONLY: min(r["output"]["seconds"] for r in read),
        "read only: wall": min(r["wall"] for r in read),
        "1 process: train seconds": min(r["output"]["seconds"] for r in one),
        "1 process: wall": min(r["wall"] for r in one),
        "2 processes: train seconds (rank 0)": min(r["output"]["seconds"] for r in two),
        "2 processes: wall": min(r["wall"] for r in two),
        "fixed cost: train seconds on 4 rows": min(
            r["output"]["seconds"] for r in runs["fixed cost"]
        ),
    }
    worker_peaks = [max(r["probes"][k]["peak_rss"] for r in two) for k in range(2)]
    return {
        "commands": {name: shlex.join(argv) for name, argv in commands.items()},
        "omp_num_threads_set": {
            name: (env or {}).get("OMP_NUM_THREADS") for name, env in envs.items()
        },
        "rows": counts["read only"].pop(),
        "read": {k: read[0]["output"][k] for k in ("columns", "batches", "block_bytes")},
        "seconds": seconds,
        "seconds_all": {
            name: [{"wall": r["wall"], "seconds": r["output"]["seconds"]} for r in side]
            for name, side in runs.items()
        },
        "peak_rss": {  # bytes, worst over the repeats
            "read only": max(r["probes"][0]["peak_rss"] for r in read),
            "1 process": max(r["probes"][0]["peak_rss"] for r in one),
            "2 processes, rank 0": worker_peaks[0],
            "2 processes, rank 1": worker_peaks[1],
        },
        "polled_peak_rss": {  # bytes, worst over the repeats
            "1 process": max(r["polled_peak_tree"] for r in one),
            "2 processes: launcher + workers": max(r["polled_peak_tree"] for r in two),
            "2 processes: workers": max(r["polled_peak_descendants"] for r in two),
        },
        "threads": {
            f"{name}, rank {p['rank']}" if name == "2 processes" else name: {
                key: p[key] for key in ("OMP_NUM_THREADS", "torch_threads", "arrow_threads")
            }
            for name, side in runs.items()
            if name != "fixed cost"
            for p in side[0]["probes"]
        },
        "speedup_train_seconds": seconds["1 process: train seconds"]
        / seconds["2 processes: train seconds (rank 0)"],
        "speedup_wall": seconds["1 process: wall"] / seconds["2 processes: wall"],
        "train_over_read": seconds["1 process: train seconds"] / seconds[READ_ONLY],
        "train_less_fixed_over_read": (
            seconds["1 process: train seconds"] - seconds["fixed cost: train seconds on 4 rows"]
        )
        / seconds[READ_ONLY],
        "max_rel_diff_weights_2_vs_1": w_diff,
        "max_rel_diff_bias_2_vs_1": b_diff,
    }


def summary_rows(report: dict[str, Any], repeats: int) -> list[Row]:
    file, res = report["file"], report["scale"]
    mib = {k: v / 2**20 for k, v in res["peak_rss"].items()}
    polled = {k: v / 2**20 for k, v in res["polled_peak_rss"].items()}
    s = res["seconds"]
    one, workers = mib["1 process"], (mib["2 processes, rank 0"], mib["2 processes, rank 1"])
    ratio, w_diff = res["train_over_read"], res["max_rel_diff_weights_2_vs_1"]
    threads, read = res["threads"], res["read"]
    fixed = s["fixed cost: train seconds on 4 rows"]

    def thread_text(name: str) -> str:
        t = threads[name]
        omp, torch, arrow = t["OMP_NUM_THREADS"], t["torch_threads"], t["arrow_threads"]
        return f"OMP_NUM_THREADS={omp}, torch {torch}, arrow {arrow}"

    return [
        row("file: CSV size", f"{file['bytes'] / 1e9:.2f} GB, {res['rows']:,} rows"),
        row(
            f"memory: 1 process peak RSS (worst of {repeats})",
            f"{one:.0f} MiB",
            f"< {RSS_TARGET_MIB} MiB",
            one < RSS_TARGET_MIB,
        ),
        row("memory: 2 processes, peak RSS per worker", f"{workers[0]:.0f}, {workers[1]:.0f} MiB"),
        row(
            "memory: 2 processes, workers' summed peak", f"{polled['2 processes: workers']:.0f} MiB"
        ),
        row(
            "memory: 2 processes, + torchrun launcher",
            f"{polled['2 processes: launcher + workers']:.0f} MiB",
        ),
        row("memory: read only peak RSS", f"{mib['read only']:.0f} MiB"),
        row("time: 1 process wall", f"{s['1 process: wall']:.2f} s"),
        row("time: 2 processes wall", f"{s['2 processes: wall']:.2f} s"),
        row("time: 1 process train seconds", f"{s['1 process: train seconds']:.2f} s"),
        row("time: 2 processes train seconds", f"{s['2 processes: train seconds (rank 0)']:.2f} s"),
        row("scale: speed-up 1 / 2 processes (seconds)", f"{res['speedup_train_seconds']:.2f}x"),
        row("scale: speed-up 1 / 2 processes (wall)", f"{res['speedup_wall']:.2f}x"),
        row(
            "stream: 1 process train s / read-only s",
            f"{ratio:.2f}x",
            f"<= {STREAM_TARGET}x",
            ratio <= STREAM_TARGET,
        ),
        row("stream: fixed cost: train s on 4 seed rows", f"{fixed:.2f} s"),
        row(
            "stream: (train s - fixed cost) / read-only s",
            f"{res['train_less_fixed_over_read']:.2f}x",
        ),
        row(
            "stream: reader blocks, slices",
            f"{read['block_bytes'] / 2**20:.1f} MiB blocks, {read['batches']:,} slices",
        ),
        row(
            "model: max|w2 - w1| / max|w1| (float64)",
            f"{w_diff:.1e}",
            f"<= {EXACT_RTOL:.0e}",
            w_diff <= EXACT_RTOL,
        ),
        row("model: bias relative difference", f"{res['max_rel_diff_bias_2_vs_1']:.1e}"),
        row("threads: 1 process", thread_text("1 process")),
        row("threads: 2 processes, each worker", thread_text("2 processes, rank 0")),
        row("threads: read only", thread_text("read only")),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate")
    parser.add_argument("--cols", type=int, default=32, help="feature columns to generate")
    parser.add_argument("--chunk-rows", type=int, default=65_536, help="training --chunk-rows")
    parser.add_argument("--repeats", type=int, default=2, help="best of N, interleaved")
    parser.add_argument(
        "--csv-path", type=Path, help="write the CSV here and keep it; reused if it exists"
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_ROWS:,} rows")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    rows = QUICK_ROWS if args.quick else args.rows
    reuse = args.csv_path is not None and args.csv_path.exists()

    import pyarrow as pa

    config: dict[str, Any] = dict(rows=rows, cols=args.cols, chunk_rows=args.chunk_rows)
    config.update(repeats=args.repeats, seed=SEED, quick=args.quick, csv_path=args.csv_path)
    config.update(cpus=os.cpu_count(), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS"))
    config.update(python=platform.python_version(), numpy=np.__version__, pyarrow=pa.__version__)
    config.update(torch=importlib.metadata.version("torch"))
    if reuse:
        config.update(rows="from the file", cols="from the file")
    report: dict[str, Any] = {"config": {k: str(v) for k, v in config.items()}}
    print("config: " + ", ".join(f"{k}={v}" for k, v in config.items()))

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        path = args.csv_path or work / "scale.csv"
        started = time.perf_counter()
        if not reuse:
            write_csv(path, rows, args.cols)
        size = path.stat().st_size
        written = time.perf_counter() - started
        how = "reused" if reuse else f"written in {written:.1f} s"
        print(f"\nCSV: {path}, {size:,} bytes ({size / 1e9:.2f} GB, {size / 2**30:.2f} GiB), {how}")
        report["file"] = {"path": str(path), "bytes": size, "reused": reuse}
        if size <= MIN_FILE_BYTES and not args.quick:
            fix = "delete it or name another --csv-path" if reuse else "raise --rows (or --cols)"
            print(
                f"error: {path} holds {size:,} bytes, not more than 2 GiB ({MIN_FILE_BYTES:,}); "
                f"{fix}, or pass --quick for a smoke run.",
                file=sys.stderr,
            )
            return 1
        warm_page_cache(path)
        report["scale"] = bench(path, args.chunk_rows, args.repeats, work)

    res = report["scale"]
    print_seconds(f"seconds, best of {args.repeats} (fresh subprocesses)", res["seconds"])
    rss_rows = [(name, f"{value / 2**20:.0f}") for name, value in res["peak_rss"].items()]
    rss_rows += [
        (f"{name} (polled sum)", f"{value / 2**20:.0f}")
        for name, value in res["polled_peak_rss"].items()
    ]
    print_table(f"peak RSS, worst of {args.repeats}", [("process", "MiB"), *rss_rows])
    thread_rows = [
        (name, str(t["OMP_NUM_THREADS"]), str(t["torch_threads"]), str(t["arrow_threads"]))
        for name, t in res["threads"].items()
    ]
    print_table(
        "threads per process",
        [("process", "OMP_NUM_THREADS", "torch threads", "arrow threads"), *thread_rows],
    )
    return finish(report, summary_rows(report, args.repeats), args.json)


if __name__ == "__main__":
    sys.exit(main())
