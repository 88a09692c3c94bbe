"""toolkit/runtime/onnxfile.py: the protobuf subset of onnx.proto, parsing, safety checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import local_function_model
from google.protobuf.descriptor import FieldDescriptor
from onnx import TensorProto, helper, numpy_helper, onnx_ml_pb2

from toolkit.export import export_model
from toolkit.runtime import onnxfile
from toolkit.training import TrainConfig, train

# Fields of these types share a wire format: varints (enums are read as int32 here),
# and length-delimited text (onnx.proto's strings are read as bytes and decoded by hand).
VARINT = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_ENUM}
TEXT = {FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES}


def onnx_field(message: str, field: str) -> FieldDescriptor:
    descriptor = onnx_ml_pb2.DESCRIPTOR.message_types_by_name[message]
    assert field in descriptor.fields_by_name, f"onnx.proto has no {message}.{field}"
    return descriptor.fields_by_name[field]


def is_repeated(field: FieldDescriptor) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 5 (older ones only have `label`)
        return field.is_repeated
    return field.label == FieldDescriptor.LABEL_REPEATED


def test_declared_field_numbers_equal_onnx_proto():
    declared = onnxfile.schema_fields()
    assert declared  # the subset is not empty
    expected = {
        message: {field: onnx_field(message, field).number for field in fields}
        for message, fields in declared.items()
    }
    assert declared == expected


def test_declared_field_types_labels_and_message_types_match_onnx_proto():
    for message, fields in onnxfile._SCHEMA:
        for field, number, kind, label, type_name in fields:
            real = onnx_field(message, field)
            where = f"{message}.{field}"
            assert real.number == number, where
            assert is_repeated(real) == (label == FieldDescriptor.LABEL_REPEATED), where
            if kind == FieldDescriptor.TYPE_MESSAGE:
                assert real.type == FieldDescriptor.TYPE_MESSAGE, where
                assert real.message_type.name == type_name, where
            elif kind in VARINT:
                assert real.type in VARINT, where
            elif kind in TEXT:
                assert real.type in TEXT, where
            else:
                assert real.type == kind, where


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    train(TrainConfig(out=folder / "model.pt"))
    export_model(folder / "model.pt", folder / "model.onnx")
    return folder / "model.onnx"


def test_parse_of_an_exported_model_gives_its_opsets_and_domains(exported):
    info = onnxfile.parse(exported.read_bytes())
    model = onnx.load(exported)
    assert info.ir_version == model.ir_version > 0
    assert info.opsets == {o.domain: o.version for o in model.opset_import} == {"": 18}
    assert info.domains == {""}
    assert info.external_locations == []
    onnxfile.check_safe(exported, info)  # no error: the exporter's output is safe


def test_parse_reads_ai_onnx_ml_opsets_and_node_domains():
    graph = helper.make_graph(
        [helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm="L2")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 9
    info = onnxfile.parse(model.SerializeToString())
    assert (info.ir_version, info.opsets, info.domains) == (
        9,
        {"": 17, "ai.onnx.ml": 3},
        {"ai.onnx.ml"},
    )
    onnxfile.check_safe(Path("model.onnx"), info)  # both are standard domains


GARBAGE = {
    "empty": b"",
    "text": b"x1,x2,y\n1,2,2\n3,4,6\n",
    "bytes": bytes(range(256)) * 4,
    "zeros": b"\x00" * 64,
    "a bare ir_version": bytes([0x08, 0x0A]),  # a ModelProto without a graph
}


@pytest.mark.parametrize("data", list(GARBAGE.values()), ids=list(GARBAGE))
def test_parse_rejects_bytes_that_are_not_an_onnx_model(data):
    with pytest.raises(ValueError, match=r"^not an ONNX (protobuf|model)"):
        onnxfile.parse(data)


def test_parse_rejects_a_truncated_model(exported):
    data = exported.read_bytes()
    for cut in (len(data) // 4, len(data) // 2, 10):
        with pytest.raises(ValueError, match=r"^not an ONNX (protobuf|model)"):
            onnxfile.parse(data[:cut])


def external(tensor: onnx.TensorProto, location: str) -> onnx.TensorProto:
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def tensor(name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(2, dtype=np.float32), name)


def test_parse_finds_external_data_wherever_a_tensor_can_be():
    sparse = helper.make_sparse_tensor(
        external(tensor("values"), "sparse_values.bin"),
        numpy_helper.from_array(np.array([0, 1], dtype=np.int64), "indices"),
        [4],
    )
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["z"], value=external(tensor("z"), "subgraph.bin"))],
        "branch",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
    )
    function = helper.make_function(
        "local",
        "F",
        ["a"],
        ["b"],
        [helper.make_node("Constant", [], ["b"], value=external(tensor("b"), "function.bin"))],
        [helper.make_opsetid("", 18)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["c"], value=external(tensor("c"), "attribute.bin")),
            helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch),
        ],
        "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [external(tensor("w"), "initializer.bin")],
        sparse_initializer=[sparse],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], functions=[function]
    )
    info = onnxfile.parse(model.SerializeToString())
    assert sorted(info.external_locations) == sorted(
        [
            "initializer.bin",
            "sparse_values.bin",
            "attribute.bin",
            "subgraph.bin",
            "subgraph.bin",  # then_branch and else_branch
            "function.bin",
        ]
    )
    assert info.domains == {""}
    assert info.opsets == {"": 18}


def test_parse_of_a_model_with_local_functions_lists_their_domains():
    model = local_function_model([2])
    info = onnxfile.parse(model.SerializeToString())
    assert (info.domains, info.opsets) == ({"", "local"}, {"": 18, "local": 1})
    with pytest.raises(onnxfile.UnsafeModelError, match="non-standard domain 'local'"):
        onnxfile.check_safe(Path("model.onnx"), info)


def model_file(locations: list[str], domains: set[str] | None = None) -> onnxfile.ModelFile:
    return onnxfile.ModelFile(10, {"": 18}, domains or {""}, locations)


@pytest.mark.parametrize("location", ["w.bin", "sub/w.bin", "sub/../w.bin", "./w.bin"])
def test_check_safe_accepts_locations_inside_the_models_folder(tmp_path, location):
    onnxfile.check_safe(tmp_path / "model.onnx", model_file([location]))


@pytest.mark.parametrize("location", ["../w.bin", "sub/../../w.bin", "/etc/passwd", ""])
def test_check_safe_refuses_locations_outside_the_models_folder(tmp_path, location):
    with pytest.raises(onnxfile.UnsafeModelError) as caught:
        onnxfile.check_safe(tmp_path / "model.onnx", model_file([location]))
    assert str(caught.value) == (
        f"its weights point at external data {location!r}, outside the model's folder "
        f"{str(tmp_path.resolve())!r}; toolkit only reads external data that lies next to "
        "the model"
    )


def test_check_safe_resolves_relative_model_paths_from_the_working_directory(tmp_path):
    # conftest's autouse fixture makes tmp_path the working directory.
    onnxfile.check_safe(Path("model.onnx"), model_file(["w.bin"]))
    with pytest.raises(onnxfile.UnsafeModelError, match=r"external data '\.\./w\.bin'"):
        onnxfile.check_safe(Path("model.onnx"), model_file(["../w.bin"]))


def test_check_safe_names_every_foreign_domain(tmp_path):
    info = model_file([], {"", "custom.ops", "com.microsoft"})
    with pytest.raises(onnxfile.UnsafeModelError) as caught:
        onnxfile.check_safe(tmp_path / "m.onnx", info)
    assert str(caught.value) == (
        "it uses operators from non-standard domains 'com.microsoft', 'custom.ops'; toolkit "
        "runs only the standard ONNX operator sets ('ai.onnx', 'ai.onnx.ml')"
    )


def test_an_imported_foreign_opset_is_refused_even_without_nodes(tmp_path):
    info = onnxfile.ModelFile(10, {"": 18, "com.microsoft": 1}, {""}, [])
    with pytest.raises(onnxfile.UnsafeModelError, match=r"domain 'com\.microsoft'"):
        onnxfile.check_safe(tmp_path / "m.onnx", info)
