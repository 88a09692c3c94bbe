"""Glob patterns for --data, each file once, and no endless walk through symlink loops.

Python's `glob.glob(recursive=True)` follows a symlink to a folder above it (`sub/loop ->
..`) until the path grows too long: `**/*.csv` then lists one file dozens of times. Here
`**` follows symlinked folders but never into a folder it is already inside, and files are
kept once each, by the path they resolve to. Otherwise the rules are glob's: `*`, `?` and
`[...]` match within one path component, `**` matches any number of folders (zero
included), and names that start with a dot match only a pattern that starts with one.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

_MAGIC = re.compile(r"[*?[]")


def has_magic(pattern: str) -> bool:
    """Whether `pattern` holds glob wildcards (`*`, `?`, `[`)."""
    return _MAGIC.search(pattern) is not None


def expand(pattern: str) -> list[Path]:
    """The files matching `pattern`, in name order, each file once (by its resolved path)."""
    path = Path(pattern)
    parts = path.parts[1:] if path.anchor else path.parts
    candidates = [Path(path.anchor)]  # "/" for an absolute pattern, else Path("")
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        if part == "**":
            candidates = [found for base in candidates for found in _below(base, files=last)]
        elif has_magic(part):
            candidates = [base / name for base in candidates for name in _matching(base, part)]
        else:
            candidates = [base / part for base in candidates]
    return once(candidates)


def once(paths: Iterable[Path]) -> list[Path]:
    """The files among `paths`, in name order, each once: the first path to each resolved one."""
    files, seen = [], set()
    for path in sorted(paths):
        real = path.resolve()
        if path.is_file() and real not in seen:
            seen.add(real)
            files.append(path)
    return files


def _matching(folder: Path, part: str) -> list[str]:
    """Names in `folder` that the pattern component `part` matches."""
    hidden = part.startswith(".")
    return [
        name
        for name in _names(folder)
        if (hidden or not name.startswith(".")) and fnmatch.fnmatchcase(name, part)
    ]


def _names(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries)
    except OSError:  # not a folder, gone, or not readable: nothing matches there
        return []


def _below(
    base: Path, files: bool, inside: frozenset[tuple[int, int]] = frozenset()
) -> Iterator[Path]:
    """`base` and every folder below it (and, with `files`, every file), skipping hidden
    names and any folder that is one `base` is already inside (a symlink loop)."""
    try:
        info = base.stat()
    except OSError:
        return
    key = (info.st_dev, info.st_ino)
    if key in inside:
        return
    yield base
    inside = inside | {key}
    for name in _names(base):
        if name.startswith("."):
            continue
        path = base / name
        if path.is_dir():
            yield from _below(path, files, inside)
        elif files:
            yield path
