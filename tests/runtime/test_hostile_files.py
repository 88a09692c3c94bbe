"""Model files that used to escape as undocumented exceptions (the mutation corpus's finds).

UnicodeDecodeError from a model card that is not UTF-8, ValueError from a null byte and
RuntimeError from a symlink loop in an external-data location, MemoryError from a huge
file read whole, and a FIFO that would block onnxruntime's read forever: each now ends in
a ModelLoadError naming the file, or loads and predicts correctly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from runtime_models import BIAS, WEIGHT, linear_proto

from toolkit.runtime import ModelLoadError, Predictor, onnxfile
from toolkit.runtime.info import describe, to_lines

X = np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 0.0]], dtype=np.float32)
EXPECTED = X.astype(np.float64) @ WEIGHT.T.astype(np.float64) + BIAS  # exact in float32


def patched(path: Path, model: onnx.ModelProto, old: bytes, new: bytes) -> Path:
    """Save `model` with the bytes `old` replaced by `new` (same length: lengths stay valid)."""
    assert len(old) == len(new)
    data = model.SerializeToString()
    assert old in data
    path.write_bytes(data.replace(old, new))
    return path


# --- The model card and names --------------------------------------------------------


def test_a_card_that_is_not_utf8_loads_predicts_and_is_described(tmp_path):
    model = linear_proto(WEIGHT, BIAS, card={"feature_names": '["a", "b", "cXY"]', "note": "AB"})
    path = patched(tmp_path / "card.onnx", model, b'"cXY"', b'"c\xff\xfe"')
    path = patched(path, onnx.load(path), b"AB", b"\xc3(")
    predictor = Predictor(path)
    np.testing.assert_array_equal(predictor.predict(X), EXPECTED)
    assert predictor.metadata["note"] == "\ufffd("
    assert predictor.feature_names == ["a", "b", "c\ufffd\ufffd"]
    lines = to_lines(describe(predictor))
    assert "features:   a, b, c\ufffd\ufffd" in lines
    assert lines[-1].split() == ["note", "\ufffd("]


def test_a_name_that_is_not_utf8_is_not_a_readable_model(tmp_path):
    path = patched(
        tmp_path / "name.onnx", linear_proto(WEIGHT, BIAS), b"features", b"featur\xff\xfe"
    )
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == (
        f"{str(path)!r} is not a readable ONNX model (empty, truncated or another format): "
        "the name or field b'featur\\xff\\xfe' is not UTF-8 text."
    )


# --- External data --------------------------------------------------------------------


def external_model(folder: Path, location: str) -> Path:
    """The WEIGHT/BIAS model whose tensors point at `location` (written, then re-pointed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(
        linear_proto(WEIGHT, BIAS),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        assert tensor.data_location == TensorProto.EXTERNAL
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path.write_bytes(model.SerializeToString())
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    prefix = f"refused to load {str(path)!r}: its weights point at external data "
    assert str(caught.value).startswith(prefix)
    return str(caught.value)[len(prefix) :]


def test_a_null_byte_in_a_location_is_refused(tmp_path):
    path = external_model(tmp_path / "m", "weights.bin\x00.txt")
    assert refusal(path) == "'weights.bin\\x00.txt', a path with a null byte; re-export the model."


@pytest.mark.parametrize("loop", ["loop.bin", "a/weights.bin"])
def test_a_symlink_loop_in_a_location_is_refused(tmp_path, loop):
    path = external_model(tmp_path / "m", loop)
    (tmp_path / "m" / "loop.bin").symlink_to("loop.bin")
    (tmp_path / "m" / "a").symlink_to("a")
    message = refusal(path)
    assert message.startswith(f"{loop!r}, which cannot be resolved (")
    assert "Symlink loop" in message or "Too many levels of symbolic links" in message
    assert message.endswith("); make it a plain file next to the model.")


def test_a_fifo_in_place_of_the_weights_is_refused_without_blocking(tmp_path):
    path = external_model(tmp_path / "m", "weights.bin")
    (tmp_path / "m" / "weights.bin").unlink()
    os.mkfifo(tmp_path / "m" / "weights.bin")  # onnxruntime's read would wait for a writer
    assert refusal(path) == (
        "'weights.bin', which is not a regular file; make it a plain file next to the model."
    )


@pytest.mark.parametrize(("key", "text"), [("length", "1" + "0" * 15), ("offset", "1" + "0" * 15)])
def test_external_sizes_beyond_the_file_are_a_model_load_error(tmp_path, key, text):
    path = external_model(tmp_path / "m", "weights.bin")
    model = onnx.load(path, load_external_data=False)
    entry = model.graph.initializer[0].external_data.add()
    entry.key, entry.value = key, text
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelLoadError, match=r"^onnxruntime cannot load .*: \[ONNXRuntimeError\]"):
        Predictor(path)


# --- Size -----------------------------------------------------------------------------


def test_a_10_gib_sparse_file_is_refused_by_its_size_without_reading_it(tmp_path):
    path = tmp_path / "huge.onnx"
    with path.open("wb") as handle:
        handle.truncate(10 << 30)  # sparse: no disk space, but reading it would take 10 GiB
    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert time.perf_counter() - started < 1.0
    assert str(caught.value) == (
        f"model {str(path)!r} is 10,737,418,240 bytes, more than the 2,147,483,647 an ONNX "
        "file can hold (protobuf's limit); a model this large keeps its weights in external "
        "data files next to it (onnx.save_model(..., save_as_external_data=True))."
    )


def test_the_size_limit_is_checked_on_what_was_read_too(tmp_path, monkeypatch):
    # A file that grows between fstat and read is caught by reading one byte past the limit.
    path = tmp_path / "model.onnx"
    onnx.save_model(linear_proto(WEIGHT, BIAS), path)
    monkeypatch.setattr(onnxfile, "MAX_MODEL_BYTES", 10)
    monkeypatch.setattr(os, "fstat", lambda fd: os.stat_result((0,) * 10))  # size 0: it grew
    with pytest.raises(ModelLoadError, match=r"is 11 bytes, more than the 10 an ONNX file"):
        onnxfile.read_model(path)


def test_a_model_path_with_a_null_byte_is_a_model_load_error():
    with pytest.raises(ModelLoadError, match=r"^model 'a\\x00b.onnx' does not exist\.$"):
        Predictor("a\x00b.onnx")


# --- Weights --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_weights_holding_nan_or_infinity_are_refused_at_load(tmp_path, bad):
    # A flipped exponent bit makes a weight infinite: every prediction would be NaN or inf.
    weight = WEIGHT.copy()
    weight[0, 1] = bad
    path = tmp_path / "model.onnx"
    onnx.save_model(linear_proto(weight, BIAS), path)
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == (
        f"refused to load {str(path)!r}: its weights weight hold NaN or infinity (a damaged "
        "file, or a diverged training run); re-export the model."
    )


def test_a_gemm_alpha_of_nan_is_refused_at_load(tmp_path):
    model = linear_proto(WEIGHT, BIAS)
    model.graph.node[0].attribute.append(onnx.helper.make_attribute("alpha", float("nan")))
    path = tmp_path / "model.onnx"
    onnx.save_model(model, path)
    with pytest.raises(ModelLoadError, match=r"its weights Gemm\.alpha hold NaN or infinity"):
        Predictor(path)
