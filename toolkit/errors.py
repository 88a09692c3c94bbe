"""Typed errors. The CLI turns them into `Error: ...` lines and exit codes, never tracebacks.

Exit codes: 1 for a failure (bad data, a diverged run, an unreadable checkpoint),
2 for a usage error (an option or argument the user can fix on the command line),
130 for an interrupted run, as shells do for Ctrl-C.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base class of every error toolkit raises on purpose."""

    exit_code = 1


class UsageError(ToolkitError, ValueError):
    """An option or argument is wrong; the message says which and what is allowed."""

    exit_code = 2


class DataError(ToolkitError, ValueError):
    """A data file cannot be used; the message names the file, row, column and value."""


class CollinearityError(DataError):
    """The least-squares solution is not unique: some feature columns are collinear."""


class DeviceError(UsageError):
    """The requested device does not exist or does not work here."""


class CheckpointError(ToolkitError):
    """A checkpoint or resume state is missing, unreadable, unsafe or does not match."""


class TrainingError(ToolkitError):
    """Training failed, for example because the loss became non-finite."""


class TrainingInterrupted(ToolkitError):
    """The run was interrupted; its state was saved so that `--resume` can continue it."""

    exit_code = 130
