"""Missing values against pandas and scikit-learn: drop (dropna), mean / median / mode
fills and indicators (SimpleImputer), the error's counts and rows, and tokens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.impute import SimpleImputer
from table_data import blocks, gappy, planned, write_csv, write_parquet

from toolkit.columns import numeric_plan
from toolkit.errors import DataError
from toolkit.io import TableOptions, build_plan, open_source, scan


def _dummies(frame: pd.DataFrame) -> np.ndarray:
    """The features as the plan encodes them, by pandas: bool as "false"/"true" texts."""
    text = frame[["x", "city", "flag", "size"]].copy()
    text["flag"] = text["flag"].map({True: "true", False: "false"}, na_action="ignore")
    text["x"] = text["x"].astype(float)
    return pd.get_dummies(
        text, columns=["city", "flag", "size"], drop_first=True, dtype=float
    ).to_numpy()


@pytest.mark.parametrize("kind", ["frame", "csv", "parquet"])
def test_drop_drops_what_pandas_dropna_drops_and_counts_it(tmp_path, kind):
    frame = gappy(200)
    data = {
        "frame": frame,
        "csv": write_csv(frame, tmp_path / "g.csv"),
        "parquet": write_parquet(frame, tmp_path / "g.parquet", row_group_size=30),
    }[kind]
    options = TableOptions(categorical=("size",), missing="drop")
    source, plan, _ = planned(data, options, rows=7)
    block = blocks(source, rows=7)
    kept = frame.dropna()
    np.testing.assert_array_equal(block[:, :-1], _dummies(kept))
    np.testing.assert_array_equal(block[:, -1], kept["y"])
    assert source.dropped.rows == len(frame) - len(kept)
    assert source.dropped.cells == {c: int(n) for c, n in frame.isna().sum().items() if n}
    assert source.dropped.note().startswith(f"dropped {len(frame) - len(kept)} rows")
    assert [c.missing_count for c in plan.columns] == frame[
        ["x", "city", "flag", "size"]
    ].isna().sum().tolist()


@pytest.mark.parametrize("strategy", ["mean", "median"])
def test_mean_and_median_fill_as_simple_imputer_with_its_indicators(tmp_path, strategy):
    frame = gappy(300, seed=2)
    frame["full"] = np.arange(300) * 0.5  # no gap: filled at prediction time, no indicator
    options = TableOptions(categorical=("size",), missing=strategy, indicator=True)
    source, plan, _ = planned(write_csv(frame, tmp_path / "g.csv"), options, rows=11)
    block = blocks(source, rows=11)
    numeric = frame[["x", "full"]].astype(float).to_numpy()
    imputer = SimpleImputer(strategy=strategy, add_indicator=True).fit(numeric)
    expected = imputer.transform(numeric)  # x, full, then x's indicator (full has no gaps)
    names = plan.encoded_names
    assert names[:2] == ["x", "x[(missing)]"] and "full" in names and "full[(missing)]" not in names
    np.testing.assert_allclose(block[:, 0], expected[:, 0], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(block[:, 1], expected[:, 2])
    np.testing.assert_array_equal(block[:, names.index("full")], expected[:, 1])
    # Categorical columns: the most frequent level (SimpleImputer's ties: the smallest).
    for column in ("city", "flag", "size"):
        values = frame[column].dropna().astype(str).to_numpy(dtype=object)
        if column == "flag":
            values = np.char.lower(values.astype(str)).astype(object)
        mode = SimpleImputer(strategy="most_frequent").fit(values.reshape(-1, 1)).statistics_[0]
        assert plan.columns[["x", "city", "flag", "size", "full"].index(column)].fill == mode
    assert "'x', 'city', 'flag', 'size'" in plan.notes[-1]


def test_the_mean_is_numpys_mean_of_the_observed_values():
    frame = gappy(500, seed=9)
    _, plan, _ = planned(frame, TableOptions(missing="mean"))
    observed = frame["x"].dropna().to_numpy(dtype=float)
    # numpy's pairwise sum rounds ~log2(n) times; ours rounds once: within 2 ulp here.
    assert plan.columns[0].fill == pytest.approx(np.mean(observed), rel=2 * np.finfo(float).eps)


def test_error_counts_rows_and_cells_and_names_the_first_rows(tmp_path):
    frame = gappy(40)
    path = write_csv(frame, tmp_path / "g.csv")
    options = TableOptions(categorical=("size",))
    missing = frame.isna()
    rows = np.flatnonzero(missing.any(axis=1))
    cells = ", ".join(f"{c!r} {int(n)}" for c, n in missing.sum().items() if n)
    summary = (
        f"{len(rows)} rows have missing values ({int(missing.sum().sum())} cells: {cells}); "
        f"first rows: {', '.join(str(r + 2) for r in rows[:5])}. Choose --missing drop, mean "
        "or median, or fill them in."
    )
    with pytest.raises(DataError) as caught:
        planned(path, options)
    assert str(caught.value) == f"{path}: {summary}"
    # A source given a plan that does not expect gaps meets them while reading.
    source = open_source(path, ["y"], options=options)
    plan = build_plan(
        scan(source, None, 7, TableOptions(categorical=("size",), missing="drop")),
        TableOptions(categorical=("size",), missing="drop"),
        source.raw_feature_names,
    )
    from dataclasses import replace

    strict = source.with_plan(replace(plan, missing="error"))
    with pytest.raises(DataError) as caught:
        blocks(strict, rows=7)
    first = rows[0]
    column = missing.columns[int(np.argmax(missing.iloc[first]))]
    assert str(caught.value) == (
        f"{path}, row {first + 2}, column {column!r}: missing value. In all, {summary}"
    )


def test_todays_numeric_path_counts_every_blank_cell_too(write_csv):
    path = write_csv("n.csv", "a,b,y\n1,2,3\n4,,6\n,,9\n7,8,\n")
    source = open_source(path, ["y"])
    with pytest.raises(DataError) as caught:
        list(source.blocks())
    assert str(caught.value) == (
        f"{path}, row 4, column 'a': blank cell; expected a number. In all, 3 rows have "
        "missing values (4 cells: 'a' 1, 'b' 2, 'y' 1); first rows: 3, 4, 5. Choose "
        "--missing drop, mean or median, or fill them in."
    )
    table = pa.table({"a": [1.0, None], "y": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"row 1, column 'a': blank cell; .* first row: 1\."):
        list(open_source(table, ["y"]).blocks())


def test_targets_and_weights_are_never_imputed(write_csv):
    path = write_csv("t.csv", "x,w,y\n1,1,1\n,1,2\n3,,3\n4,1,\n")
    options = TableOptions(missing="mean")
    with pytest.raises(DataError) as caught:
        planned(path, options, weight="w")
    assert str(caught.value) == (
        "target 'y' has 1 missing value (first rows: 5); weight 'w' has 1 missing value "
        "(first rows: 4). Targets and weights are never imputed: choose --missing drop, or "
        "fill them in."
    )
    source, _, _ = planned(path, TableOptions(missing="drop"), weight="w")
    np.testing.assert_array_equal(blocks(source), [[1.0, 1.0, 1.0]])
    assert source.dropped.cells == {"x": 1, "w": 1, "y": 1}


def test_na_values_tokens_are_missing_in_text_and_numbers(write_csv):
    path = write_csv("na.csv", "x,c,y\nNA,a,1\n2,?,2\n3,NA,3\n4,b,4\nnan,b,5\n")
    options = TableOptions(na_values=("NA", "?", "nan"), missing="drop")
    source, plan, stats = planned(path, options)
    assert stats.columns["x"].missing == 2 and stats.columns["c"].missing == 2
    assert plan.columns[1].levels == ("b",)  # "a" only on a dropped row: no level (R's lm)
    np.testing.assert_array_equal(blocks(source), [[4.0, 4.0]])
    # Without the tokens, "NA" is text: `x` is a categorical column of "NA", "2", ...
    with pytest.raises(DataError, match=r"row 6, column 'x': expected a finite number, got nan"):
        planned(write_csv("nan.csv", "x,y\n1,1\n2,2\n3,3\n4,4\nnan,5\n"), TableOptions())


def test_pandas_none_and_nan_in_object_columns_are_missing():
    frame = pd.DataFrame(
        {
            "c": pd.array(["a", None, np.nan, "b", ""], dtype=object),
            "k": pd.Categorical(["u", "v", None, "u", "v"]),
            "y": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    _, plan, stats = planned(frame, TableOptions(missing="drop"))
    assert stats.columns["c"].missing == 3 and stats.columns["k"].missing == 1
    assert plan.columns[0].levels == ("a", "b")


def test_a_trivial_plan_keeps_the_numeric_path_byte_for_byte(tmp_path):
    frame = pd.DataFrame({"a": [1.5, 2.5, 3.5], "b": [1, 2, 3], "y": [0.1, 0.2, 0.3]})
    path = write_csv(frame, tmp_path / "n.csv")
    source = open_source(path, ["y"])
    planned_source = source.with_plan(numeric_plan(["a", "b"]))
    assert not planned_source.planned
    assert blocks(planned_source).tobytes() == blocks(source).tobytes()
    # The same data through the planned path (drop: nothing to drop) gives the same bytes.
    dropping = source.with_plan(build_plan(scan(source), TableOptions(missing="drop"), ["a", "b"]))
    assert dropping.planned
    assert blocks(dropping).tobytes() == blocks(source).tobytes()


def test_needs_plan_only_for_categories_or_missing_value_options(write_csv):
    from toolkit.io import needs_plan, plan_source

    numbers = open_source(write_csv("n.csv", "a,y\n1,2\n"), ["y"], options=TableOptions())
    text = open_source(write_csv("t.csv", "a,y\nu,2\n"), ["y"], options=TableOptions())
    assert not needs_plan(numbers, TableOptions())
    assert needs_plan(numbers, TableOptions(missing="drop"))
    assert needs_plan(numbers, TableOptions(na_values=("NA",)))
    assert needs_plan(text, TableOptions())
    plan = plan_source(text, TableOptions())
    assert plan.encoded_names == []  # one level: the reference
    assert plan.notes == (
        "column 'a': one level only ('u'), the reference: it adds no column to the model.",
    )
