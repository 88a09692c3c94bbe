"""toolkit/defaults.py: every default the CLI shows comes from it, and --help shows it.

Each check reads the value from toolkit.defaults and finds it in the command's --help, so
a default changed there is changed everywhere (and a literal left in cli.py fails here).
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from toolkit import defaults
from toolkit.cli import cli


def help_text(command: str) -> str:
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # one line: wrapping does not matter


def shows(text: str, option: str, default: object) -> bool:
    """Whether `option`'s help ends with `[default: <default>...]`."""
    entry = re.search(rf"{re.escape(option)} .*?\[default: ([^\]]*)\]", text)
    return entry is not None and entry.group(1).split(";")[0] == str(default)


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        ("train", "--solver", defaults.SOLVER),
        ("train", "--dtype", defaults.DTYPE),
        ("train", "--device", defaults.DEVICE),
        ("train", "--seed", defaults.SEED),
        ("train", "--l2", defaults.L2),
        ("train", "--alpha", defaults.ALPHA),
        ("train", "--out", defaults.CHECKPOINT),
        ("train", "--chunk-rows", defaults.CHUNK_ROWS),
        ("train", "--missing", defaults.MISSING),
        ("train", "--max-levels", defaults.MAX_LEVELS),
        ("train", "--na-values", ", ".join(defaults.NA_VALUES) or "none"),
        ("export", "--checkpoint", defaults.CHECKPOINT),
        ("export", "--opset", defaults.OPSET),
        ("export", "--unknown-level", defaults.UNKNOWN_LEVEL),
        ("predict", "--input", defaults.STDIO),
        ("predict", "--output", defaults.STDIO),
        ("predict", "--chunk-rows", defaults.CHUNK_ROWS),
        ("predict", "--providers", defaults.PROVIDERS),
        ("info", "--providers", defaults.PROVIDERS),
        ("serve", "--host", defaults.SERVE_HOST),
        ("serve", "--port", defaults.SERVE_PORT),
        ("serve", "--workers", defaults.SERVE_WORKERS),
        ("serve", "--providers", defaults.PROVIDERS),
        ("serve", "--max-body-bytes", defaults.SERVE_MAX_BODY_BYTES),
        ("serve", "--max-rows", defaults.SERVE_MAX_ROWS),
        ("serve", "--body-timeout", defaults.SERVE_BODY_TIMEOUT),
        ("report", "--checkpoint", defaults.CHECKPOINT),
        ("report", "--format", defaults.REPORT_FORMAT),
        ("report", "--sample-rows", defaults.REPORT_SAMPLE_ROWS),
        ("report", "--chunk-rows", defaults.CHUNK_ROWS),
        (
            "report",
            "--out",
            f"{defaults.REPORT_OUTPUT} for html, {defaults.STDIO} for json and text",
        ),
    ],
)
def test_help_shows_the_default_from_toolkit_defaults(command, option, default):
    assert shows(help_text(command), option, default), help_text(command)


def test_choices_are_the_ones_defaults_lists():
    train = help_text("train")
    assert f"--solver [{'|'.join(defaults.SOLVERS)}]" in train
    assert f"--dtype [{'|'.join(defaults.DTYPES)}]" in train
    assert f"--missing [{'|'.join(defaults.MISSING_POLICIES)}]" in train
    assert f"--format [{'|'.join(defaults.REPORT_FORMATS)}]" in help_text("report")


def test_documented_defaults_in_help_text_are_built_from_defaults():
    train = help_text("train")
    assert f"[default: {defaults.DEFAULT_TARGET}, else the last column]" in train
    assert f"[default: {defaults.VAL_FRACTION:g}, or 0 when" in train
    assert f"wrote OUT{defaults.RESUME_SUFFIX}." in train
    export = help_text("export")
    for dtype, (atol, rtol) in defaults.PARITY_TOLERANCES.items():
        assert f"{atol:.0e}".replace("e-0", "e-") + f" for {dtype}" in export
        assert f"{rtol:.0e}".replace("e-0", "e-") + f" for {dtype}" in export


def test_the_literal_defaults_are_what_the_readme_promises():
    # Changing one of these is a user-visible change: update README and this test together.
    assert defaults.CHUNK_ROWS == 65_536
    assert defaults.OPSET == 18
    assert defaults.SERVE_MAX_ROWS == 100_000
    assert str(defaults.CHECKPOINT) == "models/model.pt"
    assert str(defaults.ONNX_OUTPUT) == "models/model.onnx"
