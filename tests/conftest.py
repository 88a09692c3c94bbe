"""Shared fixtures: data files, a CLI runner, and the `gpu` marker's skip rule."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from toolkit.cli import cli


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU visible to PyTorch; none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def seed_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed model (y = x1 + x2 - 1, float32) trained and exported once per session.

    Shared read-only: tests that need to alter a model copy it or build their own."""
    from toolkit.export import export_model
    from toolkit.training import TrainConfig, train

    folder = tmp_path_factory.mktemp("seed-model")
    train(TrainConfig(out=folder / "model.pt"))
    export_model(folder / "model.pt", folder / "model.onnx")
    return folder / "model.onnx"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default checkpoint path is relative (models/model.pt): keep it out of the repo.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Write raw CSV text (or bytes) to a file and return its path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return write


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a small tmpfs filled to the last byte: every write there gets ENOSPC.

    Mounting needs root (or CAP_SYS_ADMIN); elsewhere the test is skipped with the reason."""
    folder = tmp_path / "full"
    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as error:
        pytest.skip(f"needs `mount -t tmpfs` for a full disk: {error}")
    if mounted.returncode:
        pytest.skip(f"needs `mount -t tmpfs` (root) for a full disk: {mounted.stderr.strip()}")
    try:
        with (folder / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 4096)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


@pytest.fixture
def chromium() -> str:
    """A headless-capable Chromium for the browser tests; they skip, saying why, without one."""
    pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    for candidate in (os.environ.get("TOOLKIT_TEST_CHROMIUM"), "chromium", "chromium-browser"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    pytest.skip("needs a Chromium (apt-get install chromium, or TOOLKIT_TEST_CHROMIUM=path)")


@pytest.fixture
def run() -> Callable[..., Result]:
    """Invoke the CLI in-process: run("train", "--json") -> click Result."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=True)

    return invoke


def train_json(run: Callable[..., Result], *args: str) -> dict[str, Any]:
    result = run("train", "--json", "--quiet", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def scaled_data(
    rows: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Features whose scales span 1 to 100, y = X w + 3 + noise: plain SGD diverges here."""
    rng = np.random.default_rng(seed)
    scales = np.array([1.0, 10.0, 30.0, 100.0])
    x = rng.standard_normal((rows, 4)) * scales + np.array([0.0, 5.0, -20.0, 50.0])
    w = np.array([2.0, -0.5, 0.1, 0.03])
    y = x @ w + 3.0 + 0.1 * rng.standard_normal(rows)
    return x, y, w, 3.0


def write_table_csv(path: Path, columns: dict[str, np.ndarray]) -> Path:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    pa_csv.write_csv(pa.table(columns), path)
    return path


@pytest.fixture(scope="session")
def scaled_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`scaled_data()` as a CSV file (columns f0..f3 and y), written once per session."""
    x, y, _, _ = scaled_data()
    path = tmp_path_factory.mktemp("data") / "scaled.csv"
    return write_table_csv(path, {**{f"f{i}": x[:, i] for i in range(4)}, "y": y})


def local_function_model(x_shape: list) -> Any:
    """A model whose only node calls an ONNX local function (domain "local")."""
    from onnx import TensorProto, helper

    function = helper.make_function(
        "local",
        "Twice",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 18)],
    )
    graph = helper.make_graph(
        [helper.make_node("Twice", ["x"], ["y"], domain="local")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, x_shape)],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)],
        functions=[function],
    )
