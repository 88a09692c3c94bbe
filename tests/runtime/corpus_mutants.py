"""Mutants of the exported seed model (y = x1 + x2 - 1) for test_corpus.py: seeded, bounded.

`generate` writes mutant i into its own folder (model.onnx, plus any external data, links
or FIFOs it needs), cycling through KINDS so that every kind appears in a short run. Each
mutation function picks a variant with the given random.Random and returns a one-line
description and whether the mutant still computes the seed's math (`same`: if it loads,
its predictions must be right, not merely well shaped).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from corpus_edits import MODEL, Made, card, external, graphs, save, signature, versions, write
from onnx import helper, numpy_helper


@dataclass(frozen=True)
class Mutant:
    index: int
    kind: str
    detail: str
    path: Path  # the model file to load
    same: bool  # still y = x1 + x2 - 1: if it loads, its predictions must be right


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
