"""toolkit/training/torchfile.py: torch.save's format without torch, checked against torch."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from toolkit.training import torchfile

DTYPES = [
    np.float64,
    np.float32,
    np.float16,
    np.int64,
    np.int32,
    np.int16,
    np.int8,
    np.uint8,
    np.bool_,
    np.complex64,
    np.complex128,
]


def payload(make: callable) -> dict:
    """A checkpoint-like payload; `make(array)` gives the tensor or array to store."""
    rng = np.random.default_rng(0)
    return {
        "format": "toolkit.checkpoint",
        "format_version": 1,
        "spec": {"feature_names": ["x1", "x2"], "target_names": ["y"], "intercept": True},
        "state_dict": {
            "weight": make(rng.standard_normal((1, 2)).astype(np.float32)),
            "bias": make(np.array([0.5], dtype=np.float32)),
        },
        "metrics": {"train": {"mse": [0.25], "r2": [0.9]}, "val": None},
        "history": [[1.0, 2.5, float("inf")], []],
        "numbers": [0, 1, -1, 255, 256, 65535, 65536, 2**31, -(2**31) - 1, 2**70, -(2**70)],
        "floats": [0.0, -0.0, 1e-308, 1.5, float("nan")],
        "flags": [True, False, None],
        "text": ["", "é ü 中", "a\nb"],
        "int_keys": {0: "a", 1: "b"},
        "parity_sample": make(rng.standard_normal((20, 2))),
        "scalar": make(np.array(3.0)),
        "empty": make(np.zeros((0, 3))),
        "column": make(np.arange(20.0).reshape(20, 1)),
        "tuple": (1, "two"),
    }


def as_tensor(array: np.ndarray) -> torch.Tensor:
    # A tensor torch made itself: numpy gives an empty array strides (0, 0), torch (3, 1).
    return torch.from_numpy(array).clone(memory_format=torch.contiguous_format)


def torch_pickle(value: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    with zipfile.ZipFile(buffer) as archive:
        return archive.read("archive/data.pkl")


def test_the_pickle_is_torch_saves_byte_for_byte():
    ours = torchfile.dumps(payload(np.asarray))
    with zipfile.ZipFile(io.BytesIO(ours)) as archive:
        data = archive.read("archive/data.pkl")
    assert data == torch_pickle(payload(as_tensor))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_dtype_loads_back_with_weights_only(dtype):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4)) * 100).astype(dtype)
    loaded = torch.load(
        io.BytesIO(torchfile.dumps({"a": array, "t": array[:, 1]})), weights_only=True
    )
    assert loaded["a"].dtype == torch.from_numpy(array).dtype
    np.testing.assert_array_equal(loaded["a"].numpy(), array)  # bit for bit
    np.testing.assert_array_equal(loaded["t"].numpy(), array[:, 1])  # a view: copied contiguous


def test_plain_values_and_arrays_load_back_equal(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(torchfile.dumps(payload(np.asarray)))
    loaded = torch.load(path, weights_only=True)
    mapped = torch.load(path, weights_only=True, mmap=True)  # needs the 64-byte alignment
    expected = payload(np.asarray)
    for got in (loaded, mapped):
        assert got["numbers"] == expected["numbers"]
        assert got["text"] == expected["text"] and got["int_keys"] == expected["int_keys"]
        assert np.isnan(got["floats"][-1]) and got["floats"][:4] == expected["floats"][:4]
        assert str(got["floats"][1]) == "-0.0"
        assert got["tuple"] == expected["tuple"]
        for key in ("parity_sample", "scalar", "empty", "column"):
            assert tuple(got[key].shape) == expected[key].shape
            np.testing.assert_array_equal(got[key].numpy(), expected[key])
        assert got["state_dict"]["weight"].dtype == torch.float32


def test_records_are_stored_aligned_and_named_as_torch_names_them():
    ours = zipfile.ZipFile(io.BytesIO(torchfile.dumps(payload(np.asarray))))
    buffer = io.BytesIO()
    torch.save(payload(as_tensor), buffer)
    theirs = zipfile.ZipFile(buffer)
    assert sorted(ours.namelist()) == sorted(theirs.namelist())
    raw = ours.fp.getvalue()
    for info in ours.infolist():
        assert info.compress_type == zipfile.ZIP_STORED
        name_length, extra_length = np.frombuffer(raw[info.header_offset + 26 :][:4], "<u2")
        start = info.header_offset + 30 + int(name_length) + int(extra_length)
        assert start % torchfile.ALIGNMENT == 0, info.filename
    for name in ("version", ".format_version", ".storage_alignment", "byteorder"):
        assert ours.read(f"archive/{name}") == theirs.read(f"archive/{name}")


def test_tensors_are_written_as_arrays():
    tensor = torch.arange(6, dtype=torch.float64).reshape(2, 3).T  # not contiguous
    loaded = torch.load(io.BytesIO(torchfile.dumps({"t": tensor})), weights_only=True)
    assert torch.equal(loaded["t"], tensor)


def test_other_objects_and_dtypes_are_refused():
    with pytest.raises(TypeError, match="cannot store a <U1 array"):
        torchfile.dumps({"a": np.array(["x"])})
    with pytest.raises(pickle_error()):
        torchfile.dumps({"f": lambda: 0})


def pickle_error() -> type[Exception]:
    import pickle

    return (pickle.PicklingError, AttributeError)  # type: ignore[return-value]


def test_writing_never_imports_torch():
    code = (
        "import sys, numpy as np\n"
        "from toolkit.training import torchfile\n"
        "torchfile.dumps({'w': np.ones((2, 2), np.float32), 'n': [1, 'a', None]})\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
