"""The scan against pandas and exact arithmetic: level counts, missing counts, means
(exact sums), medians; the same statistics whatever the chunking, shards or split."""

from __future__ import annotations

import itertools
import math
import pickle
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_data import blocks, gappy, planned, write_csv, write_parquet

from toolkit.errors import DataError
from toolkit.io import ScanStats, TableOptions, build_plan, open_source, scan
from toolkit.io import scanner as scan_module
from toolkit.io.exact import exact_sum, mean


def _exact_mean(values) -> float:
    """The mean of float64 values in rational arithmetic, rounded once."""
    return float(sum(map(Fraction, values), Fraction(0)) / len(values))


@pytest.mark.parametrize(
    "values",
    [
        [1e308, 1e308, -1e308, -1e308, 1.0],
        [1e-320, 5e-324, -1e-320, 2.5e-300],
        [0.1] * 10,
        [1e16, 1.0, -1e16, 1.0, 3.0],
        [-0.0, 0.0],
    ],
)
def test_exact_sums_have_no_rounding(values):
    total = exact_sum(np.array(values))
    expected = sum(map(Fraction, values), Fraction(0))
    assert Fraction(total, 1 << 1126) == expected
    assert mean(total, len(values)) == _exact_mean(values)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=80),
    st.integers(1, 9),
)
def test_exact_sum_does_not_depend_on_the_chunking(values, chunk):
    whole = exact_sum(np.array(values))
    parts = sum(exact_sum(np.array(values[i : i + chunk])) for i in range(0, len(values), chunk))
    assert whole == parts
    assert Fraction(whole, 1 << 1126) == sum(map(Fraction, values), Fraction(0))


def test_the_scan_agrees_with_pandas(tmp_path):
    frame = gappy(300)
    options = TableOptions(categorical=("size",), missing="median")
    for data in (
        frame,
        write_csv(frame, tmp_path / "g.csv"),
        write_parquet(frame, tmp_path / "g.pq"),
    ):
        source = open_source(data, ["y"], options=options)
        stats = scan(source, None, 7, options)
        assert stats.rows == 300
        assert stats.missing_rows == int(frame.isna().any(axis=1).sum())
        for column in ("x", "city", "flag", "size", "y"):
            assert stats.columns[column].missing == int(frame[column].isna().sum()), column
        counts = frame["city"].value_counts().to_dict()
        assert stats.columns["city"].levels == counts
        flags = frame["flag"].dropna().map({True: "true", False: "false"}).value_counts()
        assert stats.columns["flag"].levels == flags.to_dict()
        sizes = frame["size"].dropna().astype(int).astype(str).value_counts()
        assert stats.columns["size"].levels == sizes.to_dict()
        x = frame["x"].dropna().to_numpy(dtype=float)
        x_stats = stats.columns["x"]
        assert x_stats.count == len(x)
        assert x_stats.mean == _exact_mean(x)
        # numpy sums pairwise: within a few ulp of the exact mean.
        assert x_stats.mean == pytest.approx(np.mean(x), rel=4 * np.finfo(float).eps)
        assert x_stats.median_exact and x_stats.median == np.median(x)


def test_first_missing_rows_are_the_rows_a_user_sees(tmp_path, write_csv):
    # Row 1 is the header; a blank line and a quoted newline shift the rows after them.
    path = write_csv("gaps.csv", 'x,c,y\n1,a,1\n\n2,"b\nb",2\n,a,3\n4,,4\n5,a,5\n')
    source = open_source(path, ["y"], options=TableOptions())
    stats = scan(source, None, 2)
    assert [ref.number for ref in stats.first_missing_rows] == [6, 7]
    assert [ref.number for ref in stats.columns["c"].first_missing] == [7]
    assert stats.missing_summary() == (
        "2 rows have missing values (2 cells: 'x' 1, 'c' 1); first rows: 6, 7."
    )
    table = pa.table({"x": [1.0, None, 3.0], "c": ["a", "b", ""], "y": [1.0, 2.0, 3.0]})
    pq_path = tmp_path / "gaps.parquet"
    import pyarrow.parquet as pq

    pq.write_table(table, pq_path)
    refs = scan(open_source(pq_path, ["y"], options=TableOptions())).first_missing_rows
    assert [ref.number for ref in refs] == [2, 3]  # Parquet: data row 1 is row 1
    refs = scan(open_source(table, ["y"], options=TableOptions())).first_missing_rows
    assert [ref.number for ref in refs] == [1, 2]  # in memory: from 0, as pandas counts


def _split_frames(frame: pd.DataFrame, cuts: list[int]) -> list[pd.DataFrame]:
    edges = [0, *sorted(set(cuts)), len(frame)]
    return [frame.iloc[a:b] for a, b in itertools.pairwise(edges) if b > a]


# The patched constant is the same for every input: the fixture's scope does not matter.
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    levels=st.lists(st.text("abxyz", min_size=1, max_size=2), min_size=1, max_size=8, unique=True),
    data=st.data(),
)
def test_merged_scans_of_parts_equal_the_scan_of_the_whole(levels, data, monkeypatch):
    monkeypatch.setattr(scan_module, "MEDIAN_SAMPLE", 16)  # the sketch, not the exact path
    n = data.draw(st.integers(1, 60))
    texts = data.draw(st.lists(st.sampled_from([*levels, None, ""]), min_size=n, max_size=n))
    numbers = data.draw(
        st.lists(st.one_of(st.none(), st.floats(-1e9, 1e9)), min_size=n, max_size=n)
    )
    frame = pd.DataFrame(
        {"c": pd.array(texts, dtype=object), "x": numbers, "y": np.arange(n) * 1.0}
    )
    options = TableOptions(missing="median")
    whole = scan(open_source(frame, ["y"], options=options), None, 5, options)
    cuts = data.draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=3))
    parts = [
        scan(open_source(part, ["y"], options=options), None, data.draw(st.integers(1, 9)), options)
        for part in _split_frames(frame, cuts)
    ]
    merged = ScanStats.merge(pickle.loads(pickle.dumps(parts)))  # as all_gather_object does
    for name in ("c", "x", "y"):
        a, b = whole.columns[name], merged.columns[name]
        assert (a.levels, a.missing, a.count, a.exact_sum) == (
            b.levels,
            b.missing,
            b.count,
            b.exact_sum,
        )
        if name == "x" and a.sketch_value is not None:
            np.testing.assert_array_equal(a.sketch_value, b.sketch_value)
            assert a.median == b.median or (math.isnan(a.median) and math.isnan(b.median))
    assert (whole.rows, whole.missing_rows) == (merged.rows, merged.missing_rows)
    if whole.columns["x"].count and whole.columns["c"].levels:
        assert build_plan(whole, options, ["c", "x"]) == build_plan(merged, options, ["c", "x"])


def test_shards_chunks_and_processes_give_one_plan_and_the_same_blocks(tmp_path):
    frame = gappy(240, seed=4)
    options = TableOptions(categorical=("size",), missing="mean", indicator=True)
    whole = write_csv(frame, tmp_path / "whole.csv")
    folder = tmp_path / "shards"
    folder.mkdir()
    write_csv(frame.iloc[:90], folder / "a.csv")
    write_parquet(frame.iloc[90:170], folder / "b.parquet", row_group_size=13)
    write_csv(frame.iloc[170:], folder / "c.csv")
    reference, plan, _ = planned(whole, options)
    expected = blocks(reference)
    for data, rows in ((whole, 7), (folder, 7), (folder, 65_536), (frame, 7)):
        source, other, _ = planned(data, options, rows=rows)
        # `size` is "int" in a typed frame, and in CSV (read as text since --categorical
        # names it) because every level is an integer: its levels sort by value.
        assert [c.raw_type for c in other.columns] == ["float", "string", "bool", "int"]
        assert other == plan
        np.testing.assert_array_equal(blocks(source, rows), expected)
    # Two processes (torchrun): each scans its pieces; the merge is the same plan.
    source = open_source(folder, ["y"], options=options)
    parts = [scan(source, source.pieces(rank, 2), 7, options) for rank in range(2)]
    assert build_plan(ScanStats.merge(parts), options, source.raw_feature_names) == plan
    planned_source = source.with_plan(plan)
    halves = [
        np.concatenate(list(planned_source.blocks(planned_source.pieces(r, 2), 7)))
        for r in range(2)
    ]
    np.testing.assert_array_equal(np.concatenate(halves), expected)


def test_the_median_sketch_is_deterministic_and_said_to_be_approximate(monkeypatch):
    monkeypatch.setattr(scan_module, "MEDIAN_SAMPLE", 64)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.exponential(size=1000), "y": rng.normal(size=1000)})
    options = TableOptions(missing="median")
    source = open_source(frame, ["y"], options=options)
    one = scan(source, None, 100, options)
    again = scan(source, None, 37, options)
    assert not one.columns["x"].median_exact
    assert len(one.columns["x"].sketch_value) == 64
    assert one.columns["x"].median == again.columns["x"].median
    # A uniform sample of 64: its median within a few standard errors of the true one.
    assert abs(one.columns["x"].median - np.median(frame["x"])) < 0.25
    plan = build_plan(one, options, ["x"])
    assert plan.columns[0].fill == one.columns["x"].median
    assert "approximate" in plan.notes[0] and "64" in plan.notes[0]


def test_too_many_distinct_levels_is_an_error_naming_the_column(monkeypatch):
    monkeypatch.setattr(scan_module, "MAX_DISTINCT_LEVELS", 10)
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(30)], "y": np.arange(30.0)})
    source = open_source(frame, ["y"], options=TableOptions())
    with pytest.raises(DataError, match=r"column 'id': more than 10 distinct values.*--features"):
        scan(source, None, 7)


def test_non_finite_numbers_are_errors_unless_named_missing(write_csv):
    path = write_csv("nan.csv", "x,y\n1,1\nnan,2\n3,3\n")
    source = open_source(path, ["y"], options=TableOptions())
    with pytest.raises(DataError, match=r"row 3, column 'x': expected a finite number, got nan"):
        scan(source)
    options = TableOptions(na_values=("nan",), missing="drop")
    stats = scan(open_source(path, ["y"], options=options), None, 2, options)
    assert stats.columns["x"].missing == 1 and stats.columns["x"].mean == 2.0


def test_rare_levels_fold_into_other_and_the_notes_say_so():
    # Counts: d 5, b 4, a 4, c 2, e 1; ties (a, b) in natural order.
    city = ["d"] * 5 + ["b"] * 4 + ["a"] * 4 + ["c"] * 2 + ["e"] + [None]
    frame = pd.DataFrame({"city": city, "x": [float(i) for i in range(16)] + [None], "y": 1.0})
    options = TableOptions(max_levels=3, missing="mean")
    source, plan, _ = planned(frame, options, rows=4)
    column = plan.columns[0]
    assert (column.levels, column.other, column.fill) == (("a", "d"), ("b", "c", "e"), "d")
    assert plan.encoded_names == ["city[d]", "city[(other)]", "x"]
    assert plan.notes == (
        "column 'city': 5 levels; kept the 2 most frequent, 3 share '(other)' (--max-levels 3).",
        "column 'city': 1 missing value filled with its most frequent level, 'd'.",
        "column 'x': 1 missing value filled with its mean, 7.5.",
    )
    folded = frame["city"].fillna("d").replace({"b": "(other)", "c": "(other)", "e": "(other)"})
    expected = pd.get_dummies(folded, dtype=float)[["d", "(other)"]].to_numpy()
    np.testing.assert_array_equal(blocks(source, rows=4)[:, :2], expected)
