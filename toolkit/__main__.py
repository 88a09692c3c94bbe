"""`python -m toolkit` and the `toolkit` console script.

The command line needs the `cli` extra (click, pyarrow); a runtime-only install, made for
embedding `toolkit.runtime`, says so instead of failing with an ImportError.

Once a command is done, the process ends without tearing the interpreter down: exit
handlers run and the output is flushed, but the modules are not freed one by one. With
torch imported that teardown alone takes about half a second (0.48-0.54 s here), a
seventh of a whole `toolkit train` on two million rows; every file is written and
closed by then. mypy ends the same way (`mypy.util.hard_exit`).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys
from typing import NoReturn

# What Python itself exits with when flushing the output fails at the very end.
FLUSH_FAILED = 120


def main() -> NoReturn:
    if importlib.util.find_spec("click") is None:
        print(
            "Error: the toolkit command line needs its 'cli' extra: pip install 'toolkit[cli]' "
            "(this install holds only the embeddable runtime, toolkit.runtime).",
            file=sys.stderr,
        )
        sys.exit(2)
    from toolkit.cli import main as cli_main

    try:
        cli_main()
    except SystemExit as stop:
        exit_now(stop.code)
    exit_now(0)


def exit_now(code: object) -> NoReturn:
    """End the process as `sys.exit(code)` would, less the interpreter's teardown."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()  # temporary folders' finalizers, torch.distributed's leave
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or a full disk at the very end
            status = status or FLUSH_FAILED
    os._exit(status)


if __name__ == "__main__":
    main()
