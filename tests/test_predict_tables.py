"""`toolkit predict` and `toolkit info` on table models: raw CSV and Parquet columns in.

The reference reads the same file with pandas (blank cells and the plan's na_values as
missing) and encodes it by hand (tests/table_models.py), times the model's weights in
float64; the models are float64, so predictions agree to 1e-12 (the CSV output prints
floats with repr: exact).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from table_models import PLAN, YEAR_PLAN, reference_predict, weights, write_exported

from toolkit.cli import cli

CSV = (
    "id,firm,value,capital,union,invest\n"
    "a,GM,1.5,1.0,true,9\n"
    "b,,,2.0,false,9\n"
    "c,Atlantic,3.0,3.0,true,9\n"
    "d,IBM,NA,4.0,false,9\n"
    "e,NA,2.0,5.0,true,9\n"
    "f,Chrysler,-1.25,6.5,false,9\n"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_exported(tmp_path_factory.mktemp("table") / "m.onnx", dtype="float64")


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=True)


def _predicted(output: str) -> pd.DataFrame:
    from io import StringIO

    return pd.read_csv(StringIO(output))


def test_a_csv_with_text_blanks_and_tokens_is_predicted_as_pandas_reads_it(model, write_csv):
    path = write_csv("in.csv", CSV)
    result = invoke("predict", str(model), "--input", str(path), "--id", "id")
    assert result.exit_code == 0, result.output
    got = _predicted(result.stdout)
    frame = pd.read_csv(path, keep_default_na=False, na_values=["", "NA"])
    expected = reference_predict(PLAN, frame, *weights(PLAN))
    assert list(got.columns) == ["id", "y"] and list(got.id) == list("abcdef")
    np.testing.assert_allclose(got.y.to_numpy(), expected[:, 0], rtol=1e-12, atol=1e-12)


def test_chunks_keep_the_rows_of_the_file(model, write_csv):
    path = write_csv("in.csv", CSV)
    whole = invoke("predict", str(model), "--input", str(path))
    chunked = invoke("predict", str(model), "--input", str(path), "--chunk-rows", "2")
    assert chunked.exit_code == 0, chunked.output
    assert chunked.stdout == whole.stdout


def test_parquet_bool_int_and_dictionary_columns_are_level_texts(tmp_path):
    model = write_exported(tmp_path / "years.onnx", YEAR_PLAN, dtype="float64")
    source = tmp_path / "in.parquet"
    years = pa.array([1935, None, 1940, 1937, 1999], pa.int32())
    pq.write_table(pa.table({"year": years, "x": [1.0, 2.0, 3.0, None, 5.0]}), source)
    result = invoke("predict", str(model), "--input", str(source))
    # x has no fill: the blank row 4 (the header is not a Parquet row) is refused.
    assert result.exit_code == 1
    assert "row 4, column 'x': a missing value; the model was trained with --missing" in (
        result.output
    )
    pq.write_table(pa.table({"year": years, "x": [1.0, 2.0, 3.0, 4.0, 5.0]}), source)
    result = invoke("predict", str(model), "--input", str(source))
    assert result.exit_code == 0, result.output
    assert "warning: 1 unknown level in 1 row encoded as the reference level" in result.stderr
    frame = pd.DataFrame({"year": ["1935", None, "1940", "1937", "1999"], "x": range(1, 6)})
    expected = reference_predict(YEAR_PLAN, frame, *weights(YEAR_PLAN))
    np.testing.assert_allclose(_predicted(result.stdout).y, expected[:, 0], atol=1e-12)

    model = write_exported(tmp_path / "firms.onnx", dtype="float64")
    firms = pd.Categorical(["GM", None, "IBM"])
    frame = pd.DataFrame(
        {
            "firm": firms,
            "value": [1.0, None, 2.0],
            "capital": [1, 2, 3],
            "union": [True, False, True],
        }
    )
    frame.to_parquet(tmp_path / "firms.parquet")
    result = invoke("predict", str(model), "--input", str(tmp_path / "firms.parquet"))
    assert result.exit_code == 0, result.output
    expected = reference_predict(PLAN, frame.astype({"firm": object}), *weights(PLAN))
    np.testing.assert_allclose(_predicted(result.stdout).y, expected[:, 0], atol=1e-12)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("g,GM,1.0,,true,9", "row 8, column 'capital': a missing value; the model was trained"),
        ("g,Ford,1.0,2.0,true,9", "row 8, column 'firm': unknown level 'Ford'; the model knows"),
        ("g,GM,1.0,2.0,maybe,9", "row 8, column 'union': unknown level 'maybe'"),
        ("g,GM,abc,2.0,TRUE,9", "row 8, column 'value': expected a number, got 'abc'"),
        ("g,GM,1.0,inf,true,9", "row 8, column 'capital': expected a finite number, got inf"),
    ],
)
def test_a_bad_cell_is_named_by_file_row_and_column(model, write_csv, row, message):
    # Without "NA" in a numeric column: toolkit.io's search for the cell pyarrow could not
    # parse does not know the na_values tokens yet (it names the "NA" cell instead).
    path = write_csv("bad.csv", CSV.replace("d,IBM,NA,", "d,IBM,,") + row + "\n")
    for chunk in ("65536", "3"):
        result = invoke("predict", str(model), "--input", str(path), "--chunk-rows", chunk)
        assert result.exit_code == 1, result.output
        assert f"Error: {path}, {message}" in result.output


def test_a_missing_raw_column_is_a_usage_error(model, write_csv):
    path = write_csv("in.csv", "firm,value,capital\nGM,1,2\n")
    result = invoke("predict", str(model), "--input", str(path))
    assert result.exit_code == 2
    assert "lacks column 'union'" in result.output


def test_id_may_not_be_a_raw_column(model, write_csv):
    result = invoke("predict", str(model), "--input", str(write_csv("in.csv", CSV)), "--id", "firm")
    assert result.exit_code == 2
    assert "--id 'firm' is a feature of the model" in result.output


def test_info_shows_the_raw_inputs_and_policies(model):
    result = invoke("info", str(model))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1:6] == [
        "inputs:     firm: categorical (string), 4 levels + 1 sharing '(other)', missing -> 'GM'",
        "            value: numeric (float), missing -> 1.5 with an indicator",
        "            capital: numeric (float), a missing value is refused",
        "            union: categorical (bool), 2 levels, a missing value is refused",
        "table:      --missing mean, na-values 'NA', unknown levels: error",
    ]
    assert "output:     prediction tensor(double) ['batch', 1]" in lines
    assert any(line.startswith("  table ") and "the inputs above" in line for line in lines)
    details = json.loads(invoke("info", str(model), "--json").stdout)
    assert details["input"] is None
    assert [i["name"] for i in details["inputs"]] == PLAN.raw_names
    assert [o["name"] for o in details["outputs"]] == ["prediction", "unknown_levels"]
    assert details["table"]["unknown_level"] == "error"
    assert details["table"]["columns"][1] == {
        "name": "value",
        "kind": "numeric",
        "raw_type": "float",
        "json_type": "number",
        "levels": None,
        "folded": 0,
        "fill": 1.5,
        "indicator": True,
        "nullable": True,
    }


def test_csv_booleans_are_read_in_every_spelling_training_reads(model, write_csv):
    rows = [f"GM,1.0,2.0,{spelling}" for spelling in ("true", "True", "TRUE", "1")]
    rows += [f"GM,1.0,2.0,{spelling}" for spelling in ("false", "False", "FALSE", "0")]
    path = write_csv("in.csv", "firm,value,capital,union\n" + "\n".join(rows) + "\n")
    result = invoke("predict", str(model), "--input", str(path))
    assert result.exit_code == 0, result.output
    got = _predicted(result.stdout).y.tolist()
    assert got[:4] == [got[0]] * 4 and got[4:] == [got[4]] * 4 and got[0] != got[4]


def test_nan_in_a_parquet_number_column_is_refused_with_file_and_row(tmp_path):
    model = write_exported(tmp_path / "years.onnx", YEAR_PLAN, dtype="float64")
    source = tmp_path / "in.parquet"
    x = pa.array([1.0, 2.0, float("nan")], pa.float64(), from_pandas=False)
    pq.write_table(pa.table({"year": [1935, 1936, 1937], "x": x}), source)
    result = invoke("predict", str(model), "--input", str(source), "--chunk-rows", "2")
    assert result.exit_code == 1
    assert (
        f"Error: {source}, row 3, column 'x': expected a number or a blank cell, got nan; "
        "NaN and infinity are refused (--allow-non-finite accepts them)\n"
    ) in result.output


def test_the_summary_counts_rows_not_columns(model, write_csv, tmp_path):
    out = tmp_path / "out.csv"
    result = invoke(
        "predict", str(model), "--input", str(write_csv("in.csv", CSV)), "--output", str(out)
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"predicted 6 rows with CPUExecutionProvider -> {out}"


def test_unknown_levels_under_reference_are_counted_once_not_warned_per_chunk(tmp_path):
    path = write_exported(tmp_path / "ref.onnx", PLAN.with_unknown_level("reference"))
    data = tmp_path / "unseen.csv"
    data.write_text(CSV.replace("a,GM,", "a,Tesla,").replace("f,Chrysler,", "f,Rivian,"))
    result = invoke("predict", str(path), "--input", str(data), "--chunk-rows", "2")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        "warning: 2 unknown levels in 2 rows encoded as the reference level (the model was "
        "exported with --unknown-level reference)."
    )
    assert len(_predicted(result.stdout)) == 6
