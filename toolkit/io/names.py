"""Column names in messages: shown so that invisible differences are seen, matched loosely
for a hint, and a header that is probably not one pointed out."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

# Separators a "CSV" file sometimes uses instead of commas, as a user would name them.
_SEPARATORS = {"\t": "tabs", ";": "semicolons", "|": "vertical bars"}


def shown(name: str) -> str:
    """A column name as written in a list: quoted when quotes show something (a blank
    name, spaces around it, an invisible or control character)."""
    return name if name and name.isprintable() and name == name.strip() else repr(name)


def listed(columns: Sequence[str]) -> str:
    """Column names for a message: "x1, x2, ' y'"."""
    return ", ".join(shown(column) for column in columns)


def did_you_mean(name: str, columns: Sequence[str]) -> str | None:
    """The column `name` was probably meant to be; case does not count (totemp: TOTEMP)."""
    folded: dict[str, str] = {}
    for column in columns:
        folded.setdefault(column.casefold(), column)
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1)
    return folded[close[0]] if close else None


def csv_header_hint(columns: Sequence[str]) -> str:
    """Why a CSV header may not be what it seems, as a sentence to append; else ""."""
    if len(columns) == 1:
        found = [word for separator, word in _SEPARATORS.items() if separator in columns[0]]
        if found:
            return f" The file looks separated by {found[0]}; toolkit reads comma-separated CSV."
    if numeric_header(columns):
        return " Every column name is a number: is the header row missing?"
    return ""


def numeric_header(columns: Sequence[str]) -> bool:
    """Whether every name is a number: a CSV file whose header row is missing."""
    return bool(columns) and all(is_number(column) for column in columns)


def is_number(text: str) -> bool:
    """Whether `text` reads as a float (as Python reads it: 'nan' and '1e3' do)."""
    try:
        float(text)
    except ValueError:
        return False
    return True
