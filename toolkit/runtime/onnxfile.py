"""Inspect an ONNX file before onnxruntime opens it, without the `onnx` package.

The runtime must stay light (numpy and onnxruntime only), yet it has to refuse a model
whose tensors point at external data outside the model's folder before onnxruntime reads
anything (older releases follow such paths). onnxruntime already depends on protobuf, so
this module declares the few ONNX messages it needs (field numbers from onnx.proto; a test
checks them against the `onnx` package) and lets protobuf parse the file. Fields it does
not declare are skipped by protobuf as unknown fields.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from toolkit.errors import UnsafeModelError

# ONNX's standard operator domains; anything else (com.microsoft, custom ops) is refused.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

# (message, [(field, number, type, label, message type)]) with protobuf's enum values:
# type 9 string, 11 message, 3 int64, 14 enum-as-int32 (declared 5 here); label 1 optional,
# 3 repeated.
_SCHEMA: list[tuple[str, list[tuple[str, int, int, int, str]]]] = [
    ("StringStringEntryProto", [("key", 1, 9, 1, ""), ("value", 2, 9, 1, "")]),
    ("OperatorSetIdProto", [("domain", 1, 9, 1, ""), ("version", 2, 3, 1, "")]),
    (
        "TensorProto",
        [
            ("name", 8, 9, 1, ""),
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
            ("t", 5, 11, 1, "TensorProto"),
            ("g", 6, 11, 1, "GraphProto"),
            ("tensors", 10, 11, 3, "TensorProto"),
            ("graphs", 11, 11, 3, "GraphProto"),
            ("sparse_tensor", 22, 11, 1, "SparseTensorProto"),
            ("sparse_tensors", 23, 11, 3, "SparseTensorProto"),
        ],
    ),
    (
        "NodeProto",
        [
            ("op_type", 4, 9, 1, ""),
            ("attribute", 5, 11, 3, "AttributeProto"),
            ("domain", 7, 9, 1, ""),
        ],
    ),
    (
        "GraphProto",
        [
            ("node", 1, 11, 3, "NodeProto"),
            ("initializer", 5, 11, 3, "TensorProto"),
            ("sparse_initializer", 15, 11, 3, "SparseTensorProto"),
        ],
    ),
    (
        "FunctionProto",
        [
            ("node", 7, 11, 3, "NodeProto"),
            ("opset_import", 9, 11, 3, "OperatorSetIdProto"),
            ("domain", 10, 9, 1, ""),
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


@dataclass
class ModelFile:
    ir_version: int
    opsets: dict[str, int]
    domains: set[str]  # every node's operator domain
    external_locations: list[str]
    op_types: set[str] = field(default_factory=set)  # every node's operator, subgraphs included


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


def parse(data: bytes) -> ModelFile:
    """Parse the parts of a serialized ModelProto that the safety checks need.

    Raises ValueError for bytes that are not a ModelProto with a graph.
    """
    from google.protobuf.message import DecodeError

    model = _model_class()()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError) as error:
        raise ValueError(f"not an ONNX protobuf ({error})") from error
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ValueError("not an ONNX model (no graph or no IR version)")
    opsets = {o.domain: o.version for o in model.opset_import}
    domains: set[str] = set()
    op_types: set[str] = set()
    locations: list[str] = []
    # A FunctionProto has nodes but no initializers: its tensors live in node attributes.
    tensors = itertools.chain(
        _tensors(model.graph), *(_node_tensors(function.node) for function in model.functions)
    )
    for graph in [model.graph, *model.functions]:
        for node in _nodes(graph):
            domains.add(node.domain)
            op_types.add(node.op_type)
    for tensor in tensors:
        if tensor.data_location == EXTERNAL or len(tensor.external_data):
            entries = {e.key: e.value for e in tensor.external_data}
            locations.append(entries.get("location", ""))
    for function in model.functions:
        opsets.update({o.domain: o.version for o in function.opset_import})
    return ModelFile(model.ir_version, opsets, domains, locations, op_types)


def check_safe(path: Path, info: ModelFile) -> None:
    """Refuse external data outside the model's folder and non-standard operator domains."""
    # onnxruntime reads `location` relative to the folder of the path it is given (not of
    # the file a symlinked model points at), so resolve from there, links and all.
    base = path.absolute().parent
    folder = base.resolve()
    for location in info.external_locations:
        target = (base / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(folder):
            raise UnsafeModelError(
                f"its weights point at external data {location!r}, outside the model's folder "
                f"{str(folder)!r}; toolkit only reads external data that lies next to the model"
            )
    foreign = sorted((info.domains | set(info.opsets)) - STANDARD_DOMAINS)
    if foreign:
        raise UnsafeModelError(
            f"it uses operators from non-standard domain{'s' if len(foreign) > 1 else ''} "
            f"{', '.join(repr(d) for d in foreign)}; toolkit runs only the standard ONNX "
            "operator sets ('ai.onnx', 'ai.onnx.ml')"
        )


def _nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in (
                [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs
            ):
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
            for subgraph in (
                [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs
            ):
                yield from _tensors(subgraph)
