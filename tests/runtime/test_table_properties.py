"""Property test: for random plans (level sets, folded levels, fills, indicators, numeric
columns) and random raw rows with gaps and unknown levels, in a random input form,
Predictor.predict on toolkit's exported graph equals the pandas one-hot reference of
tests/table_models.py, and its unknown-level counts equal a count by hand.

float64 models: the graph and the reference add the same few products in another order,
so 1e-9 absolute bounds the difference for values below 100 and weights below 5.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_models import exported_proto, reference_predict, weights

from toolkit.columns import CATEGORICAL, NUMERIC, ColumnPlan, TablePlan
from toolkit.runtime import Predictor

TEXTS = st.text(alphabet="abcXYZ é1", min_size=1, max_size=4)


@st.composite
def categorical(draw: st.DrawFn, name: str) -> ColumnPlan:
    seen = draw(st.lists(TEXTS, min_size=2, max_size=6, unique=True))
    kept = draw(st.integers(2, len(seen)))
    levels, other = tuple(sorted(seen[:kept])), tuple(seen[kept:])
    fill = draw(st.one_of(st.none(), st.sampled_from(levels + other)))
    indicator = fill is not None and draw(st.booleans())
    return ColumnPlan(name, CATEGORICAL, "string", levels, other, fill, indicator)


@st.composite
def numeric(draw: st.DrawFn, name: str) -> ColumnPlan:
    fill = draw(st.one_of(st.none(), st.floats(-10, 10)))
    indicator = fill is not None and draw(st.booleans())
    return ColumnPlan(name, NUMERIC, "float", fill=fill, indicator=indicator)


@st.composite
def plans(draw: st.DrawFn) -> TablePlan:
    kinds = draw(st.lists(st.sampled_from([CATEGORICAL, NUMERIC]), min_size=1, max_size=4))
    if CATEGORICAL not in kinds:
        kinds[0] = CATEGORICAL
    columns = [
        draw(categorical(f"c{i}") if kind == CATEGORICAL else numeric(f"n{i}"))
        for i, kind in enumerate(kinds)
    ]
    return TablePlan(tuple(columns), missing="mean", unknown_level="reference")


@st.composite
def cells(draw: st.DrawFn, column: ColumnPlan) -> object:
    gaps = [None, ""] if column.kind == CATEGORICAL else [None, float("nan")]
    choices = [st.sampled_from(gaps)] if column.fill is not None else []
    if column.kind == CATEGORICAL:
        choices += [st.sampled_from(column.levels + column.other), st.just("unseen!")]
    else:
        choices.append(st.floats(-100, 100))
    return draw(st.one_of(*choices))


@st.composite
def tables(draw: st.DrawFn) -> tuple[TablePlan, list[list[object]], str]:
    plan = draw(plans())
    rows = draw(
        st.lists(st.tuples(*(cells(column) for column in plan.columns)), min_size=1, max_size=12)
    )
    form = draw(st.sampled_from(["records", "rows", "columns", "pandas"]))
    return plan, [list(row) for row in rows], form


def _as(form: str, names: list[str], rows: list[list[object]]) -> object:
    if form == "records":
        return [dict(zip(names, row, strict=True)) for row in rows]
    if form == "columns":
        return {name: [row[j] for row in rows] for j, name in enumerate(names)}
    if form == "pandas":
        return pd.DataFrame(rows, columns=names)
    return rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_random_plans_and_rows_equal_the_pandas_reference(table):
    plan, rows, form = table
    weight, bias = weights(plan, targets=2)
    names = plan.raw_names
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.onnx"
        import onnx

        onnx.save_model(exported_proto(plan, weight, bias, np.float64), path)
        predictor = Predictor(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unseen levels warn under "reference"
        got = predictor.predict(_as(form, names, rows))
        _, counts = predictor.predict_counted(_as(form, names, rows))
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    expected = reference_predict(plan, frame, weight, bias)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    by_hand = [sum(value == "unseen!" for value in row) for row in rows]
    np.testing.assert_array_equal(counts, by_hand)
