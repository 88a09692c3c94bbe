"""Profile: what `toolkit train --solver exact` spends beyond reading its CSV, by stage.

Issue 16's streaming bar compares the training pass with a bare read by the same reader
(scripts/bench_scale.py: toolkit.io.csvslices' slices, each parsed by pyarrow's
read_csv). Where pyarrow's parser already fills every core, wall time follows CPU time,
so this script answers in CPU-seconds, from fresh processes, interleaved:

- read only: the bare read; the process's user and system CPU;
- train: `toolkit train --solver exact --dtype float64` in-process, each stage of the pass
  wrapped to add up the CPU time of the thread it runs on (`time.thread_time`): the file's
  slices (reads), the SHA-256 (its own thread), the Arrow-to-numpy block, the finiteness
  check, the split's row hash, the moments, the spill's writes (its writer threads, system
  time included: thread CPU counts both), the metric pass over the spilled rows. The parse
  itself runs on pyarrow's threads: it shows in the process's CPU only.

The summary adds the floor: the read plus the work no faster pass could drop and keep the
guarantees (the SHA-256, the spill, the moments; see KEPT), against the read.

    .venv/bin/python scripts/profile_pass.py --csv-path /data/scale.csv   # bench_scale's file
    .venv/bin/python scripts/profile_pass.py --quick

A report: it exits 0 whatever it finds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench_scale import DEFAULT_ROWS, QUICK_ROWS, warm_page_cache, write_csv
from benchlib import ROOT, print_table

STAGES = {  # label: (module, attribute, kind)
    "slices: file reads": ("toolkit.io.csvslices", "read_slices", "generator"),
    "parsed batches (combine)": ("toolkit.io.csvslices", "parsed_batches", "generator"),
    "block: Arrow to numpy": ("toolkit.io.blocks", "to_block", "call"),
    "block: finiteness check": ("toolkit.io.blocks", "check_finite", "call"),
    "split: row hash": ("toolkit.training.readpass", "holdout_mask", "call"),
    "moments": ("toolkit.training.moments", "Accumulator.add", "call"),
    "metric pass (spill read back)": ("toolkit.training.train", "_evaluate", "call"),
    "spill: writes (its threads)": ("toolkit.training.spill", "RowSpill._write", "call"),
}
HASH = "SHA-256 (own thread)"
# Work the pass cannot drop and keep its guarantees: the file's SHA-256 (the checkpoint's
# training_data_sha256), the spill (the metrics of the model as saved, MAE included, need
# a second pass over the rows) and the moments (the fit itself).
KEPT = (HASH, "spill: writes (its threads)", "moments")


def _wrapped(function: Any, label: str, cpu: Counter[str], generator: bool) -> Any:
    """`function`, adding the CPU time of the thread it runs on (between yields) to cpu."""
    if not generator:

        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                cpu[label] += time.thread_time() - start

        return call

    def items(*args: Any, **kwargs: Any) -> Any:
        inner = function(*args, **kwargs)
        while True:
            start = time.thread_time()
            try:
                item = next(inner)
            except StopIteration:
                return
            finally:
                cpu[label] += time.thread_time() - start
            yield item

    return items


def _instrument(cpu: Counter[str]) -> None:
    import importlib

    for label, (module_name, attribute, kind) in STAGES.items():
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, _wrapped(getattr(owner, name), label, cpu, kind == "generator"))
    from toolkit.io import csvslices

    class TimedDigest:  # hashlib's interface, timed on the hashing thread
        def __init__(self, digest: Any) -> None:
            self.digest = digest
            self.update = _wrapped(digest.update, HASH, cpu, False)

        def hexdigest(self) -> str:
            return self.digest.hexdigest()

    original = csvslices._Hashing.__init__

    def hashing_init(self: Any, digest: Any) -> None:
        original(self, TimedDigest(digest))

    csvslices._Hashing.__init__ = hashing_init  # type: ignore[method-assign]


def probe_train(csv_path: str, out: str) -> dict[str, Any]:
    cpu: Counter[str] = Counter()
    _instrument(cpu)
    from toolkit.cli import cli

    args = ["train", "--data", csv_path, "--solver", "exact", "--dtype", "float64"]
    side = _timed(lambda: cli.main([*args, "--out", out, "--quiet"], prog_name="toolkit"))
    return {**side, "stages": dict(cpu)}


def _timed(work: Any) -> dict[str, float]:
    """The wall, user and system seconds of `work()` (a click command's exit 0 is fine)."""
    before, start = os.times(), time.perf_counter()
    try:
        work()
    except SystemExit as done:
        if done.code:
            raise
    after = os.times()
    return {
        "wall": time.perf_counter() - start,
        "user": after.user - before.user,
        "system": after.system - before.system,
    }


def probe_read(csv_path: str) -> dict[str, Any]:
    import pyarrow
    import pyarrow.csv as pa_csv

    from toolkit.io import csvslices
    from toolkit.io.csv import csv_header, csv_options
    from toolkit.io.shards import Shard

    path = Path(csv_path)
    columns = csv_header(path, csv_path)
    read_options, convert_options = csv_options(columns)
    shard = Shard(path, csv_path, "csv", path.stat().st_size, tuple(columns))

    def read() -> None:
        options = read_options
        for number, data in enumerate(csvslices.read_slices(path, 0, -1)):
            if number == 1:
                options = csvslices.later_options(options, shard)
            pa_csv.read_csv(
                pyarrow.py_buffer(data), read_options=options, convert_options=convert_options
            )

    return {**_timed(read), "stages": {}}


def run_probe(kind: str, csv_path: Path, work: Path) -> dict[str, Any]:
    """One fresh process: its wall, stage CPU and the process's user and system CPU."""
    argv = [sys.executable, __file__, "--probe", kind, "--csv-path", str(csv_path)]
    argv += ["--out", str(work / "model.pt")]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{kind} probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(read: dict[str, Any], train: dict[str, Any]) -> None:
    def cpu(side: dict[str, Any]) -> float:
        return side["user"] + side["system"]

    rows = [("side", "wall s", "user s", "system s", "CPU s")]
    for name, side in (("read only", read), ("train", train)):
        rows.append(
            (name, *(f"{side[k]:.2f}" for k in ("wall", "user", "system")), f"{cpu(side):.2f}")
        )
    print_table("processes, from the first byte read (best wall of the rounds)", rows)
    stages = [("stage of train", "thread CPU s")]
    stages += [(k, f"{v:.2f}") for k, v in sorted(train["stages"].items(), key=lambda i: -i[1])]
    print_table("train's stages: their threads' CPU (not the parse)", stages)
    extra = cpu(train) - cpu(read)
    kept = sum(train["stages"].get(stage, 0.0) for stage in KEPT)
    floor = (cpu(read) + kept) / cpu(read)
    print_table(
        "summary",
        [
            ("metric", "value"),
            ("train / read, wall", f"{train['wall'] / read['wall']:.2f}x"),
            ("train / read, CPU", f"{cpu(train) / cpu(read):.2f}x"),
            ("train's CPU beyond the read", f"{extra:.2f} s"),
            ("... within the bar (1.2x of the read's CPU)", f"{0.2 * cpu(read):.2f} s"),
            ("... of which the kept work: SHA-256, spill writes, moments", f"{kept:.2f} s"),
            ("(read + the kept work) / read, CPU: the floor", f"{floor:.2f}x"),
        ],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv-path", type=Path, help="the CSV; written (bench_scale's) if missing")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds: best wall")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    parser.add_argument("--probe", choices=["read", "train"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:  # one side, in this process: its figures as one JSON line
        csv_path = str(args.csv_path)
        side = probe_read(csv_path) if args.probe == "read" else probe_train(csv_path, args.out)
        print(json.dumps(side))
        return 0
    with tempfile.TemporaryDirectory(prefix="toolkit-profile-") as folder:
        work = Path(folder)
        path = args.csv_path or work / "scale.csv"
        if not path.exists():
            write_csv(path, QUICK_ROWS if args.quick else DEFAULT_ROWS, 32)
        warm_page_cache(path)
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for kind in ("read", "train"):
                side = run_probe(kind, path, work)
                if kind not in best or side["wall"] < best[kind]["wall"]:
                    best[kind] = side
        print(f"file: {path} ({path.stat().st_size / 1e9:.2f} GB), {args.rounds} rounds")
        report(best["read"], best["train"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
