"""The click pieces the CLI is built from: its command classes, parameter types and callbacks.

As in click itself, validation lives here, in types and callbacks, so that the commands in
toolkit/cli.py only parse options and call one library function. Nothing here imports
numpy or torch: `toolkit --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from toolkit import defaults
from toolkit.errors import ToolkitError, UsageError


class Failure(click.ClickException):
    """A ToolkitError shown as `Error: ...` with the error's own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ToolkitCommand(click.Command):
    """Turns the library's typed errors into clean messages and exit codes, no traceback.

    A UsageError is shown under click's usage banner ("Try 'toolkit train -h' for help"):
    its fix is on the command line. Commands whose usage errors are about the data they
    read (predict: a missing column, a folder for a file) set `banner = False` and print
    a plain `Error: ...` with the same exit code, 2.
    """

    banner = True

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ToolkitError as error:
            if getattr(error, "quiet", False):  # rank 0 of the torchrun job prints it
                ctx.exit(error.exit_code)
            if isinstance(error, UsageError) and self.banner:
                raise click.UsageError(str(error), ctx) from error
            raise Failure(str(error), error.exit_code) from error


class PlainCommand(ToolkitCommand):
    """A ToolkitCommand whose usage errors print without the usage banner."""

    banner = False


class DeviceType(click.ParamType):
    name = "auto|cpu|cuda|cuda:N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from toolkit.training.device import check_device_name

        try:
            return check_device_name(str(value))
        except UsageError as error:
            raise click.BadParameter(str(error), ctx, param) from error


# The seeds every generator a run uses accepts: numpy's need >= 0, torch's fit 64 bits.
SEED_TYPE = click.IntRange(defaults.SEED_MIN, defaults.SEED_MAX)


def chunk_rows_option(help_text: str) -> Any:
    """--chunk-rows: every command that streams rows bounds its memory with it."""
    return click.option(
        "--chunk-rows", type=click.IntRange(min=1), default=defaults.CHUNK_ROWS, help=help_text
    )


# toolkit predict, info and serve open the model the same way.
providers_option = click.option(
    "--providers",
    default=defaults.PROVIDERS,
    help="auto, cpu, cuda, or an onnxruntime provider name (refused if it cannot run).",
)

# `toolkit export --explain` and `toolkit predict --explain` (toolkit/export/explain.py).
explain_export_option = click.option(
    "--explain",
    is_flag=True,
    help="Add outputs that explain each prediction (contributions: w * (x - training mean)) "
    "and, for least-squares models, bound it (stderr, lower, upper).",
)
interval_level_option = click.option(
    "--interval-level",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Level of --explain's prediction interval.  [default: 1 - the checkpoint's alpha]",
)
explain_predict_option = click.option(
    "--explain",
    is_flag=True,
    help="Add, per target y, y_lower, y_upper and y_stderr (models with inference) and one "
    "y:FEATURE contribution per feature; MODEL must be exported with --explain.",
)


def split_names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    """`--features a,b`: the comma-separated names, stripped."""
    if value is None:
        return ()
    names = tuple(name.strip() for name in value.split(","))
    if not all(names):
        raise click.BadParameter(f"expected comma-separated column names, got {value!r}.")
    return names


def split_each(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """A repeatable option whose every value may also list names: `--target a,b --target c`."""
    return tuple(name for value in values for name in split_names(ctx, param, value))


def tolerances(which: int) -> str:
    """The parity gate's default tolerance per dtype, as --help shows it (1e-5, not 1e-05)."""
    return ", ".join(
        f"{f'{pair[which]:g}'.replace('e-0', 'e-')} for {dtype}"
        for dtype, pair in defaults.PARITY_TOLERANCES.items()
    )


# `toolkit train`: how raw tables are read (toolkit/columns.py), in --help's order.
_TABLE_OPTIONS = [
    click.option(
        "--categorical",
        multiple=True,
        callback=split_each,
        metavar="COL[,COL...]",
        help="Integer feature columns to encode as categories, comma-separated or repeated; "
        "text, boolean and dictionary columns always are (treatment coding: col[level], the "
        "first level the reference).  [default: none besides those]",
    ),
    click.option(
        "--missing",
        type=click.Choice(defaults.MISSING_POLICIES),
        default=defaults.MISSING,
        help="What a missing value (a blank cell, a null, a text of --na-values) does: stop with "
        "a count of them, drop its row, or fill it with the column's mean or median (categorical "
        "columns: their most frequent level).",
    ),
    click.option(
        "--missing-indicator",
        is_flag=True,
        help="With --missing mean or median: add a col[(missing)] column, 1 where the value was "
        "filled, for each feature with missing values.",
    ),
    click.option(
        "--na-values",
        multiple=True,
        callback=split_each,
        metavar="TEXT[,TEXT...]",
        help="Texts that count as missing besides blank cells and nulls, such as NA,n/a.  "
        f"[default: {', '.join(defaults.NA_VALUES) or 'none'}]",
    ),
    click.option(
        "--max-levels",
        type=click.IntRange(min=2),
        default=defaults.MAX_LEVELS,
        help="Levels a categorical column keeps; the rarest beyond share one col[(other)] level.",
    ),
]


def table_options(command: Any) -> Any:
    """--categorical, --missing, --missing-indicator, --na-values, --max-levels."""
    for option in reversed(_TABLE_OPTIONS):
        command = option(command)
    return command
