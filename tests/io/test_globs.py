"""toolkit/io/globs.py: --data patterns list each file once, and survive symlink loops."""

from __future__ import annotations

import glob
import os

import pytest

from toolkit.errors import UsageError
from toolkit.io import load_dataset, resolve_sources
from toolkit.io.globs import expand


@pytest.fixture
def looped(tmp_path):
    """data/a.csv, data/sub/b.csv, data/.hidden/c.csv, and data/sub/loop -> .. (a loop)."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / ".hidden").mkdir()
    (data / "a.csv").write_text("x,y\n1,2\n2,4\n")
    (data / "sub" / "b.csv").write_text("x,y\n3,6\n4,8\n")
    (data / ".hidden" / "c.csv").write_text("x,y\n5,10\n")
    os.symlink("..", data / "sub" / "loop")
    return data


def test_a_recursive_glob_through_a_symlink_loop_lists_each_file_once(looped):
    pattern = str(looped / "**" / "*.csv")
    assert len(glob.glob(pattern, recursive=True)) > 10  # what Python's glob makes of it
    assert expand(pattern) == [looped / "a.csv", looped / "sub" / "b.csv"]
    assert load_dataset(pattern).n_rows == 4  # each row once


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.csv", ["a.csv"]),
        ("*/*.csv", ["sub/b.csv"]),
        ("**/b.csv", ["sub/b.csv"]),
        ("s?b/[ab].csv", ["sub/b.csv"]),
        (".hidden/*.csv", [".hidden/c.csv"]),
        (".*/*.csv", [".hidden/c.csv"]),
        ("nope/*.csv", []),
    ],
)
def test_glob_rules_are_pythons(looped, monkeypatch, pattern, expected):
    monkeypatch.chdir(looped)
    assert [str(path) for path in expand(pattern)] == expected


def test_two_symlinks_to_one_file_read_it_once(looped):
    os.symlink(looped / "a.csv", looped / "again.csv")
    assert resolve_sources(looped / "*.csv") == [looped / "a.csv"]
    assert resolve_sources(looped) == [looped / "a.csv"]


def test_a_pattern_matching_nothing_is_a_usage_error(looped):
    with pytest.raises(UsageError, match=r"--data '.*\*\.parquet' matches no files\."):
        resolve_sources(looped / "**" / "*.parquet")
