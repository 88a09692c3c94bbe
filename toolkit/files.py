"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from toolkit.errors import OutputError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` only if the block completes.

    The temporary file lives in the target's folder (a rename is atomic only within
    one file system), is fsynced before the rename, and the folder is fsynced after it,
    so a crash leaves either the old file or the complete new one. A write that finds no
    room (a full disk, a file-size limit, a read-only file system), in the block or while
    finishing, raises OutputError naming the file and the cause, with nothing left behind.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise cannot_write(target, error) from error
    finishing = False
    try:
        handle = os.fdopen(fd, "wb")
        try:
            yield handle
            finishing = True
            handle.flush()
            # mkstemp creates 0600; give the file the permissions a plain open() would.
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            os.fsync(handle.fileno())
        finally:
            with contextlib.suppress(OSError):  # flushed above, or failing anyway
                handle.close()
        os.replace(tmp_name, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if _writing_failed(error, finishing):
            raise cannot_write(target, error) from error  # type: ignore[arg-type]
        raise
    _fsync_dir(target.parent)


# Errors that only writing raises: in the block they are the file's, not the caller's.
_NO_ROOM = {
    errno.ENOSPC: "free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is used up; free some space or write somewhere else",
    errno.EFBIG: "the file is larger than the file system or the file-size limit "
    "(ulimit -f) allows; write somewhere else",
    errno.EROFS: "the file system is read-only; write somewhere else",
}


def _writing_failed(error: BaseException, finishing: bool) -> bool:
    if not isinstance(error, OSError) or isinstance(error, OutputError):
        return False
    return finishing or error.errno in _NO_ROOM


def cannot_write(target: Path, error: OSError) -> OutputError:
    """The OutputError for `error`, raised while writing `target`."""
    cause = cause_of(error)
    remedy = _NO_ROOM.get(error.errno or 0, "check the path and its permissions")
    kept = " (the file already there is unchanged)" if target.exists() else ""
    return OutputError(
        f"cannot write {str(target)!r}: {cause}; {remedy}. Nothing was written{kept}.", error
    )


def cause_of(error: OSError) -> str:
    """An OSError's reason and its errno's name: "No space left on device [ENOSPC]"."""
    code = errno.errorcode.get(error.errno or 0)
    return f"{error.strerror or error}{f' [{code}]' if code else ''}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
