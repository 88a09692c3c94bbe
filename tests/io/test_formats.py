"""toolkit/io/formats.py: the registry of formats, and how a file's format is found."""

from __future__ import annotations

import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.errors import UsageError
from toolkit.io import FORMATS, detect, format_named, load_dataset, open_source
from toolkit.io.formats import Format, by_suffix, open_shard, suffixes

INTERFACE = [name for name in vars(Format) if not name.startswith("_")] + list(
    Format.__annotations__
)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_registered_format_provides_the_interface(name):
    fmt = format_named(name)
    missing = [attribute for attribute in INTERFACE if not hasattr(fmt, attribute)]
    assert missing == []
    assert name == fmt.NAME


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("a.csv", "csv"), ("a.CSV", "csv"), ("a.parquet", "parquet"), ("a.PQ", "parquet")],
)
def test_a_format_is_found_by_suffix(tmp_path, filename, expected):
    path = tmp_path / filename
    path.write_bytes(b"PAR1 is not what decides here" if expected == "csv" else b"x,y\n")
    assert by_suffix(path) == expected
    assert detect(path) == expected  # the suffix wins over the content


@pytest.mark.parametrize("filename", ["table", "table.dat", "part-00000"])
def test_parquet_is_found_by_magic_bytes_without_its_suffix(tmp_path, filename):
    path = tmp_path / filename
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [3.0, 4.0]}), path)
    assert by_suffix(path) is None
    assert detect(path) == "parquet"
    assert open_shard(path, filename).columns == ("x", "y")
    features, targets = load_dataset(path).arrays()
    assert features.tolist() == [[1.0], [2.0]] and targets.tolist() == [[3.0], [4.0]]


def test_a_file_neither_suffix_nor_magic_identifies_is_read_as_csv(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("x,y\n1,2\n")
    assert detect(path) == "csv"
    assert open_source(path).shards[0].format == "csv"


def test_an_unknown_format_name_is_a_usage_error_listing_the_known_ones():
    with pytest.raises(UsageError) as caught:
        format_named("xlsx")
    assert str(caught.value) == "unknown data format 'xlsx'; known formats: csv, parquet."
    assert isinstance(caught.value.__cause__, KeyError)  # chained, not hidden


def test_a_folder_lists_the_registered_suffixes():
    assert suffixes() == (".csv", ".parquet", ".pq")


def test_adding_a_format_is_one_module_and_one_registry_entry(tmp_path, monkeypatch):
    # A stand-in module: "TSV1" files hold tab-separated text after their magic line.
    csv_reader = FORMATS["csv"]
    tsv = types.SimpleNamespace(
        NAME="tsv",
        SUFFIXES=(".tsv",),
        MAGIC=b"TSV1",
        STREAMED=False,
        columns=lambda path, name: path.read_text().splitlines()[1].split("\t"),
        check=csv_reader.check,
        cut=csv_reader.cut,
        batches=csv_reader.batches,
        row_of=csv_reader.row_of,
        no_rows=csv_reader.no_rows,
    )
    monkeypatch.setitem(FORMATS, "tsv", tsv)
    (tmp_path / "a.tsv").write_text("x\ty\n")
    (tmp_path / "b").write_text("TSV1\nx\ty\n")
    assert detect(tmp_path / "a.tsv") == "tsv"  # by suffix
    assert detect(tmp_path / "b") == "tsv"  # by magic bytes
    assert open_shard(tmp_path / "b", "b").columns == ("x", "y")
    assert ".tsv" in suffixes()
