"""An exported table model runs in another language's onnxruntime with the same predictions.

onnxruntime-node (pinned in scripts/node/package.json, installed by scripts/setup where npm
is) runs the file through scripts/node/run_model.js: raw text and numbers in, predictions
and `unknown_levels` out, compared with toolkit's Python runtime on the same rows. The test
skips with the reason where node or the package is missing.

Tolerance: both sides run onnxruntime's CPU kernels on the same graph, but from different
releases (Python's wheel, node's package), so float64 results are held to the parity
gate's float64 tolerance (1e-12 relative, defaults.PARITY_TOLERANCES) rather than to bit
equality; the unknown-level counts are integers and must be equal.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "node" / "run_model.js"
PACKAGE = ROOT / "scripts" / "node" / "node_modules" / "onnxruntime-node"
EXAMPLE = ROOT / "docs" / "examples" / "rentals.csv"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the other-language runtime check needs it")
    if not PACKAGE.is_dir():
        pytest.skip(
            f"onnxruntime-node is not installed in {PACKAGE.parent} (scripts/setup installs it "
            "with npm where npm and its registry can be reached)"
        )
    return node


def _toolkit(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def table_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's rentals example: text, booleans and blanks, median-imputed, float64."""
    folder = tmp_path_factory.mktemp("node")
    checkpoint, model = folder / "rentals.pt", folder / "rentals.onnx"
    _toolkit(
        "train", "--data", str(EXAMPLE), "--target", "rent", "--missing", "median",
        "--missing-indicator", "--dtype", "float64", "--out", str(checkpoint), "--quiet",
    )  # fmt: skip
    _toolkit("export", str(model), "--checkpoint", str(checkpoint), "--unknown-level", "reference")
    return model


ROWS = [
    {"city": "Paris", "furnished": True, "rooms": 3, "area": 65.4},
    {"city": "Lyon", "furnished": False, "rooms": 1, "area": None},  # missing area: median
    {"city": "", "furnished": True, "rooms": 2, "area": 50.0},  # missing city: its mode
    {"city": "Brest", "furnished": False, "rooms": 4, "area": 90.5},  # unseen: the reference
]


def test_node_predicts_what_python_predicts(table_model: Path, tmp_path: Path) -> None:
    from toolkit.runtime import Predictor

    node = _node()
    predictor = Predictor(table_model)
    want, want_unknown = predictor.predict_counted(ROWS)
    inputs = {
        "city": {"type": "string", "data": [r["city"] for r in ROWS]},
        "furnished": {
            "type": "string",
            "data": ["true" if r["furnished"] else "false" for r in ROWS],
        },
        "rooms": {"type": "float64", "data": [r["rooms"] for r in ROWS]},
        "area": {"type": "float64", "data": [r["area"] for r in ROWS]},  # null: NaN, missing
    }
    (tmp_path / "inputs.json").write_text(json.dumps(inputs))
    done = subprocess.run(
        [node, str(SCRIPT), str(table_model), str(tmp_path / "inputs.json")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["unknown_levels"] == [0, 0, 0, 1] == want_unknown.tolist()
    prediction = np.array(got[predictor.output_name]).reshape(want.shape)
    np.testing.assert_allclose(prediction, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    assert np.isfinite(prediction).all()
