"""The `toolkit` command line: parse options, call one library function, print.

Heavy modules (torch, pyarrow, numpy) are imported inside the commands, so that
`toolkit --help` stays fast and torch-free (tests/test_cli.py proves it).
"""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from toolkit import __version__, defaults
from toolkit.cli_report import report
from toolkit.cli_types import (
    SEED_TYPE,
    DeviceType,
    PlainCommand,
    ToolkitCommand,
    chunk_rows_option,
    explain_export_option,
    explain_predict_option,
    interval_level_option,
    providers_option,
    split_each,
    split_names,
    table_options,
    tolerances,
)
from toolkit.errors import TrainingInterrupted

# Every option shows its default (toolkit.defaults) in --help, unless it has none.
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True}


@click.group(context_settings=_CONTEXT)
@click.version_option(__version__, prog_name="toolkit")
def cli() -> None:
    """Train a linear regressor exactly, export it to ONNX, serve it."""


@cli.command(cls=ToolkitCommand, short_help="Fit the linear regressor and save a checkpoint.")
@click.option(
    "--data",
    metavar="PATH|DIR|GLOB",
    help="CSV or Parquet file, a folder of shards, or a glob of shards.  "
    "[default: the embedded seed data]",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    callback=split_each,
    metavar="NAME[,NAME...]",
    help="Target column(s), comma-separated or repeated, for a multi-output model.  "
    f"[default: {defaults.DEFAULT_TARGET}, else the last column]",
)
@click.option(
    "--features",
    callback=split_names,
    metavar="A,B,...",
    help="Feature columns.  [default: every column that is not a target]",
)
@click.option(
    "--weight",
    metavar="COLUMN",
    default=defaults.WEIGHT,
    help="Column of each row's weight (>= 0) for weighted least squares: the solvers, "
    f"metrics and inference weigh each row by it.  [default: {defaults.WEIGHT_TEXT}]",
)
@table_options
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help="Share of rows held out for validation, by a seeded hash of each row.  "
    f"[default: {defaults.VAL_FRACTION:g}, or 0 when the data is too small to spare rows]",
)
@click.option(
    "--solver",
    type=click.Choice(defaults.SOLVERS),
    default=defaults.SOLVER,
    help="Closed-form least squares, or a PyTorch optimizer.",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Iterative solvers: most epochs to run.")
@click.option("--lr", type=float, help="Iterative solvers: learning rate (on standardized data).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=0),
    help="Iterative solvers: rows per step; 0 = full batch.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=0),
    help="Iterative solvers: stop after N epochs without improvement; 0 = never.",
)
@click.option(
    "--l2",
    type=click.FloatRange(min=0),
    default=defaults.L2,
    help="Ridge penalty l2 * ||w||^2 (scikit-learn's Ridge alpha); the intercept is not penalised.",
)
@click.option("--no-intercept", is_flag=True, help="Fit y = w.x with no bias term.")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=defaults.ALPHA,
    help="Significance level of the coefficient table: its confidence intervals are 1 - alpha.",
)
@click.option(
    "--dtype",
    type=click.Choice(defaults.DTYPES),
    default=defaults.DTYPE,
    help="Precision of the model (and of its ONNX export).",
)
@click.option(
    "--device",
    type=DeviceType(),
    default=defaults.DEVICE,
    help="Where to train; auto = CUDA when available.",
)
@click.option(
    "--seed",
    type=SEED_TYPE,
    default=defaults.SEED,
    help="Fixes the split, initialization and shuffling.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=defaults.CHECKPOINT,
    help="Checkpoint to write (atomically).",
)
@click.option(
    "--resume",
    is_flag=True,
    help=f"Continue the interrupted iterative run that wrote OUT{defaults.RESUME_SUFFIX}.",
)
@chunk_rows_option(
    "Rows per chunk read or re-read by every solver: memory stays bounded by this, "
    "not by the data size (parsed rows wait on disk in $TMPDIR)."
)
@click.option(
    "--quiet", "-q", is_flag=True, help="No progress bar and no notes (warnings still show)."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object to stdout instead of the summary.",
)
def train(as_json: bool, quiet: bool, no_intercept: bool, **options: Any) -> None:
    """Fit nn.Linear on the seed data or a CSV/Parquet file and save a checkpoint."""
    from toolkit.api import train as run_training
    from toolkit.training import to_json, to_text

    progress = not quiet and sys.stderr.isatty()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM saves resume state like Ctrl-C
    try:  # the handler stays until the summary is out: a late SIGTERM exits 130, not -15
        result = run_training(intercept=not no_intercept, progress=progress, **options)
        if result.rank == 0:  # under torchrun, rank 0 speaks for the job
            for note in result.notes:
                if note.startswith("warning:") or not quiet:
                    click.echo(note if note.startswith("warning:") else f"note: {note}", err=True)
            click.echo(json.dumps(to_json(result), indent=2) if as_json else to_text(result))
    except KeyboardInterrupt as error:  # training turns its own interrupts into errors
        raise TrainingInterrupted(
            f"interrupted after the checkpoint was written; {options['out']} is complete."
        ) from error
    finally:
        signal.signal(signal.SIGTERM, previous)


@cli.command(cls=ToolkitCommand, short_help="Export a checkpoint to ONNX behind the parity gate.")
@click.argument(
    "output", type=click.Path(dir_okay=False, path_type=Path), default=defaults.ONNX_OUTPUT
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=defaults.CHECKPOINT,
    help="Checkpoint to export.",
)
@click.option(
    "--opset",
    type=int,
    default=defaults.OPSET,
    help="ONNX opset to write; refused if the installed onnxruntime cannot run it.",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0),
    help=f"Parity gate absolute tolerance.  [default: {tolerances(0)}]",
)
@click.option(
    "--rtol",
    type=click.FloatRange(min=0),
    help="Parity gate relative tolerance (of the summed terms' magnitude).  "
    f"[default: {tolerances(1)}]",
)
@click.option(
    "--no-validate",
    is_flag=True,
    help="Skip the parity gate (a warning; the model card records it).",
)
@explain_export_option
@interval_level_option
@click.option(
    "--unknown-level",
    type=click.Choice(defaults.UNKNOWN_LEVELS),
    help="Models with categorical columns: a level unseen in training is refused (error) or "
    "encoded as the reference level, counted in the `unknown_levels` output (reference); "
    f"recorded in the model card.  [default: {defaults.UNKNOWN_LEVEL}]",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object instead of the status line."
)
def export(
    output: Path,
    checkpoint: Path,
    opset: int,
    atol: float | None,
    rtol: float | None,
    no_validate: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Export a checkpoint to ONNX (OUTPUT: models/model.onnx), gated on parity with PyTorch."""
    import toolkit.export

    if no_validate:
        click.echo(
            "warning: --no-validate: the parity gate is skipped; the model card records it.",
            err=True,
        )
    # --explain, --interval-level and --unknown-level, by export_model's names.
    result = toolkit.export(
        checkpoint, output, opset, atol, rtol, validate=not no_validate, **options
    )
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else result.summary())


@cli.command(cls=PlainCommand, short_help="Predict a CSV/Parquet file or stdin with an ONNX model.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--input",
    "source",
    default=defaults.STDIO,
    metavar="PATH|-",
    help="CSV or Parquet file with the model's feature columns; - reads CSV from stdin.",
)
@click.option(
    "--output",
    "destination",
    default=defaults.STDIO,
    metavar="PATH|-",
    help="Where predictions go, in the format its suffix names: .csv, .tsv, .jsonl or .ndjson, "
    ".parquet or .pq (any other suffix is refused); - writes CSV to stdout.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Write JSON Lines (one object per row): to stdout, or to an --output ending in "
    ".jsonl, .ndjson or .json.",
)
@click.option(
    "--id",
    "id_column",
    metavar="COLUMN",
    help="Input column copied to the output next to each prediction.",
)
@chunk_rows_option("Rows per chunk: memory stays bounded by this, not by the file size.")
@providers_option
@click.option("--allow-non-finite", is_flag=True, help="Accept NaN and infinity in features.")
@explain_predict_option
def predict(
    model: Path,
    source: str,
    destination: str,
    as_json: bool,
    id_column: str | None,
    chunk_rows: int,
    providers: str,
    allow_non_finite: bool,
    explain: bool,
) -> None:
    """Predict every row of a CSV/Parquet file (or stdin) with an ONNX MODEL."""
    from toolkit.predict import predict_file
    from toolkit.runtime import Predictor

    predictor = Predictor(model, providers=providers, allow_non_finite=allow_non_finite)
    hint = "--allow-non-finite"  # how this command accepts NaN and infinity
    summary = predict_file(
        predictor, source, destination, id_column, chunk_rows, as_json, hint, explain
    )
    if summary.unknown_note() is not None:
        click.echo(summary.unknown_note(), err=True)
    if destination != defaults.STDIO:
        rows = f"{summary.rows:,} row{'s' if summary.rows != 1 else ''}"
        click.echo(f"predicted {rows} with {summary.provider} -> {summary.output}", err=True)


@cli.command(cls=ToolkitCommand, short_help="Describe an ONNX model or a checkpoint.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@providers_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(model: Path, providers: str, as_json: bool) -> None:
    """Show an ONNX MODEL's signature, model card, opset, size and providers, or a
    checkpoint's (.pt) training summary."""
    from toolkit import checkpoint_info

    if checkpoint_info.is_checkpoint(model):
        if as_json:
            click.echo(json.dumps(checkpoint_info.describe(model), indent=2))
        else:
            click.echo(checkpoint_info.to_text(model))
        return
    from toolkit.runtime import Predictor
    from toolkit.runtime.info import describe, to_lines

    details = describe(Predictor(model, providers=providers))
    click.echo(json.dumps(details, indent=2) if as_json else "\n".join(to_lines(details)))


@cli.command(cls=ToolkitCommand, short_help="Serve an ONNX model over HTTP (uvicorn).")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--host", default=defaults.SERVE_HOST, help="Interface to bind (loopback by default)."
)
@click.option("--port", type=click.IntRange(0, 65535), default=defaults.SERVE_PORT)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=defaults.SERVE_WORKERS,
    help="Worker processes, each with its own copy of the model.",
)
@providers_option
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=defaults.SERVE_MAX_BODY_BYTES,
    help="Larger request bodies get 413 before they are read in full.",
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    default=defaults.SERVE_MAX_ROWS,
    help="Rows per request; more get 413.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=defaults.SERVE_BODY_TIMEOUT,
    help="Seconds a client may take to send its body; slower ones get 408.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=defaults.SERVE_HEADER_TIMEOUT,
    help="Seconds a client may take to send a request's headers; slower ones get 408.",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=defaults.SERVE_MAX_CONCURRENCY,
    help="Requests in progress per worker; more get 503 with Retry-After.",
)
def serve(model: Path, host: str, port: int, workers: int, **settings: Any) -> None:
    """Serve MODEL: POST /predict, POST /explain, GET /health, GET /metadata, docs at /docs."""
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("fastapi") is None:
        raise click.UsageError(
            "toolkit serve needs the 'serve' extra: pip install 'toolkit[serve]'."
        )
    from toolkit.serve import ServeSettings
    from toolkit.serve import serve as run_server

    # The other options are ServeSettings' fields, by name.
    run_server(ServeSettings(str(model), **settings), host=host, port=port, workers=workers)


cli.add_command(report)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="toolkit")


if __name__ == "__main__":
    main()
