"""toolkit/training/spill.py: rows written once, read back in chunks, in any order."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.training.spill import MemorySpill, RowSpill, spill_for


@pytest.mark.parametrize("kind", [RowSpill, MemorySpill])
def test_rows_come_back_bit_for_bit_in_chunks_and_in_any_order(kind):
    rows = np.random.default_rng(0).standard_normal((1000, 5))
    with kind(5) as spill:
        for start in range(0, 1000, 333):
            spill.append(rows[start : start + 333])
        assert spill.n_rows == 1000
        assert spill.n_chunks(64) == 16
        np.testing.assert_array_equal(np.concatenate(list(spill.chunks(64))), rows)
        order = [15, 0, 7]
        picked = list(spill.chunks(64, order=order))
        np.testing.assert_array_equal(picked[0], rows[960:])
        np.testing.assert_array_equal(picked[2], rows[448:512])
        np.testing.assert_array_equal(spill.take([3, 999, 0]), rows[[3, 999, 0]])


@pytest.mark.parametrize("kind", [RowSpill, MemorySpill])
def test_wrong_width_is_refused(kind):
    with kind(3) as spill, pytest.raises(ValueError, match="expected rows of 3 values"):
        spill.append(np.zeros((2, 4)))


def test_memory_keeps_the_blocks_and_serves_an_aligned_chunk_without_a_copy():
    from toolkit.io.tables import open_arrays

    source = open_arrays(np.zeros((10, 2)), np.zeros(10), ["a", "b"], ["y"])
    spill = spill_for(source, 3)
    assert isinstance(spill, MemorySpill)
    blocks = [np.full((4, 3), k, dtype=np.float64) for k in range(3)]
    for block in blocks:
        spill.append(block)
    assert spill.chunk(1, 4) is not blocks[1] and np.shares_memory(spill.chunk(1, 4), blocks[1])
    assert spill.chunk(0, 6).tolist() == [[0.0] * 3] * 4 + [[1.0] * 3] * 2  # across two
    with spill_for(object(), 3) as disk:
        assert type(disk) is RowSpill  # files' rows go to disk


def test_the_file_has_no_name_to_leave_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with RowSpill(2) as spill:
        spill.append(np.ones((10, 2)))
        assert list(tmp_path.iterdir()) == []  # O_TMPFILE: anonymous from the start


def test_appends_after_reads_still_append():
    rows = np.arange(20.0).reshape(10, 2)
    with RowSpill(2) as spill:
        spill.append(rows[:5])
        np.testing.assert_array_equal(spill.take([0]), rows[:1])  # moves the file position
        spill.append(rows[5:])
        np.testing.assert_array_equal(np.concatenate(list(spill.chunks(4))), rows)


def test_a_failed_write_is_raised_on_the_next_read(monkeypatch):
    with RowSpill(1) as spill:

        def full(data):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(spill._file, "write", full)
        spill.append(np.ones((3, 1)))
        with pytest.raises(OSError, match="No space left"):
            spill.take([0])


class _FullDisk:
    """A temporary file on a full disk: every write fails with ENOSPC."""

    def write(self, data):
        import errno

        raise OSError(errno.ENOSPC, "No space left on device")

    def seek(self, *args):
        return 0

    def close(self):
        pass


def test_a_full_temporary_folder_is_a_clear_error_and_keeps_the_checkpoint(
    tmp_path, monkeypatch, run
):
    import toolkit.training.spill as spill

    assert run("train", "--out", str(tmp_path / "m.pt")).exit_code == 0
    before = (tmp_path / "m.pt").read_bytes()
    monkeypatch.setattr(spill.tempfile, "TemporaryFile", lambda **kw: _FullDisk())
    result = run("train", "--out", str(tmp_path / "m.pt"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot park the parsed rows in the temporary folder")
    assert "No space left on device" in result.output and "set TMPDIR" in result.output
    assert "Traceback" not in result.output
    assert (tmp_path / "m.pt").read_bytes() == before


def test_a_temporary_folder_that_cannot_be_written_is_a_clear_error(monkeypatch):
    import toolkit.training.spill as spill
    from toolkit.errors import SpillError

    def refuse(**kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(spill.tempfile, "TemporaryFile", refuse)
    with pytest.raises(SpillError, match="Permission denied"):
        RowSpill(3)
