"""Inspect an ONNX file before onnxruntime opens it, without the `onnx` package.

The runtime must stay light (numpy and onnxruntime only), yet it has to refuse a model
whose tensors point at external data outside the model's folder before onnxruntime reads
anything (older releases follow such paths). onnxruntime already depends on protobuf, so
this module declares the few ONNX messages it needs (field numbers from onnx.proto; a test
checks them against the `onnx` package) and lets protobuf parse the file. Fields it does
not declare are skipped by protobuf as unknown fields.

Text fields are declared as bytes (the same wire format as strings) and decoded here:
names must be UTF-8, as onnx.proto requires, or the file is not readable; the model card
(metadata_props) is decoded leniently, since it only describes the model.

Files above MAX_MODEL_BYTES are refused before a byte is read (`read_model`).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ModelLoadError, UnsafeModelError

# protobuf cannot parse a message of 2 GiB or more, so no ONNX file that holds its weights
# inline is larger; bigger models keep their weights in external data files (not counted
# here). A larger file is refused from its size alone, without reading it.
MAX_MODEL_BYTES = 2**31 - 1
# ONNX's standard operator domains; anything else (com.microsoft, custom ops) is refused.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
FLOAT_TYPES = {1: np.dtype("<f4"), 11: np.dtype("<f8")}  # TensorProto.FLOAT, .DOUBLE

# (message, [(field, number, type, label, message type)]) with protobuf's enum values:
# type 1 double, 2 float, 3 int64, 5 int32 (enums are read as int32), 11 message, 12 bytes
# (onnx.proto's strings: same wire format, decoded here); label 1 optional, 3 repeated.
_SCHEMA: list[tuple[str, list[tuple[str, int, int, int, str]]]] = [
    ("StringStringEntryProto", [("key", 1, 12, 1, ""), ("value", 2, 12, 1, "")]),
    ("OperatorSetIdProto", [("domain", 1, 12, 1, ""), ("version", 2, 3, 1, "")]),
    (
        "TensorProto",
        [
            ("dims", 1, 3, 3, ""),
            ("data_type", 2, 5, 1, ""),
            ("float_data", 4, 2, 3, ""),
            ("name", 8, 12, 1, ""),
            ("raw_data", 9, 12, 1, ""),
            ("double_data", 10, 1, 3, ""),
            ("external_data", 13, 11, 3, "StringStringEntryProto"),
            ("data_location", 14, 5, 1, ""),
        ],
    ),
    (
        "SparseTensorProto",
        [("values", 1, 11, 1, "TensorProto"), ("indices", 2, 11, 1, "TensorProto")],
    ),
    (
        "AttributeProto",
        [
            ("name", 1, 12, 1, ""),
            ("f", 2, 2, 1, ""),
            ("i", 3, 3, 1, ""),
            ("t", 5, 11, 1, "TensorProto"),
            ("ints", 8, 3, 3, ""),  # LabelEncoder's values (table_fast.py)
            ("strings", 9, 12, 3, ""),  # ... and its keys
            ("g", 6, 11, 1, "GraphProto"),
            ("tensors", 10, 11, 3, "TensorProto"),
            ("graphs", 11, 11, 3, "GraphProto"),
            ("sparse_tensor", 22, 11, 1, "SparseTensorProto"),
            ("sparse_tensors", 23, 11, 3, "SparseTensorProto"),
        ],
    ),
    ("ValueInfoProto", [("name", 1, 12, 1, "")]),
    (
        "NodeProto",
        [
            ("input", 1, 12, 3, ""),
            ("output", 2, 12, 3, ""),
            ("name", 3, 12, 1, ""),
            ("op_type", 4, 12, 1, ""),
            ("attribute", 5, 11, 3, "AttributeProto"),
            ("domain", 7, 12, 1, ""),
        ],
    ),
    (
        "GraphProto",
        [
            ("node", 1, 11, 3, "NodeProto"),
            ("initializer", 5, 11, 3, "TensorProto"),
            ("input", 11, 11, 3, "ValueInfoProto"),
            ("output", 12, 11, 3, "ValueInfoProto"),
            ("sparse_initializer", 15, 11, 3, "SparseTensorProto"),
        ],
    ),
    (
        "FunctionProto",
        [
            ("node", 7, 11, 3, "NodeProto"),
            ("opset_import", 9, 11, 3, "OperatorSetIdProto"),
            ("domain", 10, 12, 1, ""),
        ],
    ),
    (
        "ModelProto",
        [
            ("ir_version", 1, 3, 1, ""),
            ("graph", 7, 11, 1, "GraphProto"),
            ("opset_import", 8, 11, 3, "OperatorSetIdProto"),
            ("metadata_props", 14, 11, 3, "StringStringEntryProto"),
            ("functions", 25, 11, 3, "FunctionProto"),
        ],
    ),
]


@dataclass(frozen=True)
class Node:
    """One node of the main graph: its operator and the names of the values it links."""

    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class ModelFile:
    ir_version: int
    opsets: dict[str, int]
    domains: set[str]  # every node's operator domain
    external_locations: list[str]
    op_types: set[str] = field(default_factory=set)  # every node's operator, subgraphs included
    # (domain, op_type) of every node: main graph, subgraphs and local functions.
    operators: set[tuple[str, str]] = field(default_factory=set)
    nodes: list[Node] = field(default_factory=list)  # the main graph's, in file order
    inputs: list[str] = field(default_factory=list)  # graph inputs that are not initializers
    outputs: list[str] = field(default_factory=list)
    functions: int = 0  # how many model-local functions the file defines
    metadata: dict[str, str] = field(default_factory=dict)  # the model card
    # Float weights stored in the file (initializers, Constant values, attributes such as
    # Gemm's alpha) holding NaN or inf.
    non_finite: list[str] = field(default_factory=list)


@cache
def _model_class() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(
        name="toolkit_onnx_subset.proto", package="toolkit_onnx"
    )
    for name, fields in _SCHEMA:
        message = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            entry = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                entry.type_name = f".toolkit_onnx.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("toolkit_onnx.ModelProto"))


def schema_fields() -> dict[str, dict[str, int]]:
    """The declared field numbers, for the test that checks them against onnx.proto."""
    return {name: {field: number for field, number, *_ in fields} for name, fields in _SCHEMA}


def read_model(path: Path) -> bytes:
    """The file's bytes; ModelLoadError naming the path if missing, unreadable, empty or huge."""
    try:
        if not path.exists():
            raise ModelLoadError(f"model {str(path)!r} does not exist.")
        if not path.is_file():
            raise ModelLoadError(f"model {str(path)!r} is not a file.")
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_MODEL_BYTES:
                raise ModelLoadError(_too_big(path, size))
            # Read one byte more than allowed: a file that grew since fstat is caught too.
            data = handle.read(MAX_MODEL_BYTES + 1)
    except (OSError, ValueError) as error:  # ValueError: a path with a null byte
        reason = getattr(error, "strerror", None) or error
        raise ModelLoadError(f"cannot read model {str(path)!r}: {reason}.") from error
    if len(data) > MAX_MODEL_BYTES:
        raise ModelLoadError(_too_big(path, len(data)))
    if not data:
        raise ModelLoadError(
            f"model {str(path)!r} is empty (0 bytes); re-export it or copy the file again."
        )
    return data


def _too_big(path: Path, size: int) -> str:
    return (
        f"model {str(path)!r} is {size:,} bytes, more than the {MAX_MODEL_BYTES:,} an ONNX "
        "file can hold (protobuf's limit); a model this large keeps its weights in external "
        "data files next to it (onnx.save_model(..., save_as_external_data=True))."
    )


def parse_proto(data: bytes) -> Any:
    """The ModelProto subset as a protobuf message; ValueError for anything else."""
    from google.protobuf.message import DecodeError

    model = _model_class()()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError) as error:
        raise ValueError(f"not an ONNX protobuf ({error})") from error
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ValueError("not an ONNX model (no graph or no IR version)")
    return model


def parse(data: bytes) -> ModelFile:
    """Parse the parts of a serialized ModelProto that the safety checks need.

    Raises ValueError for bytes that are not a ModelProto with a graph, or whose names are
    not UTF-8 text.
    """
    model = parse_proto(data)
    opsets = {text(o.domain): o.version for o in model.opset_import}
    info = ModelFile(model.ir_version, opsets, set(), [], functions=len(model.functions))
    for graph in [model.graph, *model.functions]:
        for node in _nodes(graph):
            domain, op_type = text(node.domain), text(node.op_type)
            # onnxruntime quotes these in its errors, which then fail to decode.
            _names([node.name, *(a.name for a in node.attribute)])
            info.domains.add(domain)
            info.op_types.add(op_type)
            info.operators.add((domain, op_type))
    # A FunctionProto has nodes but no initializers: its tensors live in node attributes.
    tensors = itertools.chain(
        _tensors(model.graph), *(_node_tensors(function.node) for function in model.functions)
    )
    for tensor in tensors:
        if tensor.data_location == EXTERNAL or len(tensor.external_data):
            entries = {text(e.key): text(e.value) for e in tensor.external_data}
            info.external_locations.append(entries.get("location", ""))
    for function in model.functions:
        opsets.update({text(o.domain): o.version for o in function.opset_import})
    initializers = {text(t.name) for t in model.graph.initializer}
    initializers |= {text(s.values.name) for s in model.graph.sparse_initializer}
    info.inputs = [n for n in _names(v.name for v in model.graph.input) if n not in initializers]
    info.outputs = _names(v.name for v in model.graph.output)
    info.nodes = [
        Node(text(n.op_type), text(n.domain), tuple(_names(n.input)), tuple(_names(n.output)))
        for n in model.graph.node
    ]
    info.metadata = {
        key.decode("utf-8", "replace"): value.decode("utf-8", "replace")
        for key, value in ((p.key, p.value) for p in model.metadata_props)
    }
    stored = itertools.chain(model.graph.initializer, _node_tensors(model.graph.node))
    info.non_finite = [text(t.name) or "(unnamed)" for t in stored if not _finite(t)]
    info.non_finite += [  # alpha, beta: `f` reads 0.0 on attributes of other types
        f"{text(n.op_type)}.{text(a.name)}"
        for n in model.graph.node
        for a in n.attribute
        if not math.isfinite(a.f)
    ]
    return info


def tensor_array(tensor: Any) -> np.ndarray | None:
    """A float or double tensor stored in the file, as float64; None for any other."""
    if tensor is None or tensor.data_location == EXTERNAL or len(tensor.external_data):
        return None
    dtype = FLOAT_TYPES.get(tensor.data_type)
    shape = tuple(tensor.dims)
    if dtype is None or any(d < 0 for d in shape):
        return None
    if tensor.raw_data:
        if len(tensor.raw_data) % dtype.itemsize:
            return None
        values = np.frombuffer(tensor.raw_data, dtype)
    else:
        values = np.asarray(tensor.float_data if dtype.itemsize == 4 else tensor.double_data)
    if values.size != math.prod(shape):
        return None
    return values.astype(np.float64).reshape(shape)


def _finite(tensor: Any) -> bool:
    values = tensor_array(tensor)
    return values is None or bool(np.isfinite(values).all())


def text(value: bytes) -> str:
    """An onnx.proto string field: UTF-8, or ValueError (onnx.proto requires it)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"the name or field {value[:60]!r} is not UTF-8 text") from error


def _names(values: Iterable[bytes]) -> list[str]:
    return [text(value) for value in values]


def check_safe(path: Path, info: ModelFile) -> None:
    """Refuse external data outside the model's folder and non-standard operator domains."""
    # onnxruntime reads `location` relative to the folder of the path it is given (not of
    # the file a symlinked model points at), so resolve from there, links and all.
    base = path.absolute().parent
    folder = base.resolve()
    for location in info.external_locations:
        _check_location(base, folder, location)
    foreign = sorted((info.domains | set(info.opsets)) - STANDARD_DOMAINS)
    if foreign:
        raise UnsafeModelError(
            f"it uses operators from non-standard domain{'s' if len(foreign) > 1 else ''} "
            f"{', '.join(repr(d) for d in foreign)}; toolkit runs only the standard ONNX "
            "operator sets ('ai.onnx', 'ai.onnx.ml')"
        )


def _check_location(base: Path, folder: Path, location: str) -> None:
    """One external-data location: a regular file inside `folder`, or UnsafeModelError."""
    where = f"its weights point at external data {location!r}"
    if "\x00" in location:
        raise UnsafeModelError(f"{where}, a path with a null byte; re-export the model")
    try:
        target = (base / location).resolve()
        special = target.exists() and not target.is_file()
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop (Python 3.11)
        raise UnsafeModelError(
            f"{where}, which cannot be resolved ({error}); make it a plain file next to the model"
        ) from error
    if not location or os.path.isabs(location) or not target.is_relative_to(folder):
        raise UnsafeModelError(
            f"{where}, outside the model's folder {str(folder)!r}; toolkit only reads "
            "external data that lies next to the model"
        )
    if special:  # a FIFO would block onnxruntime's read forever; a device never ends
        raise UnsafeModelError(
            f"{where}, which is not a regular file; make it a plain file next to the model"
        )


def _subgraphs(node: Any) -> list[Any]:
    return [
        graph
        for attribute in node.attribute
        for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
    ]


def _nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for subgraph in _subgraphs(node):
            yield from _nodes(subgraph)


def _tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Any) -> Iterator[Any]:
    """Tensors held in node attributes, subgraphs included."""
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield attribute.sparse_tensor.values
                yield attribute.sparse_tensor.indices
            for sparse in attribute.sparse_tensors:
                yield sparse.values
                yield sparse.indices
        for subgraph in _subgraphs(node):
            yield from _tensors(subgraph)
