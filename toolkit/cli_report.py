"""`toolkit report`: the command; the report itself is `toolkit.report`.

Kept beside cli.py (which registers it) so that each command module stays small; like
cli.py it imports only click and the core modules, so `toolkit --help` stays fast.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import click

from toolkit import defaults
from toolkit.cli_types import PlainCommand, chunk_rows_option
from toolkit.errors import UsageError


@click.command(
    cls=PlainCommand, short_help="Write a model's report: inference, diagnostics, plots."
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=defaults.CHECKPOINT,
    help="Checkpoint from toolkit train.",
)
@click.option(
    "--data",
    metavar="PATH|DIR|GLOB",
    help="The training data: one pass adds robust standard errors, Durbin-Watson, "
    "Jarque-Bera and the residual plots.",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ONNX file exported from the checkpoint: adds its model card and parity summary.",
)
@click.option(
    "--out",
    metavar="PATH|-",
    help=f"Where to write the report (atomically); - for stdout.  [default: "
    f"{defaults.REPORT_OUTPUT} for html, {defaults.STDIO} for json and text]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(defaults.REPORT_FORMATS),
    default=defaults.REPORT_FORMAT,
    help="A self-contained HTML page, strict JSON, or a plain-text table.",
)
@click.option(
    "--sample-rows",
    type=click.IntRange(min=0),
    default=defaults.REPORT_SAMPLE_ROWS,
    help="Rows of --data the plots are drawn from (a seeded uniform sample).",
)
@chunk_rows_option("Rows per chunk of --data: memory stays bounded by this, not by the data size.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no notes.")
def report(
    checkpoint: Path,
    data: str | None,
    model: Path | None,
    out: str | None,
    fmt: str,
    sample_rows: int,
    chunk_rows: int,
    quiet: bool,
) -> None:
    """Report on a trained model: the model card, the coefficient table with confidence
    intervals, and with --data the residual diagnostics and plots."""
    if fmt == "html" and importlib.util.find_spec("matplotlib") is None:
        raise UsageError(
            "--format html draws its plots with matplotlib, which is not installed: "
            "pip install 'toolkit[report]', or use --format json or text."
        )
    from toolkit.report import make_report, write_report

    target = out or str(defaults.REPORT_OUTPUT if fmt == "html" else defaults.STDIO)
    progress = not quiet and sys.stderr.isatty()
    made = make_report(
        checkpoint,
        data,
        model,
        chunk_rows=chunk_rows,
        sample_rows=sample_rows,
        progress=progress,
        draw=fmt == "html",
    )
    text = write_report(made, target, fmt)
    if not quiet and target != defaults.STDIO:
        for note in made.content["notes"]:
            click.echo(note if note.startswith("warning:") else f"note: {note}", err=True)
        click.echo(f"wrote {target} ({len(text.encode()):,} bytes, {fmt})", err=True)
