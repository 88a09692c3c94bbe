"""Predictor on table models (raw columns in): predictions against a hand one-hot, every
input form, mixed types, missing values, unknown levels under both policies, loading.

The references are independent of toolkit's encoding: tests/table_models.py encodes raw
rows with pandas (one column per level, the fill where a value is missing) and multiplies
by the model's weights in float64. Two graphs are checked: one built by hand with
onnx.helper, one by toolkit's export (toolkit/export/tables.py).
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from table_models import (
    FIRMS,
    PLAN,
    YEAR_PLAN,
    exported_proto,
    reference_predict,
    table_proto,
    weights,
    write_exported,
    write_table,
)

from toolkit import card
from toolkit.columns import TablePlan
from toolkit.errors import InputError, ModelLoadError
from toolkit.runtime import Predictor, UnknownLevelWarning

# float32: weights of 3 decimals times values below 10 over at most 9 terms: each product
# and the sum round within about 1e-6 relative of terms below 100, so 1e-4 absolute bounds
# it with room. float64: the same sums within 1e-13.
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-12}

FRAME = pd.DataFrame(
    {
        "firm": ["GM", None, "Atlantic", "IBM", "Chrysler", "GE", "", "NA"],
        "value": [1.0, None, 3.0, 2.5, -1.0, 7.25, np.nan, 0.0],
        "capital": [1.0, 2.0, 3.0, 4.0, 5.5, -6.0, 0.5, 9.0],
        "union": [True, False, True, False, True, True, False, False],
    }
)


def _models(tmp_path: Path, plan, dtype, targets):
    weight, bias = weights(plan, targets)
    paths = []
    for name, build in (("hand", table_proto), ("exported", exported_proto)):
        path = tmp_path / f"{name}.onnx"
        onnx.save_model(build(plan, weight, bias, dtype), path)
        paths.append(path)
    return paths, weight, bias


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("targets", [1, 2])
def test_predictions_equal_a_hand_one_hot_times_the_weights(tmp_path, dtype, targets):
    paths, weight, bias = _models(tmp_path, PLAN, dtype, targets)
    expected = reference_predict(PLAN, FRAME, weight, bias)
    for path in paths:
        predictor = Predictor(path)
        got = predictor.predict(FRAME)
        assert got.dtype == dtype and got.shape == (len(FRAME), targets)
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[dtype])


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    return Predictor(write_exported(tmp_path_factory.mktemp("table") / "m.onnx", dtype="float64"))


@pytest.fixture(scope="module")
def expected() -> np.ndarray:
    return reference_predict(PLAN, FRAME, *weights(PLAN))


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


def test_every_input_form_gives_the_same_predictions(predictor, expected):
    import polars as pl
    import pyarrow as pa

    records = _records(FRAME)
    rows = [list(r.values()) for r in records]
    forms = {
        "pandas": FRAME,
        "polars": pl.from_pandas(FRAME),
        "pyarrow": pa.Table.from_pandas(FRAME),
        "mapping of lists": {name: [r[name] for r in records] for name in FRAME},
        "mapping of arrays": {name: FRAME[name].to_numpy() for name in FRAME},
        "records": records,
        "rows": rows,
        "rows as tuples": tuple(tuple(r) for r in rows),
        "object array": np.array(rows, dtype=object),
    }
    for name, data in forms.items():
        got = predictor.predict(data)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=name)
    for i in range(len(FRAME)):  # one row of a DataFrame is a record
        np.testing.assert_allclose(predictor.predict(FRAME.iloc[i]), expected[i : i + 1])
    for i, record in enumerate(records):  # one row: the fast path, every form
        for one in (record, [record], rows[i], {k: [v] for k, v in record.items()}):
            np.testing.assert_allclose(predictor.predict(one), expected[i : i + 1], atol=1e-12)


def test_a_dataframe_may_hold_other_columns_but_a_mapping_or_record_may_not(predictor):
    frame = FRAME.assign(invest=1.0, id=range(len(FRAME)))
    np.testing.assert_array_equal(predictor.predict(frame), predictor.predict(FRAME))
    record = {**_records(FRAME)[0], "frim": "GM"}
    message = "expected columns firm, value, capital, union; unknown 'frim'"
    with pytest.raises(InputError, match=f"^the mapping: {message}$"):
        predictor.predict(record)
    with pytest.raises(InputError, match=f"^row 1: {message}$"):
        predictor.predict([record])
    with pytest.raises(InputError, match=f"^row 3: {message}$"):
        predictor.predict([*_records(FRAME)[:2], record])
    with pytest.raises(InputError, match=r"^the DataFrame lacks column 'union'; the model takes"):
        predictor.predict(FRAME.drop(columns="union"))
    with pytest.raises(InputError, match=r"^row 2: expected columns .*; missing 'capital'$"):
        predictor.predict([_records(FRAME)[0], {"firm": "GM", "value": 1.0, "union": True}])


def test_mixed_types_are_read_as_training_read_them(tmp_path):
    predictor = Predictor(write_exported(tmp_path / "years.onnx", YEAR_PLAN, dtype="float64"))
    frame = pd.DataFrame({"year": ["1935", "1937", "1940", "1936"], "x": [1.0, 2.0, 3.0, 4.0]})
    expected = reference_predict(YEAR_PLAN, frame, *weights(YEAR_PLAN))
    same = [
        [1935, 1937, 1940, 1936],
        [1935.0, 1937.0, 1940.0, 1936.0],  # an int column read through floats
        [np.int64(1935), np.int32(1937), np.float32(1940), "1936"],
        np.array([1935, 1937, 1940, 1936]),
    ]
    for years in same:
        got = predictor.predict({"year": years, "x": [1, 2.0, np.float32(3), np.int64(4)]})
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=repr(years))
    # Booleans are level texts in a categorical column.
    bools = Predictor(write_exported(tmp_path / "bools.onnx", dtype="float64"))
    record = {"firm": "GM", "value": 1.0, "capital": 2.0}
    for true in (True, np.True_, "true"):
        got = bools.predict({**record, "union": true})
        assert got == bools.predict({**record, "union": "true"})
    assert bools.predict({**record, "union": False}) != bools.predict({**record, "union": True})


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA, "", "NA"])
def test_a_missing_value_takes_the_models_fill(predictor, missing):
    filled = predictor.predict({"firm": "GM", "value": 1.5, "capital": 2.0, "union": True})
    for data in (
        {"firm": missing, "value": 1.5, "capital": 2.0, "union": True},
        [{"firm": "GM", "value": missing, "capital": 2.0, "union": True}],
        {"firm": ["GM", missing], "value": [1.5] * 2, "capital": [2.0] * 2, "union": [True] * 2},
    ):
        got = predictor.predict(data)
        # value's indicator makes its missing row differ from the filled one by its weight
        if isinstance(data, list):
            weight = weights(PLAN)[0][0, PLAN.encoded_names.index("value[(missing)]")]
            np.testing.assert_allclose(got - filled, [[weight]], atol=1e-12)
        else:
            np.testing.assert_allclose(got[-1:], filled, atol=1e-12)


@pytest.mark.parametrize("missing", [None, np.nan, "", "NA"])
def test_a_missing_value_where_the_model_has_no_fill_names_row_and_column(predictor, missing):
    rows = _records(FRAME)[:3]
    rows[2] = {**rows[2], "capital": missing}
    shown = "" if missing is None or missing != missing else f" \\({missing!r}\\)"
    message = (
        f"^row 12, column 'capital': a missing value{shown}; the model was trained with "
        "--missing mean, so it has no fill for this column and needs a value$"
    )
    with pytest.raises(InputError, match=message):
        predictor.predict(rows, first_row=10)
    with pytest.raises(InputError, match="column 'union': a missing value"):
        predictor.predict({"firm": "GM", "value": 1.0, "capital": 2.0, "union": None})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "expected a number, got 'abc'"),
        (True, "expected a number, got True"),
        ([1.0], "expected a number, got \\[1.0\\]"),
        (float("inf"), "expected a finite number, got inf; infinity is refused"),
        (-np.inf, "expected a finite number, got -inf"),
    ],
)
def test_a_bad_numeric_value_names_row_column_and_value(predictor, value, message):
    bad = {"firm": "GM", "value": 1.0, "capital": value, "union": True}
    for rows in ([bad], [*_records(FRAME)[:2], bad]):
        row = len(rows)
        with pytest.raises(InputError, match=f"^row {row}, column 'capital': {message}"):
            predictor.predict(rows)


def test_infinity_is_missing_where_training_read_it_so(tmp_path):
    plan = TablePlan.from_dict({**PLAN.to_dict(), "na_values": ["NA", "inf"]})
    predictor = Predictor(write_exported(tmp_path / "m.onnx", plan, dtype="float64"))
    record = {"firm": "GM", "value": float("inf"), "capital": 2.0, "union": True}
    filled = predictor.predict({**record, "value": None})
    for data in (record, [record, record], {k: [v, v] for k, v in record.items()}):
        np.testing.assert_array_equal(predictor.predict(data)[:1], filled)
    values = np.array([1.0, -np.inf])
    columns = {"firm": ["GM"] * 2, "value": values, "capital": [2.0] * 2, "union": [True] * 2}
    np.testing.assert_array_equal(predictor.predict(columns)[1:], filled)
    assert values[1] == -np.inf  # the caller's array is not changed
    with pytest.raises(InputError, match=r"column 'capital': a missing value \(inf\); the model"):
        predictor.predict({**record, "value": 1.0, "capital": float("inf")})


def test_a_value_beyond_float32_is_refused_with_the_value(tmp_path):
    predictor = Predictor(write_exported(tmp_path / "m.onnx"))
    record = {"firm": "GM", "value": 1.0, "capital": 1e39, "union": True}
    expected = r"row 1, column 'capital': 1e\+39 is beyond the range of the model's float32"
    for data in (record, [record, record]):
        with pytest.raises(InputError, match=expected):
            predictor.predict(data)


def test_a_list_or_object_in_a_categorical_column_is_refused(predictor):
    for value, shown in (([1], r"\[1\]"), ({"a": 1}, r"\{'a': 1\}")):
        rows = [["GM", 1.0, 2.0, True], [value, 1.0, 2.0, True]]
        expected = f"^row 2, column 'firm': expected a text, a number or a boolean, got {shown}$"
        with pytest.raises(InputError, match=expected):
            predictor.predict(rows)
    nested = {"firm": {"a": 1}, "value": 1.0, "capital": 2.0, "union": True}
    with pytest.raises(InputError, match=r"^column 'firm': expected a value or a list of values"):
        predictor.predict(nested)


def test_shapes_and_lengths_are_checked(predictor):
    with pytest.raises(InputError, match=r"^row 2: expected 4 values \(firm, value, capital"):
        predictor.predict([["GM", 1.0, 2.0, True], ["GM", 1.0, 2.0]])
    unequal = "of equal length, got firm: 2, value: 1, capital: 2, union: 1"
    with pytest.raises(InputError, match=unequal):
        predictor.predict({"firm": ["GM", "GE"], "value": [1.0], "capital": [1, 2], "union": [0]})
    with pytest.raises(InputError, match="expected a DataFrame, a mapping"):
        predictor.predict(42)
    empty = predictor.predict([])
    assert empty.shape == (0, 1) and empty.dtype == np.float64


def test_unknown_levels_are_refused_under_the_error_policy(predictor):
    rows = _records(FRAME)[:3]
    rows[1] = {**rows[1], "firm": "Ford"}
    with pytest.raises(InputError) as caught:
        predictor.predict(rows, first_row=2)
    assert str(caught.value) == (
        "row 3, column 'firm': unknown level 'Ford'; the model knows 'Atlantic', 'Chrysler', "
        "'GE', 'GM', 'IBM'. It was exported with --unknown-level error; export it with "
        "--unknown-level reference to encode unknown levels as the reference level "
        "('Chrysler')"
    )
    with pytest.raises(InputError, match="column 'union': unknown level 'yes'"):
        predictor.predict({"firm": "GM", "value": 1.0, "capital": 2.0, "union": "yes"})


def test_unknown_levels_under_the_reference_policy_warn_and_count(tmp_path):
    plan = PLAN.with_unknown_level("reference")
    predictor = Predictor(write_exported(tmp_path / "m.onnx", plan, dtype="float64"))
    frame = FRAME.astype({"union": object})
    frame.loc[[1, 4], "firm"] = ["Ford", "Toyota"]
    frame.loc[4, "union"] = "maybe"
    with pytest.warns(UnknownLevelWarning, match=r"^3 unknown levels in 2 of 8 rows encoded"):
        got = predictor.predict(frame)
    reference = frame.assign(firm=frame.firm.replace({"Ford": FIRMS[0], "Toyota": FIRMS[0]}))
    reference.loc[4, "union"] = False  # the reference level of union
    expected = reference_predict(plan, reference, *weights(plan))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert predictor.unknown_levels_seen == 3
    with pytest.warns(UnknownLevelWarning, match=r"^1 unknown level in 1 of 1 row encoded"):
        predictor.predict({"firm": "Ford", "value": 1.0, "capital": 2.0, "union": True})
    assert predictor.unknown_levels_seen == 4
    result, counts = predictor.predict_counted(frame)
    np.testing.assert_array_equal(counts, [0, 1, 0, 0, 2, 0, 0, 0])
    np.testing.assert_array_equal(result, got)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known levels: no warning
        predictor.predict(FRAME)


def test_one_row_calls_from_many_threads_stay_apart(predictor, expected):
    records = _records(FRAME)
    failures = []

    def work(offset: int) -> None:
        for i in range(300):
            k = (i + offset) % len(records)
            got = predictor.predict(records[k])
            if not np.allclose(got, expected[k : k + 1], atol=1e-12):
                failures.append((k, got))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_names_and_signature_facts(predictor):
    assert predictor.input_names == ["firm", "value", "capital", "union"]
    assert predictor.feature_names == PLAN.encoded_names
    assert predictor.n_features == len(PLAN.encoded_names) and predictor.n_targets == 1
    assert predictor.table is not None and predictor.table.unknown_level == "error"
    assert predictor.input_name is None
    feeds = predictor.prepare(_records(FRAME)[:2])
    assert list(feeds) == predictor.input_names


def _with_card(tmp_path: Path, proto: onnx.ModelProto, **changes: str) -> Path:
    props = {p.key: p.value for p in proto.metadata_props}
    props.update(changes)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    path = tmp_path / "changed.onnx"
    onnx.save_model(proto, path)
    return path


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("not json", "the table plan is not an object"),
        ('{"columns": []}', "the table plan's columns are not a non-empty list"),
        (
            '{"columns": [{"name": "firm", "kind": "text", "raw_type": "string"}]}',
            "column 'firm' kind is 'text'",
        ),
    ],
)
def test_a_malformed_plan_is_a_load_error(tmp_path, table, problem):
    proto = exported_proto(PLAN, *weights(PLAN))
    path = _with_card(tmp_path, proto, **{card.TABLE: table})
    with pytest.raises(ModelLoadError, match=f"table plan is malformed \\({problem}"):
        Predictor(path)


def test_a_plan_that_does_not_match_the_graph_is_a_load_error(tmp_path, seed_onnx):
    proto = onnx.load(seed_onnx)
    path = _with_card(tmp_path, proto, **{card.TABLE: PLAN.to_json()})
    with pytest.raises(ModelLoadError, match="has a table plan in its model card but outputs"):
        Predictor(path)
    other = PLAN.to_dict()
    other["columns"][2]["name"] = "capital2"
    path = _with_card(tmp_path, exported_proto(PLAN, *weights(PLAN)), table=str(other))
    with pytest.raises(ModelLoadError):
        Predictor(path)


def test_numeric_models_are_untouched(seed_onnx):
    predictor = Predictor(seed_onnx)
    assert predictor.table is None and predictor.input_names == ["x1", "x2"]
    result, counts = predictor.predict_counted([[1.0, 2.0]])
    np.testing.assert_allclose(result, [[2.0]], atol=1e-5)
    np.testing.assert_array_equal(counts, [0])


def test_the_hand_model_and_exports_unknown_counts_agree(tmp_path):
    plan = PLAN.with_unknown_level("reference")
    frame = FRAME.assign(firm=["Ford", *FRAME.firm[1:]], union=[True, "x", *FRAME.union[2:]])
    counts = []
    for path in (write_table(tmp_path / "a.onnx", plan), write_exported(tmp_path / "b.onnx", plan)):
        counts.append(Predictor(path).predict_counted(frame)[1])
    np.testing.assert_array_equal(counts[0], [1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(counts[1], counts[0])
