"""Silence the exporter: everything torch.onnx.export prints is captured, shown only on failure.

The dynamo exporter prints progress and warnings from Python and from C++, on stdout and
stderr, through warnings and through torch's loggers; `quiet()` catches all of them (file
descriptors 1 and 2 go to a temporary file), so the user sees toolkit's one status line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

# Loggers the exporter writes to; their levels are restored afterwards.
EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "onnxscript")


class Chatter:
    """What the exporter printed; `tail` gives its last lines for an error message."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink

    def tail(self, lines: int = 20) -> str:
        self._sink.flush()
        self._sink.seek(0)
        text = self._sink.read().decode(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def quiet() -> Iterator[Chatter]:
    """Capture everything the exporter prints (Python and C++, stdout and stderr, warnings
    and torch's loggers), so the user sees toolkit's one-line status instead."""
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with (
                contextlib.redirect_stdout(sys.__stdout__),
                contextlib.redirect_stderr(sys.__stderr__),
            ):
                yield Chatter(sink)
        finally:
            with contextlib.suppress(Exception):
                sys.__stdout__.flush()
                sys.__stderr__.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
