"""toolkit/cli.py: entry points, import weight, and clean failures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import train_json

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


def test_the_console_script_exits_without_teardown_but_runs_exit_handlers(tmp_path):
    # toolkit.__main__ ends the process with os._exit once the command is done: exit
    # handlers (temporary folders' finalizers, torch.distributed's leave) still run, and
    # the output is flushed, in that order, whatever the status.
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "sys.argv = ['toolkit', *sys.argv[1:]]\n"
        "from toolkit.__main__ import main\n"
        "main()\n"
        "print('not reached')\n"
    )
    done = python("-c", script, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"toolkit, version {toolkit.__version__}\nhandler ran\n"
    usage = python("-c", script, "train", "--solver", "nope")
    assert usage.returncode == 2
    assert usage.stdout == "handler ran\n"
    assert "Invalid value for '--solver'" in usage.stderr


@pytest.mark.parametrize(
    ("code", "status", "stderr"),
    [("None", 0, ""), ("3", 3, ""), ("'stopped'", 1, "stopped\n")],
)
def test_exit_now_maps_codes_as_sys_exit_does(code, status, stderr):
    done = python("-c", f"from toolkit.__main__ import exit_now\nexit_now({code})")
    assert (done.returncode, done.stderr) == (status, stderr)


def test_exit_now_reports_output_it_could_not_flush():
    # As CPython does at exit: output lost at the last flush is status 120, not 0.
    code = (
        "import io, sys\n"
        "class Full(io.StringIO):\n"
        "    def flush(self):\n"
        "        raise OSError(28, 'No space left on device')\n"
        "sys.stdout = Full()\n"
        "from toolkit.__main__ import exit_now\n"
        "exit_now(0)\n"
    )
    assert python("-c", code).returncode == 120


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"toolkit, version {toolkit.__version__}"


def test_failures_print_error_without_traceback_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.csv"
    # A text feature is categorical now (issue 15); a text target is still an error.
    bad.write_text("x1,x2,y\n1,2,3\n4,5,six\n")
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", "train", "--data", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"Error: {bad}, row 3, column 'y': expected a number, got 'six'."
    )
    assert result.stdout == ""


def test_progress_bar_is_off_when_stderr_is_not_a_terminal(run):
    result = run("train", "--solver", "sgd")
    assert result.exit_code == 0
    assert "epoch/s" not in result.stderr and "it/s" not in result.stderr


# -- Hardening: option ranges, friction, fast answers ---------------------------------------


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_a_seed_out_of_range_is_a_usage_error_naming_the_range(run, seed):
    result = run("train", "--seed", seed)
    assert result.exit_code == 2
    assert (
        f"Error: Invalid value for '--seed': {seed} is not in the range "
        "0<=x<=18446744073709551615." in result.output
    )
    assert "Traceback" not in result.output


def test_the_largest_seed_trains(run):
    result = run("train", "--seed", str(2**64 - 1), "--solver", "sgd", "--epochs", "2", "-q")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "targets", [["--target", "a,b"], ["--target", "a", "--target", "b"], ["--target", " a , b"]]
)
def test_targets_may_be_comma_separated_or_repeated(run, write_csv, targets):
    path = write_csv("two.csv", "x1,x2,a,b\n1,0,1,2\n0,1,3,5\n1,1,4,7\n2,1,5,9\n3,5,8,2\n")
    report = train_json(run, "--data", str(path), *targets)
    assert report["targets"] == ["a", "b"] and report["features"] == ["x1", "x2"]


def test_a_target_named_twice_across_options_is_refused(run, write_csv):
    path = write_csv("two.csv", "x1,a,b\n1,1,2\n")
    result = run("train", "--data", str(path), "--target", "a,b", "--target", "a")
    assert result.exit_code == 2
    assert "Error: --target names 'a' more than once." in result.output


def test_did_you_mean_ignores_case(run, write_csv):
    path = write_csv("longley.csv", "GNP,POP,TOTEMP\n1,2,3\n")
    result = run("train", "--data", str(path), "--target", "totemp")
    assert result.exit_code == 2
    assert (
        f"Error: unknown column 'totemp' in --target; {path} has columns GNP, POP, TOTEMP. "
        "Did you mean 'TOTEMP'?" in result.output
    )


def test_info_on_a_checkpoint_shows_its_training_summary(run):
    assert run("train", "--quiet").exit_code == 0
    result = run("info", "models/model.pt")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        r"trained 1 target on 4 rows of <embedded seed data> with --solver exact \(\w+, "
        r"float32\), \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(toolkit .+\)",
        lines[0],
    ), lines[0]
    assert "  y = 1.0000*x1 + 1.0000*x2 - 1.0000" in lines
    assert "  checkpoint: models/model.pt" in lines and lines[-1] == "  seed: 0"
    details = json.loads(run("info", "models/model.pt", "--json").stdout)
    assert details["features"] == ["x1", "x2"] and details["targets"] == ["y"]
    assert details["seed"] == 0 and details["solver"] == "exact"
    assert details["size_bytes"] == Path("models/model.pt").stat().st_size


def test_info_on_a_missing_checkpoint_is_a_clean_error(run):
    result = run("info", "nope.pt")
    assert result.exit_code == 1
    assert (
        result.output
        == "Error: checkpoint 'nope.pt' does not exist; train one with `toolkit train`.\n"
    )


def test_export_reports_a_missing_checkpoint_at_once_without_importing_torch(tmp_path):
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "toolkit", "export", "--checkpoint", "no.pt"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == ["Error: checkpoint 'no.pt' does not exist; train one with `toolkit train`."]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()[1:]}
    assert "toolkit.export.convert" in imported  # the check ran in the library ...
    assert {"torch", "onnx", "onnxruntime"} & imported == set()  # ... before anything heavy
    assert seconds < 1.5  # 0.5 s is the aim; the margin is for a loaded test machine


def test_an_interrupt_after_the_checkpoint_is_written_exits_130_and_keeps_it(run, monkeypatch):
    """The issue's case: SIGTERM in the last second (the summary) killed the process, -15."""
    import toolkit.training

    def interrupted(result):
        raise KeyboardInterrupt  # what the SIGTERM handler raises

    monkeypatch.setattr(toolkit.training, "to_text", interrupted)
    result = run("train")
    assert result.exit_code == 130
    assert "interrupted after the checkpoint was written; models/model.pt is complete." in (
        result.output
    )
    assert "Traceback" not in result.output
    from toolkit.training import checkpoint

    assert checkpoint.load("models/model.pt")["spec"]["feature_names"] == ["x1", "x2"]


NO_TORCH_PROBE = """
import sys
from toolkit.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="toolkit", standalone_mode=False)
except Exception as error:
    print(type(error).__name__, error)
print("torch imported:", "torch" in sys.modules)
"""


def test_train_names_a_missing_column_without_importing_torch(write_csv):
    # toolkit/training/early.py opens the data before torch: the error needs no torch.
    data = write_csv("data.csv", "x1,x2,y\n1,2,3\n2,3,5\n")
    probe = subprocess.run(
        [sys.executable, "-c", NO_TORCH_PROBE, "train", "--data", str(data), "--target", "z"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "UsageError unknown column 'z' in --target" in probe.stdout
    assert "torch imported: False" in probe.stdout
