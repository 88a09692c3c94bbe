"""toolkit/export/convert.py: the exported file, its model card, its checks, and the CLI."""

from __future__ import annotations

import json
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from toolkit import card, export
from toolkit.errors import CheckpointError, ParityError, UsageError
from toolkit.export import ExportError, convert, export_model
from toolkit.training import TrainConfig, checkpoint, train


@pytest.fixture(scope="module")
def seed_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("seed")
    train(TrainConfig(out=folder / "model.pt"))
    export_model(folder / "model.pt", folder / "model.onnx")
    return folder / "model.pt", folder / "model.onnx"


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("rows", [1, 100_000])
def test_any_batch_size_runs_through_onnxruntime(seed_export, rows):
    _, onnx_path = seed_export
    x = np.random.default_rng(rows).uniform(-10, 10, (rows, 2)).astype(np.float32)
    (prediction,) = session(onnx_path).run(None, {"features": x})
    assert prediction.shape == (rows, 1)
    # y = x1 + x2 - 1 in float32: rounding of a 2-term dot product on values up to 20.
    np.testing.assert_allclose(prediction[:, 0], x[:, 0] + x[:, 1] - 1, rtol=0, atol=1e-5)


def test_signature_is_named_typed_and_batch_dynamic(seed_export):
    _, onnx_path = seed_export
    model = onnx.load(onnx_path)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("features", "prediction")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic: not frozen to the trace
    assert inp.type.tensor_type.shape.dim[1].dim_value == 2
    assert out.type.tensor_type.shape.dim[1].dim_value == 1
    assert [o.version for o in model.opset_import if o.domain == ""] == [export.DEFAULT_OPSET]


def test_one_self_contained_file_that_passes_the_full_checker(seed_export):
    _, onnx_path = seed_export
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ["model.onnx", "model.pt"]
    model = onnx.load(onnx_path, load_external_data=False)
    assert not any(
        init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer
    )
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def test_exported_weights_equal_the_checkpoint_exactly(seed_export):
    ckpt_path, onnx_path = seed_export
    state = checkpoint.load(ckpt_path)["state_dict"]
    stored = {i.name: numpy_helper.to_array(i) for i in onnx.load(onnx_path).graph.initializer}
    for name, tensor in state.items():
        np.testing.assert_array_equal(stored[name], tensor.numpy())


def test_model_card_round_trips_through_onnxruntime_metadata(seed_export):
    ckpt_path, onnx_path = seed_export
    payload = checkpoint.load(ckpt_path)
    meta = session(onnx_path).get_modelmeta()
    card = meta.custom_metadata_map
    assert json.loads(card["feature_names"]) == ["x1", "x2"]
    assert json.loads(card["target_names"]) == ["y"]
    assert card["dtype"] == "float32"
    assert json.loads(card["intercept"]) is True
    assert card["opset"] == str(export.DEFAULT_OPSET)
    assert card["exporter"] == export.EXPORTER
    assert card["training_data_sha256"] == payload["data"]["sha256"]
    assert card["seed"] == "0"
    assert json.loads(card["training_metrics"])["train"]["r2"] == pytest.approx(1.0)
    assert card["toolkit_version"] and card["torch_version"] and card["onnx_version"]
    assert card["onnxruntime_version"] == ort.__version__
    parity = json.loads(card["parity"])
    assert parity["passed"] is True
    assert "CPUExecutionProvider" in parity["providers"]
    assert meta.description == (
        "toolkit linear regressor (float32, 2 features -> 1 target): "
        "y = 1.0000*x1 + 1.0000*x2 - 1.0000"
    )
    assert all(isinstance(v, str) for v in card.values())


def test_the_card_has_exactly_toolkit_cards_keys_in_order(seed_export):
    """Export builds the card through toolkit.card.encode: one place for its keys."""
    ckpt_path, onnx_path = seed_export
    written = [(p.key, p.value) for p in onnx.load(onnx_path).metadata_props]
    assert [key for key, _ in written] == list(card.KEYS)
    assert dict(written)[card.CARD_VERSION] == card.VERSION
    decoded = card.decode(dict(written))
    assert decoded[card.FEATURE_NAMES] == ["x1", "x2"] and decoded[card.INTERCEPT] is True
    payload = checkpoint.load(ckpt_path)
    assert dict(written)[card.TRAINING_METRICS] == json.dumps(payload["metrics"], sort_keys=True)
    pending = export.model_card(payload, 18)
    assert list(pending) == list(card.KEYS)
    assert pending[card.PARITY] == '{"pending": true}'


def test_float64_model_passes_parity_at_1e_12(tmp_path):
    train(TrainConfig(dtype="float64", out=tmp_path / "m.pt"))
    result = export_model(tmp_path / "m.pt", tmp_path / "m.onnx", atol=1e-12, rtol=1e-12)
    assert result.parity.passed
    assert result.parity.atol == 1e-12
    (inp,) = onnx.load(tmp_path / "m.onnx").graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    (prediction,) = session(tmp_path / "m.onnx").run(None, {"features": np.array([[0.1, 0.2]])})
    assert prediction.dtype == np.float64
    assert abs(prediction[0, 0] - (0.1 + 0.2 - 1)) < 1e-15


def test_multi_target_no_intercept_model_exports(tmp_path, write_csv):
    data = write_csv("mt.csv", "a,b,u,v\n1,0,2,1\n0,1,3,-1\n1,1,5,0\n2,1,7,1\n1,3,11,-2\n")
    train(TrainConfig(data=data, targets=("u", "v"), intercept=False, out=tmp_path / "m.pt"))
    result = export_model(tmp_path / "m.pt", tmp_path / "m.onnx")
    (prediction,) = session(tmp_path / "m.onnx").run(
        None, {"features": np.ones((3, 2), np.float32)}
    )
    assert prediction.shape == (3, 2)
    assert json.loads(result.metadata["intercept"]) is False
    assert json.loads(result.metadata["target_names"]) == ["u", "v"]


def _tampering(monkeypatch: pytest.MonkeyPatch, delta: float) -> None:
    original = convert._export_proto

    def tampered(model, opset):
        proto = original(model, opset)
        weight = next(i for i in proto.graph.initializer if i.name == "weight")
        array = numpy_helper.to_array(weight).copy()
        array[0, 0] = (
            np.nextafter(array[0, 0], np.float32(np.inf)) if delta == 0 else array[0, 0] + delta
        )
        weight.CopyFrom(numpy_helper.from_array(array, "weight"))
        return proto

    monkeypatch.setattr(convert, "_export_proto", tampered)


def test_tampered_initializer_fails_the_gate_and_writes_nothing(run, monkeypatch):
    assert run("train").exit_code == 0
    assert run("export").exit_code == 0
    good = Path("models/model.onnx").read_bytes()
    _tampering(monkeypatch, delta=0.5)
    result = run("export")
    assert result.exit_code == 1
    assert (
        "Error: parity gate failed: ONNX Runtime disagrees with PyTorch; "
        "nothing written to models/model.onnx." in result.output
    )
    assert "CPUExecutionProvider: a difference of " in result.output
    assert "x the allowance); max abs diff" in result.output
    assert "row" in result.output and "torch" in result.output and "onnx" in result.output
    assert "Traceback" not in result.output
    assert Path("models/model.onnx").read_bytes() == good  # the existing good file is untouched
    assert sorted(p.name for p in Path("models").iterdir()) == ["model.onnx", "model.pt"]
    result = run("export", "fresh.onnx")
    assert result.exit_code == 1
    assert not Path("fresh.onnx").exists()


def test_a_one_ulp_change_passes_parity_but_not_the_weight_check(tmp_path, monkeypatch):
    train(TrainConfig(out=tmp_path / "m.pt"))
    _tampering(monkeypatch, delta=0)
    with pytest.raises(
        ExportError, match="the exported 'weight' does not equal the checkpoint's bit for bit"
    ):
        export_model(tmp_path / "m.pt", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_parity_error_is_typed(tmp_path, monkeypatch):
    train(TrainConfig(out=tmp_path / "m.pt"))
    _tampering(monkeypatch, delta=1.0)
    with pytest.raises(ParityError):
        export_model(tmp_path / "m.pt", tmp_path / "m.onnx")


def test_opset_refusal_names_the_runtime_limit(run):
    assert run("train").exit_code == 0
    highest = export.max_runtime_opset()
    result = run("export", "--opset", str(highest + 1))
    assert result.exit_code == 2
    assert (
        f"Error: --opset {highest + 1} cannot be used: the installed onnxruntime {ort.__version__} "
        f"runs opsets up to {highest}, and toolkit exports opsets 13 and later. Choose --opset "
        f"between 13 and {highest}, or upgrade onnxruntime."
    ) in result.output
    assert not Path("models/model.onnx").exists()
    with pytest.raises(UsageError, match="--opset 12 cannot be used"):
        export.check_opset(12)


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_other_opsets_export_and_record_their_version(tmp_path, opset):
    train(TrainConfig(out=tmp_path / "m.pt"))
    result = export_model(tmp_path / "m.pt", tmp_path / "m.onnx", opset=opset)
    assert result.metadata["opset"] == str(opset)
    model = onnx.load(tmp_path / "m.onnx")
    assert [o.version for o in model.opset_import if o.domain == ""] == [opset]


def test_cli_prints_one_status_line_and_no_exporter_chatter(run):
    assert run("train").exit_code == 0
    result = run("export")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("exported models/model.onnx (opset 18, float32, ")
    assert "parity passed on CPUExecutionProvider" in lines[0]
    assert "[torch.onnx]" not in result.output and "torchvision" not in result.output


def test_cli_json(run):
    assert run("train").exit_code == 0
    result = run("export", "out.onnx", "--json")
    report = json.loads(result.stdout)
    assert report["output"] == "out.onnx"
    assert report["input"] == "features" and report["output_name"] == "prediction"
    assert report["parity"]["passed"] is True
    assert json.loads(report["metadata"]["feature_names"]) == ["x1", "x2"]


def test_no_validate_warns_and_the_card_records_it(run):
    assert run("train").exit_code == 0
    result = run("export", "--no-validate")
    assert result.exit_code == 0
    assert "warning: --no-validate: the parity gate is skipped" in result.stderr
    card = session(Path("models/model.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(card["parity"]) == {"skipped": True, "reason": "--no-validate"}


def test_missing_checkpoint_is_a_clean_error(run):
    result = run("export")
    assert result.exit_code == 1
    assert (
        "Error: checkpoint 'models/model.pt' does not exist; train one with `toolkit train`."
        in result.output
    )


def test_help_states_the_default_opset(run):
    assert f"[default: {export.DEFAULT_OPSET}]" in run("export", "--help").output


# -- CUDA twin ----------------------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_trained_model_exports_and_passes_parity_on_every_provider(tmp_path):
    result_train = train(TrainConfig(device="cuda", out=tmp_path / "m.pt"))
    assert result_train.device.startswith("cuda")
    result = export_model(tmp_path / "m.pt", tmp_path / "m.onnx")
    providers = set(result.parity.to_dict()["providers"])
    assert "CPUExecutionProvider" in providers
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert "CUDAExecutionProvider" in providers
    assert result.parity.passed
    x = torch.tensor([[3.0, 4.0]]).numpy()
    (prediction,) = session(tmp_path / "m.onnx").run(None, {"features": x})
    assert abs(prediction[0, 0] - 6.0) < 1e-5


# -- Hardening: paths checked first, a full disk, the status line ---------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--checkpoint", "nope.pt"], 1, "checkpoint 'nope.pt' does not exist; train one"),
        (["--checkpoint", "models"], 2, "Invalid value for '--checkpoint': File 'models' is a"),
        (
            ["models", "--checkpoint", "models/model.pt"],
            2,
            "Invalid value for '[OUTPUT]': File 'models' is a directory.",
        ),
        (
            ["models/model.pt", "--checkpoint", "models/model.pt"],
            2,
            "OUTPUT 'models/model.pt' is the checkpoint being exported; choose another path, "
            "such as 'models/model.onnx'.",
        ),
        (
            ["models/model.pt/m.onnx", "--checkpoint", "models/model.pt"],
            2,
            "OUTPUT 'models/model.pt/m.onnx' cannot be written: 'models/model.pt' is a file.",
        ),
    ],
)
def test_wrong_paths_are_refused_before_anything_is_exported(run, args, code, message):
    assert run("train", "--quiet").exit_code == 0
    result = run("export", *args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in Path("models").iterdir()) == ["model.pt"]


def test_folders_are_refused_by_the_library_too(seed_export, tmp_path):
    ckpt, _ = seed_export
    with pytest.raises(UsageError, match=r"OUTPUT '.*' is a folder; name the file to write"):
        export_model(ckpt, tmp_path)
    with pytest.raises(CheckpointError, match=r"checkpoint '.*' is a folder, not a file; train"):
        export_model(tmp_path, tmp_path / "m.onnx")


def test_a_full_disk_is_a_clean_error_naming_the_output(run, full_disk):
    assert run("train", "--quiet").exit_code == 0
    target = full_disk / "model.onnx"
    result = run("export", str(target))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: cannot write {str(target)!r}: No space left on device [ENOSPC]; free some "
        "space or write somewhere else. Nothing was written.\n"
    )
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write gets EFBIG instead of a signal
    # Below the gate's copy of the seed model (about 200 bytes without its card).
    resource.setrlimit(resource.RLIMIT_FSIZE, (128, 128))


def test_a_file_size_limit_is_a_clean_error_and_writes_nothing(seed_export, tmp_path):
    ckpt, _ = seed_export
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "export", "out.onnx", "--checkpoint", str(ckpt)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        preexec_fn=_limit_file_size,
    )
    assert done.returncode == 1, done.stderr
    # The gate's copy of the model, in $TMPDIR, is the first file to reach the limit.
    assert re.fullmatch(
        r"Error: cannot write the parity gate's copy of the model, '.*candidate\.onnx': File "
        r"too large \[EFBIG\]; point TMPDIR at a folder with room\. Nothing was written to "
        r"'out\.onnx'\.\n",
        done.stderr,
    ), done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_status_line_says_what_passing_means_when_outputs_are_equal(run):
    assert run("train", "--quiet").exit_code == 0
    result = run("export")
    assert result.output.strip().endswith(
        "parity passed on CPUExecutionProvider: outputs identical to PyTorch's "
        "(allowed: atol + rtol * scale, atol 1e-05, rtol 1e-05)"
    )


def test_the_status_line_shows_the_closest_call_against_its_allowance(run, scaled_csv):
    assert run("train", "--quiet", "--data", str(scaled_csv)).exit_code == 0
    result = run("export")
    assert result.exit_code == 0, result.output
    found = re.search(
        r"parity passed on CPUExecutionProvider: every difference within its allowance "
        r"atol \+ rtol \* scale \(atol 1e-05, rtol 1e-05, scale = the sum of the \|terms\| "
        r"behind the output\); (.*)$",
        result.output.strip(),
    )
    assert found, result.output
    closest = re.fullmatch(r"the closest, (\S+) of an allowed (\S+), used (\S+)x of it", found[1])
    assert closest, found[1]  # float32 rounding differs from PyTorch's on this data
    diff, allowed, used = (float(v) for v in closest.groups())
    assert 0 < used <= 1 and diff <= allowed
    assert used == pytest.approx(diff / allowed, rel=0.1)  # both printed to 2 digits


def test_the_card_carries_the_compact_inference(tmp_path):
    """Per target the fit's figures, per coefficient estimate, std err and p (strict JSON)."""
    from toolkit.coefficients import compact

    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 2))
    y = x @ [1.5, -2.0] + 0.5 + rng.standard_normal(50)
    rows = "\n".join(f"{a!r},{b!r},{c!r}" for (a, b), c in zip(x.tolist(), y.tolist(), strict=True))
    (tmp_path / "d.csv").write_text("a,b,y\n" + rows + "\n")
    for l2 in (0.0, 3.0):
        out = tmp_path / f"m{l2}.pt"
        train(
            TrainConfig(data=tmp_path / "d.csv", dtype="float64", val_fraction=0.0, l2=l2, out=out)
        )
        export_model(out, tmp_path / "m.onnx")
        props = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
        stored = json.loads(props[card.INFERENCE])  # strict JSON: NaN would not parse back
        inference = checkpoint.load(out)["inference"]
        assert stored == compact(inference)
        assert (stored["alpha"], stored["n"], stored["df_resid"], stored["l2"]) == (
            0.05,
            50,
            47,
            l2,
        )
        (target,) = stored["targets"]
        assert set(target) == {
            "name", "r2", "r2_adj", "rse", "df_resid", "f", "f_pvalue", "aic", "bic",
            "coefficients",
        }  # fmt: skip
        assert [row["term"] for row in target["coefficients"]] == ["(intercept)", "a", "b"]
        full = inference["targets"][0]["coefficients"]
        for row, whole in zip(target["coefficients"], full, strict=True):
            assert set(row) == {"term", "estimate", "stderr", "p"}
            assert (row["estimate"], row["stderr"], row["p"]) == (
                whole["estimate"], whole["stderr"], whole["p"],
            )  # fmt: skip
        assert (target["f"] is None) == (l2 > 0)


def test_a_checkpoint_without_inference_exports_without_it(seed_export, tmp_path):
    """Checkpoints written before the inference existed still export (no card key)."""
    ckpt_path, _ = seed_export
    payload = checkpoint.load(ckpt_path)
    del payload["inference"]
    torch.save(payload, tmp_path / "old.pt")
    export_model(tmp_path / "old.pt", tmp_path / "old.onnx")
    keys = [p.key for p in onnx.load(tmp_path / "old.onnx").metadata_props]
    assert keys == [key for key in card.KEYS if key != card.INFERENCE]
