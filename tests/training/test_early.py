"""The read pass that runs while torch is imported (toolkit.training.early).

What it must keep: the same model, metrics, split and SHA-256 as the pass that starts
after torch (bit for bit: the same numpy sums in the same order), the same errors, no
temporary files left behind, and no torch in the pass itself. References: the training
run with the early pass switched off, hashlib, and numpy's float64 normal equations.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.errors import DataError
from toolkit.training import TrainConfig, early, train
from toolkit.training.device import surely_cpu


@pytest.fixture
def table(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((30_000, 3)) * [1.0, 10.0, 0.1] + [5.0, -2.0, 0.0]
    y = x @ [1.5, -0.25, 4.0] + 2.0 + 0.1 * rng.standard_normal(30_000)
    data = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})
    csv = tmp_path / "rows.csv"
    csv.write_text(data.to_pandas().to_csv(index=False))
    parquet = tmp_path / "rows.parquet"
    pq.write_table(data, parquet, row_group_size=7000)
    return {"csv": csv, "parquet": parquet}


def fit(path: Path, out: Path, early_pass: bool, monkeypatch, **options):
    monkeypatch.setattr(early, "surely_cpu", lambda name: early_pass)
    taken = []
    original = early.EarlyRead.take_pass
    monkeypatch.setattr(
        early.EarlyRead, "take_pass", lambda self, s: taken.append(1) or original(self, s)
    )
    config = TrainConfig(
        data=path, out=out, device="cpu", chunk_rows=4000, dtype="float64", **options
    )
    result = train(config)
    return result, bool(taken) and early_pass


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("val_fraction", [None, 0.0])
def test_the_early_pass_gives_the_same_model_bit_for_bit(
    table, tmp_path, monkeypatch, fmt, val_fraction
):
    path = table[fmt]
    before, _ = fit(path, tmp_path / "a.pt", False, monkeypatch, val_fraction=val_fraction)
    during, used = fit(path, tmp_path / "b.pt", True, monkeypatch, val_fraction=val_fraction)
    assert used
    assert np.array_equal(during.weight, before.weight)
    assert np.array_equal(during.bias, before.bias)
    assert during.metrics == before.metrics
    assert during.data == before.data
    assert during.data["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # Against numpy's float64 normal equations on the training rows (well conditioned:
    # agreement to 1e-9 of the coefficients' size).
    frame = pq.read_table(table["parquet"]).to_pandas().to_numpy()
    if val_fraction == 0.0:
        x1 = np.column_stack([frame[:, :3], np.ones(len(frame))])
        solution = np.linalg.solve(x1.T @ x1, x1.T @ frame[:, 3])
        got = np.append(during.weight[0], during.bias)
        np.testing.assert_allclose(got, solution, rtol=0, atol=1e-9 * np.abs(solution).max())


def test_a_bad_cell_late_in_the_file_reads_the_same_and_leaves_no_files(
    table, tmp_path, monkeypatch
):
    lines = table["csv"].read_text().splitlines()
    lines[25_000] = lines[25_000].replace(lines[25_000].split(",")[1], "oops", 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    spills = tmp_path / "spills"
    spills.mkdir()
    monkeypatch.setenv("TMPDIR", str(spills))
    monkeypatch.setattr("tempfile.tempdir", None)
    messages = []
    for early_pass in (False, True):
        with pytest.raises(DataError) as caught:
            fit(bad, tmp_path / "m.pt", early_pass, monkeypatch)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "row 25001" in messages[1]  # the file's line number (the header is line 1)
    assert "'oops'" in messages[1]
    assert list(spills.iterdir()) == []
    assert not (tmp_path / "m.pt").exists()


PROBE = """
import sys
from toolkit.training import early
from toolkit.training.config import TrainConfig
read = early.start(TrainConfig(data=sys.argv[1], device="cpu", val_fraction=0.25))
summary = read.passing.summary.result()
print(summary.n_train + summary.n_val, "torch imported:", "torch" in sys.modules)
read.close()
"""


def test_the_pass_itself_never_imports_torch(table):
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(table["csv"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["30000", "torch", "imported:", "False"]


TRAIN = """
import atexit, sys
atexit.register(lambda: print("torch imported:", "torch" in sys.modules))
from toolkit.__main__ import main
sys.argv = ["toolkit", "train", "--data", sys.argv[1], "--out", sys.argv[2], "--device",
            "cpu", "--chunk-rows", "4000", "--dtype", "float64", "--quiet"]
main()
"""


def test_an_exact_fit_on_the_cpu_never_imports_torch_and_saves_the_same_checkpoint(
    table, tmp_path, monkeypatch
):
    import torch

    from toolkit.training import checkpoint

    out = tmp_path / "free.pt"
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, str(table["parquet"]), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "torch imported: False"
    # The same job through torch (the pass after torch's import): the same file's content.
    fit(table["parquet"], tmp_path / "torch.pt", False, monkeypatch)
    free, with_torch = checkpoint.load(out), checkpoint.load(tmp_path / "torch.pt")
    for key in ("weight", "bias"):
        assert free["state_dict"][key].dtype == torch.float64
        assert torch.equal(free["state_dict"][key], with_torch["state_dict"][key])
    assert torch.equal(free["parity_sample"], with_torch["parity_sample"])
    assert free["versions"]["torch"] == torch.__version__
    for key in ("spec", "metrics", "data", "inference", "training"):
        assert free[key] == with_torch[key], key


def test_surely_cpu_reads_the_torch_builds_gpu_support(tmp_path, monkeypatch):
    assert surely_cpu("cpu") and surely_cpu(" CPU ")
    assert not surely_cpu("cuda") and not surely_cpu("cuda:1")
    package = tmp_path / "torch"
    package.mkdir()
    spec = SimpleNamespace(origin=str(package / "__init__.py"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    builds = {
        "cuda: Optional[str] = None\nhip: Optional[str] = None\n": True,
        "cuda: Optional[str] = '12.4'\nhip: Optional[str] = None\n": False,
        "cuda = None\nhip = '6.2.41133'\n": False,
        "cuda = None\n": False,  # no word on hip: not sure
    }
    for text, expected in builds.items():
        (package / "version.py").write_text(text)
        assert surely_cpu("auto") is expected, text
    (package / "version.py").unlink()
    assert surely_cpu("auto") is False
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert surely_cpu("auto") is False


def test_torchs_import_leaves_the_cycle_collector_as_it_found_it():
    import gc

    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            early.import_torch()
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
    assert "torch" in sys.modules
