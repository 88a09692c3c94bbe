"""kill -9 at seeded moments during `train`, `export` and `predict --output`: nothing is lost.

Every file toolkit writes goes through `toolkit.files.atomic_write` (temporary file in the
same folder, fsync, rename), so after a SIGKILL at any moment the target is either the
old file, intact, or the complete new one; never a half-written file. Each command runs
in a subprocess and is killed after a delay drawn from a seeded generator (some before,
some during and some after the write). TOOLKIT_FAULT_TRIALS sets the trials per command
(default 4).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_table_csv

from toolkit.training import TrainConfig, checkpoint, train

TRIALS = int(os.environ.get("TOOLKIT_FAULT_TRIALS", "4"))


def _kill_after(command: list[str], delay: float, cwd: Path) -> int:
    process = subprocess.Popen(
        [sys.executable, "-m", "toolkit", *command],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
    return process.wait(timeout=60)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200_000, 8))
    columns = {**{f"x{i}": x[:, i] for i in range(8)}, "y": x @ np.arange(8.0) + 1}
    return write_table_csv(tmp_path_factory.mktemp("faults") / "big.csv", columns)


def _delays(seed: int, high: float) -> list[float]:
    return list(np.random.default_rng(seed).uniform(0.05, high, TRIALS))


def test_kill_9_during_train_never_damages_the_checkpoint(tmp_path, table):
    out = tmp_path / "m.pt"
    train(TrainConfig(out=out))  # the old, good checkpoint: the seed model
    old = out.read_bytes()
    for delay in _delays(1, 6.0):
        _kill_after(["train", "--data", str(table), "--out", str(out), "-q"], delay, tmp_path)
        payload = checkpoint.load(out)  # complete and valid, whatever the moment
        assert out.read_bytes() == old or payload["data"]["rows"] == 200_000


def test_kill_9_during_export_never_leaves_a_partial_model(tmp_path):
    train(TrainConfig(out=tmp_path / "m.pt"))
    onnx_path = tmp_path / "m.onnx"
    for delay in _delays(2, 8.0):
        if onnx_path.exists():
            onnx_path.unlink()
        _kill_after(
            ["export", str(onnx_path), "--checkpoint", str(tmp_path / "m.pt")], delay, tmp_path
        )
        if onnx_path.exists():  # only ever the complete file
            from toolkit.runtime import Predictor

            assert Predictor(onnx_path).predict([[1.0, 2.0]])[0, 0] == pytest.approx(2.0)


def test_kill_9_during_predict_output_keeps_the_old_file_or_writes_all(tmp_path, table, seed_onnx):
    source = tmp_path / "in.csv"
    rows = np.random.default_rng(3).standard_normal((300_000, 2))
    write_table_csv(source, {"x1": rows[:, 0], "x2": rows[:, 1]})
    out = tmp_path / "out.csv"
    out.write_text("y\nold\n")
    for delay in _delays(3, 4.0):
        _kill_after(
            ["predict", str(seed_onnx), "--input", str(source), "--output", str(out)],
            delay,
            tmp_path,
        )
        text = out.read_text()
        assert text == "y\nold\n" or text.count("\n") == 300_001
        if text != "y\nold\n":
            out.write_text("y\nold\n")
