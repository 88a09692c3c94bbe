"""Every error toolkit raises on purpose, in one tree under `ToolkitError` (and the one
warning class it issues, `UnknownLevelWarning`).

The CLI turns them into `Error: ...` lines and exit codes, never tracebacks. Exit codes:
1 for a failure (bad data, a diverged run, an unreadable checkpoint), 2 for a usage error
(an option, argument or input the user can fix), 130 for an interrupted run, as shells
do for Ctrl-C. Errors that wrap another exception chain it (`raise ... from error`), so
Python callers keep the cause; the CLI shows only the message.

This module imports nothing outside the standard library: every tier uses it.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base class of every error toolkit raises on purpose."""

    exit_code = 1


class UsageError(ToolkitError, ValueError):
    """An option or argument is wrong; the message says which and what is allowed."""

    exit_code = 2


# Files (toolkit.files)


class OutputError(ToolkitError, OSError):
    """A file could not be written (no space left, too large, read-only): nothing partial
    is left. Also an OSError carrying the cause's errno and strerror, so that callers who
    catch OSError still do."""

    def __init__(self, message: str, cause: OSError | None = None) -> None:
        super().__init__(message)
        self.message = message
        if cause is not None:
            self.errno, self.strerror, self.filename = cause.errno, cause.strerror, cause.filename

    def __str__(self) -> str:
        return self.message


# Data (toolkit.io, training)


class DataError(ToolkitError, ValueError):
    """A data file cannot be used; the message names the file, row, column and value."""


class CollinearityError(DataError):
    """The least-squares solution is not unique: some feature columns are collinear."""


# Training (toolkit.training)


class DeviceError(UsageError):
    """The requested device does not exist or does not work here."""


class CheckpointError(ToolkitError):
    """A checkpoint or resume state is missing, unreadable, unsafe or does not match."""


class TrainingError(ToolkitError):
    """Training failed, for example because the loss became non-finite."""


class SpillError(ToolkitError, OSError):
    """The parsed rows could not be parked in the temporary folder (a full disk, say)."""


class TrainingInterrupted(ToolkitError):
    """The run was interrupted; its state was saved so that `--resume` can continue it."""

    exit_code = 130


# Export (toolkit.export)


class ExportError(ToolkitError):
    """The model could not be exported, or the exported file failed a check."""


class ParityError(ToolkitError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance, or in shape."""


# Runtime (toolkit.runtime) and what stands on it


class PredictorError(ToolkitError):
    """Base of the runtime's errors."""


class ModelLoadError(PredictorError):
    """The file is missing, unreadable, not ONNX, unsafe, or has an unsupported signature."""


class UnsafeModelError(ModelLoadError, ValueError):
    """The ONNX file would make onnxruntime read outside its folder, run non-standard ops,
    or run operators a linear model does not need (loops, branches: see runtime/graph.py)."""


class ProviderError(PredictorError):
    """The requested execution provider is not the one onnxruntime actually uses."""


class ModelRunError(PredictorError):
    """onnxruntime failed while running a loaded model, or the model broke its contract
    (an output that is not one row per input row); the message names the model."""


class InputError(PredictorError, ValueError):
    """The input cannot be fed to the model; the message says what was expected and got."""

    exit_code = 2


class UnknownLevelWarning(UserWarning):
    """Rows held levels the model does not know; they were encoded as the reference level.

    A warning, not an error (the model's unknown-level policy is "reference"); it lives
    here with the errors so that `toolkit.runtime` exports it without loading the table
    models' code."""


# Serving (toolkit.serve)


class RequestError(ToolkitError):
    """An HTTP request the server refuses, answered as {"error": {"type", "message"}}.

    `status` is the HTTP status, `kind` the error's type in the answer. `close` ends the
    connection after the answer: for a body refused before it was read in full, since
    otherwise the server goes on reading (and discarding) the rest of it, however large,
    to keep the connection alive.
    """

    def __init__(self, status: int, kind: str, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.close = status, kind, message, close
