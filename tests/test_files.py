"""toolkit/files.py: atomic writes leave the old file or the new one, and a full disk is a
typed error naming the file and the cause, with nothing left behind."""

from __future__ import annotations

import errno
import os

import pytest

from toolkit.errors import OutputError, ToolkitError
from toolkit.files import atomic_write


def test_a_completed_block_replaces_the_file(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with atomic_write(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(target.parent) == ["out.bin"]


def test_a_full_disk_is_an_output_error_and_leaves_nothing(full_disk):
    target = full_disk / "out.bin"
    with pytest.raises(OutputError) as caught, atomic_write(target) as handle:
        handle.write(b"x" * 100_000)
    assert str(caught.value) == (
        f"cannot write {str(target)!r}: No space left on device [ENOSPC]; free some space or "
        "write somewhere else. Nothing was written."
    )
    assert caught.value.errno == errno.ENOSPC  # still an OSError, with the cause's errno
    assert isinstance(caught.value, OSError) and isinstance(caught.value, ToolkitError)
    assert sorted(os.listdir(full_disk)) == ["filler"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT])
def test_no_room_raised_in_the_block_keeps_the_old_file(tmp_path, code):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    unchanged = r"\(the file already there is unchanged\)\.$"
    with pytest.raises(OutputError, match=unchanged), atomic_write(target):
        raise OSError(code, os.strerror(code))
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_other_errors_in_the_block_pass_through_unchanged(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(FileNotFoundError), atomic_write(target):
        raise FileNotFoundError(errno.ENOENT, "an input went missing")
    assert not target.exists() and os.listdir(tmp_path) == []


def test_a_folder_in_the_way_is_named(tmp_path):
    (tmp_path / "out.bin").mkdir()
    in_the_way = r"cannot write '.*out\.bin': Is a directory \[EISDIR\]"
    with pytest.raises(OutputError, match=in_the_way), atomic_write(tmp_path / "out.bin") as out:
        out.write(b"x")
    assert os.listdir(tmp_path) == ["out.bin"]
