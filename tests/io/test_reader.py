"""toolkit/io/reader.py: the one reader, and `open_input` (the input of `toolkit predict`)."""

from __future__ import annotations

import io
import sys
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from io_files import write_mixed_shards

from toolkit.errors import DataError, UsageError
from toolkit.io import open_input, open_source


@pytest.fixture
def mixed_shards(tmp_path):
    return write_mixed_shards(tmp_path)


def _stdin(monkeypatch, content: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(content)))


def test_floats_are_float64_and_text_stays_text(write_csv):
    path = write_csv("in.csv", "id,x2,x1,extra\n007,1,2,zz\n008,3.5,4,zz\n")
    with open_input(path, ["x1", "x2"], ["id"]) as table:
        ((block, batch),) = list(table.chunks(finite=True))
    np.testing.assert_array_equal(block, [[2.0, 1.0], [4.0, 3.5]])
    assert block.dtype == np.float64 and block.flags.c_contiguous
    assert batch.column("id").to_pylist() == ["007", "008"]  # not numbers: leading zeros kept


def test_non_finite_values_are_refused_only_when_asked(write_csv):
    path = write_csv("nan.csv", "x1,x2\n1,2\n\n3,nan\n4,-inf\n")
    with open_input(path, ["x1", "x2"]) as table:
        blocks = [block for block, _ in table.chunks(finite=False)]
        assert np.isnan(blocks[0][1, 1]) and blocks[0][2, 1] == -np.inf
        with pytest.raises(DataError) as caught:
            list(table.chunks(finite=True))
    assert str(caught.value) == (
        f"{path}, row 4, column 'x2': expected a finite number, got nan; remove or fill in the row."
    )


def test_blank_cells_are_refused_either_way(write_csv):
    path = write_csv("blank.csv", 'x1,x2\n"1\n",2\n3,\n')  # a quoted newline: row 2 is 2 lines
    with open_input(path, ["x2"]) as table, pytest.raises(DataError) as caught:
        list(table.chunks(finite=False))
    assert str(caught.value) == f"{path}, row 4, column 'x2': blank cell; expected a number."


def test_batch_row_is_the_row_seen_in_the_file(write_csv):
    path = write_csv("rows.csv", "x\n1\n\n2\n\n\n3\n")
    with open_input(path, ["x"]) as table:
        ((_, batch),) = list(table.chunks(finite=True))
    assert [batch.row(i) for i in range(3)] == [2, 4, 7]
    assert batch.row(3) is None  # past the end: shown as "?"


def test_chunks_are_the_blocks_training_reads(mixed_shards):
    folder, x = mixed_shards
    for name, rows in [("p0.csv", x[:150]), ("p1.csv", x[150:300]), ("p2.parquet", x[300:])]:
        with open_input(folder / name, ["a", "b", "y"]) as table:
            chunks = [block for block, _ in table.chunks(7, finite=True)]
        blocks = list(open_source(folder / name).blocks(rows=7))
        assert [len(c) for c in chunks] == [len(b) for b in blocks]
        assert max(len(c) for c in chunks) <= 7
        np.testing.assert_array_equal(np.concatenate(chunks), rows)


def test_a_header_only_input_has_no_chunks(write_csv):
    with open_input(write_csv("h.csv", "x1,x2\n"), ["x1", "x2"]) as table:
        assert list(table.chunks(finite=True)) == []


def test_missing_columns_are_a_usage_error_naming_what_the_file_has(write_csv):
    path = write_csv("m.csv", "x1,x3\n1,2\n")
    with pytest.raises(UsageError) as caught, open_input(path, ["x1", "x2"], ["key"]):
        pass
    assert str(caught.value) == f"{path} lacks columns 'x2', 'key'; it has x1, x3."


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("X1,X2", "it has X1, X2. Names must match exactly: did you mean 'X1' for 'x1', 'X2' for"),
        ("x1\tx2", "it has 'x1\\tx2'. The file looks separated by tabs; toolkit reads comma-"),
    ],
)
def test_missing_columns_show_what_may_have_been_meant(write_csv, header, message):
    path = write_csv("in.csv", f"{header}\n1,2\n")
    with pytest.raises(UsageError) as caught, open_input(path, ["x1", "x2"]):
        pass
    assert message in str(caught.value)


def test_spaces_around_header_names_do_not_count(write_csv):
    path = write_csv("in.csv", " x1 , x2\n1,2\n")
    with open_input(path, ["x1", "x2"]) as table:
        assert [block.tolist() for block, _ in table.chunks(finite=True)] == [[[1.0, 2.0]]]


def test_a_missing_file_or_a_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"input file '.*nope\.csv' does not exist\."):
        open_input(tmp_path / "nope.csv", ["x"]).__enter__()
    with pytest.raises(UsageError, match=r"is a folder; expected a file\."):
        open_input(tmp_path, ["x"]).__enter__()


def test_a_string_parquet_column_is_refused_before_reading(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"x1": ["1.5", "b"], "id": ["a", "b"]}), path)
    with pytest.raises(DataError, match=r"column 'x1': has type string; expected a numeric"):
        open_input(path, ["x1"]).__enter__()
    with open_input(path, [], ["id"]) as table:  # a text column may be text
        assert [b.column("id").to_pylist() for _, b in table.chunks(finite=True)] == [["a", "b"]]


def test_stdin_is_read_as_a_file_named_stdin(monkeypatch):
    _stdin(monkeypatch, b"x1,x2\n1,2\n\n3,abc\n")
    with open_input("-", ["x1", "x2"]) as table:
        copy = table.shard.path
        assert table.name == "<stdin>" and copy.exists()
        with pytest.raises(DataError) as caught:
            list(table.chunks(finite=False))
    assert not copy.exists()  # the temporary copy is gone
    assert str(caught.value) == "<stdin>, row 4, column 'x2': expected a number, got 'abc'."


def test_parquet_on_stdin_is_found_by_its_magic_bytes(monkeypatch):
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x1": [1.0, 2.0]}), sink)
    _stdin(monkeypatch, sink.getvalue().to_pybytes())
    with open_input("-", ["x1"]) as table:
        assert table.shard.format == "parquet"
        assert [b.tolist() for b, _ in table.chunks(finite=True)] == [[[1.0], [2.0]]]


def test_leaving_open_input_stops_a_reader_left_half_way(monkeypatch):
    import threading

    _stdin(monkeypatch, b"x\n" + b"1\n" * 10_000)
    with open_input("-", ["x"]) as table:
        chunks = table.chunks(1, finite=True)
        assert next(chunks)[0].tolist() == [[1.0]]
        copy = table.shard.path
    assert not copy.exists()
    assert not [t for t in threading.enumerate() if t.name == "toolkit-reader"]
