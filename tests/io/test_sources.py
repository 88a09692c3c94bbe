"""toolkit/io/sources.py: column selection, shards, pieces for torchrun, hashing, progress."""

from __future__ import annotations

import numpy as np
import pytest
from io_files import write_mixed_shards, write_shards

from toolkit.errors import DataError, UsageError
from toolkit.io import load_dataset, open_source


@pytest.fixture
def shards(tmp_path):
    return write_shards(tmp_path)


@pytest.fixture
def mixed_shards(tmp_path):
    return write_mixed_shards(tmp_path)


def test_features_and_targets_selection(write_csv):
    path = write_csv("t.csv", "id,a,b,c,d\nr1,1,2,3,4\nr2,5,6,7,8\n")
    dataset = load_dataset(path, targets=["c", "d"], features=["b", "a"])
    assert dataset.feature_names == ["b", "a"]
    assert dataset.target_names == ["c", "d"]
    features, targets = dataset.arrays()
    np.testing.assert_array_equal(features, [[2, 1], [6, 5]])
    np.testing.assert_array_equal(targets, [[3, 4], [7, 8]])


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
        (
            ["Y"],
            [],
            "unknown column 'Y' in --target; {path} has columns x1, x2, y. Did you mean 'y'?",
        ),
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


def test_progress_bar_read_gives_the_same_table(write_csv, monkeypatch, capsys):
    import toolkit.io.sources

    path = write_csv("p.csv", "a,y\n" + "".join(f"{i},{i * 2}\n" for i in range(500)))
    plain = load_dataset(path).arrays()
    monkeypatch.setattr(toolkit.io.sources, "PROGRESS_MIN_BYTES", 0)
    with_bar = load_dataset(path, progress=True).arrays()
    for a, b in zip(plain, with_bar, strict=True):
        np.testing.assert_array_equal(a, b)
    assert "reading p.csv" in capsys.readouterr().err


# -- shards: a folder or a glob of files ---------------------------------------------------


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


def test_a_header_of_numbers_gets_a_warning_that_it_may_be_missing(write_csv):
    path = write_csv("nohead.csv", "1,2,3\n4,5,9\n7,1,8\n2,2,4\n")
    source = open_source(path)
    assert source.notes[0] == (
        f"warning: every column name in {path} is a number (1, 2, 3): is its header row "
        "missing? Its first row is read as the column names."
    )
