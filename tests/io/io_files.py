"""Data files the io tests share (a helper module: a conftest.py here would shadow the
top-level one that other tests import from)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_shards(tmp_path: Path) -> tuple[Path, Path]:
    """One table split over three shards (two CSV, one Parquet), and the whole as one CSV."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 2))
    y = x @ [2.0, -1.0] + 0.5

    def csv_text(rows: np.ndarray, values: np.ndarray) -> str:
        pairs = zip(rows.tolist(), values.tolist(), strict=True)
        return "a,b,y\n" + "".join(f"{r[0]!r},{r[1]!r},{v!r}\n" for r, v in pairs)

    whole = tmp_path / "whole.csv"
    whole.write_text(csv_text(x, y))
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, (start, stop) in enumerate([(0, 10), (10, 18)]):
        (folder / f"part-{i}.csv").write_text(csv_text(x[start:stop], y[start:stop]))
    pq.write_table(
        pa.table({"y": y[18:], "b": x[18:, 1], "a": x[18:, 0]}), folder / "part-2.parquet"
    )
    (folder / "notes.txt").write_text("not data")  # ignored: not .csv/.parquet/.pq
    return whole, folder


def write_mixed_shards(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Two CSV shards (one with blank lines and CRLF) and a Parquet shard of 7 row groups."""
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal((400, 3)), 6)
    folder = tmp_path / "mixed"
    folder.mkdir()
    text = "a,b,y\n" + "".join(f"{r[0]},{r[1]},{r[2]}\n" for r in x[:150])
    (folder / "p0.csv").write_text(text)
    crlf = "a,b,y\r\n" + "".join(
        f"{r[0]},{r[1]},{r[2]}\r\n" + ("\r\n" if i % 17 == 0 else "")
        for i, r in enumerate(x[150:300])
    )
    (folder / "p1.csv").write_bytes(crlf.encode())
    table = pa.table({"a": x[300:, 0], "b": x[300:, 1], "y": x[300:, 2]})
    pq.write_table(table, folder / "p2.parquet", row_group_size=15)
    return folder, x
