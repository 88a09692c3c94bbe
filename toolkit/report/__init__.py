"""`toolkit report`: a model's report card, from its checkpoint, its ONNX file and its data.

    inputs     the checkpoint (training's loader) and the ONNX model (the runtime's)
    scan       --data: one streaming pass with the training reader and split
    residuals  the sums that pass keeps: moments, Durbin-Watson, sandwich, a row sample
    robust     those sums as statistics: HC0/HC1/HC3, Durbin-Watson, Jarque-Bera
    build      everything as one plain-data record (`make_report`)
    text       --format json and --format text
    plots      matplotlib figures as inline PNG
    page       --format html: one self-contained page

This tier may import io, training (for checkpoints), runtime, scipy and matplotlib;
matplotlib only when a page is drawn.
"""

from __future__ import annotations

import sys
from pathlib import Path

from toolkit.defaults import REPORT_FORMATS, STDIO
from toolkit.report.build import Report, make_report

__all__ = ["FORMATS", "Report", "make_report", "render", "write_report"]

FORMATS = REPORT_FORMATS


def render(report: Report, fmt: str) -> str:
    """The report as `fmt`: "html", "json" or "text"."""
    if fmt == "html":
        from toolkit.report.page import to_html

        return to_html(report)
    from toolkit.report.text import to_json, to_text

    if fmt == "json":
        return to_json(report)
    if fmt == "text":
        return to_text(report)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


def write_report(report: Report, out: str | Path, fmt: str) -> str:
    """Render the report and write it to `out` (atomically), or to stdout for "-"."""
    from toolkit.files import atomic_write

    text = render(report, fmt)
    if str(out) == STDIO:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with atomic_write(out) as handle:
            handle.write(text.encode("utf-8"))
    return text
