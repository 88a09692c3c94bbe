"""A runtime-only install works: `pip install toolkit` in a clean virtual environment.

The base install (pyproject's `dependencies`: numpy and onnxruntime) must be enough for
`from toolkit.runtime import Predictor` to load and run an exported model, and the
`toolkit` console script must say that the command line needs the 'cli' extra instead of
failing with an ImportError. The environment is created with `python -m venv` (no system
site packages, no pip of its own, so it holds only toolkit and the runtime's dependencies)
and filled by this interpreter's pip (`pip --python ENV`), with a normal, non-editable
install of the project; pip may use its cache and this machine's configured indexes.

The project is copied to a temporary folder first (pyproject.toml, README.md, toolkit/),
because pip builds in the source tree and would leave build/ and toolkit.egg-info/ in the
checkout. One environment serves the whole module; pip runs while the model trains.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# What the build needs from the checkout (the rest of the files named here if they exist).
SOURCES = ("pyproject.toml", "README.md", "toolkit", "LICENSE", "setup.py", "setup.cfg")
# The `cli` and `train` extras: none of them may come with the base install.
HEAVY = ("torch", "onnx", "onnxscript", "click", "pyarrow", "tqdm")
# y = x1 + x2 - 1 in float32 on |x| <= 10: a 2-term dot product and a bias, a few ulps of 20.
ATOL = 1e-5
# Runs in the clean environment (-I: no PYTHON* variables, no user site, no cwd on sys.path).
# argv: model, inputs (.npy), outputs (.npz); prints a JSON report as its last line.
PROBE = """
import importlib.metadata, importlib.util, json, sys
heavy = json.loads(sys.argv[4])
found = {name: importlib.util.find_spec(name) is not None for name in heavy}
import numpy as np
import toolkit
from toolkit.runtime import Predictor
predictor = Predictor(sys.argv[1], providers="cpu")
x = np.load(sys.argv[2])
np.savez(
    sys.argv[3],
    batch=predictor.predict(x),
    row=predictor.predict(x[0]),
    rows=np.concatenate([predictor.predict(x[i : i + 1]) for i in range(3)]),
    lists=predictor.predict(x[:3].tolist()),
)
print(json.dumps({
    "found": found,
    "loaded": sorted(name for name in heavy if name in sys.modules),
    "toolkit_file": toolkit.__file__,
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "provider": predictor.provider,
    "distributions": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
}))
"""


def clean_env() -> dict[str, str]:
    """This process's environment without what could make Python see the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def copy_sources(dest: Path) -> Path:
    dest.mkdir()
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=junk)
        elif source.is_file():
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"env": the clean venv, "model": the seed model exported in this process}."""
    folder = tmp_path_factory.mktemp("runtime-install")
    env = folder / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install"]
    pip += ["--disable-pip-version-check", "--quiet", "--no-compile"]
    pip.append(str(copy_sources(folder / "source")))
    with (folder / "pip.log").open("w+") as log:
        # pip installs in the background while this process trains and exports the model.
        started = subprocess.Popen(pip, cwd=folder, env=clean_env(), stdout=log, stderr=log)
        try:
            from toolkit.export import export_model
            from toolkit.training import TrainConfig, train

            train(TrainConfig(out=folder / "model.pt"))  # seed data: y = x1 + x2 - 1
            export_model(folder / "model.pt", folder / "model.onnx")
        finally:
            code = started.wait()
        log.seek(0)
        if code:
            pytest.fail(f"pip install of the runtime (exit {code}) failed:\n{log.read()}")
    return {"env": env, "model": folder / "model.onnx"}


@pytest.fixture(scope="module")
def probe(installed: dict[str, Path]) -> dict[str, Any]:
    """Run PROBE in the clean environment on 1,000 random rows; its report and outputs."""
    folder = installed["model"].parent
    x = np.random.default_rng(0).uniform(-10, 10, (1000, 2)).astype(np.float32)
    np.save(folder / "x.npy", x)
    argv = [str(installed["env"] / "bin" / "python"), "-I", "-c", PROBE]
    argv += [str(installed["model"]), str(folder / "x.npy"), str(folder / "y.npz")]
    argv.append(json.dumps(HEAVY))
    done = subprocess.run(argv, cwd=folder, env=clean_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    with np.load(folder / "y.npz") as outputs:
        report["outputs"] = dict(outputs)
    report["x"] = x
    return report


def test_the_environment_holds_none_of_the_heavy_packages(probe):
    assert probe["prefix"] != probe["base_prefix"]  # a venv, not the base interpreter
    missing = [name for name, found in probe["found"].items() if not found]
    assert missing == list(HEAVY), f"installed: {probe['distributions']}"
    assert probe["loaded"] == []
    assert {"toolkit", "numpy", "onnxruntime"} <= set(probe["distributions"])


def test_toolkit_is_imported_from_the_install_not_the_checkout(probe):
    toolkit_file = Path(probe["toolkit_file"])
    assert toolkit_file.is_relative_to(Path(probe["prefix"]))
    assert "site-packages" in toolkit_file.parts
    assert not toolkit_file.is_relative_to(ROOT)


def test_predictor_predicts_the_seed_model(probe):
    x, outputs = probe["x"], probe["outputs"]
    expected = x[:, 0] + x[:, 1] - 1
    assert probe["provider"] == "CPUExecutionProvider"
    assert outputs["batch"].shape == (1000, 1)
    assert outputs["batch"].dtype == np.float32
    np.testing.assert_allclose(outputs["batch"][:, 0], expected, rtol=0, atol=ATOL)
    # One 1-D row and single 2-D rows (the IOBinding path), and nested lists.
    np.testing.assert_allclose(outputs["row"][:, 0], expected[:1], rtol=0, atol=ATOL)
    np.testing.assert_allclose(outputs["rows"][:, 0], expected[:3], rtol=0, atol=ATOL)
    np.testing.assert_allclose(outputs["lists"][:, 0], expected[:3], rtol=0, atol=ATOL)


@pytest.mark.parametrize("command", [["toolkit"], ["python", "-m", "toolkit"]])
def test_the_command_line_asks_for_the_cli_extra(installed, command):
    argv = [str(installed["env"] / "bin" / command[0]), *command[1:], "--help"]
    cwd = installed["model"].parent
    done = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "needs its 'cli' extra" in done.stderr
    assert "pip install 'toolkit[cli]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
