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

from toolkit import __version__
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
            self.fail(str(error), param, ctx)


# toolkit predict, info and serve open the model the same way.
_providers_option = click.option(
    "--providers",
    default="auto",
    show_default=True,
    help="auto, cpu, cuda, or an onnxruntime provider name (refused if it cannot run).",
)


def _split_names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    names = tuple(name.strip() for name in value.split(","))
    if not all(names):
        raise click.BadParameter(f"expected comma-separated column names, got {value!r}.")
    return names


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    help="Target column; repeat for a multi-output model.  [default: y, else the last column]",
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
    help="Share of rows held out for validation, by a seeded hash of each row.  [default: "
    "0.2, or 0 when "
    "the data is too small to spare rows]",
)
@click.option(
    "--solver",
    type=click.Choice(["exact", "sgd", "adam", "lbfgs"]),
    default="exact",
    show_default=True,
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
    default=0.0,
    show_default=True,
    help="Ridge penalty l2 * ||w||^2 (scikit-learn's Ridge alpha); the intercept is not penalised.",
)
@click.option("--no-intercept", is_flag=True, help="Fit y = w.x with no bias term.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float64"]),
    default="float32",
    show_default=True,
    help="Precision of the model (and of its ONNX export).",
)
@click.option(
    "--device",
    type=_DeviceType(),
    default="auto",
    show_default=True,
    help="Where to train; auto = CUDA when available.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Fixes the split, initialization and shuffling.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("models/model.pt"),
    show_default=True,
    help="Checkpoint to write (atomically).",
)
@click.option(
    "--resume", is_flag=True, help="Continue the interrupted iterative run that wrote OUT.resume."
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=65_536,
    show_default=True,
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
    if as_json:
        click.echo(json.dumps(to_json(result), indent=2))
    else:
        click.echo(to_text(result))


@cli.command(cls=_Command, short_help="Export a checkpoint to ONNX behind the parity gate.")
@click.argument(
    "output", type=click.Path(dir_okay=False, path_type=Path), default=Path("models/model.onnx")
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("models/model.pt"),
    show_default=True,
    help="Checkpoint to export.",
)
@click.option(
    "--opset",
    type=int,
    default=None,
    help="ONNX opset to write; refused if the installed onnxruntime cannot run it.  [default: 18]",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0),
    default=None,
    help="Parity gate absolute tolerance.  [default: 1e-5 for float32, 1e-12 for float64]",
)
@click.option(
    "--rtol",
    type=click.FloatRange(min=0),
    default=None,
    help="Parity gate relative tolerance (of the summed terms' magnitude).  [default: as --atol]",
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
    opset: int | None,
    atol: float | None,
    rtol: float | None,
    no_validate: bool,
    as_json: bool,
) -> None:
    """Export a checkpoint to ONNX (OUTPUT: models/model.onnx), gated on parity with PyTorch."""
    from toolkit.export import DEFAULT_OPSET, export_model

    if no_validate:
        click.echo(
            "warning: --no-validate: the parity gate is skipped; the model card records it.",
            err=True,
        )
    result = export_model(
        checkpoint, output, opset or DEFAULT_OPSET, atol, rtol, validate=not no_validate
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    status = (
        f"exported {result.output} (opset {result.opset}, {result.dtype}, "
        f"{result.size_bytes:,} bytes)"
    )
    if result.parity is not None:
        worst_abs = max(p.max_abs_diff for p in result.parity.providers)
        worst_rel = max(p.max_rel_diff for p in result.parity.providers)
        names = ", ".join(p.provider for p in result.parity.providers)
        status += (
            f"; parity passed on {names}: max abs diff {worst_abs:.2g}, max rel diff "
            f"{worst_rel:.2g} (atol {result.parity.atol:g}, rtol {result.parity.rtol:g})"
        )
    click.echo(status)


@cli.command(cls=_Command, short_help="Predict a CSV/Parquet file or stdin with an ONNX model.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--input",
    "source",
    default="-",
    show_default=True,
    metavar="PATH|-",
    help="CSV or Parquet file with the model's feature columns; - reads CSV from stdin.",
)
@click.option(
    "--output",
    "destination",
    default="-",
    show_default=True,
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
    default=65_536,
    show_default=True,
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
    if destination != "-":
        rows = f"{summary.rows:,} row{'s' if summary.rows != 1 else ''}"
        click.echo(f"predicted {rows} with {summary.provider} -> {summary.output}", err=True)


@cli.command(cls=_Command, short_help="Describe an ONNX model: signature, card, providers.")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@_providers_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(model: Path, providers: str, as_json: bool) -> None:
    """Show an ONNX MODEL's signature, model card, opset, size and providers."""
    from toolkit.runtime import Predictor
    from toolkit.runtime.info import describe

    details = describe(Predictor(model, providers=providers))
    if as_json:
        click.echo(json.dumps(details, indent=2))
        return
    signature = {key: details[key] for key in ("input", "output")}
    opsets = ", ".join(
        f"{domain or 'ai.onnx'} {version}" for domain, version in details["opsets"].items()
    )
    lines = [
        f"model:      {details['path']} ({details['size_bytes']:,} bytes)",
        *(f"{key + ':':<11} {v['name']} {v['type']} {v['shape']}" for key, v in signature.items()),
        f"features:   {', '.join(details['feature_names'])}",
        f"targets:    {', '.join(details['target_names'])}",
        f"opset:      {opsets}",
        f"providers:  using {details['provider']}; available "
        + ", ".join(details["available_providers"]),
    ]
    click.echo("\n".join(lines))
    card = details["metadata"]
    if not card:
        click.echo("model card: none (names default to x0..xn)")
        return
    click.echo("model card:")
    width = max(len(key) for key in card)
    for key, value in sorted(card.items()):
        click.echo(f"  {key:<{width}}  {value}")


@cli.command(cls=_Command, short_help="Serve an ONNX model over HTTP (uvicorn).")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind (loopback by default).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes, each with its own copy of the model.",
)
@_providers_option
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=8 << 20,
    show_default=True,
    help="Larger request bodies get 413 before they are read in full.",
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Rows per request; more get 413.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
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
