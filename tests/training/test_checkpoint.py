"""toolkit/training/checkpoint.py: contents, atomic writes, and refusal of code-running pickles."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from toolkit.errors import CheckpointError
from toolkit.files import atomic_write
from toolkit.training import TrainConfig, checkpoint, train
from toolkit.training.model import ModelSpec


def test_checkpoint_holds_all_that_rebuilds_and_describes_the_model(tmp_path):
    out = tmp_path / "m.pt"
    train(TrainConfig(solver="sgd", seed=5, out=out))
    payload = checkpoint.load(out)
    assert payload["format"] == "toolkit.checkpoint"
    assert payload["spec"] == {
        "feature_names": ["x1", "x2"],
        "target_names": ["y"],
        "intercept": True,
        "dtype": "float32",
    }
    training = payload["training"]
    assert training["solver"] == "sgd"
    assert training["seed"] == 5
    assert training["hyperparameters"] == {
        "lr": 0.1,
        "epochs": 300,
        "batch_size": 256,
        "patience": 20,
        "l2": 0.0,
    }
    data = payload["data"]
    assert data["source"] == "<embedded seed data>"
    assert len(data["sha256"]) == 64
    assert data["rows"] == 4
    assert set(payload["metrics"]["train"]) >= {"mse", "rmse", "mae", "r2"}
    assert payload["optimality_gap"]["r2_gap"] <= 1e-4
    assert set(payload["versions"]) == {"toolkit", "torch", "numpy", "pyarrow", "python"}
    assert payload["parity_sample"].shape == (4, 2)
    assert payload["parity_sample"].dtype == torch.float64


def test_model_from_checkpoint_rebuilds_a_working_linear(tmp_path):
    out = tmp_path / "m.pt"
    train(TrainConfig(dtype="float64", out=out))
    spec, model = checkpoint.model_from_checkpoint(checkpoint.load(out))
    assert spec == ModelSpec(("x1", "x2"), ("y",), True, "float64")
    assert not model.training
    prediction = model(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    torch.testing.assert_close(
        prediction, torch.tensor([[6.0]], dtype=torch.float64), atol=1e-12, rtol=0
    )


class _Payload:
    """Unpickling this runs os.system: the classic malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "toolkit.checkpoint", "state_dict": _Payload(marker)}, evil)
    # Sanity check: an unsafe load would run the payload.
    assert pickle.loads(pickle.dumps(_Payload(tmp_path / "proof"))) == 0
    assert (tmp_path / "proof").exists()

    with pytest.raises(CheckpointError) as caught:
        checkpoint.load(evil)
    assert not marker.exists()
    message = str(caught.value)
    assert message.startswith(f"refused to load {str(evil)!r}: it holds Python objects")
    assert "(it references posix.system)" in message
    assert "weights_only=True" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot read checkpoint"),
        (b"not a checkpoint at all", "cannot read checkpoint"),
    ],
)
def test_unreadable_files_raise_checkpoint_error(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path)


def test_foreign_torch_file_is_not_a_toolkit_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(
        CheckpointError, match=r"is not a toolkit file of format 'toolkit\.checkpoint'"
    ):
        checkpoint.load(path)


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; train one with `toolkit train`"):
        checkpoint.load(tmp_path / "none.pt")


def test_save_refuses_non_plain_objects(tmp_path):
    with pytest.raises(TypeError, match="cannot store object in a checkpoint"):
        checkpoint.save(tmp_path / "x.pt", {"format": "toolkit.checkpoint", "bad": object()})
    assert not (tmp_path / "x.pt").exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "m.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["m.pt"]  # no temporary file left behind


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "m.pt"
    with atomic_write(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(target.parent) == ["m.pt"]


def test_retraining_replaces_the_checkpoint_atomically(tmp_path):
    out = tmp_path / "m.pt"
    train(TrainConfig(out=out))
    first = out.stat().st_ino
    train(TrainConfig(out=out, solver="lbfgs"))
    assert out.stat().st_ino != first  # a new file renamed into place, not rewritten in place
    assert checkpoint.load(out)["training"]["solver"] == "lbfgs"


def test_unwritable_destination_is_a_clean_error(run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run("train", "--out", str(blocker / "model.pt"))
    assert result.exit_code == 1
    assert f"Error: cannot write {str(blocker / 'model.pt')!r}:" in result.output
    assert "Choose another --out." in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("junk", [b"junk\n", b"\x80\x02}q\x00.", b"PK\x03\x04" + b"\x00" * 40, b""])
def test_junk_files_are_a_checkpoint_error_not_a_traceback(tmp_path, junk):
    path = tmp_path / "x.pt"
    path.write_bytes(junk)
    with pytest.raises(CheckpointError, match=r"x\.pt"):
        checkpoint.load(path)
