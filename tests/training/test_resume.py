"""toolkit/training/resume.py: an interrupted run continues bit for bit, or says why it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import train_json

from toolkit.errors import CheckpointError, TrainingInterrupted
from toolkit.training import TrainConfig, checkpoint, resume, train
from toolkit.training.distributed import Group
from toolkit.training.model import ModelSpec

ITERATIVE = ["sgd", "adam", "lbfgs"]


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["state_dict"]


def _interrupt_at(epoch: int):
    def callback(current: int, losses: dict[str, float]) -> None:
        if current == epoch:
            raise KeyboardInterrupt

    return callback


@pytest.mark.parametrize("chunk_rows", [65_536, 300])
@pytest.mark.parametrize("solver", ITERATIVE)
def test_resume_ends_bit_identical_to_an_uninterrupted_run(
    tmp_path, scaled_csv, solver, chunk_rows
):
    settings = {
        "data": scaled_csv,
        "solver": solver,
        "seed": 3,
        "patience": 0,
        "epochs": 12 if solver != "lbfgs" else 4,
        "chunk_rows": chunk_rows,
    }
    train(TrainConfig(**settings, out=tmp_path / "straight.pt"))
    out = tmp_path / "resumed.pt"
    with pytest.raises(TrainingInterrupted, match=r"interrupted after epoch 3 of .*--resume"):
        train(TrainConfig(**settings, out=out), on_epoch_end=_interrupt_at(3))
    assert checkpoint.resume_path(out).is_file()
    assert not out.exists()
    result = train(TrainConfig(**settings, out=out, resume=True))
    assert result.details["resumed_from_epoch"] == 3
    assert not checkpoint.resume_path(out).exists()
    straight, resumed = weights_of(tmp_path / "straight.pt"), weights_of(out)
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_resume_keeps_the_loss_history_of_the_epochs_before_it(tmp_path, scaled_csv):
    settings = {"data": scaled_csv, "solver": "sgd", "seed": 3, "patience": 0, "epochs": 6}
    train(TrainConfig(**settings, out=tmp_path / "straight.pt"))
    out = tmp_path / "resumed.pt"
    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(**settings, out=out), on_epoch_end=_interrupt_at(3))
    train(TrainConfig(**settings, out=out, resume=True))
    straight = checkpoint.load(tmp_path / "straight.pt")["history"]
    assert checkpoint.load(out)["history"] == straight  # bit for bit, as the weights
    assert len(straight["train"]) == 1 + 6


def test_resume_from_the_cli_continues_the_saved_run(run, tmp_path, scaled_csv):
    args = ["--data", str(scaled_csv), "--solver", "adam", "--epochs", "8", "--patience", "0"]
    train_json(run, *args, "--out", "straight.pt")
    with pytest.raises(TrainingInterrupted):
        train(
            TrainConfig(data=scaled_csv, solver="adam", epochs=8, patience=0, out=Path("r.pt")),
            on_epoch_end=_interrupt_at(5),
        )
    report = train_json(run, *args, "--out", "r.pt", "--resume")
    assert report["details"]["resumed_from_epoch"] == 5
    assert torch.equal(
        weights_of(Path("straight.pt"))["weight"], weights_of(Path("r.pt"))["weight"]
    )


def test_resume_refuses_other_settings(tmp_path, scaled_csv):
    with pytest.raises(TrainingInterrupted):
        train(
            TrainConfig(data=scaled_csv, solver="sgd", epochs=5, out=tmp_path / "m.pt"),
            on_epoch_end=_interrupt_at(2),
        )
    with pytest.raises(Exception, match=r"different settings: lr 0\.1 \(saved\) vs 0\.05 \(now\)"):
        train(
            TrainConfig(
                data=scaled_csv, solver="sgd", epochs=5, lr=0.05, out=tmp_path / "m.pt", resume=True
            )
        )


def test_resume_without_state_says_so(run):
    result = run("train", "--solver", "sgd", "--resume")
    assert result.exit_code == 1
    assert "--resume found no saved state at 'models/model.pt.resume'" in result.output


# -- the module's seams, without training ------------------------------------------------


def _state(fingerprint: dict) -> dict:
    return {
        "format": checkpoint.RESUME_FORMAT,
        "format_version": checkpoint.FORMAT_VERSION,
        "fingerprint": fingerprint,
        "epoch": 4,
    }


def test_fingerprint_holds_every_setting_that_shapes_the_run():
    spec = ModelSpec(("a", "b"), ("y",), True, "float64")
    config = TrainConfig(solver="adam", seed=3, chunk_rows=500)
    hyper = {"lr": 0.01, "epochs": 5, "batch_size": 256, "patience": 20, "l2": 0.0}
    assert resume.fingerprint(config, hyper, spec, "abc", "cpu", 0.2, 2) == {
        "solver": "adam",
        "batch_size": 256,
        "epochs": 5,
        "l2": 0.0,
        "lr": 0.01,
        "patience": 20,
        "seed": 3,
        "dtype": "float64",
        "intercept": True,
        "features": ["a", "b"],
        "targets": ["y"],
        "data_sha256": "abc",
        "val_fraction": 0.2,
        "chunk_rows": 500,
        "device": "cpu",
        "processes": 2,
    }


def test_differences_list_each_changed_setting_saved_vs_now():
    saved = {"lr": 0.1, "seed": 1, "epochs": 5}
    now = {"lr": 0.05, "seed": 1, "epochs": 6, "device": "cpu"}
    assert resume.differences(saved, now) == [
        "lr 0.1 (saved) vs 0.05 (now)",
        "epochs 5 (saved) vs 6 (now)",
        "device None (saved) vs 'cpu' (now)",
    ]
    assert resume.differences(now, now) == []


def test_load_names_every_mismatch_in_one_message(tmp_path):
    path = tmp_path / "m.pt.resume"
    checkpoint.save(path, _state({"lr": 0.1, "seed": 1, "dtype": "float32"}))
    assert resume.load(path, {"lr": 0.1, "seed": 1, "dtype": "float32"})["epoch"] == 4
    with pytest.raises(CheckpointError) as caught:
        resume.load(path, {"lr": 0.05, "seed": 2, "dtype": "float32"})
    assert str(caught.value) == (
        f"cannot resume from {str(path)!r}: it was saved by a run with different settings: "
        "lr 0.1 (saved) vs 0.05 (now); seed 1 (saved) vs 2 (now). Rerun with the saved "
        "settings, or drop --resume to start anew."
    )


def test_load_refuses_a_checkpoint_as_resume_state(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, {**_state({}), "format": checkpoint.FORMAT})
    with pytest.raises(CheckpointError, match=r"not a toolkit file of format 'toolkit\.resume'"):
        resume.load(path, {})


def test_autosave_writes_on_rank_0_only_and_never_after_the_last_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(resume, "SAVE_EVERY_SECONDS", -1.0)  # every epoch is due
    out = tmp_path / "m.pt"
    resume.Autosave(out, is_main=False)(_state({}), last_epoch=False)
    assert not checkpoint.resume_path(out).exists()
    save = resume.Autosave(out, is_main=True)
    save(_state({}), last_epoch=True)
    assert not checkpoint.resume_path(out).exists()
    save(_state({}), last_epoch=False)
    assert checkpoint.load(checkpoint.resume_path(out), checkpoint.RESUME_FORMAT)["epoch"] == 4


def test_interrupted_saves_the_state_and_says_how_to_continue(tmp_path):
    out = tmp_path / "m.pt"
    error = resume.interrupted(Group(), out, None, start=2, epochs=9)
    assert str(error) == "interrupted before epoch 3 finished; nothing was saved."
    assert not checkpoint.resume_path(out).exists()
    error = resume.interrupted(Group(), out, _state({}), start=2, epochs=9)
    assert isinstance(error, TrainingInterrupted)
    assert str(error) == (
        f"interrupted after epoch 4 of 9; the run's state is in {out}.resume. "
        "Continue it with the same command plus --resume."
    )
    assert checkpoint.resume_path(out).is_file()
    resume.discard(out)
    assert not checkpoint.resume_path(out).exists()
    resume.discard(out)  # nothing to delete: no error
