"""Scale-out: torchrun processes (gloo on CPU, loopback) against one process.

Each test launches `torchrun --standalone --nproc-per-node 2 -m toolkit train ...` as a
real subprocess, so they are the slowest in the suite (a few seconds each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
# Relative difference of float64 weights that summation order alone can explain.
EXACT_RTOL = 1e-10


def launch(
    *args: str, processes: int = 2, script: str | None = None
) -> subprocess.CompletedProcess:
    """`toolkit train ARGS` under torchrun (or a Python `script` in its place)."""
    target = [script] if script else ["-m", "toolkit", "train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # what torchrun would set; silences its warning
    return subprocess.run(
        [*TORCHRUN, str(processes), *target, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toolkit", "train", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def report(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6,000 rows over three shards (two CSV, one Parquet with 4 row groups), scales 0.1-100."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6000, 4)) * [1.0, 10.0, 100.0, 0.1] + [0.0, 5.0, -20.0, 1.0]
    y = x @ [2.0, -0.5, 0.1, 3.0] + 3.0 + 0.1 * rng.standard_normal(6000)
    folder = tmp_path_factory.mktemp("shards")
    columns = ["a", "b", "c", "d"]

    def write_csv(path: Path, rows: slice) -> None:
        lines = [",".join([*columns, "y"])]
        lines += [",".join(repr(float(v)) for v in (*x[i], y[i])) for i in range(6000)[rows]]
        path.write_text("\n".join(lines) + "\n")

    write_csv(folder / "part-0.csv", slice(0, 2500))
    write_csv(folder / "part-1.csv", slice(2500, 4000))
    table = pa.table({**{c: x[4000:, i] for i, c in enumerate(columns)}, "y": y[4000:]})
    pq.write_table(table, folder / "part-2.parquet", row_group_size=500)
    return folder


def test_two_processes_exact_equals_one_process(shards, tmp_path):
    args = ["--data", str(shards), "--dtype", "float64", "--json", "-q"]
    one = report(single(*args, "--out", str(tmp_path / "one.pt")))
    two = report(launch(*args, "--out", str(tmp_path / "two.pt")))
    assert (one["data"]["processes"], two["data"]["processes"]) == (1, 2)
    # The same rows are held out, whichever process read them.
    for key in ("rows", "train_rows", "val_rows", "sha256"):
        assert two["data"][key] == one["data"][key], key
    w1, w2 = np.array(one["weights"]), np.array(two["weights"])
    assert np.abs(w2 - w1).max() <= EXACT_RTOL * np.abs(w1).max()
    np.testing.assert_allclose(two["bias"], one["bias"], rtol=EXACT_RTOL)
    for split in ("train", "val"):
        np.testing.assert_allclose(
            two["metrics"][split]["mse"], one["metrics"][split]["mse"], rtol=1e-9
        )
    assert (tmp_path / "two.pt").exists()  # rank 0 wrote it; its JSON alone is on stdout


def test_only_rank_0_prints_the_summary(shards, tmp_path):
    result = launch("--data", str(shards), "--out", str(tmp_path / "m.pt"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained 1 target on") == 1


def test_two_processes_sgd_reaches_the_same_model_within_its_tolerance(shards, tmp_path):
    args = ["--data", str(shards), "--solver", "sgd", "--json", "-q"]
    one = report(single(*args, "--out", str(tmp_path / "one.pt")))
    two = report(launch(*args, "--out", str(tmp_path / "two.pt")))
    # sgd's own tolerance (tests/test_train.py): R^2 within 1e-4 of the exact solution.
    for result in (one, two):
        assert result["optimality_gap"]["r2_gap"] < 1e-4
    # Both near the same optimum: weights agree to 1% of the largest (float32 model).
    w1, w2 = np.array(one["weights"]), np.array(two["weights"])
    assert np.abs(w2 - w1).max() <= 1e-2 * np.abs(w1).max()
    np.testing.assert_allclose(two["bias"], one["bias"], rtol=1e-2)


def test_two_processes_lbfgs_agree_closely(shards, tmp_path):
    args = ["--data", str(shards), "--solver", "lbfgs", "--dtype", "float64", "--json", "-q"]
    one = report(single(*args, "--out", str(tmp_path / "one.pt")))
    two = report(launch(*args, "--out", str(tmp_path / "two.pt")))
    # Full-batch gradients summed over processes: the same steps up to rounding.
    np.testing.assert_allclose(two["weights"], one["weights"], rtol=1e-6)


def test_bad_row_on_the_second_rank_fails_the_job_and_keeps_the_checkpoint(shards, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for shard in shards.iterdir():
        (folder / shard.name).write_bytes(shard.read_bytes())
    lines = (folder / "part-1.csv").read_text().splitlines()
    lines[1000] = "1.0,oops,2.0,3.0,4.0"  # row 1001 of the second shard: rank 1's half
    (folder / "part-1.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "model.pt"
    report(single("--data", str(shards), "--json", "-q", "--out", str(out)))
    before = out.read_bytes()

    result = launch("--data", str(folder), "--json", "-q", "--out", str(out))
    assert result.returncode != 0
    message = (
        f"Error: {folder / 'part-1.csv'}, row 1001, column 'b': expected a number, got 'oops'."
    )
    assert message in result.stderr
    assert [line.startswith("Error: ") for line in result.stderr.splitlines()].count(True) == 1
    assert out.read_bytes() == before  # the previous checkpoint is intact
    assert not list(tmp_path.glob("*.tmp*"))


CRASH = """
import os, sys
from toolkit.training import TrainConfig, train

def crash(epoch, losses):
    if epoch == 3 and os.environ["RANK"] == "1":
        os._exit(7)  # a process that dies mid-run, as on a lost machine

train(TrainConfig(data=sys.argv[1], solver="sgd", out=sys.argv[2]), on_epoch_end=crash)
"""


def test_a_rank_that_dies_mid_run_fails_the_job_and_keeps_the_checkpoint(shards, tmp_path):
    out = tmp_path / "model.pt"
    report(single("--data", str(shards), "--json", "-q", "--out", str(out)))
    before = out.read_bytes()
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    result = launch(str(shards), str(out), script=str(script))
    assert result.returncode != 0
    assert "exitcode  : 7" in result.stderr  # torchrun names the process that died
    assert out.read_bytes() == before


def test_usage_error_is_printed_once(shards, tmp_path):
    result = launch("--data", str(shards), "--target", "nope", "--out", str(tmp_path / "m.pt"))
    assert result.returncode != 0
    assert result.stderr.count("unknown column 'nope' in --target") == 1
