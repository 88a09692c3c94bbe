"""Mutants of the exported seed model (y = x1 + x2 - 1) for test_corpus.py: seeded, bounded.

`generate` writes mutant i into its own folder (model.onnx, plus any external data, links
or FIFOs it needs), cycling through KINDS so that every kind appears in a short run. Each
mutation function picks a variant with the given random.Random and returns a one-line
description and whether the mutant still computes the seed's math (`same`: if it loads,
its predictions must be right, not merely well shaped).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODEL = "model.onnx"


@dataclass(frozen=True)
class Mutant:
    index: int
    kind: str
    detail: str
    path: Path  # the model file to load
    same: bool  # still y = x1 + x2 - 1: if it loads, its predictions must be right


Made = tuple[str, bool]


def save(folder: Path, model: onnx.ModelProto) -> None:
    (folder / MODEL).write_bytes(model.SerializeToString())


def write(folder: Path, data: bytes) -> None:
    (folder / MODEL).write_bytes(data)


# --- Bytes ----------------------------------------------------------------------------


def bit_flips(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    out = bytearray(data)
    count = rng.choice([1, 1, 2, 4, 16])
    # Half the time in the first 96 bytes (the graph's structure), else anywhere.
    span = min(len(out), 96) if rng.random() < 0.5 else len(out)
    spots = [rng.randrange(span) for _ in range(count)]
    for spot in spots:
        out[spot] ^= 1 << rng.randrange(8)
    write(folder, bytes(out))
    return f"{count} bit(s) flipped at {spots[:4]}", False


def byte_edits(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    out = bytearray(data)
    spot = rng.randrange(len(out))
    variant = rng.choice(["set", "insert", "delete", "truncate", "truncate"])
    if variant == "set":
        out[spot] = rng.choice([0x00, 0xFF, 0x80, rng.randrange(256)])
    elif variant == "insert":
        out[spot:spot] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif variant == "delete":
        del out[spot : spot + rng.randint(1, 16)]
    else:
        del out[spot:]
    write(folder, bytes(out))
    return f"{variant} at byte {spot} of {len(data)}", False


def not_onnx(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    variant = rng.choice(["empty", "text", "noise", "zeros", "folder", "link loop", "huge"])
    path = folder / MODEL
    if variant == "empty":
        path.write_bytes(b"")
    elif variant == "text":
        path.write_text("x1,x2,y\n1,2,2\n")
    elif variant == "noise":
        path.write_bytes(rng.randbytes(rng.randint(1, 4096)))
    elif variant == "zeros":
        path.write_bytes(bytes(rng.randint(1, 4096)))
    elif variant == "folder":
        path.mkdir()
    elif variant == "link loop":
        path.symlink_to(MODEL)
    else:  # 10 GiB, sparse: reading it whole would need 10 GiB of memory
        with path.open("wb") as handle:
            handle.write(data)
            handle.truncate(10 << 30)
    return variant, False


# --- Fields ---------------------------------------------------------------------------


def dims(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    value = rng.choice([*model.graph.input, *model.graph.output])
    shape = value.type.tensor_type.shape
    variant = rng.choice(["value", "value", "param", "clear", "add", "remove"])
    index = rng.randrange(len(shape.dim))
    if variant == "value":
        shape.dim[index].dim_value = rng.choice([0, 1, 2, 3, 7, 2**31, 2**62])
    elif variant == "param":
        shape.dim[index].dim_param = rng.choice(["m", "batch", "", "\u00e9"])
    elif variant == "clear":
        shape.dim[index].Clear()
    elif variant == "add":
        shape.dim.add().dim_value = rng.choice([1, 2])
    else:
        del shape.dim[index]
    save(folder, model)
    return f"{value.name} dim {index}: {variant} -> {list(shape.dim)}".replace("\n", " "), False


def fixed_batch(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    rows = rng.choice([1, 2, 3, 5])
    out_rows = rng.choice([rows, rows, None, rows + 1])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = rows
    if out_rows is not None:
        model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = out_rows
    save(folder, model)
    return f"input batch {rows}, output batch {out_rows}", out_rows in (rows, None)


def elem_types(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    kinds = [0, 2, 3, 6, 7, 9, 10, 11, 16, 8, 999]
    target = rng.choice(["input", "output", "weight", "bias"])
    kind = rng.choice(kinds)
    if target in ("input", "output"):
        getattr(model.graph, target)[0].type.tensor_type.elem_type = kind
    else:
        {t.name: t for t in model.graph.initializer}[target].data_type = kind
    save(folder, model)
    return f"{target} element type -> {kind}", False


def op_types(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    node = model.graph.node[0]
    variant = rng.choice(["op", "op", "domain"])
    if variant == "op":
        node.op_type = rng.choice(
            ["MatMul", "Add", "Loop", "Scan", "If", "Relu", "Identity", "Gemmm", "", "Conv"]
        )
    else:
        node.domain = rng.choice(["ai.onnx", "ai.onnx.ml", "com.microsoft", "\u00e9"])
    save(folder, model)
    return f"node: {node.op_type!r} in domain {node.domain!r}", False


def attributes(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    node = model.graph.node[0]
    name = rng.choice(["transA", "transB", "alpha", "beta", "clear", "unknown", "graph"])
    if name == "clear":
        del node.attribute[:]
    elif name == "unknown":
        node.attribute.append(helper.make_attribute("frobnicate", 3))
    elif name == "graph":
        node.attribute.append(helper.make_attribute("body", helper.make_graph([], "g", [], [])))
    else:
        del node.attribute[:]
        value = rng.choice([0, 1, 2, -1] if name.startswith("trans") else [0.0, 2.0, np.nan])
        node.attribute.append(helper.make_attribute(name, value))
        if name != "transB":
            node.attribute.append(helper.make_attribute("transB", 1))
    save(folder, model)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name != "body"}
    return f"Gemm attributes {attrs}", False


def initializers(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    tensors = {t.name: t for t in model.graph.initializer}
    name = rng.choice(["weight", "bias"])
    tensor = tensors[name]
    variant = rng.choice(["dims", "short", "long", "value", "remove", "rename", "inline floats"])
    same = False
    if variant == "dims":
        del tensor.dims[:]
        tensor.dims.extend(rng.choice([[3], [2], [1, 1], [], [2, 1], [1, 2, 1]]))
    elif variant in ("short", "long"):
        raw = tensor.raw_data
        tensor.raw_data = raw[:-4] if variant == "short" else raw + b"\x00" * 4
    elif variant == "value":
        array = numpy_helper.to_array(tensor).copy()
        array.flat[0] = rng.choice([np.nan, np.inf, 3e38, -0.0, 1e-45])
        tensor.CopyFrom(numpy_helper.from_array(array, name))
    elif variant == "remove":
        model.graph.initializer.remove(tensor)
    elif variant == "rename":
        tensor.name = "renamed"
    else:  # the same values as float_data instead of raw_data
        array = numpy_helper.to_array(tensor)
        tensor.ClearField("raw_data")
        tensor.float_data.extend(array.reshape(-1).tolist())
        same = True
    save(folder, model)
    return f"{name}: {variant}", same


# --- External data --------------------------------------------------------------------


def external(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    """The weights in `weights.bin` next to the model, then one trick on where they point."""
    onnx.save_model(
        model, folder / MODEL, save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    model = onnx.load(folder / MODEL, load_external_data=False)
    variant = rng.choice(EXTERNAL_TRICKS)
    entries = {e.key: e for e in model.graph.initializer[0].external_data}
    if variant in ("length", "offset"):
        entry = entries.get(variant) or model.graph.initializer[0].external_data.add()
        entry.key = variant
        entry.value = rng.choice(["1" + "0" * 15, "-8", "abc", "9" * 30])
    elif variant != "inside":
        entries["location"].value = _point_elsewhere(variant, folder)
    save(folder, model)
    return f"external data: {variant}", variant == "inside"


EXTERNAL_TRICKS = [
    "inside",
    "absolute",
    "parent",
    "null byte",
    "link loop",
    "link outside",
    "missing",
    "folder",
    "fifo",
    "length",
    "offset",
    "long name",
]


def _point_elsewhere(variant: str, folder: Path) -> str:
    weights = folder / "weights.bin"
    if variant == "absolute":
        return str(weights.resolve())
    if variant == "parent":
        os.replace(weights, folder.parent / f"{folder.name}-weights.bin")
        return f"../{folder.name}-weights.bin"
    if variant == "null byte":
        return "weights.bin\x00.txt"
    if variant == "link loop":
        (folder / "loop").symlink_to("loop")
        return "loop/weights.bin"
    if variant == "link outside":
        os.replace(weights, folder.parent / f"{folder.name}-secret.bin")
        weights.symlink_to(folder.parent / f"{folder.name}-secret.bin")
        return "weights.bin"
    if variant == "folder":
        (folder / "sub").mkdir()
        return "sub"
    if variant == "fifo":
        os.mkfifo(folder / "pipe.bin")
        return "pipe.bin"
    if variant == "long name":
        return "w" * 5000 + ".bin"
    return "missing.bin"


# --- Signature and graph --------------------------------------------------------------


def signature(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    graph = model.graph
    variant = rng.choice(SIGNATURE_EDITS)
    float2 = helper.make_tensor_value_info
    if variant == "extra input":
        graph.input.append(float2("extra", TensorProto.FLOAT, ["batch", 2]))
    elif variant == "extra output":
        graph.node.append(helper.make_node("Identity", ["prediction"], ["copy"]))
        graph.output.append(float2("copy", TensorProto.FLOAT, ["batch", 1]))
    elif variant == "output is the input":
        graph.output[0].CopyFrom(float2("features", TensorProto.FLOAT, ["batch", 2]))
    elif variant == "output is a weight":
        graph.output[0].CopyFrom(float2("bias", TensorProto.FLOAT, [1]))
    elif variant == "no output":
        del graph.output[:]
    elif variant == "no input":
        del graph.input[:]
    elif variant in ("rename input", "rename output"):
        old = "features" if variant == "rename input" else "prediction"
        new = rng.choice(["x", "\u00fcber", "a b", "features2"])
        for value in [*graph.input, *graph.output]:
            value.name = new if value.name == old else value.name
        for node in graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]
    save(folder, model)
    return f"signature: {variant}", variant.startswith("rename")


SIGNATURE_EDITS = [
    "extra input",
    "extra output",
    "output is the input",
    "output is a weight",
    "no output",
    "no input",
    "rename input",
    "rename output",
]


def graphs(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    """Nodes added after the Gemm (now writing `linear`), or a Loop around it."""
    graph = model.graph
    variant = rng.choice([*GRAPH_TAILS, "loop"])
    graph.node[0].output[0] = "linear"
    if variant == "loop":
        body = helper.make_graph(
            [helper.make_node("Identity", ["cond"], ["cond_out"])],
            "body",
            [
                helper.make_tensor_value_info("i", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                helper.make_tensor_value_info("carried", TensorProto.FLOAT, None),
            ],
            [
                helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info("carried_out", TensorProto.FLOAT, None),
            ],
        )
        body.node.append(helper.make_node("Identity", ["carried"], ["carried_out"]))
        graph.initializer.append(numpy_helper.from_array(np.array(2**62, np.int64), "trips"))
        graph.node.append(
            helper.make_node("Loop", ["trips", "", "linear"], ["prediction"], body=body)
        )
    else:
        nodes, extra, _ = GRAPH_TAILS[variant]
        graph.node.extend(nodes)
        graph.initializer.extend(extra)
    save(folder, model)
    return f"graph: {variant}", variant != "loop" and GRAPH_TAILS[variant][2]


def _tail() -> dict[str, tuple[list, list, bool]]:
    """variant -> (nodes from `linear` to `prediction`, initializers, same math)."""
    node = helper.make_node
    const = numpy_helper.from_array
    return {
        "concat rows": ([node("Concat", ["linear", "linear"], ["prediction"], axis=0)], [], False),
        "reshape rows": (
            [node("Reshape", ["linear", "shape"], ["prediction"])],
            [const(np.array([1, -1], np.int64), "shape")],
            False,
        ),
        "relu": ([node("Relu", ["linear"], ["prediction"])], [], False),
        "identity chain": (
            [node("Identity", ["linear"], ["a"]), node("Identity", ["a"], ["prediction"])],
            [],
            True,
        ),
        "cast round trip": (
            [
                node("Cast", ["linear"], ["d"], to=TensorProto.DOUBLE),
                node("Cast", ["d"], ["prediction"], to=TensorProto.FLOAT),
            ],
            [],
            True,
        ),
        "times one": (
            [node("Mul", ["linear", "one"], ["prediction"])],
            [const(np.ones(1, np.float32), "one")],
            True,
        ),
        "constant": (
            [node("Constant", [], ["prediction"], value=const(np.ones((1, 1), np.float32)))],
            [],
            False,
        ),
        "cycle": ([node("Add", ["linear", "prediction"], ["prediction"])], [], False),
    }


GRAPH_TAILS = _tail()


def versions(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    variant = rng.choice(["opset", "opset", "ir", "ml domain"])
    if variant == "opset":
        model.opset_import[0].version = rng.choice([1, 7, 11, 13, 17, 19, 21, 99, 2**40])
    elif variant == "ir":
        model.ir_version = rng.choice([0, 1, 3, 4, 7, 9, 11, 99])
    else:
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", rng.choice([1, 3, 99])))
    save(folder, model)
    detail = f"opsets {[(o.domain, o.version) for o in model.opset_import]}, ir {model.ir_version}"
    return detail, True


def card(rng: random.Random, data: bytes, model: onnx.ModelProto, folder: Path) -> Made:
    variant = rng.choice(["not utf-8", "huge", "duplicate", "bad json", "wrong count", "empty key"])
    props = {p.key: p for p in model.metadata_props}
    if variant == "huge":
        props["solver"].value = "x" * (4 << 20)
    elif variant == "duplicate":
        model.metadata_props.add(key="feature_names", value='["p", "q"]')
    elif variant == "bad json":
        props["feature_names"].value = '["x1", '
    elif variant == "wrong count":
        props["feature_names"].value = '["x1"]'
    elif variant == "empty key":
        model.metadata_props.add(key="", value="")
    if variant != "not utf-8":
        save(folder, model)
        return f"card: {variant}", True
    props["solver"].value = "exact\u00e9"  # then its UTF-8 bytes become invalid ones
    raw = model.SerializeToString().replace("exact\u00e9".encode(), b"exact\xff\xfe")
    write(folder, raw)
    return "card: not utf-8", True


Mutation = Callable[[random.Random, bytes, onnx.ModelProto, Path], Made]
KINDS: list[tuple[str, Mutation]] = [
    ("bit flips", bit_flips),
    ("byte edits", byte_edits),
    ("not onnx", not_onnx),
    ("dims", dims),
    ("fixed batch", fixed_batch),
    ("element types", elem_types),
    ("op types", op_types),
    ("attributes", attributes),
    ("initializers", initializers),
    ("external data", external),
    ("signature", signature),
    ("graph", graphs),
    ("versions", versions),
    ("model card", card),
    ("bit flips", bit_flips),  # twice: the cheapest, widest search
]


def generate(seed_model: Path, root: Path, count: int, seed: int) -> list[Mutant]:
    """`count` mutants of `seed_model` under `root`, the same ones for the same seed."""
    rng = random.Random(seed)
    data = seed_model.read_bytes()
    mutants = []
    for index in range(count):
        kind, mutate = KINDS[index % len(KINDS)]
        folder = root / f"{index:05d}"
        folder.mkdir(parents=True)
        detail, same = mutate(rng, data, onnx.load_from_string(data), folder)
        mutants.append(Mutant(index, kind, detail, folder / MODEL, same))
    return mutants
