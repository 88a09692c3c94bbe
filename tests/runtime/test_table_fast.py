"""The one-row fast path of table models (toolkit/runtime/table_fast.py): which graphs take
it, and that it answers exactly as the general path does.

The general path (table.py's string feeds through the file's own graph) is the reference:
a second Predictor on the same file with the fast path switched off. For random plans and
hostile cells (unknown levels, gaps, na tokens, booleans, big integers, infinity, numpy
scalars, lists), one record, one [record] and one row must give bit-identical predictions,
the same unknown counts and warnings, or the same error with the same words. Both are also
checked against onnxruntime run directly on the file.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_models import PLAN, YEAR_PLAN, exported_proto, weights, write_exported, write_table

from toolkit.columns import CATEGORICAL, NUMERIC, ColumnPlan, TablePlan
from toolkit.runtime import Predictor, table_fast

TEXTS = st.text(alphabet="abcXYZ é1", min_size=1, max_size=4)


def _general(path: Path, **options: Any) -> Predictor:
    predictor = Predictor(path, **options)
    predictor._table.one_row = None  # every call through the file's graph
    return predictor


@pytest.mark.parametrize("plan", [PLAN, YEAR_PLAN], ids=["firm", "year"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("targets", [1, 3])
def test_exported_models_take_the_fast_path_without_text_inputs(tmp_path, plan, dtype, targets):
    predictor = Predictor(write_exported(tmp_path / "m.onnx", plan, targets, dtype))
    runner = predictor._table.one_row
    assert runner is not None
    graph = onnx.load_from_string(runner.layout.model).graph
    assert {node.op_type for node in graph.node} <= {"Gather", "ReduceSum", "Gemm", "IsNaN",
                                                     "Where", "And", "Cast", "Concat"}  # fmt: skip
    string = onnx.TensorProto.STRING
    assert all(value.type.tensor_type.elem_type != string for value in graph.input)
    assert [value.name for value in graph.output] == ["prediction"]  # the count is provably 0


def test_a_graph_of_another_form_keeps_the_general_path(tmp_path):
    # The hand-built graph reads each text input with several LabelEncoders.
    predictor = Predictor(write_table(tmp_path / "hand.onnx"))
    assert predictor._table.one_row is None
    data = Path(tmp_path / "hand.onnx").read_bytes()
    columns = [(c.name, c.kind == CATEGORICAL) for c in PLAN.columns]
    assert table_fast.rewrite(data, columns, np.dtype(np.float32)) is None


@st.composite
def plans(draw: st.DrawFn) -> TablePlan:
    kinds = draw(st.lists(st.sampled_from([CATEGORICAL, NUMERIC]), min_size=1, max_size=4))
    columns = []
    for i, kind in enumerate(kinds):
        if kind == CATEGORICAL:
            seen = draw(st.lists(TEXTS, min_size=2, max_size=6, unique=True))
            kept = draw(st.integers(2, len(seen)))
            levels, other = tuple(sorted(seen[:kept])), tuple(seen[kept:])
            fill = draw(st.one_of(st.none(), st.sampled_from(levels + other)))
            indicator = fill is not None and draw(st.booleans())
            columns.append(ColumnPlan(f"c{i}", kind, "string", levels, other, fill, indicator))
        else:
            fill = draw(st.one_of(st.none(), st.floats(-10, 10)))
            indicator = fill is not None and draw(st.booleans())
            columns.append(ColumnPlan(f"n{i}", kind, "float", fill=fill, indicator=indicator))
    policy = draw(st.sampled_from(["error", "reference"]))
    return TablePlan(tuple(columns), missing="mean", na_values=("NA",), unknown_level=policy)


def _cells(column: ColumnPlan) -> st.SearchStrategy[Any]:
    hostile = st.sampled_from(
        [None, "", "NA", float("nan"), float("inf"), -1e300, True, False, 2**60 + 1, ["x"]]
    )
    gaps = st.sampled_from([None, "", "NA", float("nan")])
    if column.kind == CATEGORICAL:
        known = st.sampled_from(column.levels + column.other)
        typed = known.map(np.str_)
        unseen = st.just("unseen!")
        return st.one_of(known, known, typed, unseen, st.integers(0, 3), gaps, hostile)
    plain = st.floats(-100, 100)
    big = st.integers(-(2**60), 2**60)
    return st.one_of(plain, plain, big, plain.map(np.float32), st.integers(-5, 5), gaps, hostile)


@st.composite
def cases(draw: st.DrawFn) -> tuple[TablePlan, list[Any], str, str, bool]:
    plan = draw(plans())
    row = [draw(_cells(column)) for column in plan.columns]
    form = draw(st.sampled_from(["record", "[record]", "row"]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return plan, row, form, dtype, draw(st.booleans())


def _outcome(predictor: Predictor, data: Any) -> tuple[Any, ...]:
    """(prediction or the error's type and words, counts, every warning's kind and words:
    numpy's too, such as an overflow in a cast that the other path does not warn of)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result: Any = predictor.predict(data)
            counts: Any = predictor.predict_counted(data)[1].tolist()
        except Exception as error:  # the same error both ways, whatever it is
            result, counts = (type(error).__name__, str(error)), None
    said = [(w.category.__name__, str(w.message)) for w in caught]
    return result, counts, said


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_one_row_answers_and_errors_equal_the_general_paths(case):
    plan, row, form, dtype, allow = case
    weight, bias = weights(plan, targets=2)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.onnx"
        onnx.save_model(exported_proto(plan, weight, bias, dtype), path)
        fast = Predictor(path, allow_non_finite=allow)
        general = _general(path, allow_non_finite=allow)
        direct = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert fast._table.one_row is not None
    record = dict(zip(plan.raw_names, row, strict=True))
    data = {"record": record, "[record]": [record], "row": row}[form]
    got, counts, said = _outcome(fast, data)
    expected, expected_counts, expected_said = _outcome(general, data)
    assert said == expected_said and counts == expected_counts
    if isinstance(expected, tuple):
        assert got == expected
        return
    assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True)
    feeds = general.prepare(data)  # the raw inputs onnxruntime takes, run on the file itself
    answer = direct.run(["prediction"], feeds)[0]
    assert np.array_equal(got, answer, equal_nan=True)


def test_each_thread_binds_its_own_buffers(tmp_path):
    path = write_exported(tmp_path / "m.onnx", PLAN, 2, "float64")
    fast, general = Predictor(path), _general(path)
    records = [
        {"firm": firm, "value": float(i), "capital": -i / 3, "union": i % 2 == 0}
        for i, firm in enumerate(["GM", "IBM", "GE", "Chrysler", "Atlantic"] * 4)
    ]
    expected = [general.predict(r) for r in records]
    import threading

    failures = []

    def work(offset: int) -> None:
        for i in range(400):
            k = (i * 7 + offset) % len(records)
            if not np.array_equal(fast.predict(records[k]), expected[k]):
                failures.append(k)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


GM = {"firm": "GM", "value": 1.5, "capital": 2.0, "union": True}


@pytest.mark.parametrize(
    "data",
    [
        GM,
        [GM],
        list(GM.values()),
        {**GM, "firm": "Ford"},  # unknown level
        {**GM, "firm": np.str_("IBM")},
        {**GM, "firm": ""},  # missing: the fill
        {**GM, "value": None},  # missing: the fill
        {**GM, "capital": None},  # missing without a fill
        {**GM, "capital": 2**24 + 1},  # rounds in float32 as numpy rounds it
        {**GM, "capital": 2**60 + 1},
        {**GM, "capital": float("inf")},
        {**GM, "capital": 1e300},
        {**GM, "capital": "2.0"},
        {**GM, "union": "yes"},
        {**GM, "union": ["x"]},
        {k: v for k, v in GM.items() if k != "union"},  # a missing column
        {**GM, "extra": 1.0},
        {"firm": "GM", "value": 1.5, "capital": 2.0, "unoin": True},  # a typo
        {k: [v] for k, v in GM.items()},  # one row as columns
    ],
)
@pytest.mark.parametrize("policy", ["error", "reference"])
def test_edge_cells_answer_as_the_general_path(tmp_path, data, policy):
    path = write_exported(tmp_path / "m.onnx", PLAN.with_unknown_level(policy), 2, "float32")
    fast, general = Predictor(path), _general(path)
    assert fast._table.one_row is not None
    got, expected = _outcome(fast, data), _outcome(general, data)
    assert got[1:] == expected[1:]
    if isinstance(expected[0], tuple):
        assert got[0] == expected[0]
    else:
        assert np.array_equal(got[0], expected[0], equal_nan=True)
