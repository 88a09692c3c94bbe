"""The one encoder against independent references: pandas' get_dummies, and a one-hot
written out in plain Python for random level sets with gaps (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from table_data import blocks, grunfeld, planned

from toolkit.columns import CATEGORICAL, NUMERIC, ColumnPlan, TablePlan
from toolkit.io import TableOptions, build_plan, encode, open_source, scan


def test_grunfeld_encodes_as_pandas_get_dummies_with_the_first_level_dropped():
    frame = grunfeld()
    options = TableOptions(categorical=("year",))
    source, plan, _ = planned(frame, options, target="invest")
    # pandas sorts the levels (code point order for text, numbers by value) as R does.
    expected = pd.get_dummies(
        frame[["value", "capital", "firm", "year"]],
        columns=["firm", "year"],
        drop_first=True,
        dtype=float,
    )
    assert plan.encoded_names == [
        name if name in ("value", "capital") else f"{name.split('_')[0]}[{name.split('_', 1)[1]}]"
        for name in expected.columns
    ]
    block = blocks(source, rows=7)
    np.testing.assert_array_equal(block[:, :-1], expected.to_numpy())  # 0/1 and copies: exact
    np.testing.assert_array_equal(block[:, -1], frame["invest"].to_numpy())


def _plan(levels: list[str], other: list[str], fill=None, indicator=False) -> TablePlan:
    return TablePlan(
        (
            ColumnPlan("n", NUMERIC, "float", fill=1.5 if fill else None, indicator=indicator),
            ColumnPlan("c", CATEGORICAL, "string", tuple(levels), tuple(other), fill, indicator),
        ),
        missing="mean" if fill else "drop",
    )


def _by_hand(plan: TablePlan, numbers: list, texts: list) -> tuple[list[list[float]], list[int]]:
    """The encoding written out row by row: the reference for the vectorised one."""
    numeric, column = plan.columns
    rows, unknown = [], []
    for number, text in zip(numbers, texts, strict=True):
        gap_n, gap_c = number is None, text is None or text == ""
        row = [
            numeric.fill
            if gap_n and numeric.fill is not None
            else (float("nan") if gap_n else number)
        ]
        if numeric.indicator:
            row.append(float(gap_n))
        value = column.fill if gap_c and column.fill is not None else text
        hot = [0.0] * (len(column.levels) - 1 + (1 if column.other else 0))
        if value in column.levels[1:]:
            hot[column.levels.index(value) - 1] = 1.0
        elif value in column.other:
            hot[-1] = 1.0
        row += hot
        if column.indicator:
            row.append(float(gap_c))
        rows.append(row)
        unknown.append(int(not gap_c and value not in column.levels and value not in column.other))
    return rows, unknown


alphabet = st.text(alphabet='abcé ,"', min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(
    levels=st.lists(alphabet, min_size=1, max_size=6, unique=True),
    data=st.data(),
)
def test_encode_equals_a_one_hot_written_by_hand(levels, data):
    levels = sorted(levels)
    split = data.draw(st.integers(1, len(levels)))
    kept, other = levels[:split], levels[split:]
    imputed = data.draw(st.booleans())
    fill = data.draw(st.sampled_from(kept)) if imputed else None
    plan = _plan(kept, other, fill, indicator=imputed and data.draw(st.booleans()))
    n = data.draw(st.integers(0, 30))
    texts = data.draw(st.lists(st.sampled_from([*levels, None, "", "zz"]), min_size=n, max_size=n))
    numbers = data.draw(
        st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=n, max_size=n)
    )
    raw = pa.table({"n": pa.array(numbers, pa.float64()), "c": pa.array(texts, pa.string())})
    encoded = encode(raw, plan)
    rows, unknown = _by_hand(plan, numbers, texts)
    expected = np.array(rows, dtype=float).reshape(n, len(plan.encoded_names))
    np.testing.assert_array_equal(encoded.block, expected)
    np.testing.assert_array_equal(encoded.unknown, unknown)
    gaps = [[x is None, t is None or t == ""] for x, t in zip(numbers, texts, strict=True)]
    np.testing.assert_array_equal(encoded.missing, np.array(gaps, dtype=bool).reshape(n, 2))


def test_every_arrow_type_of_a_category_encodes_alike():
    plan = TablePlan(
        (
            ColumnPlan("s", CATEGORICAL, "string", ("a", "b")),
            ColumnPlan("b", CATEGORICAL, "bool", ("false", "true")),
            ColumnPlan("i", CATEGORICAL, "int", ("-2", "3", "10")),
        )
    )
    expected = encode(
        {
            "s": pa.array(["b", "a", None]),
            "b": pa.array([True, False, None]),
            "i": pa.array([10, -2, 3], pa.int64()),
        },
        plan,
    ).block
    variants = {
        "s": [
            pa.array(["b", "a", None], pa.large_string()),
            pa.array(["b", "a", None]).dictionary_encode(),
            ["b", "a", None],
        ],
        "i": [pa.array([10, -2, 3], pa.int8()), pa.array([10, -2, 3], pa.int32())],
    }
    for column, arrays in variants.items():
        for array in arrays:
            data = {"s": pa.array(["b", "a", None]), "b": pa.array([True, False, None])}
            data["i"] = pa.array([10, -2, 3])
            data[column] = array
            np.testing.assert_array_equal(encode(data, plan).block, expected)
    # bool as "true"/"false", ints in decimal: "3" sorts before "10" by value.
    assert plan.encoded_names == ["s[b]", "b[true]", "i[3]", "i[10]"]
    np.testing.assert_array_equal(expected, [[1, 1, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0]])


def test_unknown_levels_are_counted_per_row_and_encode_as_the_reference():
    plan = TablePlan(
        (
            ColumnPlan("a", CATEGORICAL, "string", ("x", "y")),
            ColumnPlan("b", CATEGORICAL, "int", ("1", "2"), ("5",)),
        )
    )
    encoded = encode({"a": ["q", "y", None, "q"], "b": [7, 5, 9, None]}, plan)
    np.testing.assert_array_equal(encoded.unknown, [2, 0, 1, 1])
    np.testing.assert_array_equal(encoded.block, [[0, 0, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(encoded.missing_rows, [False, False, True, True])


def test_encode_writes_into_a_view_of_a_wider_block():
    plan = _plan(["a", "b"], ["c"])
    block = np.full((3, 5), 7.0)
    encode({"n": [1.0, 2.0, 3.0], "c": ["b", "c", "a"]}, plan, out=block[:, :3])
    np.testing.assert_array_equal(block, [[1, 1, 0, 7, 7], [2, 0, 1, 7, 7], [3, 0, 0, 7, 7]])


@pytest.mark.parametrize("tokens", [(), ("nan",), ("inf",), ("nan", "inf")])
def test_nan_and_infinity_are_missing_only_when_named(tokens):
    plan = TablePlan((ColumnPlan("n", NUMERIC, "float"),), missing="drop", na_values=tokens)
    arrow = pa.array([float("nan"), float("inf"), 1.0, None])
    encoded = encode({"n": arrow}, plan)
    assert encoded.missing[:, 0].tolist() == ["nan" in tokens, "inf" in tokens, False, True]
    # numpy arrays and lists are read as pandas reads them (NaN is missing), as the ONNX
    # graph reads its numeric inputs.
    numpy = encode({"n": np.array([np.nan, np.inf, 1.0])}, plan)
    assert numpy.missing[:, 0].tolist() == [True, "inf" in tokens, False]


def test_a_plan_from_a_scan_encodes_the_scanned_table_like_pandas():
    frame = pd.DataFrame({"c": ["b", "a", "c", "a"], "k": [3, 1, 3, 2], "y": [1.0, 2, 3, 4]})
    options = TableOptions(categorical=("k",))
    source = open_source(frame, ["y"], options=options)
    plan = build_plan(scan(source, None, 3, options), options, ["c", "k"])
    expected = pd.get_dummies(frame[["c", "k"]], columns=["c", "k"], drop_first=True, dtype=float)
    np.testing.assert_array_equal(encode(pa.Table.from_pandas(frame), plan).block, expected)


def test_level_texts_encode_as_their_typed_values():
    # The ONNX graph takes every categorical input as text: "7", "true", "" for missing.
    plan = TablePlan(
        (
            ColumnPlan("b", CATEGORICAL, "bool", ("false", "true")),
            ColumnPlan("i", CATEGORICAL, "int", ("2", "7", "10")),
        ),
        missing="drop",
    )
    typed = encode({"b": pa.array([True, False, None]), "i": pa.array([10, 7, None])}, plan)
    texts = encode({"b": np.array(["true", "false", ""]), "i": ["10", "7", ""]}, plan)
    floats = encode({"b": [True, False, None], "i": np.array([10.0, 7.0, np.nan])}, plan)
    for other in (texts, floats):
        np.testing.assert_array_equal(other.block, typed.block)
        np.testing.assert_array_equal(other.missing, typed.missing)


def test_the_encoded_grunfeld_design_fits_statsmodels_formula_coefficients():
    import statsmodels.formula.api as smf

    frame = grunfeld()
    source, plan, _ = planned(frame, TableOptions(categorical=("year",)), target="invest", rows=7)
    block = blocks(source, rows=7)
    design = np.column_stack([np.ones(len(block)), block[:, :-1]])
    ours = np.linalg.lstsq(design, block[:, -1], rcond=None)[0]
    fit = smf.ols("invest ~ value + capital + C(firm) + C(year)", data=frame).fit()
    # statsmodels names C(firm)[T.Chrysler] what the plan names firm[Chrysler].
    names = ["Intercept"] + [
        f"C({n.split('[')[0]})[T.{n.split('[', 1)[1]}" if "[" in n else n
        for n in plan.encoded_names
    ]
    # Both solve the same least squares problem in float64 (QR / pinv against lstsq's
    # SVD); the condition number of this design (~1e5) leaves ~1e-11 of difference.
    np.testing.assert_allclose(ours, fit.params[names].to_numpy(), rtol=1e-8)
