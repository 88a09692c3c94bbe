"""toolkit/io/csv.py: CSV through the reader, and every bad-CSV error (file, row, column, value)."""

from __future__ import annotations

import numpy as np
import pytest
from io_files import write_mixed_shards

from toolkit.errors import DataError
from toolkit.io import load_dataset, open_source


@pytest.fixture
def mixed_shards(tmp_path):
    return write_mixed_shards(tmp_path)


BAD_CSV = [
    # (file content, expected message fragment)
    ("", "the file is empty; expected a header row naming the columns"),
    ("\n\n", "the file is empty"),
    ("x1,x2,y\n", "found the header (x1, x2, y) but no data rows"),
    ("x1,x2,y\n1,2,3\n4,,6\n", "row 3, column 'x2': blank cell; expected a number"),
    ("x1,x2,y\n1,2,3\n\n4,abc,6\n", "row 4, column 'x2': expected a number, got 'abc'"),
    (
        "x1,x2,y\n1,2,3\n4,5\n",
        "row 3: found 2 values, expected 3 (one per header column: x1, x2, y)",
    ),
    ("x1,x2,y\n1,2,3\n4,5,6,7\n", "row 3: found 4 values, expected 3"),
    ("x1,x2,y\n1,2,3\n4,nan,6\n", "row 3, column 'x2': expected a finite number, got nan"),
    ("x1,x2,y\n1,2,3\n4,5,-inf\n", "row 3, column 'y': expected a finite number, got -inf"),
    ("x1,x1,y\n1,2,3\n", "row 1: column name 'x1' appears more than once"),
    ("x1,,y\n1,2,3\n", "row 1: header cell 2 is blank"),
    ("y\n1\n2\n", "found 1 column ('y'); expected at least 2"),
    (
        b"x1,x2,y\n1,2,3\n1,\xff,3\n",
        "row 3, column 'x2': is not UTF-8 text (b'\\xff'); save the file as UTF-8.",
    ),
    (
        b"x1,caf\xe9,y\n1,2,3\n",
        "row 1, header cell 2: is not UTF-8 text (b'caf\\xe9'); save the file as UTF-8.",
    ),
    ("x1,x2,y\n1,2,3\n".encode("utf-16"), "is UTF-16 text, not UTF-8; save the file as UTF-8."),
    (
        "x1,x2,y\n1,2,3\n4,5,1e400\n",
        "row 3, column 'y': expected a finite number, got inf; remove or fill in the row (a "
        "number beyond ±1.8e308 reads as infinity).",
    ),
    ("x1,x2,y\n1,2,3\x0b\n", "row 2, column 'y': expected a number, got '3\\x0b'."),
    ('x1,x2,y\n"1\n",2,3\n', "row 2, column 'x1': expected a number, got '1\\n'."),
    (
        "x1\tx2\ty\n1\t2\t3\n",
        "found 1 column ('x1\\tx2\\ty'); expected at least 2 (one or more features and a "
        "target). The file looks separated by tabs; toolkit reads comma-separated CSV.",
    ),
    (
        'x1,x2,y\n1,2,3\n2,3,4\n"4,5,6\n7,8,9\n1,1,1\n2,2,2\n',
        "row 4: found 1 value, expected 3 (one per header column: x1, x2, y). A quoted cell "
        "that starts on row 4 runs over 4 lines, to row 7; is its closing quote missing?",
    ),
]


@pytest.mark.parametrize(("content", "message"), BAD_CSV)
def test_bad_csv_is_refused_with_file_row_column_and_value(write_csv, content, message):
    path = write_csv("bad.csv", content)
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert str(caught.value).startswith(str(path)), caught.value
    assert message in str(caught.value)


@pytest.mark.parametrize(("content", "message"), BAD_CSV)
def test_bad_csv_exits_nonzero_with_message_and_no_traceback(run, write_csv, content, message):
    path = write_csv("bad.csv", content)
    result = run("train", "--data", str(path))
    assert result.exit_code == 1
    assert f"Error: {path}" in result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (path.parent / "models").exists()  # nothing written


def test_row_numbers_count_quoted_newlines_and_blank_lines(write_csv):
    path = write_csv("q.csv", 'x1,x2,y\n"1",2,3\n\n\n4,5,6\n7,8,x\n')
    with pytest.raises(DataError, match=r"row 6, column 'y': expected a number, got 'x'"):
        load_dataset(path)


def test_a_non_number_after_a_blank_cell_or_padded_number_is_the_one_named(write_csv):
    # The blank cell is a null and " 2 " a number to pyarrow: neither is the bad value.
    path = write_csv("p.csv", "x1,x2,y\n1, 2 ,3\n4,,6\n7,oops,9\n")
    with pytest.raises(DataError, match=r"row 4, column 'x2': expected a number, got 'oops'"):
        list(open_source(path).blocks())


def test_bom_and_crlf_files_load(write_csv):
    path = write_csv("bom.csv", b"\xef\xbb\xbfx1,x2,y\r\n1,1,1\r\n1,2,2\r\n2,2,3\r\n")
    dataset = load_dataset(path)
    assert dataset.feature_names == ["x1", "x2"]
    assert dataset.target_names == ["y"]
    features, targets = dataset.arrays()
    np.testing.assert_array_equal(features, [[1, 1], [1, 2], [2, 2]])
    np.testing.assert_array_equal(targets, [[1], [2], [3]])


def test_unused_text_column_is_ignored_but_used_one_is_refused(write_csv):
    path = write_csv("id.csv", "id,x1,y\nr1,1,2\nr2,2,3\n")
    assert load_dataset(path, features=["x1"]).feature_names == ["x1"]
    with pytest.raises(DataError, match=r"row 2, column 'id': expected a number, got 'r1'"):
        load_dataset(path)


def test_unreadable_file_is_a_data_error(write_csv, monkeypatch):
    import toolkit.io.csv

    path = write_csv("locked.csv", "x,y\n1,2\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(toolkit.io.csv, "csv_header", denied)  # root reads mode-000 files anyway
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert str(caught.value) == f"{path}: cannot be read (Permission denied)."


# -- pieces: a CSV file cut at line breaks -------------------------------------------------


def test_a_bad_cell_in_a_later_piece_names_its_row_in_the_file(mixed_shards):
    folder, _ = mixed_shards
    lines = (folder / "p0.csv").read_text().splitlines()
    lines[120] = "1,abc,2"  # row 121, in the second half of the file
    (folder / "p0.csv").write_text("\n".join(lines) + "\n")
    source = open_source(folder / "p0.csv")
    piece = source.pieces(1, 2)[0]
    assert piece.start > 0
    with pytest.raises(
        DataError, match=r"p0\.csv, row 121, column 'b': expected a number, got 'abc'"
    ):
        list(source.blocks([piece]))


def test_a_ragged_row_in_a_later_piece_names_its_row(mixed_shards):
    folder, _ = mixed_shards
    lines = (folder / "p0.csv").read_text().splitlines()
    lines[130] = "1,2"
    (folder / "p0.csv").write_text("\n".join(lines) + "\n")
    source = open_source(folder / "p0.csv")
    with pytest.raises(DataError, match=r"p0\.csv, row 131: found 2 values, expected 3"):
        list(source.blocks(source.pieces(1, 2)))


def test_a_header_with_spaces_after_the_commas_is_read_by_its_stripped_names(write_csv):
    path = write_csv("spaced.csv", "x1, x2,  y \n1,2,3\n2,3,5\n4,1,5\n")
    dataset = load_dataset(path)
    assert (dataset.feature_names, dataset.target_names) == (["x1", "x2"], ["y"])
    features, targets = dataset.arrays()
    np.testing.assert_array_equal(features, [[1, 2], [2, 3], [4, 1]])
    np.testing.assert_array_equal(targets[:, 0], [3, 5, 5])
    picked = load_dataset(path, targets=["x2"], features=["y"])
    np.testing.assert_array_equal(picked.arrays()[0][:, 0], [3, 5, 5])


def test_a_bad_cell_under_a_spaced_header_is_named_by_the_stripped_name(write_csv):
    path = write_csv("spaced.csv", "x1, x2, y\n1,2,3\n4,oops,6\n")
    with pytest.raises(DataError, match=r"row 3, column 'x2': expected a number, got 'oops'"):
        load_dataset(path)


def test_a_non_utf8_cell_far_into_the_file_is_named_by_row_and_column(write_csv):
    rows = "".join(f"{i},{i},{i}\n" for i in range(5000))  # well past any decoder's buffer
    path = write_csv("late.csv", ("x1,x2,y\n" + rows).encode() + b"7,8,9\xe9\n")
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert str(caught.value) == (
        f"{path}, row 5002, column 'y': is not UTF-8 text (b'9\\xe9'); save the file as UTF-8."
    )


def test_a_non_utf8_cell_in_an_unused_column_is_not_read(write_csv):
    path = write_csv("notes.csv", b"x1,note,y\n1,caf\xe9,2\n2,ok,4\n3,x,6\n")
    assert load_dataset(path, features=["x1"]).arrays()[1][:, 0].tolist() == [2, 4, 6]


def test_a_stray_byte_order_mark_in_the_header_is_not_part_of_a_name(write_csv):
    path = write_csv("boms.csv", "\ufeff\ufeffx1,x2,y\n1,2,3\n2,2,4\n3,1,4\n".encode())
    assert load_dataset(path).feature_names == ["x1", "x2"]
