"""toolkit/runtime/inputs.py: the Predictor's input guard.

Arrays, lists, mappings and DataFrames; dtypes, byte order and layout; NaN and infinity.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from runtime_models import SEED_ATOL, inputs_in_range, seed_math, write_linear

from toolkit.export import export_model
from toolkit.runtime import InputError, Predictor
from toolkit.runtime.inputs import SMALL, all_finite, as_array, check_finite, first_bool
from toolkit.training import TrainConfig, train


@pytest.fixture(scope="module")
def seed_model(seed_onnx: Path) -> Path:
    return seed_onnx


@pytest.fixture(scope="module")
def float64_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("float64")
    train(TrainConfig(dtype="float64", out=folder / "m.pt"))
    export_model(folder / "m.pt", folder / "m.onnx")
    return folder / "m.onnx"


@pytest.fixture(scope="module")
def seed(seed_model) -> Predictor:
    return Predictor(seed_model)


# --- Inputs ---------------------------------------------------------------------------


def test_numpy_1d_is_one_row(seed):
    result = seed.predict(np.array([1.5, 2.25], dtype=np.float32))
    assert result.shape == (1, 1) and result.dtype == np.float32
    np.testing.assert_allclose(result, [[2.75]], rtol=0, atol=SEED_ATOL)


@pytest.mark.parametrize("rows", [2, 3, 1000])
def test_numpy_2d_batch_gives_n_by_targets_with_the_models_math(seed, rows):
    x = inputs_in_range(rows, seed=rows)
    result = seed.predict(x)
    assert result.shape == (rows, 1) and result.dtype == np.float32
    np.testing.assert_allclose(result, seed_math(x), rtol=0, atol=SEED_ATOL)


def test_nested_lists_and_tuples(seed):
    expected = [[2.0], [6.0]]
    for data in ([[1, 2], [3, 4]], ((1.0, 2.0), (3.0, 4.0)), [(1, 2.0), [3.0, 4]]):
        np.testing.assert_allclose(seed.predict(data), expected, rtol=0, atol=SEED_ATOL)
    np.testing.assert_allclose(seed.predict([1.0, 2.0]), [[2.0]], rtol=0, atol=SEED_ATOL)


def test_mapping_of_feature_name_to_column(seed):
    columns = {"x2": [2.0, 4.0, -1.0], "x1": np.array([1.0, 3.0, 0.5])}  # any key order
    np.testing.assert_allclose(
        seed.predict(columns), [[2.0], [6.0], [-1.5]], rtol=0, atol=SEED_ATOL
    )
    np.testing.assert_allclose(
        seed.predict({"x1": 1.0, "x2": 2.0}), [[2.0]], rtol=0, atol=SEED_ATOL
    )


def test_mapping_with_missing_name(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [1.0]})
    assert str(caught.value) == "expected columns x1, x2; missing 'x2'"


def test_mapping_with_extra_name(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [1.0], "x2": [2.0], "id": [7]})
    assert str(caught.value) == "expected columns x1, x2; unknown 'id'"


def test_mapping_with_wrong_name_reports_missing_and_unknown(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"X1": [1.0], "x2": [2.0]})
    assert str(caught.value) == "expected columns x1, x2; missing 'x1' and unknown 'X1'"


def test_mapping_with_columns_of_unequal_length(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [1.0, 2.0], "x2": [1.0, 2.0, 3.0]})
    assert str(caught.value) == "expected columns of equal length, got x1: 2, x2: 3"


def test_mapping_with_a_2d_column_is_an_input_error(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [[1.0, 2.0]], "x2": [[1.0, 2.0]]})
    assert str(caught.value) == (
        "column 'x1': expected a number or a 1-D sequence of numbers, got an array of shape (1, 2)"
    )
    with pytest.raises(InputError, match=r"^column 'x1': expected a number or a 1-D"):
        seed.predict({"x1": [["a"]], "x2": [["b"]]})


def test_mapping_with_a_text_value_names_row_and_column(seed):
    with pytest.raises(InputError) as caught:
        seed.prepare({"x1": [1.0, 2.0], "x2": ["3", "four"]}, first_row=10)
    assert str(caught.value) == "row 11, column 'x2': expected a number, got 'four'"


def test_mapping_with_a_boolean_in_a_list_column_is_refused(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [1.0, 2.0], "x2": [0, True]})
    assert str(caught.value) == "row 2, column 'x2': expected a number, got True"


def test_dataframe_by_column_name(seed):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": ["a", "b"], "x2": [2.0, 4.0], "x1": [1, 3]})
    np.testing.assert_allclose(seed.predict(frame), [[2.0], [6.0]], rtol=0, atol=SEED_ATOL)
    named = seed.predict(frame, by_name=True)
    np.testing.assert_allclose(named["y"], [2.0, 6.0], rtol=0, atol=SEED_ATOL)


def test_dataframe_missing_a_feature_column(seed):
    pd = pytest.importorskip("pandas")
    with pytest.raises(InputError) as caught:
        seed.predict(pd.DataFrame({"x1": [1.0], "z": [2.0]}))
    assert str(caught.value) == "the DataFrame lacks column 'x2'; expected x1, x2"
    with pytest.raises(InputError) as caught:
        seed.predict(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    assert str(caught.value) == "the DataFrame lacks columns 'x1', 'x2'; expected x1, x2"


def test_dataframe_with_text_names_row_and_column(seed):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x1": [1.0, 2.0, 3.0], "x2": ["1", "2", "n/a"]})
    with pytest.raises(InputError) as caught:
        seed.predict(frame)
    assert str(caught.value) == "row 3, column 'x2': expected a number, got 'n/a'"


def test_wrong_feature_count(seed):
    with pytest.raises(InputError) as caught:
        seed.predict(np.zeros((4, 3)))
    assert str(caught.value) == "expected 2 features per row (x1, x2), got 3"
    with pytest.raises(InputError, match=re.escape("(x1, x2), got 1")):
        seed.predict([5.0])


@pytest.mark.parametrize(
    ("data", "shape"), [(np.zeros((2, 2, 2)), "(2, 2, 2)"), (np.float32(1.0), "()")]
)
def test_wrong_rank(seed, data, shape):
    with pytest.raises(InputError) as caught:
        seed.predict(data)
    assert str(caught.value) == (
        f"expected a 1-D row or a 2-D batch of shape (n, 2), got an array of shape {shape}"
    )


def test_ragged_rows(seed):
    with pytest.raises(InputError) as caught:
        seed.predict([[1.0, 2.0], [3.0]])
    assert str(caught.value) == "expected rows of equal length, got a ragged sequence"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([[1.0, 2.0], [3.0, "x"]], "row 2, column 'x2': expected a number, got 'x'"),
        ([[1.0, 2.0], [None, 4.0]], "row 2, column 'x1': expected a number, got None"),
        (np.array([[1.0, {}]], dtype=object), "row 1, column 'x2': expected a number, got {}"),
        ([[1.0, 2.0], [3.0, True]], "row 2, column 'x2': expected a number, got True"),
        ([1.5, np.True_], "row 1, column 'x2': expected a number, got np.True_"),
        (
            np.array([[True, False]]),
            "expected numbers, got booleans (dtype bool); convert them explicitly",
        ),
        (np.array([[1 + 2j, 0]]), "expected real numbers, got complex numbers (dtype complex128)"),
        (
            np.array([["1", "2"]]),
            "expected numbers, got an array of dtype <U1; convert it to float first",
        ),
    ],
)
def test_non_numeric_values_name_row_and_column(seed, data, message):
    with pytest.raises(InputError) as caught:
        seed.predict(data)
    assert str(caught.value) == message


def test_row_numbers_start_at_first_row(seed):
    with pytest.raises(InputError) as caught:
        seed.prepare([[1.0, 2.0], [3.0, "x"]], first_row=42)
    assert str(caught.value) == "row 43, column 'x2': expected a number, got 'x'"


@pytest.mark.parametrize(("bad", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_nan_and_infinity_are_refused_by_default(seed, bad, shown):
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, bad]], dtype=np.float32)
    with pytest.raises(InputError) as caught:
        seed.predict(x)
    assert str(caught.value) == (
        f"row 3, column 'x2': expected a finite number, got {shown}; NaN and infinity are "
        "refused (Predictor(..., allow_non_finite=True) accepts them)"
    )


def test_allow_non_finite_passes_nan_and_infinity_through(seed_model):
    predictor = Predictor(seed_model, allow_non_finite=True)
    result = predictor.predict(np.array([[np.nan, 1.0], [np.inf, 1.0], [1.0, 2.0]]))
    assert np.isnan(result[0, 0]) and result[1, 0] == np.inf
    np.testing.assert_allclose(result[2], [2.0], rtol=0, atol=SEED_ATOL)
    assert np.isnan(predictor.predict([np.nan, 0.0])[0, 0])  # the single-row path too


def test_float64_beyond_float32_range_is_refused_not_turned_into_infinity(seed_model):
    for allow in (False, True):
        predictor = Predictor(seed_model, allow_non_finite=allow)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "overflow encountered in cast" either
            with pytest.raises(InputError) as caught:
                predictor.predict(np.array([[1.0, 2.0], [-1e300, 0.0]]))
        assert str(caught.value) == (
            "row 2, column 'x1': -1e+300 is beyond the range of the model's float32 "
            "(largest magnitude 3.40282e+38); scale the input or use a float64 model"
        )


def test_float64_beyond_float32_range_is_refused_under_numpys_raise_mode_too(seed_model):
    # The conversion runs without np.errstate (0.7 us a call); a caller's seterr(over=
    # "raise") must still get the guard's message, not numpy's FloatingPointError.
    predictor = Predictor(seed_model)
    beyond = r"^row 1, column 'x2': 1e\+39 is beyond the range of the model's float32"
    with np.errstate(over="raise"), pytest.raises(InputError, match=beyond):
        predictor.predict(np.array([0.0, 1e39]))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float64, np.float16])
def test_ints_and_other_floats_are_converted_to_the_models_dtype(seed, dtype):
    x = np.array([[1, 2], [3, 4], [-5, 7]]) if dtype != np.uint8 else np.array([[1, 2], [3, 4]])
    typed = x.astype(dtype)
    prepared = seed.prepare(typed)
    assert prepared.dtype == np.float32 and prepared.flags.c_contiguous
    # Small integers are exact in every one of these dtypes and in float32.
    np.testing.assert_array_equal(seed.predict(typed), seed.predict(x.astype(np.float32)))
    np.testing.assert_allclose(seed.predict(typed), seed_math(x), rtol=0, atol=SEED_ATOL)


def test_float32_input_is_converted_for_a_float64_model(float64_model):
    predictor = Predictor(float64_model)
    assert predictor.dtype == np.float64
    x = inputs_in_range(20)
    result = predictor.predict(x)
    assert result.dtype == np.float64
    # float64 weights fitted exactly to y = x1 + x2 - 1: rounding ~1e-15 on values < 21.
    np.testing.assert_allclose(result, seed_math(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i4"])
def test_big_endian_arrays_give_the_native_result(seed, dtype):
    x = inputs_in_range(7).round(2)
    swapped = x.astype(dtype)
    assert not swapped.dtype.isnative
    assert seed.prepare(swapped).dtype.isnative
    np.testing.assert_array_equal(seed.predict(swapped), seed.predict(swapped.astype(dtype[1:])))
    np.testing.assert_array_equal(seed.predict(swapped[0]), seed.predict(swapped[0:1]))


def test_non_contiguous_views_give_the_contiguous_result(seed):
    wide = inputs_in_range(40).reshape(20, 4)
    views = {
        "every other row": inputs_in_range(40)[::2],
        "columns of a wider array": wide[:, 1:3],
        "fortran order": np.asfortranarray(inputs_in_range(9)),
        "transposed": inputs_in_range(6).T.copy().T,
        "reversed": inputs_in_range(5)[::-1],
    }
    for name, view in views.items():
        assert not view.flags.c_contiguous, name
        expected = seed.predict(np.ascontiguousarray(view))
        np.testing.assert_array_equal(seed.predict(view), expected, err_msg=name)
    strided_row = np.array([1.0, 9.0, 2.0, 9.0], dtype=np.float32)[::2]
    np.testing.assert_allclose(seed.predict(strided_row), [[2.0]], rtol=0, atol=SEED_ATOL)


def test_fixed_batch_model_explains_the_batch_size(tmp_path):
    predictor = Predictor(write_linear(tmp_path / "fixed.onnx", batch=2))
    assert predictor.predict(np.ones((2, 3))).shape == (2, 1)
    assert predictor.predict(np.ones((0, 3))).shape == (0, 1)
    with pytest.raises(InputError) as caught:
        predictor.predict(np.ones((5, 3)))
    assert str(caught.value) == (
        "expected batches of exactly 2 rows (the model's input shape is [2, 3]), got 5; "
        "split the input or export the model with a dynamic batch axis"
    )


def test_input_error_is_a_value_error_with_usage_exit_code():
    assert issubclass(InputError, ValueError) and InputError.exit_code == 2


# --- The helpers, called directly -------------------------------------------------------


def test_first_bool_finds_the_first_boolean_cell_or_none():
    assert first_bool([[1.0, 2.0], [3, 4]]) is None
    assert first_bool([[1.0, 2.0], [3, True]]) == ((1, 1), True)
    assert first_bool([[np.bool_(False), 1.0]]) == ((0, 0), np.bool_(False))


def test_all_finite_is_exact_for_nan_and_infinity_and_sends_overflow_to_the_exact_check():
    assert all_finite(np.array([[1.0, -2.0]], dtype=np.float32))
    assert not all_finite(np.array([[1.0, np.nan]], dtype=np.float32))
    assert not all_finite(np.array([[np.inf]], dtype=np.float64))
    assert not all_finite(np.array([[np.inf, -np.inf]], dtype=np.float64))  # sums to NaN
    # A few values (one row's predictions) are summed as Python floats: exact for any
    # finite float32, 1e30 and 3e38 (whose float32 sum would overflow) included.
    assert all_finite(np.array([[1e30]], dtype=np.float32))
    assert all_finite(np.array([[3e38, 3e38]], dtype=np.float32))
    # More take a float32 dot product: 1e30 squared overflows, a false alarm resolved by
    # check_finite's exact scan; a NaN or infinity among them is always caught.
    big = np.ones((SMALL + 1, 1), dtype=np.float32)
    assert all_finite(big)
    with np.errstate(over="ignore"):
        assert not all_finite(big * 1e30)
    for bad in (np.nan, np.inf, -np.inf):
        damaged = big.copy()
        damaged[-1, 0] = bad
        assert not all_finite(damaged)


def test_as_array_leaves_numpy_arrays_alone_and_stacks_mappings_by_name():
    array = np.ones((2, 2))
    assert as_array(array, ["a", "b"], 1) is array
    stacked = as_array({"b": [3.0, 4.0], "a": [1.0, 2.0]}, ["a", "b"], 1)
    np.testing.assert_array_equal(stacked, [[1.0, 3.0], [2.0, 4.0]])


def test_check_finite_names_the_cell_by_file_row():
    values = np.array([[1.0, 2.0], [np.inf, 3.0]], dtype=np.float32)
    with pytest.raises(InputError, match=r"^row 11, column 'a': expected a finite number, got inf"):
        check_finite(values, values, 10, ["a", "b"], np.dtype(np.float32), False)
    check_finite(values, values, 10, ["a", "b"], np.dtype(np.float32), True)  # allowed
