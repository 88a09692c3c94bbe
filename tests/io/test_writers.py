"""toolkit/io/writers.py: predictions as CSV, JSON Lines or Parquet, chunk by chunk."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.errors import UsageError
from toolkit.io import PredictionWriter, output_format

CHUNKS = [np.array([[1.0, 10.0], [2.0, 20.0]]), np.array([[3.5, 30.0]])]
IDS = [pa.array(["a", "b"]), pa.array(["c"])]


def _write(kind: str, chunks=CHUNKS, ids=IDS, id_column: str | None = "key") -> bytes:
    sink = io.BytesIO()
    writer = PredictionWriter(sink, kind, ["y1", "y2"], id_column)
    for chunk, chunk_ids in zip(chunks, ids, strict=True):
        writer.write(chunk, chunk_ids if id_column else None)
    writer.close()
    return sink.getvalue()


@pytest.mark.parametrize(
    ("destination", "as_json", "expected"),
    [
        ("-", False, "csv"),
        ("out.csv", False, "csv"),
        ("out.tsv", False, "tsv"),
        ("out.parquet", False, "parquet"),
        ("OUT.PQ", False, "parquet"),
        ("out.jsonl", False, "jsonl"),
        ("out.json", True, "jsonl"),
        ("out.jsonl", True, "jsonl"),
        ("-", True, "jsonl"),
    ],
)
def test_the_output_format_follows_the_suffix_or_json(destination, as_json, expected):
    assert output_format(destination, as_json) == expected


def test_an_unknown_output_suffix_is_refused_with_the_supported_list():
    with pytest.raises(UsageError) as caught:
        output_format("p.txt")
    assert str(caught.value) == (
        "cannot tell the format to write from the suffix of --output 'p.txt'; use one of "
        ".csv (csv), .tsv (tsv), .jsonl (jsonl), .ndjson (jsonl), .parquet (parquet), "
        ".pq (parquet), or - for CSV on stdout."
    )


def test_json_with_a_suffix_naming_another_format_is_refused():
    with pytest.raises(UsageError, match=r"--json writes JSON Lines, but --output 'p\.csv'"):
        output_format("p.csv", as_json=True)


def test_tsv_separates_with_tabs():
    assert _write("tsv").decode().splitlines()[:2] == ["key\ty1\ty2", '"a"\t1\t10']


def test_csv_has_an_unquoted_header_and_quoted_ids():
    assert _write("csv").decode().splitlines() == [
        "key,y1,y2",
        '"a",1,10',
        '"b",2,20',
        '"c",3.5,30',
    ]


def test_json_lines_hold_one_object_per_row():
    lines = _write("jsonl").decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"key": "a", "y1": 1.0, "y2": 10.0},
        {"key": "b", "y1": 2.0, "y2": 20.0},
        {"key": "c", "y1": 3.5, "y2": 30.0},
    ]


def test_parquet_holds_every_chunk():
    table = pq.read_table(pa.BufferReader(_write("parquet")))
    assert table.column_names == ["key", "y1", "y2"]
    assert table.column("key").to_pylist() == ["a", "b", "c"]
    assert table.column("y1").to_pylist() == [1.0, 2.0, 3.5]


def test_no_rows_still_give_a_header_or_a_schema():
    assert _write("csv", [], []).decode().splitlines() == ["key,y1,y2"]
    assert _write("csv", [], [], id_column=None).decode().splitlines() == ["y1,y2"]
    table = pq.read_table(pa.BufferReader(_write("parquet", [], [])))
    assert table.num_rows == 0 and table.column_names == ["key", "y1", "y2"]
    assert _write("jsonl", [], []) == b""


def test_an_unknown_output_format_is_a_usage_error():
    with pytest.raises(UsageError, match=r"unknown output format 'xml'; known formats: csv, "):
        PredictionWriter(io.BytesIO(), "xml", ["y"])
