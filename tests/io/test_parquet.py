"""toolkit/io/parquet.py: Parquet through the reader, and every bad-Parquet error."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.errors import DataError
from toolkit.io import load_dataset, open_source


def test_parquet_reads_like_csv(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(
        pa.table(
            {"x1": [1, 1, 2], "x2": pa.array([1.0, 2.0, 2.0], pa.float32()), "y": [1.0, 2.0, 3.0]}
        ),
        path,
    )
    dataset = load_dataset(path)
    features, targets = dataset.arrays()
    np.testing.assert_array_equal(features, [[1, 1], [1, 2], [2, 2]])
    np.testing.assert_array_equal(targets[:, 0], [1, 2, 3])
    assert features.dtype == np.float64


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (pa.array([1.0, None, 3.0]), "row 2, column 'x2': blank cell; expected a number"),
        (
            pa.array([1.0, 2.0, float("inf")]),
            "row 3, column 'x2': expected a finite number, got inf",
        ),
        (
            pa.array(["a", "b", "c"]),
            "column 'x2': has type string; expected a numeric column (first value: 'a')",
        ),
    ],
)
def test_bad_parquet_is_refused(tmp_path, column, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"x1": [1.0, 2.0, 3.0], "x2": column, "y": [1.0, 2.0, 3.0]}), path)
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert message in str(caught.value)


def test_not_parquet_despite_suffix(write_csv):
    path = write_csv("fake.parquet", "x1,y\n1,2\n")
    with pytest.raises(DataError, match="is not a readable Parquet file"):
        load_dataset(path)


def test_header_only_parquet_is_refused_for_training(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(
        pa.table({"x1": pa.array([], pa.float64()), "y": pa.array([], pa.float64())}), path
    )
    with pytest.raises(DataError, match=r"empty\.parquet: has columns \(x1, y\) but no data rows"):
        load_dataset(path)


def test_a_bad_value_in_a_later_parquet_row_group_names_its_row(tmp_path):
    values = np.arange(100, dtype=np.float64)
    values[77] = np.inf
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"a": np.arange(100.0), "y": values}), path, row_group_size=10)
    source = open_source(path)
    piece = source.pieces(1, 2)[0]
    assert piece.first_row > 0
    with pytest.raises(DataError, match=r"row 78, column 'y': expected a finite number, got inf"):
        list(source.blocks([piece]))


def test_repeated_column_names_are_refused(tmp_path):
    path = tmp_path / "dup.parquet"
    columns = [pa.array([1.0, 2.0]), pa.array([3.0, 4.0]), pa.array([5.0, 6.0])]
    pq.write_table(pa.table(columns, names=["x1", "x1", "y"]), path)
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert str(caught.value) == (
        f"{path}: column name 'x1' appears 2 times (Parquet allows it; toolkit selects "
        "columns by name). Rename the copies."
    )


def test_a_blank_column_name_is_refused(tmp_path):
    path = tmp_path / "blank.parquet"
    pq.write_table(pa.table([pa.array([1.0]), pa.array([2.0])], names=["x1", " "]), path)
    with pytest.raises(DataError, match=r"blank\.parquet: column 2 has a blank name"):
        load_dataset(path)


def corrupt_copy(tmp_path, name: str, damage):
    """A good snappy-compressed file with `damage(bytearray)` applied to its bytes."""
    rows = np.arange(5000, dtype=np.float64)
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"x1": rows, "x2": rows * 2, "y": rows * 3}), good)
    data = bytearray(good.read_bytes())
    damage(data)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def _flip_pages(data: bytearray) -> None:
    for i in range(100, 2000):  # inside the first column chunk's pages
        data[i] ^= 0x55


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("pages.parquet", _flip_pages),
        ("truncated.parquet", lambda data: data.__delitem__(slice(len(data) // 2, -8))),
        ("footer.parquet", lambda data: data.__setitem__(slice(-40, -8), b"\x07" * 32)),
    ],
)
def test_a_damaged_parquet_file_is_a_data_error_naming_it(tmp_path, name, damage):
    path = corrupt_copy(tmp_path, name, damage)
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert str(caught.value).startswith(f"{path}: is not a readable Parquet file (")


def test_integers_beyond_2_to_the_53_are_read_rounded_like_a_csv_cell(tmp_path):
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"x": [2**53 + 1, 1, 2], "y": [1.0, 2.0, 3.0]}), path)
    assert load_dataset(path).arrays()[0][:, 0].tolist() == [2.0**53, 1.0, 2.0]
