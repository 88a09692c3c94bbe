"""One-row onnxruntime runs of table-model graph layouts (issue 15's 2x bar), for choosing one.

Times `session.run` (the compiled session, as the Predictor calls it) on one row of
raw values for the graph `toolkit export` writes (toolkit/export/tables.py: one
LabelEncoder per text column into one shared coefficient table, one Gather + ReduceSum
for all of them, one Gemm for the numeric columns, unknown values counted by a Gather +
ReduceSum) and for two alternatives, against a numeric model's one Gemm:

- per column: a LabelEncoder, a Gather of coefficients and a Gather of unknown flags for
  each text column, added with Sum and Add;
- single target, no count: LabelEncoder straight to a float contribution, fed into the
  numeric Gemm (no `unknown_levels` output, so it misses the contract; the floor).

    .venv/bin/python scripts/bench_table_graph.py [--categorical 3 --levels 50 --numeric 5]

A report, not a test: it prints microseconds per run, the best of interleaved rounds.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.columns import CATEGORICAL, ColumnPlan, TablePlan
from toolkit.export.tables import build_graph, category_rows, coefficient_table


def session(model: Any) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    data = model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def best_us(sess: Any, feeds: dict[str, np.ndarray], number: int = 3000) -> float:
    import onnxruntime as ort

    compiled, names, options = sess._sess, [o.name for o in sess.get_outputs()], ort.RunOptions()
    runs = timeit.repeat(lambda: compiled.run(names, feeds, options), number=number, repeat=7)
    return min(runs) / number * 1e6


def model(nodes: list, inputs: list, outputs: list, initializers: list) -> Any:
    from onnx import helper

    imports = [helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)]
    proto = helper.make_model(
        helper.make_graph(nodes, "bench", inputs, outputs, initializers), opset_imports=imports
    )
    proto.ir_version = helper.find_min_ir_version_for(imports)
    return proto


def numeric_model(width: int, rng: np.random.Generator) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    weights = [
        numpy_helper.from_array(rng.standard_normal((1, width)).astype(np.float32), "w"),
        numpy_helper.from_array(np.ones(1, np.float32), "b"),
    ]
    return model(
        [helper.make_node("Gemm", ["features", "w", "b"], ["prediction"], transB=1)],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["batch", 1])],
        weights,
    )


def signature(plan: TablePlan, count: bool = True) -> tuple[list, list]:
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info(
            c.name, TensorProto.STRING if c.kind == CATEGORICAL else TensorProto.FLOAT, ["batch"]
        )
        for c in plan.columns
    ]
    outputs = [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["batch", 1])]
    if count:
        outputs.append(
            helper.make_tensor_value_info("unknown_levels", TensorProto.INT64, ["batch"])
        )
    return inputs, outputs


def numeric_tail(plan: TablePlan, weight: np.ndarray, extra: list[str]) -> tuple[list, list]:
    """Concat + Reshape + Gemm over the numeric inputs and `extra` 1-D inputs (weight 1)."""
    from onnx import helper, numpy_helper

    names = [c.name for c in plan.columns if c.kind != CATEGORICAL]
    numeric = weight[:, -len(names) :]
    stacked = np.concatenate([numeric, np.ones((1, len(extra)), np.float32)], axis=1)
    nodes = [
        helper.make_node("Concat", names + extra, ["flat"], axis=0),
        helper.make_node("Reshape", ["flat", "shape"], ["matrix"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([len(names) + len(extra), -1], np.int64), "shape"),
        numpy_helper.from_array(stacked, "numeric"),
    ]
    return nodes, initializers


def per_column(plan: TablePlan, weight: np.ndarray, bias: np.ndarray) -> Any:
    from onnx import helper, numpy_helper

    table, flags = coefficient_table(plan, weight, bias)
    nodes, initializers, parts, counts = [], [], [], []
    for group in category_rows(plan):
        name, low = group.column.name, group.start
        rows = slice(low, low + group.count)
        initializers += [
            numpy_helper.from_array(table[rows].astype(np.float32), f"t:{name}"),
            numpy_helper.from_array(flags[rows], f"f:{name}"),
        ]
        nodes += [
            helper.make_node(
                "LabelEncoder",
                [name],
                [f"i:{name}"],
                domain="ai.onnx.ml",
                keys_strings=list(group.keys),
                values_int64s=[r - low for r in group.rows],
                default_int64=group.unknown - low,
            ),
            helper.make_node("Gather", [f"t:{name}", f"i:{name}"], [f"g:{name}"]),
            helper.make_node("Gather", [f"f:{name}", f"i:{name}"], [f"u:{name}"]),
        ]
        parts.append(f"g:{name}")
        counts.append(f"u:{name}")
    tail, weights = numeric_tail(plan, weight, [])
    nodes += [
        *tail,
        helper.make_node("Gemm", ["matrix", "numeric"], ["numeric_part"], transA=1, transB=1),
        helper.make_node("Sum", ["numeric_part", *parts], ["prediction"]),
    ]
    total = counts[0]
    for index, name in enumerate(counts[1:]):  # Sum has no int64 kernel
        nodes.append(helper.make_node("Add", [total, name], [f"count{index}"]))
        total = f"count{index}"
    nodes.append(helper.make_node("Identity", [total], ["unknown_levels"]))
    return model(nodes, *signature(plan), initializers + weights)


def direct(plan: TablePlan, weight: np.ndarray, bias: np.ndarray) -> Any:
    from onnx import helper, numpy_helper

    table, _ = coefficient_table(plan, weight, np.zeros_like(bias))
    nodes, contributions = [], []
    for group in category_rows(plan):
        name = group.column.name
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [name],
                [f"v:{name}"],
                domain="ai.onnx.ml",
                keys_strings=list(group.keys),
                values_floats=[float(table[r, 0]) for r in group.rows],
                default_float=0.0,
            )
        )
        contributions.append(f"v:{name}")
    tail, weights = numeric_tail(plan, weight, contributions)
    nodes += [
        *tail,
        helper.make_node("Gemm", ["matrix", "numeric", "bias"], ["prediction"], transA=1, transB=1),
    ]
    weights.append(numpy_helper.from_array(bias, "bias"))
    return model(nodes, *signature(plan, count=False), weights)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categorical", type=int, default=3)
    parser.add_argument("--levels", type=int, default=50)
    parser.add_argument("--numeric", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    levels = tuple(f"L{i:02d}" for i in range(args.levels))
    columns = [ColumnPlan(f"c{j}", CATEGORICAL, "string", levels) for j in range(args.categorical)]
    columns += [ColumnPlan(f"x{j}", "numeric", "float") for j in range(args.numeric)]
    plan, rng = TablePlan(tuple(columns)), np.random.default_rng(0)
    width = len(plan.encoded_names)
    weight = rng.standard_normal((1, width)).astype(np.float32)
    bias = np.ones(1, np.float32)
    feeds = {c.name: np.array(["L07"]) for c in plan.categorical}
    feeds |= {f"x{j}": np.array([0.5], np.float32) for j in range(args.numeric)}
    numeric_feeds = {"features": np.zeros((1, args.numeric), np.float32)}
    encoded_feeds = {"features": np.zeros((1, width), np.float32)}
    cases = {
        f"numeric model, Gemm of {args.numeric} features": (
            session(numeric_model(args.numeric, rng)),
            numeric_feeds,
        ),
        f"numeric model, Gemm of {width} features (encoded by hand)": (
            session(numeric_model(width, rng)),
            encoded_feeds,
        ),
        "table model as exported (fused)": (session(build_graph(plan, weight, bias, 18)), feeds),
        "table model, per column": (session(per_column(plan, weight, bias)), feeds),
        "LabelEncoder -> float, no unknown count": (session(direct(plan, weight, bias)), feeds),
    }
    timings = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):  # interleaved: a busy moment hits every case alike
        for name, (sess, given) in cases.items():
            timings[name] = min(timings[name], best_us(sess, given))
    print(f"{args.categorical} text columns of {args.levels} levels, {args.numeric} numeric")
    for name, us in timings.items():
        print(f"{us:7.2f} us  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
