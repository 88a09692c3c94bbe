"""Structural edits of the seed model for corpus_mutants.py: external data, signature,
graph tails, versions and the model card. Each function has corpus_mutants's signature
(rng, seed bytes, a fresh ModelProto, the mutant's folder) -> (description, same math).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODEL = "model.onnx"
Made = tuple[str, bool]


def save(folder: Path, model: onnx.ModelProto) -> None:
    (folder / MODEL).write_bytes(model.SerializeToString())


def write(folder: Path, data: bytes) -> None:
    (folder / MODEL).write_bytes(data)


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
