"""Which files and columns: --data resolved to shards, --target/--features/--weight to columns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from toolkit.defaults import DEFAULT_TARGET
from toolkit.errors import DataError, UsageError
from toolkit.io import globs
from toolkit.io.formats import suffixes
from toolkit.io.names import did_you_mean, listed

__all__ = ["resolve_sources", "select_columns"]


def resolve_sources(path: str | Path) -> list[Path]:
    """The data files behind --data: one file, a folder's shards, or a glob's matches."""
    text = str(path)
    if globs.has_magic(text):
        matches = globs.expand(text)  # each file once, however many symlinks lead to it
        if not matches:
            raise UsageError(f"--data {text!r} matches no files.")
        return matches
    path = Path(path)
    if not path.exists():
        raise UsageError(f"data file {text!r} does not exist.")
    if path.is_dir():
        known = suffixes()
        shards = globs.once(p for p in path.iterdir() if p.suffix.lower() in known)
        if not shards:
            listed = f"{', '.join(known[:-1])} or {known[-1]}"
            raise UsageError(f"data folder {text!r} holds no {listed} files; expected shards.")
        return shards
    return [path]


def select_columns(
    columns: Sequence[str],
    targets: Sequence[str],
    features: Sequence[str],
    name: str,
    *,
    hint: str = "",
    weight: str | None = None,
) -> tuple[list[str], list[str]]:
    """Resolve --target/--features against the file's columns; unknown names are usage errors.

    `hint` (a sentence about the header, see `names.csv_header_hint`) ends the messages
    about the file's columns.
    """
    if len(columns) < 2 and not features:
        raise DataError(
            f"{name}: found 1 column ({columns[0]!r}); expected at least 2 "
            f"(one or more features and a target).{hint}"
        )
    given = [("--target", targets), ("--features", features)]
    for flag, names in [*given, ("--weight", [weight] if weight is not None else [])]:
        for column in names:
            if column not in columns:
                raise UsageError(_unknown_column(column, flag, columns, name) + hint)
        duplicates = sorted({c for c in names if list(names).count(c) > 1})
        if duplicates:
            raise UsageError(f"{flag} names {duplicates[0]!r} more than once.")
    if targets:
        target_names = list(targets)
    else:
        last = [c for c in columns if c != weight][-1]
        target_names = [DEFAULT_TARGET if DEFAULT_TARGET in columns else last]
    for flag, names in given:
        if weight in names:
            raise UsageError(
                f"column {weight!r} is the --weight column and cannot also be in {flag}; pick one."
            )
    both = [c for c in features if c in target_names]
    if both:
        raise UsageError(f"column {both[0]!r} is both a feature and a target; pick one.")
    feature_names = list(features) or [c for c in columns if c not in target_names and c != weight]
    if not feature_names:
        raise UsageError(f"{name}: every column is a target; at least one feature is needed.")
    return feature_names, target_names


def _unknown_column(column: str, flag: str, columns: Sequence[str], name: str) -> str:
    message = f"unknown column {column!r} in {flag}; {name} has columns {listed(columns)}."
    close = did_you_mean(column, columns)  # case does not count: totemp finds TOTEMP
    if close is not None:
        message += f" Did you mean {close!r}?"
    return message
