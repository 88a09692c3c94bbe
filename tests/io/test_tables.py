"""toolkit/io/tables.py: data in memory read as files are, chunk by chunk, with the same checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from toolkit.errors import DataError, UsageError
from toolkit.io import open_source
from toolkit.io.tables import ARRAYS_NAME, MEMORY_NAME, MemorySource, open_arrays, open_table


def columns(n: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": rng.standard_normal(n), "b": np.arange(n), "y": rng.standard_normal(n)}


def test_a_table_reads_as_the_same_parquet_file_reads(tmp_path):
    table = pa.table(columns(1000))
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=300)
    from_file = np.concatenate(list(open_source(tmp_path / "t.parquet").blocks(rows=128)))
    source = open_source(table)
    assert isinstance(source, MemorySource) and source.in_memory
    assert (source.feature_names, source.target_names) == (["a", "b"], ["y"])
    np.testing.assert_array_equal(np.concatenate(list(source.blocks(rows=128))), from_file)
    assert [len(b) for b in source.blocks(rows=128)] == [128] * 7 + [104]


@pytest.mark.parametrize("kind", ["pandas", "polars", "dict"])
def test_dataframes_are_tables(kind):
    data = columns()
    frame = {"pandas": pd.DataFrame(data, index=np.arange(10) * 7), "polars": pl.DataFrame(data)}
    source = open_source(frame.get(kind, data), targets=("a",))
    # A pandas index is not a column; the columns are picked as a file's are.
    assert (source.feature_names, source.target_names) == (["b", "y"], ["a"])
    expected = np.column_stack([data["b"], data["y"], data["a"]])
    np.testing.assert_array_equal(np.concatenate(list(source.blocks())), expected)


def test_columns_are_picked_with_the_files_messages():
    with pytest.raises(UsageError, match=r"unknown column 'Y' in --target; .* Did you mean 'y'\?"):
        open_source(pa.table(columns()), targets=("Y",))
    note = open_source(pa.table({"a": [1.0], "b": [2.0]})).notes
    assert note == ["no column is named 'y': using the last column, 'b', as the target "
                    "(choose with --target)."]  # fmt: skip


def test_bad_cells_are_named_by_row_counted_from_0_and_column():
    table = pa.table({"a": [1.0, 2.0, None, 4.0], "y": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DataError, match=rf"^{MEMORY_NAME}, row 2, column 'a': blank cell"):
        list(open_table(table).blocks(rows=2))
    features = np.array([[1.0], [np.inf], [3.0]])
    source = open_arrays(features, np.zeros(3), ["x"], ["y"])
    with pytest.raises(DataError, match=rf"^{ARRAYS_NAME}, row 1, column 'x': expected a finite"):
        list(source.blocks())
    # A caller that checked already (the estimator, through validate_data) skips the scan.
    unchecked = open_arrays(features, np.zeros(3), ["x"], ["y"], checked=True)
    assert np.isinf(np.concatenate(list(unchecked.blocks()))[1, 0])


def test_non_numeric_and_duplicate_columns_are_refused():
    with pytest.raises(DataError, match=r"column 's': has type string; expected a numeric column"):
        open_table(pa.table({"s": ["u"], "y": [1.0]}))
    twice = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], names=["a", "a"])
    with pytest.raises(DataError, match=r"column name 'a' appears 2 times"):
        open_table(twice)
    with pytest.raises(UsageError, match=r"data of type 'ndarray' is neither a path nor a table"):
        open_source(np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"has columns \(a, y\) but no rows"):
        list(
            open_table(
                pa.table({"a": pa.array([], pa.float64()), "y": pa.array([], pa.float64())})
            ).blocks()
        )


def test_arrays_are_read_without_a_copy_up_front():
    features = np.arange(12.0, dtype=np.float32).reshape(6, 2)
    targets = np.arange(6.0)
    source = open_arrays(features, targets, ["p", "q"], ["y"])
    features[5, 1] = -1.0  # read when the chunk is read, not when the source was opened
    block = np.concatenate(list(source.blocks(rows=4)))
    assert block.dtype == np.float64 and block[5, 1] == -1.0
    np.testing.assert_array_equal(block[:, 2], targets)


def test_processes_read_contiguous_row_ranges_covering_every_row():
    source = open_arrays(np.arange(10.0)[:, None], np.zeros(10), ["x"], ["y"])
    parts = [source.pieces(rank, 3) for rank in range(3)]
    assert [(p[0].start, p[0].stop) for p in parts] == [(0, 3), (3, 6), (6, 10)]
    read = [np.concatenate(list(source.blocks(p, rows=2)))[:, 0] for p in parts]
    np.testing.assert_array_equal(np.concatenate(read), np.arange(10.0))
    assert source.sha256() == ""  # no file behind it (see the module's docstring)


def test_training_on_a_table_equals_training_on_its_csv(tmp_path):
    from toolkit.api import train

    table = pa.table(columns(200))
    pyarrow.csv.write_csv(table, tmp_path / "t.csv")
    from_file = train(tmp_path / "t.csv", dtype="float64", out=tmp_path / "f.pt")
    in_memory = train(table, dtype="float64", out=tmp_path / "m.pt")
    # The same rows, the same seeded split, the same solver: the same weights.
    np.testing.assert_array_equal(in_memory.weight, from_file.weight)
    assert in_memory.data["val_rows"] == from_file.data["val_rows"] > 0
    assert in_memory.data["source"] == MEMORY_NAME and in_memory.data["sha256"] == ""
