"""`python -m toolkit` and the `toolkit` console script.

The command line needs the `cli` extra (click, pyarrow); a runtime-only install, made for
embedding `toolkit.runtime`, says so instead of failing with an ImportError.
"""

from __future__ import annotations

import importlib.util
import sys


def main() -> None:
    if importlib.util.find_spec("click") is None:
        print(
            "Error: the toolkit command line needs its 'cli' extra: pip install 'toolkit[cli]' "
            "(this install holds only the embeddable runtime, toolkit.runtime).",
            file=sys.stderr,
        )
        sys.exit(2)
    from toolkit.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
