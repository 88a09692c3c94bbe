"""What the scripts/bench_*.py reports share: the summary table, its verdicts, its JSON.

Each report times a candidate against a baseline in the same run and prints one summary
table of `row(metric, measured, target, ok)`: PASS/MISS where there is a target, info
otherwise. A report exits 0 even on MISS; only a crash is a failure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
Row = tuple[str, str, str, str]  # metric, measured, target, verdict
HEADER: Row = ("metric", "measured", "target", "verdict")


def row(metric: str, text: str, target: str = "-", ok: bool | None = None) -> Row:
    return metric, text, target, "info" if ok is None else ("PASS" if ok else "MISS")


def print_table(title: str, rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"\n{title}")
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def print_seconds(title: str, seconds: dict[str, float]) -> None:
    print_table(title, [("side", "best s"), *((k, f"{v:.3f}") for k, v in seconds.items())])


def size_parser(doc: str) -> argparse.ArgumentParser:
    """The options of the in-memory size benchmarks (bench_train, bench_api): --rows,
    --cols, --repeats, --quick (100,000 rows) and --json; callers add their own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5, help="best of N, interleaved")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100,000 rows")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser


def run_config(rows: int, cols: int, repeats: int, seed: int) -> dict[str, Any]:
    """The run's size and the machine's: printed first, and kept in the JSON report."""
    import os
    import platform

    import numpy as np
    import torch

    config: dict[str, Any] = dict(rows=rows, cols=cols, repeats=repeats, seed=seed)
    config.update(cpus=os.cpu_count(), torch_threads=torch.get_num_threads())
    config.update(python=platform.python_version(), numpy=np.__version__, torch=torch.__version__)
    print("config: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    return config


def finish(report: dict[str, Any], summary: list[Row], json_path: Path | None) -> int:
    """Print the summary table, write the report as JSON if asked, and return exit code 0."""
    report["summary"] = [dict(zip(HEADER, r, strict=True)) for r in summary]
    print_table("summary", [HEADER, *summary])
    if json_path:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {json_path}")
    return 0
