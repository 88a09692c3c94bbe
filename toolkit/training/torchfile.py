"""`torch.save`'s file format, written without importing torch.

An exact fit on the CPU needs no torch (numpy sums and solves it), and importing torch
takes 2 s here, longer than reading and fitting two million rows. So checkpoints are
written by this module: a zip archive laid out as `torch.save` lays it out (format
version 1, read by every torch since 1.6, `weights_only=True` included), with numpy
arrays where torch.save has tensors. tests/training/test_torchfile.py checks that the
pickle it writes is byte for byte torch.save's and that torch.load reads every dtype back.

Layout of the archive (all records stored, not compressed, data aligned to 64 bytes so
`torch.load(mmap=True)` can map them):

    archive/data.pkl                the payload, pickle protocol 2; each array is
                                    torch._utils._rebuild_tensor_v2(storage, 0, shape,
                                    strides, False, OrderedDict()) with the storage a
                                    persistent id ("storage", torch.<Type>Storage, key,
                                    "cpu", numel)
    archive/.format_version         "1"
    archive/.storage_alignment      "64"
    archive/byteorder               "little" or "big"
    archive/data/<key>              each array's bytes, C order
    archive/version                 "3\n"
    archive/.data/serialization_id  a random 40-digit id, as torch writes
"""

from __future__ import annotations

import io
import pickle
import secrets
import struct
import sys
import zipfile
from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np

from toolkit.training.moments import on_host

ARCHIVE = "archive"
ALIGNMENT = 64
# torch's storage class for each numpy dtype a checkpoint can hold.
STORAGE_TYPES = {
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
    np.dtype(np.complex64): "ComplexFloatStorage",
    np.dtype(np.complex128): "ComplexDoubleStorage",
}
# The extra field torch's zip writer pads local headers with (id "FB", then filler).
_PADDING_ID = b"FB"


class _TorchName:
    """A name in torch, pickled as a GLOBAL opcode without importing torch."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:  # pickle's save_reduce wants a callable
        raise TypeError(f"{self.module}.{self.name} is only named here, never called")


_REBUILD_TENSOR = _TorchName("torch._utils", "_rebuild_tensor_v2")
_STORAGES = {dtype: _TorchName("torch", name) for dtype, name in STORAGE_TYPES.items()}


class _Tensor:
    """An array to be pickled as torch.save pickles a contiguous CPU tensor."""

    def __init__(self, array: np.ndarray, key: str) -> None:
        self.array, self.key = array, key


class _Pickler(pickle._Pickler):
    """The pure-Python pickler, taught `_TorchName` and `_Tensor` (the C pickler would
    import torch to check each global it writes)."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)

    def save_torch_name(self, obj: _TorchName) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    def save_tensor(self, obj: _Tensor) -> None:
        array = obj.array
        storage = ("storage", _STORAGES[array.dtype], obj.key, "cpu", array.size)
        args = (_Storage(storage), 0, array.shape, _strides(array.shape), False, OrderedDict())
        self.save_reduce(_REBUILD_TENSOR, args, obj=obj)

    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if type(obj) is _Storage else None

    dispatch[_TorchName] = save_torch_name
    dispatch[_Tensor] = save_tensor


class _Storage:
    """A storage's persistent id, as torch.save's persistent_id returns it."""

    def __init__(self, pid: tuple[Any, ...]) -> None:
        self.pid = pid


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A contiguous tensor's strides, as torch computes them (a dimension of 0 counts as 1)."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def dumps(payload: Any) -> bytes:
    """The bytes of a `torch.save(payload)` file, numpy arrays standing for tensors.

    `payload` holds dicts (str or int keys), lists, tuples, str, int, float, bool, None
    and numpy arrays of the dtypes in STORAGE_TYPES (torch tensors are taken as arrays).
    """
    arrays: list[np.ndarray] = []
    wrapped = _wrap(payload, arrays)
    data = io.BytesIO()
    _Pickler(data, protocol=2).dump(wrapped)
    records = [
        ("data.pkl", data.getvalue()),
        (".format_version", b"1"),
        (".storage_alignment", str(ALIGNMENT).encode()),
        ("byteorder", sys.byteorder.encode()),
        *((f"data/{key}", array.tobytes()) for key, array in enumerate(arrays)),
        ("version", b"3\n"),
        (".data/serialization_id", str(secrets.randbits(128)).zfill(40).encode()),
    ]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, content in records:
            _write_aligned(archive, out, f"{ARCHIVE}/{name}", content)
    return out.getvalue()


def _wrap(value: Any, arrays: list[np.ndarray]) -> Any:
    """`value` with each array (or tensor) replaced by a `_Tensor` keyed by its index."""
    if isinstance(value, dict):
        return {k: _wrap(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_wrap(v, arrays) for v in value]
    if isinstance(value, tuple):
        return tuple(_wrap(v, arrays) for v in value)
    value = on_host(value)  # a torch tensor as an array (only where torch is imported anyway)
    if isinstance(value, np.ndarray):
        if value.dtype not in STORAGE_TYPES:
            raise TypeError(f"cannot store a {value.dtype} array in a checkpoint")
        array = value if value.flags.c_contiguous else value.copy(order="C")  # keeps 0-d
        if array.dtype.byteorder == (">" if sys.byteorder == "little" else "<"):
            array = array.astype(array.dtype.newbyteorder("="))
        arrays.append(array)
        return _Tensor(array, str(len(arrays) - 1))
    return value


def _write_aligned(archive: zipfile.ZipFile, out: io.BytesIO, name: str, content: bytes) -> None:
    """Store `content` so that its data starts on an ALIGNMENT boundary, as torch does."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    start = out.tell() + 30 + len(name.encode())  # the local header's fixed part and name
    pad = -(start + 4) % ALIGNMENT  # the extra field's own 4 bytes come first
    info.extra = _PADDING_ID + struct.pack("<H", pad) + b"Z" * pad
    archive.writestr(info, content)
