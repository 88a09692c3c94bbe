"""toolkit/io/csvslices.py: a CSV piece read in slices cut at line ends, each parsed whole.

Every file here is also read with slices of a few bytes, so that a slice ends inside
the header, inside a row, at every line end and in the middle of a line longer than a
slice: the rows, the errors (file, row, column, value) and the file's SHA-256 must be
those of a whole-file read (references: numpy.loadtxt, hashlib over the file's bytes, and
the wording of tests/io/test_csv.py).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from test_csv import BAD_CSV

from toolkit.errors import DataError
from toolkit.io import csvrows, csvslices, load_dataset, open_source

TINY = [1, 5, 13, 64]  # bytes per slice: cut everywhere, a line end at a time and more


@pytest.fixture(params=TINY)
def tiny_slices(request, monkeypatch):
    monkeypatch.setattr(csvslices, "SLICE_BYTES", request.param)
    return request.param


@pytest.mark.parametrize(("content", "message"), BAD_CSV)
def test_every_bad_csv_error_is_the_same_in_tiny_slices(write_csv, tiny_slices, content, message):
    path = write_csv("bad.csv", content)
    with pytest.raises(DataError) as error:
        load_dataset(path)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "text",
    [
        "x1,x2,y\n1,2,3\n4,5,6\n7.25,-8e-3,9\n",
        "x1,x2,y\n1,2,3\n4,5,6\n7.25,-8e-3,9",  # no newline after the last row
        "\ufeffx1 , x2, y\r\n1,2,3\r\n\r\n4,5,6\r\n",  # BOM, spaced names, CRLF, a blank line
        '"x1","x2","y"\n"1",2,3\n4,"5",6\n',  # quoted names and cells
        "x1,x2,y\n" + "0." + "1" * 200 + ",2,3\n4,5,6\n",  # a line longer than the slices
    ],
)
def test_tiny_slices_read_the_rows_of_the_whole_file(write_csv, tiny_slices, text):
    path = write_csv("data.csv", text)
    dataset = load_dataset(path)
    rows = [line for line in text.replace("\ufeff", "").splitlines()[1:] if line.strip()]
    want = np.array([[float(c.strip('"')) for c in line.split(",")] for line in rows])
    features, targets = dataset.arrays()
    np.testing.assert_array_equal(np.column_stack([features, targets]), want)
    assert dataset.feature_names == ["x1", "x2"]


def test_a_bad_cell_in_a_later_slice_names_its_row_in_the_file(write_csv, monkeypatch):
    lines = ["x1,x2,y"] + [f"{k},{k + 1},{k + 2}" for k in range(500)]
    lines[321] = "1,oops,3"  # row 322 of the file (the header is row 1)
    path = write_csv("data.csv", "\n".join(lines) + "\n")
    monkeypatch.setattr(csvslices, "SLICE_BYTES", 256)
    with pytest.raises(DataError, match=r"row 322, column 'x2': expected a number, got 'oops'"):
        load_dataset(path)


def test_the_sha256_of_a_file_read_in_slices_is_that_of_its_bytes(write_csv, tiny_slices):
    text = "x1,x2,y\n" + "".join(f"{k},{k * 2},{k * 3}\n" for k in range(300))
    path = write_csv("data.csv", text)
    source = open_source(path)
    blocks = list(source.blocks())
    assert sum(len(b) for b in blocks) == 300
    want = hashlib.sha256(text.encode()).hexdigest()
    assert source._hashed == {path: want}  # taken on the way, not by reading the file again
    assert source.sha256() == want


def test_slices_end_at_line_ends_and_carry_every_byte(tmp_path, tiny_slices):
    text = b"a,b\n1,2\n\n333333333,4\n5,6"
    path = tmp_path / "raw.csv"
    path.write_bytes(text)
    digest = hashlib.sha256()
    slices = [bytes(s) for s in csvslices.read_slices(path, 0, -1, digest=digest)]
    assert b"".join(slices) == text
    assert all(s.endswith(b"\n") for s in slices[:-1])
    assert digest.hexdigest() == hashlib.sha256(text).hexdigest()
    start = text.index(b"1,2")  # a piece that starts after the header and stops before "5,6"
    stop = text.index(b"5,6")
    assert b"".join(bytes(s) for s in csvslices.read_slices(path, start, stop)) == text[start:stop]


def test_the_digest_is_taken_on_its_own_thread_and_stops_with_the_slices(tmp_path, tiny_slices):
    import threading

    text = b"a,b\n" + b"".join(b"%d,%d\n" % (k, k) for k in range(200))
    path = tmp_path / "raw.csv"
    path.write_bytes(text)
    seen: list[str] = []

    class Recording:  # hashlib's interface; records which thread hashes
        def __init__(self) -> None:
            self.inner = hashlib.sha256()

        def update(self, data: memoryview) -> None:
            seen.append(threading.current_thread().name)
            self.inner.update(data)

    digest = Recording()
    before = set(threading.enumerate())
    slices = csvslices.read_slices(path, 0, -1, digest=digest)
    first = bytes(next(slices))
    slices.close()  # a consumer that stops early: the hashing thread goes with it
    assert set(threading.enumerate()) <= before
    assert digest.inner.hexdigest() == hashlib.sha256(first).hexdigest()  # what was read
    assert seen and all(name.startswith("toolkit-hash") for name in seen)


def test_only_the_slice_pyarrow_refused_is_searched_for_the_bad_row(write_csv, monkeypatch):
    lines = ["x1,x2,y"] + [f"{k},{k + 1},{k + 2}" for k in range(500)]
    lines[400] = "1,2"  # row 401: one value short
    path = write_csv("data.csv", "\n".join(lines) + "\n")
    monkeypatch.setattr(csvslices, "SLICE_BYTES", 256)
    searched = []
    first_problem = csvrows.first_problem

    def recorded(piece, *args):
        searched.append(piece)
        return first_problem(piece, *args)

    monkeypatch.setattr(csvrows, "first_problem", recorded)
    with pytest.raises(DataError, match=r"row 401: found 2 values, expected 3"):
        load_dataset(path)
    (piece,) = searched
    text = path.read_bytes()
    assert 0 < piece.start <= text.index(b"\n1,2\n") + 1 < piece.stop  # that slice alone
    assert piece.stop - piece.start < 2 * 256
