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
from toolkit.errors import ToolkitError, UsageError


class _Failure(click.ClickException):
    """A ToolkitError shown as `Error: ...` with the error's own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Command(click.Command):
    """Turns the library's typed errors into clean messages and exit codes, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ToolkitError as error:
            if getattr(error, "quiet", False):  # rank 0 of the torchrun job prints it
                ctx.exit(error.exit_code)
            if isinstance(error, UsageError):
                raise click.UsageError(str(error), ctx) from error
            raise _Failure(str(error), error.exit_code) from error


class _DeviceType(click.ParamType):
    name = "auto|cpu|cuda|cuda:N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from toolkit.training.device import check_device_name

        try:
            return check_device_name(str(value))
        except UsageError as error:
            raise click.BadParameter(str(error), ctx, param) from error


# toolkit predict, info and serve open the model the same way.
_providers_option = click.option(
    "--providers",
    default=defaults.PROVIDERS,
    help="auto, cpu, cuda, or an onnxruntime provider name (refused if it cannot run).",
)


def _split_names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    names = tuple(name.strip() for name in value.split(","))
    if not all(names):
        raise click.BadParameter(f"expected comma-separated column names, got {value!r}.")
    return names


# Every option shows its default (toolkit.defaults) in --help, unless it has none.
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True}


@click.group(context_settings=_CONTEXT)
@click.version_option(__version__, prog_name="toolkit")
def cli() -> None:
    """Train a linear regressor exactly, export it to ONNX, serve it."""


@cli.command(cls=_Command, short_help="Fit the linear regressor and save a checkpoint.")
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
    metavar="NAME",
    help="Target column; repeat for a multi-output model.  "
    f"[default: {defaults.DEFAULT_TARGET}, else the last column]",
)
@click.option(
    "--features",
    callback=_split_names,
    metavar="A,B,...",
    help="Feature columns.  [default: every column that is not a target]",
)
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
    "--dtype",
    type=click.Choice(defaults.DTYPES),
    default=defaults.DTYPE,
    help="Precision of the model (and of its ONNX export).",
)
@click.option(
    "--device",
    type=_DeviceType(),
    default=defaults.DEVICE,
    help="Where to train; auto = CUDA when available.",
)
@click.option(
    "--seed", type=int, default=defaults.SEED, help="Fixes the split, initialization and shuffling."
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
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=defaults.CHUNK_ROWS,
    help="Rows per chunk read or re-read by every solver: memory stays bounded by this, "
    "not by the data size (parsed rows wait on disk in $TMPDIR).",
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
    from toolkit.training import TrainConfig, to_json, to_text
    from toolkit.training import train as run_training

    config = TrainConfig(
        intercept=not no_intercept, progress=not quiet and sys.stderr.isatty(), **options
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM saves resume state like Ctrl-C
    try:
        result = run_training(config)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if result.rank != 0:  # under torchrun, rank 0 speaks for the job
        return
    for note in result.notes:
        if note.startswith("warning:"):
            click.echo(note, err=True)
        elif not quiet:
            click.echo(f"note: {note}", err=True)
    click.echo(json.dumps(to_json(result), indent=2) if as_json else to_text(result))


def _tolerances(which: int) -> str:
    """The parity gate's default tolerance per dtype, as --help shows it (1e-5, not 1e-05)."""
    return ", ".join(
        f"{f'{pair[which]:g}'.replace('e-0', 'e-')} for {dtype}"
        for dtype, pair in defaults.PARITY_TOLERANCES.items()
    )


@cli.command(cls=_Command, short_help="Export a checkpoint to ONNX behind the parity gate.")
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
    help=f"Parity gate absolute tolerance.  [default: {_tolerances(0)}]",
)
@click.option(
    "--rtol",
    type=click.FloatRange(min=0),
    help="Parity gate relative tolerance (of the summed terms' magnitude).  "
    f"[default: {_tolerances(1)}]",
)
@click.option(
    "--no-validate",
    is_flag=True,
    help="Skip the parity gate (a warning; the model card records it).",
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
) -> None:
    """Export a checkpoint to ONNX (OUTPUT: models/model.onnx), gated on parity with PyTorch."""
    from toolkit.export import export_model

    if no_validate:
        click.echo(
            "warning: --no-validate: the parity gate is skipped; the model card records it.",
            err=True,
        )
    result = export_model(checkpoint, output, opset, atol, rtol, validate=not no_validate)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else result.summary())


@cli.command(cls=_Command, short_help="Predict a CSV/Parquet file or stdin with an ONNX model.")
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
    help="Where predictions go: CSV, or Parquet by suffix; - writes to stdout.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Write JSON Lines (one object per row) instead of CSV."
)
@click.option(
    "--id",
    "id_column",
    metavar="COLUMN",
    help="Input column copied to the output next to each prediction.",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=defaults.CHUNK_ROWS,
    help="Rows per chunk: memory stays bounded by this, not by the file size.",
)
@_providers_option
@click.option("--allow-non-finite", is_flag=True, help="Accept NaN and infinity in features.")
def predict(
    model: Path,
    source: str,
    destination: str,
    as_json: bool,
    id_column: str | None,
    chunk_rows: int,
    providers: str,
    allow_non_finite: bool,
) -> None:
    """Predict every row of a CSV/Parquet file (or stdin) with an ONNX MODEL."""
    from toolkit.predict import predict_file
    from toolkit.runtime import Predictor

    predictor = Predictor(model, providers=providers, allow_non_finite=allow_non_finite)
    summary = predict_file(predictor, source, destination, id_column, chunk_rows, as_json)
    if destination != defaults.STDIO:
        rows = f"{summary.rows:,} row{'s' if summary.rows != 1 else ''}"
        click.echo(f"predicted {rows} with {summary.provider} -> {summary.output}", err=True)


@cli.command(cls=_Command, short_help="Describe an ONNX model: signature, card, providers.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@_providers_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(model: Path, providers: str, as_json: bool) -> None:
    """Show an ONNX MODEL's signature, model card, opset, size and providers."""
    from toolkit.runtime import Predictor
    from toolkit.runtime.info import describe, to_lines

    details = describe(Predictor(model, providers=providers))
    click.echo(json.dumps(details, indent=2) if as_json else "\n".join(to_lines(details)))


@cli.command(cls=_Command, short_help="Serve an ONNX model over HTTP (uvicorn).")
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
@_providers_option
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
def serve(
    model: Path,
    host: str,
    port: int,
    workers: int,
    providers: str,
    max_body_bytes: int,
    max_rows: int,
    body_timeout: float,
) -> None:
    """Serve MODEL: POST /predict, GET /health, GET /metadata, docs at /docs."""
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("fastapi") is None:
        raise click.UsageError(
            "toolkit serve needs the 'serve' extra: pip install 'toolkit[serve]'."
        )
    from toolkit.serve import ServeSettings
    from toolkit.serve import serve as run_server

    settings = ServeSettings(str(model), providers, max_body_bytes, max_rows, body_timeout)
    run_server(settings, host=host, port=port, workers=workers)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="toolkit")


if __name__ == "__main__":
    main()
