"""toolkit/cli.py: entry points, import weight, and clean failures."""

from __future__ import annotations

import json
import subprocess
import sys

import toolkit


def python(*code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, timeout=120)


def test_help_does_not_import_torch_or_numpy():
    script = (
        "import sys\n"
        "from toolkit.cli import cli\n"
        "try:\n"
        "    cli.main(['--help'], prog_name='toolkit')\n"
        "except SystemExit:\n"
        "    pass\n"
        "try:\n"
        "    cli.main(['train', '--help'], prog_name='toolkit')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'pyarrow', 'onnx') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = python("-c", script)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert "--solver [exact|sgd|adam|lbfgs]" in result.stdout


def test_python_dash_m_toolkit_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", "train", "--json", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["checkpoint"] == "models/model.pt"
    assert (tmp_path / "models" / "model.pt").is_file()
    assert result.stderr == ""  # --quiet: no notes, and no progress bar off a terminal


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"toolkit, version {toolkit.__version__}"


def test_failures_print_error_without_traceback_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,x2,y\n1,2,3\n4,five,6\n")
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", "train", "--data", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"Error: {bad}, row 3, column 'x2': expected a number, got 'five'."
    )
    assert result.stdout == ""


def test_progress_bar_is_off_when_stderr_is_not_a_terminal(run):
    result = run("train", "--solver", "sgd")
    assert result.exit_code == 0
    assert "epoch/s" not in result.stderr and "it/s" not in result.stderr
