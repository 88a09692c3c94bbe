"""toolkit/io/data.py: reading, selection, splitting, and every bad-data error."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.errors import DataError, UsageError
from toolkit.io import SEED_NAME, holdout_mask, load_dataset, open_source

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
    (b"x1,x2,y\n1,\xff,3\n", "is not UTF-8 text"),
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


def test_bom_and_crlf_files_load(write_csv):
    path = write_csv("bom.csv", b"\xef\xbb\xbfx1,x2,y\r\n1,1,1\r\n1,2,2\r\n2,2,3\r\n")
    dataset = load_dataset(path)
    assert dataset.feature_names == ["x1", "x2"]
    assert dataset.target_names == ["y"]
    features, targets = dataset.arrays()
    np.testing.assert_array_equal(features, [[1, 1], [1, 2], [2, 2]])
    np.testing.assert_array_equal(targets, [[1], [2], [3]])


def test_single_data_row_loads_as_2d(write_csv):
    features, targets = load_dataset(write_csv("one.csv", "a,b,y\n1,2,3\n")).arrays()
    assert features.shape == (1, 2)
    assert targets.shape == (1, 1)


def test_seed_data_is_the_default():
    dataset = load_dataset()
    assert dataset.source == SEED_NAME
    features, targets = dataset.arrays()
    np.testing.assert_array_equal(features, [[1, 1], [1, 2], [2, 2], [2, 3]])
    np.testing.assert_array_equal(targets[:, 0], [1, 2, 3, 4])
    assert len(dataset.sha256) == 64


def test_features_and_targets_selection(write_csv):
    path = write_csv("t.csv", "id,a,b,c,d\nr1,1,2,3,4\nr2,5,6,7,8\n")
    dataset = load_dataset(path, targets=["c", "d"], features=["b", "a"])
    assert dataset.feature_names == ["b", "a"]
    assert dataset.target_names == ["c", "d"]
    features, targets = dataset.arrays()
    np.testing.assert_array_equal(features, [[2, 1], [6, 5]])
    np.testing.assert_array_equal(targets, [[3, 4], [7, 8]])


def test_unused_text_column_is_ignored_but_used_one_is_refused(write_csv):
    path = write_csv("id.csv", "id,x1,y\nr1,1,2\nr2,2,3\n")
    assert load_dataset(path, features=["x1"]).feature_names == ["x1"]
    with pytest.raises(DataError, match=r"row 2, column 'id': expected a number, got 'r1'"):
        load_dataset(path)


def test_default_target_is_last_column_when_no_y_with_a_note(write_csv):
    dataset = load_dataset(write_csv("t.csv", "a,b,price\n1,2,3\n"))
    assert dataset.target_names == ["price"]
    assert "using the last column, 'price', as the target" in dataset.notes[0]


@pytest.mark.parametrize(
    ("targets", "features", "message"),
    [
        (["z"], [], "unknown column 'z' in --target; {path} has columns x1, x2, y."),
        (
            [],
            ["x1", "xx2"],
            "unknown column 'xx2' in --features; {path} has columns x1, x2, y. Did you mean 'x2'?",
        ),
        ([], ["x1", "y"], "column 'y' is both a feature and a target; pick one."),
        (["y", "y"], [], "--target names 'y' more than once."),
    ],
)
def test_column_selection_errors_are_usage_errors(write_csv, targets, features, message):
    path = write_csv("d.csv", "x1,x2,y\n1,2,3\n")
    with pytest.raises(UsageError) as caught:
        load_dataset(path, targets=targets, features=features)
    assert str(caught.value) == message.format(path=path)


def test_unknown_column_exits_2_with_usage_hint(run, write_csv):
    path = write_csv("d.csv", "x1,x2,y\n1,2,3\n")
    result = run("train", "--data", str(path), "--features", "x1,x3")
    assert result.exit_code == 2
    assert "Error: unknown column 'x3' in --features" in result.output
    assert "Try 'toolkit train -h' for help" in result.output or "--help" in result.output
    assert "Traceback" not in result.output


def test_missing_file_is_a_usage_error(run, tmp_path):
    result = run("train", "--data", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


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


def test_holdout_is_seeded_and_sized():
    rows = np.random.default_rng(0).standard_normal((100_000, 3))
    a, b, c = (
        holdout_mask(rows, 0.2, seed=1),
        holdout_mask(rows, 0.2, 1),
        holdout_mask(rows, 0.2, 2),
    )
    # Binomial(100000, 0.2) has a standard deviation of 126 rows: 5 sigma is 632.
    assert abs(int(a.sum()) - 20_000) < 632
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.25  # another seed draws another split (0.32 expected)
    assert holdout_mask(rows, 0.0, seed=1).sum() == 0


def test_holdout_depends_on_row_values_not_on_chunking_or_order():
    rows = np.random.default_rng(1).standard_normal((1000, 4))
    whole = holdout_mask(rows, 0.3, seed=0)
    pieces = np.concatenate([holdout_mask(rows[i : i + 7], 0.3, 0) for i in range(0, 1000, 7)])
    np.testing.assert_array_equal(pieces, whole)
    order = np.random.default_rng(2).permutation(1000)
    np.testing.assert_array_equal(holdout_mask(rows[order], 0.3, 0), whole[order])
    twice = np.concatenate([rows, rows])  # an exact duplicate lands on the same side
    np.testing.assert_array_equal(holdout_mask(twice, 0.3, 0), np.concatenate([whole, whole]))


def test_chunks_cover_every_row_once_with_mask(write_csv):
    rows = "\n".join(f"{i},{2 * i}" for i in range(1000))
    dataset = load_dataset(write_csv("c.csv", "x,y\n" + rows + "\n"))
    mask = np.random.default_rng(0).random(1000) < 0.3
    picked = np.concatenate([x[:, 0] for x, _ in dataset.chunks(rows=64, select=~mask)])
    np.testing.assert_array_equal(picked, np.arange(1000)[~mask])


def test_progress_bar_read_gives_the_same_table(write_csv, monkeypatch, capsys):
    import toolkit.io.data

    path = write_csv("p.csv", "a,y\n" + "".join(f"{i},{i * 2}\n" for i in range(500)))
    plain = load_dataset(path).arrays()
    monkeypatch.setattr(toolkit.io.data, "PROGRESS_MIN_BYTES", 0)
    with_bar = load_dataset(path, progress=True).arrays()
    for a, b in zip(plain, with_bar, strict=True):
        np.testing.assert_array_equal(a, b)
    assert "reading p.csv" in capsys.readouterr().err


def test_unreadable_file_is_a_data_error(write_csv, monkeypatch):
    import toolkit.io.data

    path = write_csv("locked.csv", "x,y\n1,2\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(toolkit.io.data, "csv_header", denied)  # root reads mode-000 files anyway
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert str(caught.value) == f"{path}: cannot be read (Permission denied)."


# -- shards: a folder or a glob of files ---------------------------------------------------


@pytest.fixture
def shards(tmp_path):
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


def test_a_folder_of_shards_equals_the_whole_file(shards):
    whole, folder = shards
    one, many = load_dataset(whole), load_dataset(folder)
    for a, b in zip(one.arrays(), many.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)  # same values, same order
    assert many.source == f"{folder} (3 shards)"
    assert len(many.sha256) == 64 and many.sha256 != one.sha256


def test_a_glob_selects_shards_in_name_order(shards):
    whole, folder = shards
    dataset = load_dataset(f"{folder}/part-*.csv")
    np.testing.assert_array_equal(dataset.arrays()[0], load_dataset(whole).arrays()[0][:18])


def test_a_bad_cell_names_its_shard_and_row(shards):
    _, folder = shards
    lines = (folder / "part-1.csv").read_text().splitlines()
    lines[3] = "1.0,oops,2.0"
    (folder / "part-1.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"part-1\.csv, row 4, column 'b': expected a number, got 'oops'"
    ):
        load_dataset(folder)


def test_a_shard_without_the_selected_columns_is_named(shards):
    _, folder = shards
    (folder / "part-3.csv").write_text("a,c,y\n1,2,3\n")
    with pytest.raises(
        UsageError, match=r"unknown column 'b' in --features; .*part-3\.csv has columns a, c, y"
    ):
        load_dataset(folder)


def test_empty_folder_and_unmatched_glob_are_usage_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"holds no \.csv, \.parquet or \.pq files"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(UsageError, match=r"matches no files"):
        load_dataset(str(tmp_path / "nothing-*.csv"))


def test_training_on_shards_matches_training_on_the_whole(run, shards):
    import json

    whole, folder = shards
    one = json.loads(run("train", "--data", str(whole), "--json", "-q", "--out", "a.pt").stdout)
    many = json.loads(run("train", "--data", str(folder), "--json", "-q", "--out", "b.pt").stdout)
    # float64 sufficient statistics summed in different blocks: agreement to ~1e-12.
    np.testing.assert_allclose(many["weights"], one["weights"], rtol=1e-10)
    np.testing.assert_allclose(many["bias"], one["bias"], rtol=1e-10)


# -- pieces: what each torchrun process reads -----------------------------------------------


@pytest.fixture
def mixed_shards(tmp_path):
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


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
def test_pieces_of_all_ranks_cover_every_row_once_in_order(mixed_shards, world):
    folder, x = mixed_shards
    source = open_source(folder)
    parts = [
        np.concatenate(
            list(source.blocks(source.pieces(rank, world), rows=16)) or [np.empty((0, 3))]
        )
        for rank in range(world)
    ]
    np.testing.assert_array_equal(np.concatenate(parts), x)
    if world <= 4:  # byte ranges of ~3 KiB or more: every process gets rows
        assert all(len(p) for p in parts)


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


def test_blocks_never_exceed_chunk_rows(mixed_shards):
    folder, x = mixed_shards
    blocks = list(open_source(folder).blocks(rows=7))
    assert max(len(b) for b in blocks) <= 7
    np.testing.assert_array_equal(np.concatenate(blocks), x)


def test_sha256_is_the_files_whether_hashed_while_read_or_not(mixed_shards):
    import hashlib

    folder, _ = mixed_shards
    path = folder / "p1.csv"
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert open_source(path).sha256() == expected  # read from disk
    source = open_source(path)
    assert source.hashed_while_read(source.pieces())
    list(source.blocks(rows=7))
    assert source.sha256() == expected  # hashed as pyarrow read it
    assert not source.hashed_while_read(source.pieces(0, 2))  # a part is not the file


def test_sha256_is_abandoned_when_asked(mixed_shards):
    import threading

    folder, _ = mixed_shards
    stop = threading.Event()
    stop.set()  # as train does when the data pass fails, so the error is not kept waiting
    assert open_source(folder).sha256(stop) == ""
