"""toolkit/training/readpass.py: the one pass (split, sums, spills) and what it says of the data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toolkit.errors import DataError
from toolkit.io import holdout_mask
from toolkit.training import TrainConfig, train
from toolkit.training.model import ModelSpec
from toolkit.training.readpass import (
    check_enough_rows,
    constant_target_warnings,
    consume,
    to_moments,
)
from toolkit.training.spill import RowSpill


def test_constant_target_is_a_warning_not_an_error(run, write_csv):
    path = write_csv("c.csv", "a,y\n1,5\n2,5\n3,5\n")
    result = run("train", "--data", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert "warning: target 'y' is constant (every value is 5.0); R^2 is undefined" in result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"]["train"]["r2"] is None
    np.testing.assert_allclose(report["bias"], [5.0], atol=1e-6)


def test_fewer_rows_than_parameters_is_an_error(run, write_csv):
    path = write_csv("few.csv", "a,b,c,y\n1,2,3,4\n2,3,5,1\n")
    result = run("train", "--data", str(path))
    assert result.exit_code == 1
    assert (
        f"Error: {path}: 2 training rows cannot determine 4 parameters per target "
        "(3 weights and an intercept); expected at least 4 rows."
    ) in result.output


def test_exact_does_not_depend_on_chunk_rows(tmp_path, scaled_csv):
    runs = [
        train(TrainConfig(data=scaled_csv, dtype="float64", chunk_rows=rows, out=tmp_path / "m.pt"))
        for rows in (7, 256, 65_536)
    ]
    for other in runs[1:]:  # float64 statistics summed in other blocks: rounding only
        np.testing.assert_allclose(other.weight, runs[0].weight, rtol=1e-12)
        np.testing.assert_allclose(other.bias, runs[0].bias, rtol=1e-12)
        assert other.data["val_rows"] == runs[0].data["val_rows"]  # the same rows held out


def test_the_pass_splits_sums_and_spills_every_row_once():
    rng = np.random.default_rng(5)
    data = np.column_stack([rng.standard_normal((1000, 3)) * [1, 10, 100], rng.random(1000)])
    held_out = np.concatenate(
        [holdout_mask(data[i : i + 128], 0.3, 7) for i in range(0, 1000, 128)]
    )
    with RowSpill(4) as train_spill, RowSpill(4) as val_spill:
        blocks = (data[i : i + 128] for i in range(0, 1000, 128))
        summary = consume(blocks, 3, 0.3, 7, "cpu", train_spill, val_spill)
        spilled = [np.concatenate(list(s.chunks(1000))) for s in (train_spill, val_spill)]
    for rows, n, plain in [
        (data[~held_out], summary.n_train, summary.train),
        (data[held_out], summary.n_val, summary.val),
    ]:
        assert n == len(rows) == plain["n"]
        np.testing.assert_allclose(plain["mean"], rows.mean(axis=0), rtol=1e-12)
        centred = rows - rows.mean(axis=0)
        scatter = plain["scatter"] * np.outer(plain["unit"], plain["unit"])  # in data units
        np.testing.assert_allclose(scatter, centred.T @ centred, rtol=1e-10, atol=1e-9)
        assert not plain["constant"].any()
        assert (plain["peak"] >= np.abs(rows).max(axis=0)).all()  # an upper bound
    np.testing.assert_array_equal(spilled[0], data[~held_out])  # in order, bit for bit
    np.testing.assert_array_equal(spilled[1], data[held_out])
    assert summary.first_target == data[~held_out][0, 3:]
    assert summary.first_val_target == data[held_out][0, 3:]
    assert (summary.target_min, summary.target_max) == (data[:, 3].min(), data[:, 3].max())
    moments = to_moments(summary.train)
    assert moments.n == summary.n_train and moments.mean.dtype == np.float64


def test_an_empty_piece_sums_to_nothing():
    with RowSpill(3) as train_spill, RowSpill(3) as val_spill:
        summary = consume([], 2, 0.2, 0, "cpu", train_spill, val_spill)
    assert (summary.n_train, summary.n_val, summary.train, summary.first_target) == (
        0,
        0,
        None,
        None,
    )
    assert to_moments(summary.train) is None
    assert constant_target_warnings(ModelSpec(("a", "b"), ("y",)), [summary]) == []


def test_too_few_rows_name_the_parameters():
    spec = ModelSpec(("a",), ("y",), intercept=False)
    check_enough_rows("d.csv", spec, 1)
    with pytest.raises(DataError, match=r"^d\.csv: 0 training rows cannot determine 1 parameters"):
        check_enough_rows("d.csv", spec, 0)
