"""Column kinds: from Parquet and Arrow schemas, from CSV by inference on the first block,
with --categorical; and the options' refusals, worded for the command line."""

from __future__ import annotations

import datetime

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.errors import DataError, UsageError
from toolkit.io import ColumnKind, TableOptions, open_source
from toolkit.io.csv import CSV_BLOCK_BYTES

ARROW_COLUMNS = {
    "s": pa.array(["a", "b"]),
    "ls": pa.array(["a", "b"], pa.large_string()),
    "d": pa.array(["a", "b"]).dictionary_encode(),
    "b": pa.array([True, False]),
    "i": pa.array([1, 2], pa.int16()),
    "f": pa.array([1.5, 2.5], pa.float32()),
    "y": pa.array([1.0, 2.0]),
}
EXPECTED = [
    ColumnKind("s", "categorical", "string"),
    ColumnKind("ls", "categorical", "string"),
    ColumnKind("d", "categorical", "string"),
    ColumnKind("b", "categorical", "bool"),
    ColumnKind("i", "numeric", "int"),
    ColumnKind("f", "numeric", "float"),
]


def test_kinds_from_parquet_and_in_memory_schemas(tmp_path):
    table = pa.table(ARROW_COLUMNS)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    options = TableOptions()
    for data in (table, path, table.to_pandas(), pl.from_arrow(table)):
        assert open_source(data, ["y"], options=options).kinds(options) == EXPECTED
    named = TableOptions(categorical=("i",))
    kinds = open_source(path, ["y"], options=named).kinds(named)
    assert kinds[4] == ColumnKind("i", "categorical", "int")


def test_pandas_and_polars_categories_are_categorical():
    frame = pd.DataFrame(
        {
            "c": pd.Categorical(["x", "y", "x"]),
            "o": pd.array(["p", None, "q"], dtype=object),
            "y": [1.0, 2.0, 3.0],
        }
    )
    options = TableOptions()
    assert [k.kind for k in open_source(frame, ["y"], options=options).kinds(options)] == [
        "categorical",
        "categorical",
    ]
    polars = pl.DataFrame(
        {
            "c": pl.Series(["x", "y"], dtype=pl.Categorical),
            "e": pl.Series(["u", "v"], dtype=pl.Enum(["u", "v"])),
            "y": [1.0, 2.0],
        }
    )
    kinds = open_source(polars, ["y"], options=options).kinds(options)
    assert [(k.kind, k.raw_type) for k in kinds] == [("categorical", "string")] * 2


def test_csv_kinds_are_inferred_from_the_first_block(write_csv):
    path = write_csv(
        "k.csv",
        "n,i,s,b,blank,y\n1.5,1,a,true,,1\n2.5,2,b,false,,2\n",
    )
    options = TableOptions()
    kinds = open_source(path, ["y"], options=options).kinds(options)
    assert kinds == [
        ColumnKind("n", "numeric", "float"),
        ColumnKind("i", "numeric", "int"),
        ColumnKind("s", "categorical", "string"),
        ColumnKind("b", "categorical", "bool"),
        ColumnKind("blank", "numeric", "float"),  # blank throughout: numeric
    ]
    named = TableOptions(categorical=("i", "n"))  # in CSV, a named column is text
    kinds = open_source(path, ["y"], options=named).kinds(named)
    assert kinds[:2] == [
        ColumnKind("n", "categorical", "string"),
        ColumnKind("i", "categorical", "string"),
    ]
    # Tokens are missing already when the types are inferred: "NA" keeps `n` numeric.
    path = write_csv("na.csv", "n,y\nNA,1\n2.5,2\n")
    assert open_source(path, ["y"], options=named_na()).kinds(named_na())[0].kind == "numeric"
    # Without the token, a column of mostly numbers is still numbers: "NA" is a bad cell,
    # refused with its row, not the start of a category.
    assert open_source(path, ["y"], options=options).kinds(options)[0].kind == "numeric"
    path = write_csv("codes.csv", "n,y\nA1,1\nB2,2\n7,3\n")
    assert open_source(path, ["y"], options=options).kinds(options)[0].kind == "categorical"


def named_na() -> TableOptions:
    return TableOptions(na_values=("NA",), missing="drop")


def test_a_text_cell_after_the_first_block_suggests_categorical(tmp_path):
    from table_data import planned

    rows = CSV_BLOCK_BYTES // 6 + 1000  # past the first block of "123,1" lines
    path = tmp_path / "late.csv"
    path.write_text("code,y\n" + "123,1\n" * rows + "A7,2\n")
    options = TableOptions()
    with pytest.raises(DataError) as caught:
        planned(path, options)
    assert str(caught.value) == (
        f"{path}, row {rows + 2}, column 'code': expected a number, got 'A7'. If 'code' holds "
        "categories, name it with --categorical code (its type was inferred from the start "
        "of the file)."
    )
    _, plan, _ = planned(path, TableOptions(categorical=("code",)), rows=4096)
    assert plan.columns[0].levels == ("123", "A7")
    assert plan.encoded_names == ["code[A7]"]


def test_unreadable_types_and_text_targets_are_refused(tmp_path, write_csv):
    table = pa.table({"when": [datetime.date(2020, 1, 1)], "y": [1.0]})
    with pytest.raises(DataError, match=r"column 'when': has type date32\[day\]; toolkit reads"):
        open_source(table, ["y"], options=TableOptions())
    path = write_csv("t.csv", "x,y\n1,a\n2,b\n")  # CSV: the reader names the row
    source = open_source(path, ["y"], options=TableOptions())
    with pytest.raises(DataError, match=r"row 2, column 'y': expected a number, got 'a'"):
        list(source.blocks())
    table = pa.table({"x": [1.0], "w": ["a"], "y": [1.0]})
    with pytest.raises(DataError, match=r"column 'w': has type string; expected a numeric"):
        open_source(table, ["y"], weight="w", options=TableOptions())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(categorical=("f",)), r"--categorical names 'f', a column of floating-point"),
        (dict(categorical=("nope",)), r"--categorical names 'nope', which is not a feature"),
        (dict(categorical=("y",)), r"--categorical names 'y', which is a target"),
        (
            dict(categorical=("LS",)),
            r"which is not a feature; name feature columns only\. "
            r"Did you mean 'ls'\?",
        ),
    ],
)
def test_categorical_must_name_integer_text_or_bool_features(options, message):
    with pytest.raises(UsageError, match=message):
        open_source(pa.table(ARROW_COLUMNS), ["y"], options=TableOptions(**options))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(missing="zero"), r"--missing 'zero' is not a policy; expected one of error, drop"),
        (dict(indicator=True), r"--missing-indicator needs --missing mean or median"),
        (dict(indicator=True, missing="drop"), r"with --missing drop no missing value is left"),
        (dict(max_levels=1), r"--max-levels 1: expected at least 2"),
        (dict(categorical=("a", "a")), r"--categorical names 'a' more than once"),
        (dict(na_values=("",)), r"--na-values: a blank token"),
    ],
)
def test_impossible_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        TableOptions(**options)


def test_without_options_features_must_still_be_numbers(tmp_path):
    # Callers that know nothing of tables (the estimator, load_dataset) keep today's refusal.
    with pytest.raises(DataError, match=r"column 's': has type string; expected a numeric"):
        open_source(pa.table({"s": ["u"], "y": [1.0]}), ["y"])


def test_pandas_and_polars_categories_encode_like_their_text():
    import numpy as np
    from table_data import blocks, planned

    text = pd.DataFrame(
        {"c": ["u", "v", None, "u"], "b": [True, False, True, None], "y": [1.0, 2.0, 3.0, 4.0]}
    )
    options = TableOptions(missing="mean")
    _, plan, _ = planned(text, options)
    expected = blocks(planned(text, options)[0])
    pandas = text.astype({"c": "category", "b": "boolean"})
    polars = pl.DataFrame(
        {
            "c": pl.Series(["u", "v", None, "u"], dtype=pl.Enum(["v", "u"])),
            "b": [True, False, True, None],
            "y": [1.0, 2.0, 3.0, 4.0],
        }
    )
    for data in (pandas, polars):
        source, other, _ = planned(data, options)
        assert other == plan
        np.testing.assert_array_equal(blocks(source), expected)
    # Levels sort as text, not in the Enum's order; the mode fills the gaps.
    assert plan.encoded_names == ["c[v]", "b[true]"]
    np.testing.assert_array_equal(expected, [[0, 1, 1], [1, 0, 2], [0, 1, 3], [0, 1, 4]])
